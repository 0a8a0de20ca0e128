"""Deep metric learning (DML) with an optional synthetic-image pool, for zero-shot retrieval.

What BLENDER used (the reference): a ResNet-50 backbone pretrained on ImageNet with a 512-d
embedding, Proxy Anchor loss (alpha = 32, margin delta = 0.1), AdamW at lr 1e-4 with the
proxies at 100x that rate, class-balanced batches mixing real training images with
generated ones, and zero-shot evaluation (Recall@K, MAP@R) on classes never seen in training.

What we chose for the small CPU demo, and why:

* **Backbone**: :class:`EmbeddingNet`, a 4-block CNN trained from scratch on 3x32x32 images
  (about 0.25 M parameters, 64-d output); a ResNet-50 is out of reach on one CPU thread, and
  ImageNet pretraining would leak knowledge of the "unseen" classes anyway.
* **Losses**: Proxy Anchor with the paper's alpha/margin (default) or Multi-Similarity loss
  with its miner (``alpha=2, beta=50, base=0.5, epsilon=0.1``, the MS paper's values), both
  from ``pytorch-metric-learning`` 2.9.0.
* **Optimiser**: AdamW, lr 1e-3 (10x the paper's: no pretrained weights to protect, and a
  budget of ~1k iterations), weight decay 1e-4, proxies at ``proxy_lr_mult`` x lr, constant
  rate (no schedule, no backbone warm-up: fewer knobs that could favour one arm).
* **Batches**: every arm gets the same iterations and batch size. Without a synthetic pool
  the batch is all real; with one, ``round(batch_size * synthetic_fraction)`` images come from
  the synthetic pool and the rest from the real pool. Each part is class-balanced
  (``m_per_class`` images per class, in the style of PML's ``MPerClassSampler``) and the
  classes of the two parts are drawn independently, so the real part of a mixed batch is
  exactly a smaller real-only batch. We sample with our own ``numpy.random.Generator``
  because PML's sampler draws from the global RNG.
* **Augmentation**: random translation by up to 2 px (reflect-pad then crop) and horizontal
  flip; nothing colour-related, because colour may be what separates classes here.
* **Model selection**: on a validation split of *classes disjoint from training* (never the
  test classes), by ``select_metric`` every ``eval_every`` iterations and at the end.
* **Evaluation**: leave-one-out retrieval on one labelled set (each image queries all others)
  with PML's ``AccuracyCalculator`` and brute-force cosine k-NN (faiss is not installed, so
  NMI/AMI, which need faiss k-means, are left out).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners
from pytorch_metric_learning.utils.accuracy_calculator import (
    AccuracyCalculator,
    try_getting_not_lone_labels,
)
from pytorch_metric_learning.utils.inference import CustomKNN
from torch import nn
from tqdm.auto import tqdm

from embedlab.errors import UserError

__all__ = [
    "DMLConfig",
    "DMLResult",
    "EmbeddingNet",
    "LabeledImages",
    "RetrievalAccuracyCalculator",
    "evaluate",
    "init_model",
    "paired_difference",
    "train_dml",
]

LOSSES = ("proxy_anchor", "multi_similarity")
# select_metric uses PML's metric names; evaluate() reports them under our keys.
SELECT_METRICS = {"mean_average_precision_at_r": "map_at_r", "precision_at_1": "recall_at_1"}
RECALL_KS = (2, 4, 8)
_RANGE_TOL = 1e-4


# --------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LabeledImages:
    """A labelled image set: ``x`` is ``(N, 3, H, W)`` float32 in ``[-1, 1]``, ``y`` is ``(N,)``
    int64 class ids (any integers; they are only compared for equality).

    Validated on construction (shape, dtype, finite values, range with a 1e-4 tolerance) so a
    bad pool fails here with one clear line rather than deep inside a training loop.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError("LabeledImages: x and y must be torch tensors")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LabeledImages: x must be (N, 3, H, W), got {tuple(x.shape)}")
        if x.dtype != torch.float32:
            raise ValueError(f"LabeledImages: x must be float32, got {x.dtype}")
        if y.ndim != 1 or y.dtype != torch.int64:
            raise ValueError(
                f"LabeledImages: y must be a 1-d int64 tensor, got {tuple(y.shape)} {y.dtype}"
            )
        if len(x) != len(y):
            raise ValueError(f"LabeledImages: {len(x)} images but {len(y)} labels")
        if len(x) and not torch.isfinite(x).all():
            raise ValueError("LabeledImages: x contains NaN or inf")
        if len(x) and (x.min() < -1 - _RANGE_TOL or x.max() > 1 + _RANGE_TOL):
            raise ValueError(
                f"LabeledImages: x must lie in [-1, 1], got [{x.min():.4g}, {x.max():.4g}] "
                "(clamp generator outputs)"
            )

    def __len__(self) -> int:
        return len(self.y)


