"""Planted-truth synthetic CTR data in the Criteo layout, with its Bayes limit.

A known *teacher* gives every row its true click probability, so the best any model can
do on the test split (the Bayes-optimal AUC, logloss and normalized entropy) is computed
exactly from the true probabilities and written to ``meta.json`` beside the TSV files.

The generator (all our choices; documented so users can reason about the limit):

* **Sparse features**: 26 by default, each with its own cardinality and Zipf exponent.
  Default cardinalities are Criteo Kaggle's clipped to ``[10, 300_000]`` (tens to hundreds
  of thousands of ids); exponents are drawn in ``[1.05, 1.4]``. Ids are drawn by rank from
  a truncated Zipf law and mapped through a fixed random permutation, so frequent ids are
  scattered over the table. A few features are missing (an empty field) at random rates.
* **Dense features**: 13 non-negative integers ``floor(exp(N(mu, sigma)))`` with some
  missing values, as in Criteo.
* **Teacher** (DLRM-like): per-id scalar weights and ``teacher_dim``-dimensional
  embeddings, a random two-layer tanh MLP over ``log1p`` of the dense features, and
  ``logit = b0 + sum_f w_f[id] + dense_linear + sum_{i<j} <v_i, v_j>`` over the dense
  vector and the embeddings of present features (pairwise dot interaction, as DLRM).
  The linear and interaction parts are scaled to fixed standard deviations and ``b0``
  is solved for the requested base click rate on a calibration sample.
* **Splits**: train, valid and test come from independent random streams of the same
  seed, drawn in fixed-size blocks: with the same ``test_rows`` the test split is
  identical for every ``rows`` value (so a learning curve over training-set sizes is
  measured on one test set; pass ``test_rows`` explicitly, its default grows with
  ``rows``), and the first ``n`` training rows of a larger set equal the training rows
  of a smaller one.
* **Drift** (optional): with ``days > 0`` the teacher's per-id parameters move with the
  day, ``theta(t) = theta + delta(t) * D`` for a fixed random direction ``D``, with
  ``delta`` linear (``smooth``), a step at the middle day (``abrupt``) or a sine
  (``periodic``). One file per day, ``day_XXX.tsv``, with per-day Bayes metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import xlogy

from embedlab.data.criteo import (
    KAGGLE_CARDINALITIES,
    NUM_DENSE,
    NUM_SPARSE,
    criteo_schema,
    load_split,
)
from embedlab.data.schema import CTRArrays, CTRSchema
from embedlab.errors import UserError
from embedlab.io import atomic_open, ensure_dir, read_json, write_json
from embedlab.train.metrics import auc, logloss, normalized_entropy

DRIFTS = ("none", "smooth", "abrupt", "periodic")
SPLITS = ("train", "valid", "test")
BLOCK_ROWS = 16_384
_STREAM = {"teacher": 0, "train": 1, "valid": 2, "test": 3, "calib": 4}


def default_cardinalities(cap: int = 300_000, floor: int = 10) -> tuple[int, ...]:
    """Criteo-Kaggle-like cardinalities clipped to ``[floor, cap]``."""
    return tuple(int(min(max(c, floor), cap)) for c in KAGGLE_CARDINALITIES)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the generator (written to ``meta.json``)."""

    rows: int = 100_000
    valid_rows: int | None = None
    test_rows: int | None = None
    seed: int = 0
    cardinalities: tuple[int, ...] = field(default_factory=default_cardinalities)
    zipf_range: tuple[float, float] = (1.05, 1.4)
    teacher_dim: int = 4
    linear_std: float = 1.5
    interaction_std: float = 1.5
    base_ctr: float = 0.25
    days: int = 0
    drift: str = "none"
    drift_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.rows <= 0:
            raise UserError(f"rows must be positive, got {self.rows}")
        for name in ("valid_rows", "test_rows"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {v}")
        if len(self.cardinalities) != NUM_SPARSE:
            raise UserError(
                f"the Criteo layout needs {NUM_SPARSE} cardinalities, got {len(self.cardinalities)}"
            )
        if any(c <= 1 for c in self.cardinalities):
            raise UserError("cardinalities must be at least 2 each")
        if any(c >= 2**32 for c in self.cardinalities):
            raise UserError("cardinalities must fit 8 hex digits (< 2**32)")
        if not 0 < self.base_ctr < 1:
            raise UserError(f"base_ctr must be in (0, 1), got {self.base_ctr}")
        if self.drift not in DRIFTS:
            raise UserError(f"unknown drift {self.drift!r}; valid: {', '.join(DRIFTS)}")
        if self.days < 0:
            raise UserError(f"days must be >= 0, got {self.days}")
        for name in ("linear_std", "interaction_std"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.teacher_dim <= 0:
            raise UserError(f"teacher-dim must be positive, got {self.teacher_dim}")

    @property
    def n_valid(self) -> int:
        return self.valid_rows if self.valid_rows is not None else max(self.rows // 10, 1000)

    @property
    def n_test(self) -> int:
        return self.test_rows if self.test_rows is not None else max(self.rows // 10, 1000)


@dataclass
class Teacher:
    """The planted truth: everything needed to compute a row's click probability."""

    cfg: SynthConfig
    perms: list[np.ndarray]
    cdfs: list[np.ndarray]
    missing: np.ndarray
    w: list[np.ndarray]
    emb: list[np.ndarray]
    dw: list[np.ndarray]
    demb: list[np.ndarray]
    mu: np.ndarray
    sigma: np.ndarray
    dense_missing: np.ndarray
    mlp: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    lin_scale: float = 1.0
    int_scale: float = 1.0
    b0: float = 0.0

    @classmethod
    def build(cls, cfg: SynthConfig) -> Teacher:
        rng = np.random.default_rng([cfg.seed, _STREAM["teacher"]])
        k = cfg.teacher_dim
        perms, cdfs, w, emb, dw, demb = [], [], [], [], [], []
        lo, hi = cfg.zipf_range
        for n in cfg.cardinalities:
            s = rng.uniform(lo, hi)
            pmf = np.arange(1, n + 1, dtype=np.float64) ** -s
            cdf = np.cumsum(pmf)
            cdfs.append(cdf / cdf[-1])
            perms.append(rng.permutation(n).astype(np.int64))
            w.append(rng.standard_normal(n).astype(np.float32))
            emb.append(rng.standard_normal((n, k)).astype(np.float32))
            dw.append(rng.standard_normal(n).astype(np.float32))
            demb.append(rng.standard_normal((n, k)).astype(np.float32))
        nf = len(cfg.cardinalities)
        missing = np.where(rng.random(nf) < 0.2, rng.uniform(0.05, 0.4, nf), 0.0)
        mlp = (
            rng.standard_normal((NUM_DENSE, 16)) / math.sqrt(NUM_DENSE),
            rng.standard_normal(16) * 0.5,
            rng.standard_normal((16, k)) / 4.0,
            rng.standard_normal(16) / 4.0,
            rng.standard_normal(NUM_DENSE)
            * 0.0,  # unused; kept so the random stream (and data) stay the same
        )
        t = cls(
            cfg=cfg, perms=perms, cdfs=cdfs, missing=missing, w=w, emb=emb, dw=dw, demb=demb,
            mu=rng.uniform(0.0, 4.0, NUM_DENSE), sigma=rng.uniform(0.5, 2.0, NUM_DENSE),
            dense_missing=np.where(rng.random(NUM_DENSE) < 0.5, rng.uniform(0.0, 0.4, NUM_DENSE), 0.0),
            mlp=mlp,
        )  # fmt: skip
        t._calibrate()
        return t

    # -- sampling ---------------------------------------------------------------------
    def sample_features(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw dense ints ``[n, 13]`` (-1 = missing) and ids ``[n, F]`` (-1 = missing)."""
        raw = np.floor(np.exp(rng.normal(self.mu, self.sigma, (n, NUM_DENSE)))).astype(np.int64)
        raw[rng.random((n, NUM_DENSE)) < self.dense_missing] = -1
        ids = np.empty((n, len(self.cdfs)), dtype=np.int64)
        for f, (cdf, perm) in enumerate(zip(self.cdfs, self.perms)):
            rank = np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)
            col = perm[rank]
            if self.missing[f] > 0:
                col[rng.random(n) < self.missing[f]] = -1
            ids[:, f] = col
        return raw, ids

    def _parts(
        self, raw: np.ndarray, ids: np.ndarray, delta: float, angle: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        # Drift: theta + delta * D, or, with ``angle``, the rotation
        # cos(angle) * theta + sin(angle) * D (which keeps the teacher's scale).
        a, b = (1.0, delta) if angle is None else (math.cos(angle), math.sin(angle))
        x = np.log1p(np.maximum(raw, 0)).astype(np.float64)
        w1, b1, w2, wl, _ = self.mlp
        h = np.tanh(x @ w1 + b1)
        zd = h @ w2
        lin = h @ wl
        vsum = zd.copy()
        vsq = (zd**2).sum(1)
        for f in range(ids.shape[1]):
            col = ids[:, f]
            present = col >= 0
            safe = np.where(present, col, 0)
            wf = a * self.w[f][safe] + b * self.dw[f][safe]
            ef = a * self.emb[f][safe] + b * self.demb[f][safe]
            wf = np.where(present, wf, 0.0)
            ef = np.where(present[:, None], ef, 0.0)
            lin = lin + wf
            vsum += ef
            vsq += (ef**2).sum(1)
        inter = 0.5 * ((vsum**2).sum(1) - vsq)
        return lin, inter

    def _calibrate(self) -> None:
        rng = np.random.default_rng([self.cfg.seed, _STREAM["calib"]])
        raw, ids = self.sample_features(rng, 20_000)
        lin, inter = self._parts(raw, ids, 0.0)
        self.lin_scale = self.cfg.linear_std / max(float(lin.std()), 1e-12)
        self.int_scale = self.cfg.interaction_std / max(float(inter.std()), 1e-12)
        z = self.lin_scale * (lin - lin.mean()) + self.int_scale * (inter - inter.mean())
        lo, hi = -20.0, 20.0
        for _ in range(60):  # bisection: mean sigmoid(z + b) = base_ctr
            mid = (lo + hi) / 2
            if _sigmoid(z + mid).mean() < self.cfg.base_ctr:
                lo = mid
            else:
                hi = mid
        self.b0 = (lo + hi) / 2 - self.lin_scale * lin.mean() - self.int_scale * inter.mean()

    def probability(
        self, raw: np.ndarray, ids: np.ndarray, delta: float = 0.0, angle: float | None = None
    ) -> np.ndarray:
        """True click probability of each row (``angle``: rotated drift, see ``_parts``)."""
        lin, inter = self._parts(raw, ids, delta, angle)
        return _sigmoid(self.b0 + self.lin_scale * lin + self.int_scale * inter)

    def delta(self, day: int) -> float:
        """Drift amount of ``day`` (0 without drift)."""
        cfg = self.cfg
        if cfg.drift == "none" or cfg.days <= 1:
            return 0.0
        t = day / (cfg.days - 1)
        if cfg.drift == "smooth":
            d = t
        elif cfg.drift == "abrupt":
            d = 0.0 if day < cfg.days // 2 else 1.0
        else:
            d = math.sin(2 * math.pi * day / max(cfg.days / 2, 1))
        return cfg.drift_scale * d * 0.5


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _hex_table(n: int) -> np.ndarray:
    return np.char.mod("%08x", np.arange(n, dtype=np.int64))


def _write_rows(
    f, raw: np.ndarray, ids: np.ndarray, labels: np.ndarray, hexes: list[np.ndarray]
) -> None:
    cols = [labels.astype(np.int64).astype(str)]
    for j in range(raw.shape[1]):
        c = raw[:, j].astype(str)
        c[raw[:, j] < 0] = ""
        cols.append(c)
    for j in range(ids.shape[1]):
        c = hexes[j][np.maximum(ids[:, j], 0)]
        c = np.where(ids[:, j] >= 0, c, "")
        cols.append(c)
    f.write("\n".join(map("\t".join, zip(*(c.tolist() for c in cols)))))
    f.write("\n")


def bayes_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AUC, logloss and NE of the true probabilities on realized labels."""
    ll = logloss(y, p)
    return {
        "auc": auc(y, p),
        "logloss": ll,
        "ne": normalized_entropy(y, p),
        "expected_logloss": float(np.mean(-xlogy(p, p) - xlogy(1 - p, 1 - p))),
        "ctr": float(y.mean()),
    }


def generate(
    cfg: SynthConfig,
    out: str | Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the split files (or day files) and ``meta.json`` into ``out``; returns meta."""
    outdir = ensure_dir(out)
    # A folder being (re)generated must never look complete: meta.json goes first and
    # comes back last; split or day files of an earlier layout are removed.
    (outdir / "meta.json").unlink(missing_ok=True)
    for old in [*outdir.glob("day_*.tsv"), *(outdir / f"{s}.tsv" for s in SPLITS)]:
        old.unlink(missing_ok=True)
    teacher = Teacher.build(cfg)
    hexes = [_hex_table(n) for n in cfg.cardinalities]
    meta: dict = {"config": config_dict(cfg), "format": "criteo-tsv", "files": {}, "bayes": {}}
    if cfg.days > 0:
        jobs = [
            (f"day_{d:03d}", _STREAM["train"] * 1000 + d, cfg.rows, teacher.delta(d))
            for d in range(cfg.days)
        ]
    else:
        jobs = [
            ("train", _STREAM["train"], cfg.rows, 0.0),
            ("valid", _STREAM["valid"], cfg.n_valid, 0.0),
            ("test", _STREAM["test"], cfg.n_test, 0.0),
        ]
    done = 0
    for name, stream, n, delta in jobs:
        path = outdir / f"{name}.tsv"
        ps, ys = [], []
        with atomic_open(path) as f:
            # Fixed-size blocks, each from its own random stream, so the first rows of a
            # larger split equal a smaller split of the same seed.
            for block, start in enumerate(range(0, n, BLOCK_ROWS)):
                rng = np.random.default_rng([cfg.seed, stream, block])
                raw, ids = teacher.sample_features(rng, BLOCK_ROWS)
                p = teacher.probability(raw, ids, delta)
                y = (rng.random(BLOCK_ROWS) < p).astype(np.float64)
                m = min(BLOCK_ROWS, n - start)
                raw, ids, p, y = raw[:m], ids[:m], p[:m], y[:m]
                _write_rows(f, raw, ids, y, hexes)
                ps.append(p), ys.append(y)
                done += m
                if progress is not None:
                    progress(done)
        meta["files"][name] = path.name
        meta["bayes"][name] = bayes_metrics(np.concatenate(ps), np.concatenate(ys))
        if cfg.days > 0:
            meta["bayes"][name]["drift_delta"] = delta
    if cfg.days == 0:
        b = meta["bayes"]["test"]
        meta.update(bayes_test_auc=b["auc"], bayes_test_logloss=b["logloss"], bayes_test_ne=b["ne"])
    write_json(outdir / "meta.json", meta)
    return meta


def config_dict(cfg: SynthConfig) -> dict:
    """The settings as written to ``meta.json`` (sizes resolved)."""
    d = asdict(cfg)
    d["cardinalities"] = list(cfg.cardinalities)
    d["zipf_range"] = list(cfg.zipf_range)
    d["valid_rows"], d["test_rows"] = cfg.n_valid, cfg.n_test
    return d


def read_meta(folder: str | Path) -> dict:
    """``meta.json`` of a synthetic data folder, with a clear error if it is not one."""
    meta = read_json(Path(folder) / "meta.json")
    if "config" not in meta or "cardinalities" not in meta.get("config", {}):
        raise UserError(f"{folder}/meta.json is not embedlab synthetic-data metadata")
    return meta


def synth_schema(meta: dict) -> CTRSchema:
    """The Criteo-layout schema whose table sizes are the teacher's cardinalities."""
    cards: Sequence[int] = meta["config"]["cardinalities"]
    if len(cards) != NUM_SPARSE:
        raise UserError(
            f"synthetic data has {len(cards)} sparse features; the Criteo layout needs {NUM_SPARSE}"
        )
    return criteo_schema(table_sizes=cards)


def load_synth(folder: str | Path, **kw) -> tuple[CTRSchema, dict[str, CTRArrays], dict]:
    """Schema, the three splits (memory-mapped) and the metadata of a synthetic folder."""
    meta = read_meta(folder)
    schema = synth_schema(meta)
    splits = {}
    for s in SPLITS:
        if s not in meta["files"]:
            raise UserError(f"{folder} has no {s} split (was it generated with --days?)")
        splits[s], _ = load_split(Path(folder) / meta["files"][s], schema, **kw)
    return schema, splits, meta


def load_synth_day(
    folder: str | Path, day: int, **kw
) -> tuple[CTRSchema, dict[str, CTRArrays], dict]:
    """One day file of a folder generated with ``days > 0``, split by position into train
    (first 80%), valid and test (10% each), as the Criteo reader splits a single file."""
    from embedlab.data.registry import split_by_position

    meta = read_meta(folder)
    name = f"day_{day:03d}"
    if name not in meta["files"]:
        days = sorted(k for k in meta["files"] if k.startswith("day_"))
        raise UserError(f"{folder} has no {name}.tsv; it has {', '.join(days) or 'no day files'}")
    schema = synth_schema(meta)
    arr, _ = load_split(Path(folder) / meta["files"][name], schema, **kw)
    tr, va, te = split_by_position(arr)
    return schema, {"train": tr, "valid": va, "test": te}, meta
