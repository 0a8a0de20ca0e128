"""Scoring generated images: attribute operators, class fidelity, intra-class diversity.

Attributes are scored with the exact rule-based detectors of
:func:`~embedlab.blender.data.detect_attributes` (our feasibility run found a learned
attribute classifier gave false positives on saturated samples). Class fidelity uses a
small CNN trained on *real* renders of the training classes with random attribute
combinations (so it judges the animal, not the attributes).

* Union (``union_scores``): with ``U`` the attributes of any prompt: ``any`` = share of
  images showing at least one attribute of ``U``; ``all`` = showing all of ``U``;
  ``coverage`` = mean share of ``U`` shown; ``leak`` = showing an attribute outside ``U``.
* Intersection (``intersection_scores``): with ``I`` the attributes every prompt has and
  ``P = U - I`` the private ones: ``shared`` = showing all of ``I``; ``private`` = showing
  any of ``P``; ``precision`` = all of ``I`` and none of ``P`` (the intersection's own
  measure); ``leak`` = anything outside ``U``.
* Diversity: distinct attribute combinations per class, and the mean pairwise cosine
  distance of the classifier's penultimate features within a class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from embedlab.blender.data import detect_attributes


def union_scores(detected: torch.Tensor, union: torch.Tensor) -> dict[str, float]:
    d, u = detected.bool(), union.bool()
    hit = d & u
    n_u = u.sum(1).clamp(min=1)
    return {
        "any": hit.any(1).float().mean().item(),
        "all": ((hit == u).all(1)).float().mean().item(),
        "coverage": (hit.sum(1) / n_u).mean().item(),
        "leak": (d & ~u).any(1).float().mean().item(),
    }


def intersection_scores(
    detected: torch.Tensor, union: torch.Tensor, shared: torch.Tensor
) -> dict[str, float]:
    d, u, s = detected.bool(), union.bool(), shared.bool()
    private = u & ~s
    has_shared = ((d & s) == s).all(1)
    has_private = (d & private).any(1)
    return {
        "shared": has_shared.float().mean().item(),
        "private": has_private.float().mean().item(),
        "precision": (has_shared & ~has_private).float().mean().item(),
        "leak": (d & ~u).any(1).float().mean().item(),
    }


def wilson_interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% by default) of a proportion ``rate`` observed on ``n`` images."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    z2 = z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference_interval(
    a: float, n_a: int, b: float, n_b: int, z: float = 1.96
) -> dict[str, float]:
    """``a - b`` with Newcombe's hybrid score interval (method 10) from the two Wilson
    intervals. It treats the samples as independent; the fidelity study's variants share
    prompts and seeds (paired), for which this interval is conservative."""
    la, ua = wilson_interval(a, n_a, z)
    lb, ub = wilson_interval(b, n_b, z)
    d = a - b
    low = d - math.sqrt((a - la) ** 2 + (ub - b) ** 2)
    high = d + math.sqrt((ua - a) ** 2 + (b - lb) ** 2)
    return {"diff": d, "ci_low": low, "ci_high": high}


class ClassNet(nn.Module):
    """A small CNN classifier (3x32x32 -> classes); ``features`` is its penultimate layer."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(256, 128), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class ClassJudge:
    """A trained :class:`ClassNet` over the given class ids."""

    net: ClassNet
    classes: tuple[int, ...]
    val_accuracy: float

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.net.eval()
        out = torch.cat([self.net(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
        return torch.tensor(self.classes)[out]

    @torch.inference_mode()
    def features(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.net.eval()
        return torch.cat([self.net.features(x[i : i + batch]) for i in range(0, len(x), batch)])

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return (self.predict(x) == y).float().mean().item()


def train_class_judge(x: torch.Tensor, y: torch.Tensor, seed: int = 0, epochs: int = 8,
                      batch: int = 64, holdout: float = 0.15) -> ClassJudge:  # fmt: skip
    """Train a :class:`ClassJudge` on real images (a random ``holdout`` share scores it)."""
    classes = tuple(sorted(set(y.tolist())))
    remap = {c: i for i, c in enumerate(classes)}
    t = torch.tensor([remap[int(c)] for c in y])
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    n_val = int(len(x) * holdout)
    val, tr = perm[:n_val], perm[n_val:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ClassNet(len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        net.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(net(x[idx]), t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    judge = ClassJudge(net, classes, 0.0)
    judge.val_accuracy = judge.accuracy(x[val], y[val])
    return judge


def diversity(x: torch.Tensor, y: torch.Tensor, judge: ClassJudge,
              detected: torch.Tensor | None = None) -> dict[str, float]:  # fmt: skip
    """Mean over classes of distinct detected attribute combinations and of the mean
    pairwise cosine distance of judge features (``detected``: the detectors' rows of ``x``,
    if already computed)."""
    det = detect_attributes(x) if detected is None else detected
    feats = nn.functional.normalize(judge.features(x), dim=1)
    combos, dists = [], []
    for c in sorted(set(y.tolist())):
        m = y == c
        if m.sum() < 2:
            continue
        combos.append(len({tuple(r) for r in det[m].tolist()}))
        f = feats[m]
        sim = f @ f.T
        k = len(f)
        dists.append(((1 - sim).sum() / (k * (k - 1))).item())
    return {"combinations_per_class": sum(combos) / max(1, len(combos)),
            "feature_distance": sum(dists) / max(1, len(dists))}  # fmt: skip


__all__ = [
    "ClassJudge",
    "ClassNet",
    "diversity",
    "intersection_scores",
    "rate_difference_interval",
    "train_class_judge",
    "union_scores",
    "wilson_interval",
]