# ------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DMLConfig:
    """Training recipe; defaults are the small-CPU choices described in the module docstring.

    ``loss``: ``"proxy_anchor"`` (BLENDER's loss) or ``"multi_similarity"`` (MS loss with
    ``MultiSimilarityMiner(epsilon=0.1)``, ``alpha=2, beta=50, base=0.5``).
    ``m_per_class``: images per class in each class-balanced (part of a) batch.
    ``synthetic_fraction``: share of each batch drawn from the synthetic pool when one is given.
    ``lr``: AdamW rate for the network (weight decay 1e-4); proxies use ``lr * proxy_lr_mult``.
    ``margin``/``alpha``: Proxy Anchor's delta and alpha.
    ``augment``: translation by up to 2 px + horizontal flip (no colour jitter).
    ``select_metric``: ``"mean_average_precision_at_r"`` or ``"precision_at_1"`` on the
    validation classes, evaluated every ``eval_every`` iterations and at the end.
    """

    loss: str = "proxy_anchor"
    embedding_dim: int = 64
    iterations: int = 1200
    batch_size: int = 64
    m_per_class: int = 8
    synthetic_fraction: float = 0.5
    lr: float = 1e-3
    proxy_lr_mult: float = 100.0
    margin: float = 0.1
    alpha: float = 32.0
    augment: bool = True
    eval_every: int = 200
    select_metric: str = "mean_average_precision_at_r"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"DMLConfig: unknown loss {self.loss!r}; choose from {LOSSES}")
        if self.select_metric not in SELECT_METRICS:
            raise UserError(
                f"DMLConfig: unknown select_metric {self.select_metric!r}; "
                f"choose from {tuple(SELECT_METRICS)}"
            )
        for name in ("embedding_dim", "iterations", "batch_size", "m_per_class", "eval_every"):
            if getattr(self, name) < 1:
                raise UserError(f"DMLConfig: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise UserError(
                f"DMLConfig: synthetic_fraction must be in [0, 1], got {self.synthetic_fraction}"
            )
        if self.lr <= 0 or self.proxy_lr_mult <= 0:
            raise UserError("DMLConfig: lr and proxy_lr_mult must be > 0")

    @property
    def n_synthetic(self) -> int:
        """Synthetic images per batch when a synthetic pool is given."""
        return round(self.batch_size * self.synthetic_fraction)


# -------------------------------------------------------------------------------------- model


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class EmbeddingNet(nn.Module):
    """Small CNN from scratch: 4 blocks conv3x3-BN-ReLU with 32, 64, 128, 128 channels,
    2x2 max-pool after the first three, global average pool, Linear, L2 normalisation.

    249,440 parameters at ``embedding_dim=64`` (measured; 241,184 in the trunk plus
    ``129 * embedding_dim`` in the head). Convolutions have no bias (BatchNorm follows).
    The output lies on the unit sphere, so cosine similarity is a dot product.
    """

    def __init__(self, embedding_dim: int = 64) -> None:
        super().__init__()
        widths = (3, 32, 64, 128, 128)
        layers: list[nn.Module] = []
        for i in range(4):
            layers.append(_conv_block(widths[i], widths[i + 1]))
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x).mean(dim=(2, 3))
        return F.normalize(self.head(h), dim=1)


