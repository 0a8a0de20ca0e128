"""Time-ordered periods of CTR data for online (prequential) training.

A :class:`PeriodStream` is a list of :class:`~embedlab.data.schema.CTRArrays`, one per period,
oldest first. Two sources:

* :func:`synth_stream`: planted-truth data from the :class:`~embedlab.data.synth.Teacher` of
  ``embedlab.data.synth`` whose per-id parameters (linear weights and embeddings) *rotate*
  toward a fixed random direction ``D``: ``theta(t) = cos(a(t)) theta + sin(a(t)) D``, so the
  teacher's scale, and with it the difficulty of each period, stays the same while what it
  prefers changes. ``a(t) = drift_scale * s(t)`` with the shape ``s`` (:func:`drift_shape`):
  ``smooth`` linear from 0 to 1 over the stream, ``abrupt`` a step from 0 to 1 at the middle
  period, ``periodic`` a sine with two full cycles over the stream (``sin(4 pi t / T)``).
  Features are drawn from the same law every period; only the click model moves. Every
  row keeps its true click probability in ``extra["p_true"]``, so each period's Bayes limit
  (AUC, NE of the true probabilities on the realized labels) is exact. Our choices: small
  tables (cardinalities capped at ``cap``, 200 by default), 50,000 rows per period and a
  teacher whose interaction part is weaker than the offline default (``interaction_std``
  0.5), so that the tiny online DLRM gets within about 0.04 NE of the Bayes limit without
  drift and what remains is mostly the cost of the shift; ``drift_scale = 1`` radian by
  default (the benchmark uses 3 for smooth drift: at 1 its per-period rotation, 0.034
  rad, costs batch update under 0.01 NE).
* :func:`movielens_stream`: MovieLens-100k (1997-09-20 to 1998-04-22) cut into calendar
  weeks (from the Monday on or before the first rating; 32 weeks) or 30-day months. The
  label and features are those of :mod:`embedlab.data.movielens`, with the six causal
  history features; their smoothing priors come from the *first period only* (so no row
  uses a constant estimated on later data). Periods with fewer than ``min_rows`` ratings are
  merged into the next one (none are at the default of 200 on weeks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embedlab.data.schema import CTRArrays, CTRSchema
from embedlab.errors import UserError

DRIFT_KINDS = ("none", "smooth", "abrupt", "periodic")
PERIODS = ("week", "month")
DATASETS = ("synth", "movielens")


@dataclass
class PeriodStream:
    """Periods oldest first; ``bayes[t]`` holds the exact Bayes metrics of period ``t``
    (synthetic data only)."""

    name: str
    schema: CTRSchema
    periods: list[CTRArrays]
    labels: list[str]
    bayes: list[dict[str, float]] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.periods) < 3:
            raise UserError(
                f"{self.name}: online training needs at least 3 periods, got {len(self.periods)}"
            )
        if len(self.labels) != len(self.periods):
            raise ValueError("one label per period")

    def __len__(self) -> int:
        return len(self.periods)

    def rows(self) -> list[int]:
        return [len(p) for p in self.periods]


@dataclass(frozen=True)
class DriftConfig:
    """Settings of :func:`synth_stream` (written to the run's metrics)."""

    periods: int = 30
    rows: int = 50_000
    drift: str = "smooth"
    drift_scale: float = 1.0
    cap: int = 200
    seed: int = 0
    teacher_dim: int = 4
    base_ctr: float = 0.25
    linear_std: float = 1.5
    interaction_std: float = 0.5

    def __post_init__(self) -> None:
        if self.drift not in DRIFT_KINDS:
            raise UserError(f"unknown drift {self.drift!r}; valid: {', '.join(DRIFT_KINDS)}")
        if self.periods < 3:
            raise UserError(f"periods must be >= 3, got {self.periods}")
        if self.rows < 100:
            raise UserError(f"rows per period must be >= 100, got {self.rows}")
        if self.cap < 10:
            raise UserError(f"cap must be >= 10, got {self.cap}")
        if self.drift_scale < 0:
            raise UserError(f"drift scale must be >= 0, got {self.drift_scale}")


def drift_shape(kind: str, t: int, periods: int) -> float:
    """The drift amount of period ``t`` of ``periods`` before scaling (see the module doc)."""
    if kind == "none" or periods <= 1:
        return 0.0
    if kind == "smooth":
        return t / (periods - 1)
    if kind == "abrupt":
        return 0.0 if t < periods // 2 else 1.0
    if kind == "periodic":
        return math.sin(4 * math.pi * t / periods)
    raise UserError(f"unknown drift {kind!r}; valid: {', '.join(DRIFT_KINDS)}")


def synth_stream(cfg: DriftConfig) -> PeriodStream:
    """Planted-truth periods whose teacher drifts as ``cfg.drift`` says."""
    from embedlab.data.criteo import criteo_schema, dense_transform
    from embedlab.data.synth import SynthConfig, Teacher, bayes_metrics, default_cardinalities

    scfg = SynthConfig(
        rows=cfg.rows, seed=cfg.seed, cardinalities=default_cardinalities(cfg.cap),
        teacher_dim=cfg.teacher_dim, base_ctr=cfg.base_ctr, days=cfg.periods,
        linear_std=cfg.linear_std, interaction_std=cfg.interaction_std,
        drift=cfg.drift, drift_scale=cfg.drift_scale,
    )  # fmt: skip
    teacher = Teacher.build(scfg)
    schema = criteo_schema(table_sizes=scfg.cardinalities)
    periods, bayes = [], []
    for t in range(cfg.periods):
        rng = np.random.default_rng([cfg.seed, 7, t])
        raw, ids = teacher.sample_features(rng, cfg.rows)
        angle = cfg.drift_scale * drift_shape(cfg.drift, t, cfg.periods)
        p = teacher.probability(raw, ids, angle=angle)
        y = (rng.random(cfg.rows) < p).astype(np.float32)
        periods.append(
            CTRArrays(
                dense=dense_transform(raw),
                sparse=[ids[:, f].copy() for f in range(ids.shape[1])],
                labels=y,
                extra={"p_true": p.astype(np.float64)},
            )
        )
        bayes.append({**bayes_metrics(p, y), "drift_angle": angle})
    return PeriodStream(
        name=f"synth-{cfg.drift}",
        schema=schema,
        periods=periods,
        labels=[f"period {t}" for t in range(cfg.periods)],
        bayes=bayes,
        info={"source": "synth", "config": asdict(cfg)},
    )


def period_index(ts: np.ndarray, period: str) -> tuple[np.ndarray, list[str]]:
    """Period number of each (sorted) Unix timestamp and a label per period.

    ``week``: calendar weeks starting on Monday (UTC), counted from the week of the first
    timestamp; ``month``: 30-day windows from midnight (UTC) of the first day.
    """
    if period not in PERIODS:
        raise UserError(f"unknown period {period!r}; valid: {', '.join(PERIODS)}")
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        raise UserError("no timestamps to cut into periods")
    day = 86_400
    first_day = int(ts.min()) // day
    if period == "week":
        # 1970-01-01 was a Thursday: day d is a Monday when (d + 3) % 7 == 0.
        start = first_day - (first_day + 3) % 7
        width = 7 * day
    else:
        start, width = first_day, 30 * day
    idx = (ts - start * day) // width
    labels = [
        str(np.datetime64(int(start * day + k * width), "s").astype("datetime64[D]"))
        for k in range(int(idx.max()) + 1)
    ]
    return idx.astype(np.int64), labels


def split_periods(
    arrays: CTRArrays, idx: np.ndarray, labels: list[str], min_rows: int
) -> tuple[list[CTRArrays], list[str]]:
    """Rows grouped by period index; a period under ``min_rows`` rows joins the next one
    (the last one joins the previous)."""
    groups: list[list[int]] = []
    names: list[str] = []
    pending: list[int] = []
    for k in range(len(labels)):
        pending.append(k)
        rows = int(np.isin(idx, pending).sum())
        if rows >= min_rows:
            groups.append(pending)
            names.append(labels[pending[0]])
            pending = []
    if pending:
        if groups:
            groups[-1] = groups[-1] + pending
        else:
            groups.append(pending)
            names.append(labels[pending[0]])
    parts = [arrays.take(np.flatnonzero(np.isin(idx, g))) for g in groups]
    return parts, names


def movielens_stream(
    period: str = "week",
    data_dir: str | Path | None = None,
    cache_root: str | Path | None = None,
    min_rows: int = 200,
) -> PeriodStream:
    """MovieLens-100k in time-ordered periods (see the module docstring)."""
    if min_rows < 1:
        raise UserError(f"min_rows must be >= 1, got {min_rows}")
    from embedlab.data import movielens as ml

    folder = ml.check_folder(data_dir) if data_dir is not None else ml.fetch_movielens(cache_root)
    schema, arrays, rating = ml._build(folder)
    ts = arrays.extra["timestamp"]
    idx, labels = period_index(ts, period)
    first = idx == idx.min()
    hist = ml.history_features(
        arrays.extra["user"], arrays.extra["item"], ts, rating,
        float(arrays.labels[first].mean(dtype=np.float64)), float(rating[first].mean()),
    )  # fmt: skip
    arrays = CTRArrays(
        dense=np.concatenate([arrays.dense, hist], axis=1),
        sparse=arrays.sparse,
        labels=arrays.labels,
        extra=arrays.extra,
    )
    schema = ml.movielens_schema(
        dict(zip(schema.sparse_names, schema.table_sizes, strict=True)), history=True
    )
    parts, names = split_periods(arrays, idx, labels, min_rows)
    return PeriodStream(
        name=f"movielens-{period}",
        schema=schema,
        periods=parts,
        labels=names,
        info={"source": str(folder), "period": period, "min_rows": min_rows,
              "label": "rating >= 4", "history_priors": "first period"},
    )  # fmt: skip


StreamLoader = Callable[..., PeriodStream]


def load_stream(
    data: str, *, period: str = "week", drift: DriftConfig | None = None, **options
) -> PeriodStream:
    """The stream named ``data`` (``synth`` takes ``drift``; ``movielens`` takes ``period``
    and ``data_dir``)."""
    if data == "synth":
        return synth_stream(drift or DriftConfig())
    if data == "movielens":
        return movielens_stream(period=period, **options)
    raise UserError(f"unknown online data {data!r}; valid: {', '.join(DATASETS)}")
