"""The measurable demo end to end: operator fidelity, synthetic pools, metric learning arms.

Shared by ``embedlab blender dml``, the ``blender-quick`` experiment and
``benchmarks/blender.py``.

**Operator variants** (:data:`VARIANTS`): each is an operator name with options; the
fidelity study runs every variant on the same prompt designs, the same classes and the same
seeds, so their scores are paired.

**Synthetic pools** (:data:`POOLS`) for metric learning, labelled with the generator's
(training) classes, ``size`` images spread evenly over them:

* ``class``: class-only classifier-free guidance (the plain diffusion augmentation baseline);
* ``union``: BLENDER union of ``n = 2`` random single-attribute prompts;
* ``intersection``: BLENDER intersection of two prompts sharing a random attribute pair,
  each with one more private attribute (``{a, b, c}``, ``{a, b, d}`` -> ``{a, b}``);
* ``both``: half ``union``, half ``intersection`` (the same total);
* ``mean`` / ``sum``: the reference operators on the union design;
* ``oracle``: real training silhouettes re-rendered with random attribute combinations
  (not generated: the ceiling for any generator);
* ``none``: real images only.

Every arm trains the embedding for the same iterations with the same batch size; the pool
arms draw the same share of each batch from their pool (``DMLConfig.synthetic_fraction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from embedlab.blender.data import (
    ATTRIBUTES,
    AASplits,
    AttributedImages,
    detect_attributes,
    oracle_images,
)
from embedlab.blender.fidelity import ClassJudge, diversity, intersection_scores, union_scores
from embedlab.blender.generator import ConditionalGenerator
from embedlab.blender.sampler import SamplerConfig
from embedlab.blender.synth import (
    PromptDesign,
    class_only_prompts,
    generate,
    intersection_prompts,
    union_prompts,
)
from embedlab.errors import UserError, unknown_name

#: Operator variants of the fidelity study: name -> (operator, options).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mean": ("mean", {}),
    "sum": ("sum", {}),
    "union": ("union", {}),
    "union-location": ("union", {"granularity": "location"}),
    "union-sum": ("union-sum", {}),
    "intersection": ("intersection", {}),
    "intersection-min": ("intersection", {"magnitude": "min"}),
    "intersection-location-min": ("intersection", {"magnitude": "min", "granularity": "location"}),
    "intersection-consensus": ("intersection-consensus", {}),
    "blend": ("blend", {}),
}
UNION_VARIANTS = ("mean", "sum", "union", "union-location", "union-sum", "blend")
INTERSECTION_VARIANTS = ("mean", "sum", "intersection", "intersection-min", "intersection-location-min",
                         "intersection-consensus", "blend")  # fmt: skip
POOLS = ("none", "class", "union", "intersection", "both", "mean", "sum", "oracle")


@dataclass(frozen=True)
class Guidance:
    """Sampler settings shared by every variant (only the operator differs)."""

    steps: int = 25
    class_scale: float = 3.0
    attr_scale: float = 3.0

    def sampler(self, variant: str) -> SamplerConfig:
        if variant not in VARIANTS:
            raise unknown_name("operator variant", variant, list(VARIANTS))
        op, opts = VARIANTS[variant]
        return SamplerConfig(op=op, op_options=opts, steps=self.steps, class_scale=self.class_scale,
                             attr_scale=self.attr_scale)  # fmt: skip


def _classes(classes: tuple[int, ...], n: int) -> torch.Tensor:
    return torch.tensor(classes)[torch.arange(n) % len(classes)]


def designs(classes: tuple[int, ...], n: int, seed: int) -> dict[str, PromptDesign]:
    """The union (two single-attribute prompts) and intersection (three prompts sharing one
    attribute, one private each) designs of the fidelity study, and class-only."""
    gen = torch.Generator().manual_seed(seed)
    cls = _classes(classes, n)
    a = len(ATTRIBUTES)
    return {"union": union_prompts(cls, a, 2, gen), "intersection": intersection_prompts(cls, a, 3, 1, gen),
            "class": class_only_prompts(cls, a)}  # fmt: skip


def fidelity_study(model: ConditionalGenerator, judge: ClassJudge, classes: tuple[int, ...], n: int,
                   guidance: Guidance, seed: int, progress: Any = None) -> dict[str, Any]:  # fmt: skip
    """Scores of every variant on its design (``n`` images each, the same seeds)."""
    d = designs(classes, n, seed)
    out: dict[str, Any] = {"n": n, "classes": list(classes), "union": {}, "intersection": {}}

    def score(x: torch.Tensor, design: PromptDesign) -> dict[str, Any]:
        det = detect_attributes(x)
        return {"union": union_scores(det, design.union),
                "intersection": intersection_scores(det, design.union, design.shared),
                "class_accuracy": judge.accuracy(x, design.cls), **diversity(x, design.cls, judge, det),
                "attribute_rates": dict(zip(ATTRIBUTES, det.float().mean(0).tolist()))}  # fmt: skip

    x = generate(model, d["class"], guidance.sampler("mean"), seed)
    out["class_only"] = score(x, d["class"])
    for task, variants in (("union", UNION_VARIANTS), ("intersection", INTERSECTION_VARIANTS)):
        for v in variants:
            x = generate(model, d[task], guidance.sampler(v), seed)
            out[task][v] = score(x, d[task])
            if progress is not None:
                progress(task, v, out[task][v])
    return out


def select_scale(model: ConditionalGenerator, judge: ClassJudge, classes: tuple[int, ...],
                 scales: tuple[float, ...], n: int, steps: int, seed: int) -> tuple[float, dict[str, Any]]:  # fmt: skip
    """The guidance scale (``class_scale = attr_scale = s``) with the best single-attribute
    control on the *training* classes: for each attribute, ``n`` images prompted with it
    alone; score = mean over attributes of (rate of the prompted attribute - mean rate of the
    others) + class accuracy. Never looks at validation or test classes."""
    a = len(ATTRIBUTES)
    cls = _classes(classes, n)
    table: dict[str, Any] = {}
    for s in scales:
        g = Guidance(steps=steps, class_scale=s, attr_scale=s)
        hit, other, acc = [], [], []
        for i in range(a):
            p = torch.zeros(1, n, a)
            p[0, :, i] = 1.0
            x = generate(
                model, PromptDesign(cls, p, p[0].bool(), p[0].bool()), g.sampler("mean"), seed + i
            )
            rates = detect_attributes(x).float().mean(0)
            hit.append(rates[i].item())
            other.append(torch.cat([rates[:i], rates[i + 1 :]]).mean().item())
            acc.append(judge.accuracy(x, cls))
        score = sum(h - o for h, o in zip(hit, other)) / a + sum(acc) / a
        table[str(s)] = {"prompted_rate": dict(zip(ATTRIBUTES, hit)), "other_rate": sum(other) / a,
                         "class_accuracy": sum(acc) / a, "score": score}  # fmt: skip
    best = max(scales, key=lambda s: table[str(s)]["score"])
    return best, table


def make_pool(arm: str, splits: AASplits, model: ConditionalGenerator | None, size: int,
              guidance: Guidance, seed: int) -> AttributedImages | None:  # fmt: skip
    """The synthetic pool of a metric-learning arm (see the module doc); None for ``none``."""
    if arm not in POOLS:
        raise unknown_name("synthetic pool", arm, list(POOLS))
    if arm == "none":
        return None
    if arm == "oracle":
        return oracle_images(splits.train, size, seed)
    if model is None:
        raise UserError(f"synthetic pool {arm!r} needs a trained generator (--generator)")
    classes = splits.partition.train
    gen = torch.Generator().manual_seed(seed)
    a = len(ATTRIBUTES)
    if arm == "both":
        half = size // 2
        u = make_pool("union", splits, model, half, guidance, seed)
        i = make_pool("intersection", splits, model, size - half, guidance, seed + 1)
        return AttributedImages(torch.cat([u.x, i.x]), torch.cat([u.y, i.y]), torch.cat([u.attrs, i.attrs]),
                                torch.cat([u.base, i.base]))  # fmt: skip
    cls = _classes(classes, size)
    if arm == "class":
        design, variant = class_only_prompts(cls, a), "mean"
    elif arm == "intersection":
        design, variant = intersection_prompts(cls, a, 2, 2, gen), "intersection"
    else:  # union, mean, sum on the union design
        design, variant = union_prompts(cls, a, 2, gen), arm
    x = generate(model, design, guidance.sampler(variant), seed)
    return AttributedImages(x, cls, detect_attributes(x), torch.full((size,), -1))


__all__ = [
    "INTERSECTION_VARIANTS",
    "POOLS",
    "UNION_VARIANTS",
    "VARIANTS",
    "Guidance",
    "designs",
    "fidelity_study",
    "make_pool",
    "select_scale",
]