def init_model(cfg: DMLConfig) -> EmbeddingNet:
    """The network :func:`train_dml` starts from for ``cfg`` (same seed, same weights).

    Initialised under ``torch.random.fork_rng`` so the caller's global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return EmbeddingNet(cfg.embedding_dim)


# --------------------------------------------------------------------------------- evaluation


class RetrievalAccuracyCalculator(AccuracyCalculator):
    """PML's ``AccuracyCalculator`` plus ``recall_at_{2,4,8}``: the share of (non-lone)
    queries whose K nearest neighbours contain at least one image of the query's class
    (the Recall@K of the DML literature; Recall@1 equals PML's ``precision_at_1``).

    ``determine_k`` retrieves at least 8 neighbours even when the largest class is smaller;
    MAP@R and R-precision only look at the first R columns, so extra columns do not change them.
    """

    def requires_knn(self) -> list[str]:
        return [*super().requires_knn(), *(f"recall_at_{k}" for k in RECALL_KS)]

    def determine_k(
        self, bin_counts: torch.Tensor, num_reference_embeddings: int, ref_includes_query: bool
    ) -> int:
        k = super().determine_k(bin_counts, num_reference_embeddings, ref_includes_query)
        available = num_reference_embeddings - int(ref_includes_query)
        return max(k, min(max(RECALL_KS), available))

    def _recall_at(
        self,
        k: int,
        knn_labels: torch.Tensor,
        query_labels: torch.Tensor,
        not_lone_query_mask: torch.Tensor,
        **kwargs: Any,
    ) -> float:
        knn_labels, query_labels = try_getting_not_lone_labels(
            knn_labels, query_labels, not_lone_query_mask
        )
        if knn_labels is None:
            return float("nan")
        hits = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
        return hits.double().mean().item()

    def calculate_recall_at_2(self, **kwargs: Any) -> float:
        return self._recall_at(2, **kwargs)

    def calculate_recall_at_4(self, **kwargs: Any) -> float:
        return self._recall_at(4, **kwargs)

    def calculate_recall_at_8(self, **kwargs: Any) -> float:
        return self._recall_at(8, **kwargs)


def _embed(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    parts = [model(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return torch.cat(parts).float()


def evaluate(model: nn.Module, data: LabeledImages, batch_size: int = 512) -> dict[str, float]:
    """Leave-one-out retrieval metrics of ``model`` on ``data``.

    Embeds ``data.x`` in eval mode under ``torch.inference_mode()`` (the model's train/eval
    mode is restored afterwards), then calls ``get_accuracy(query, labels)`` with no
    reference, which PML 2.9.0 treats as ``reference = query, ref_includes_query=True``: each
    image queries all the others and never itself. Brute-force cosine k-NN, ``k="max_bin_count"``
    (needed for MAP@R). Labels are remapped to ``0..C-1`` first because PML casts them to float32.
    Images of a class with a single member have no positives and are skipped, as PML does.

    Returns ``recall_at_1`` (PML's ``precision_at_1``), ``recall_at_2/4/8``, ``map_at_r``
    (``mean_average_precision_at_r``) and ``r_precision``.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            emb = _embed(model, data.x, batch_size)
    finally:
        model.train(was_training)
    labels = torch.unique(data.y, return_inverse=True)[1].to(emb.device)
    return retrieval_metrics(emb, labels)


def retrieval_metrics(embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Leave-one-out metrics of given ``embeddings`` (see :func:`evaluate`)."""
    calc = RetrievalAccuracyCalculator(
        include=(
            "precision_at_1",
            "mean_average_precision_at_r",
            "r_precision",
            *(f"recall_at_{k}" for k in RECALL_KS),
        ),
        k="max_bin_count",
        device=embeddings.device,
        knn_func=CustomKNN(distances.CosineSimilarity()),
    )
    acc = calc.get_accuracy(embeddings, labels)
    out = {"recall_at_1": acc["precision_at_1"]}
    out.update({f"recall_at_{k}": acc[f"recall_at_{k}"] for k in RECALL_KS})
    out["map_at_r"] = acc["mean_average_precision_at_r"]
    out["r_precision"] = acc["r_precision"]
    return {k: float(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------- sampling


class _ClassPool:
    """Indices of one labelled pool grouped by (dense) class, for class-balanced draws."""

    def __init__(self, dense_labels: np.ndarray) -> None:
        order = np.argsort(dense_labels, kind="stable")
        classes, starts = np.unique(dense_labels[order], return_index=True)
        self.classes = classes
        self.members = np.split(order, starts[1:])

    def draw(self, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` indices: ``ceil(n/m)`` distinct classes with ``m`` images each (the last class
        gets the remainder); if the pool has fewer classes, all of them, sharing ``n`` evenly.
        Within a class, sample without replacement unless it has too few images."""
        if n == 0:
            return np.empty(0, dtype=np.int64)
        n_cls = len(self.members)
        want = math.ceil(n / m)
        if want <= n_cls:
            chosen = rng.choice(n_cls, size=want, replace=False)
            counts = [m] * (want - 1) + [n - m * (want - 1)]
        else:
            chosen = rng.permutation(n_cls)
            counts = [n // n_cls + (i < n % n_cls) for i in range(n_cls)]
        parts = [
            rng.choice(self.members[c], size=k, replace=len(self.members[c]) < k)
            for c, k in zip(chosen, counts)
            if k > 0
        ]
        return np.concatenate(parts).astype(np.int64)


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Per-image random translation by up to ``pad`` px (reflect-pad, crop) and h-flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    out = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]
    out = out.permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out).contiguous()


# ----------------------------------------------------------------------------------- training


@dataclass
class DMLResult:
    """Outcome of :func:`train_dml`.

    ``state_dict``: best weights (CPU tensors) by ``cfg.select_metric`` on the validation
    classes; ``best_iteration``/``best_val``: when and how good; ``history``: one dict per
    evaluation with ``iteration``, ``loss`` (mean training loss since the previous evaluation)
    and the validation metrics; ``images_seen``: real/synthetic images used in training
    batches (the mixing actually done); ``wall_s``: training wall time including evaluations.
    """

    state_dict: dict[str, torch.Tensor]
    best_iteration: int
    best_val: dict[str, float]
    history: list[dict[str, float]]
    wall_s: float
    images_seen: dict[str, int] = field(default_factory=dict)

    def load_model(self, embedding_dim: int | None = None) -> EmbeddingNet:
        """An :class:`EmbeddingNet` holding the best weights, in eval mode."""
        dim = embedding_dim or self.state_dict["head.weight"].shape[0]
        model = EmbeddingNet(dim)
        model.load_state_dict(self.state_dict)
        return model.eval()


def _dense_labels(y: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """Map class ids onto positions in the sorted ``classes`` tensor."""
    return torch.searchsorted(classes, y).numpy()


def _make_loss(cfg: DMLConfig, num_classes: int) -> tuple[nn.Module, nn.Module | None]:
    if cfg.loss == "proxy_anchor":
        with torch.random.fork_rng(devices=[]):  # proxies init from the global RNG
            torch.manual_seed(cfg.seed + 1)
            loss = losses.ProxyAnchorLoss(
                num_classes, cfg.embedding_dim, margin=cfg.margin, alpha=cfg.alpha
            )
        return loss, None
    if cfg.loss == "multi_similarity":
        return losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), (
            miners.MultiSimilarityMiner(epsilon=0.1)
        )
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {LOSSES}")


def _make_optimizer(cfg: DMLConfig, model: nn.Module, loss: nn.Module) -> torch.optim.AdamW:
    groups: list[dict[str, Any]] = [{"params": list(model.parameters()), "lr": cfg.lr}]
    loss_params = [p for p in loss.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "lr": cfg.lr * cfg.proxy_lr_mult})
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=1e-4)


def _check_pools(real: LabeledImages, val: LabeledImages, synthetic: LabeledImages | None) -> None:
    if len(real) == 0 or len(val) == 0:
        raise ValueError("train_dml: real and val must be non-empty")
    if synthetic is not None:
        if len(synthetic) == 0:
            raise ValueError("train_dml: synthetic pool is empty (pass None for real-only)")
        extra = set(synthetic.y.unique().tolist()) - set(real.y.unique().tolist())
        if extra:
            raise ValueError(
                f"train_dml: synthetic pool has classes absent from the real training set: "
                f"{sorted(extra)[:10]}"
            )


class _BatchSource:
    """Draws one (augmented) training batch per call: real part + optional synthetic part."""

    def __init__(
        self,
        real: LabeledImages,
        synthetic: LabeledImages | None,
        classes: torch.Tensor,
        cfg: DMLConfig,
    ) -> None:
        self.cfg = cfg
        self.pools = [(real, _ClassPool(_dense_labels(real.y, classes)), "real")]
        self.sizes = [cfg.batch_size]
        if synthetic is not None:
            syn_pool = _ClassPool(_dense_labels(synthetic.y, classes))
            self.pools.append((synthetic, syn_pool, "synthetic"))
            self.sizes = [cfg.batch_size - cfg.n_synthetic, cfg.n_synthetic]
        self.classes = classes  # sorted real class ids; position = dense label
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.seen = {"real": 0, "synthetic": 0}

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for (data, pool, name), n in zip(self.pools, self.sizes):
            idx = torch.from_numpy(pool.draw(n, self.cfg.m_per_class, self.rng))
            xs.append(data.x[idx])
            ys.append(torch.searchsorted(self.classes, data.y[idx]))
            self.seen[name] += len(idx)
        x = torch.cat(xs)
        if self.cfg.augment:
            x = _augment(x, self.gen)
        return x, torch.cat(ys)


def train_dml(
    real: LabeledImages,
    val: LabeledImages,
    cfg: DMLConfig,
    synthetic: LabeledImages | None = None,
    progress: bool = False,
) -> DMLResult:
    """Train an :class:`EmbeddingNet` on ``real`` (+ ``synthetic``) and keep the checkpoint
    that scores best on ``val`` (validation classes disjoint from training and test).

    Every arm runs ``cfg.iterations`` steps of ``cfg.batch_size`` images; with a synthetic
    pool, ``cfg.n_synthetic`` of them come from it (class-balanced) and the rest from ``real``.
    Synthetic class ids must be a subset of the real training classes (``ValueError``
    otherwise); ids are mapped to ``0..C-1`` for Proxy Anchor's proxies. Deterministic given
    ``cfg.seed``: sampling uses a ``numpy.random.Generator``, augmentation a
    ``torch.Generator``, and weight/proxy init runs under a forked, seeded global RNG.
    Ties in the selection metric keep the earlier checkpoint. The model trains on CPU.
    """
    _check_pools(real, val, synthetic)
    start = time.perf_counter()
    classes = real.y.unique()  # sorted; synthetic classes are a subset (checked above)
    model = init_model(cfg)
    loss_fn, miner = _make_loss(cfg, len(classes))
    opt = _make_optimizer(cfg, model, loss_fn)
    source = _BatchSource(real, synthetic, classes, cfg)
    key = SELECT_METRICS[cfg.select_metric]

    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, float], dict[str, torch.Tensor]] | None = None
    window: list[float] = []
    model.train()
    bar = tqdm(range(1, cfg.iterations + 1), disable=not progress, desc=f"dml[{cfg.loss}]")
    for it in bar:
        window.append(_train_step(model, loss_fn, miner, opt, *source.next()))
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            metrics = evaluate(model, val)
            history.append({"iteration": it, "loss": float(np.mean(window)), **metrics})
            window = []
            if best is None or metrics[key] > best[0]:
                state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best = (metrics[key], it, metrics, state)
            if progress:
                bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", **{key: f"{metrics[key]:.3f}"})
    assert best is not None
    return DMLResult(
        state_dict=best[3],
        best_iteration=best[1],
        best_val=best[2],
        history=history,
        wall_s=time.perf_counter() - start,
        images_seen=dict(source.seen),
    )


def _train_step(
    model: nn.Module,
    loss_fn: nn.Module,
    miner: nn.Module | None,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    emb = model(x)
    loss = loss_fn(emb, y, miner(emb, y)) if miner is not None else loss_fn(emb, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


# ------------------------------------------------------------------------------------ stats


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of the paired differences ``a[i] - b[i]`` with a 95 % Student-t interval.

    Returns ``mean``, ``sd`` (sample sd, ddof=1), ``se``, ``n``, ``df``, ``t_crit``,
    ``ci_low`` and ``ci_high``. Needs at least two pairs (the sd is undefined otherwise).
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError("paired_difference: need at least 2 pairs")
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    t_crit = float(stats.t.ppf(0.975, df=n - 1))
    return {
        "mean": mean,
        "sd": sd,
        "se": se,
        "n": n,
        "df": n - 1,
        "t_crit": t_crit,
        "ci_low": mean - t_crit * se,
        "ci_high": mean + t_crit * se,
    }
