"""Indices of a table's workload, drawn exactly as the v1 spec says, and reuse histograms.

For a batch of ``B`` samples: bag lengths ``L_i ~ Poisson(pooling_factor)``, then
``sum(L_i)`` indices. ``{"kind": "zipf", "alpha": a}`` draws a rank ``k in {1..rows}`` with
``P(k) ∝ k^-a`` (``a = 0`` is uniform) and maps it to row ``((k - 1) * 2654435761) mod
rows``, so hot rows are spread over the table; ``{"kind": "uniform"}`` is ``alpha = 0``;
``{"kind": "trace", "path": ...}`` replays recorded indices (see :mod:`embedlab.sharding.trace`).

``reuse_bins[j]`` is the fraction of distinct indices among those drawn for a 65,536-sample
batch whose access count falls in bin ``j``: ``(0,1], (1,2], (2,4], ..., (16384,32768],
(32768, inf)`` (17 bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedlab.sharding.types import NUM_REUSE_BINS, Table

HASH_MULT = 2654435761
REUSE_BATCH = 65_536
#: Above this many rows ranks come from inverse-CDF sampling of the continuous power law
#: (exact for alpha = 0, a close approximation otherwise), kept so that such tables draw the
#: workloads every recorded figure was measured with.
_TABULATE_MAX = 5_000_000
#: Ranks up to this are tabulated; beyond it (tables of up to ``_TABULATE_MAX`` rows) the CDF
#: is the tabulated head plus an Euler-Maclaurin tail sum (:func:`zipf_tail_sum`).
_HEAD = 1 << 16


@dataclass(frozen=True)
class Bags:
    """Indices of one table for one batch: flat ``indices`` and ``offsets`` (``B + 1``)."""

    indices: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def zipf_tail_sum(m: int, x: np.ndarray, alpha: float) -> np.ndarray:
    """``sum_{k=m}^{x} k^-alpha`` for integers ``x`` (0 where ``x < m``), ``alpha > 0``.

    Euler-Maclaurin to the third-derivative term: the integral, the two end halves and the ``B2`` and
    ``B4`` corrections. The next term is below ``alpha^5 m^(-alpha-5) / 30240``, under 1e-20 of
    the sum for ``m >= 2^16``, so the result is as close as float64 rounding lets a direct sum
    get (a sequential sum of millions of terms is itself off by about 1e-13)."""
    x = np.asarray(x, dtype=np.float64)
    m_f = float(m)
    e = 1.0 - alpha
    log_ratio = np.log(np.maximum(x, m_f) / m_f)
    integral = log_ratio if abs(e) < 1e-12 else m_f**e * np.expm1(e * log_ratio) / e
    x = np.maximum(x, 1.0)
    d1 = -alpha * (x ** (-alpha - 1.0) - m_f ** (-alpha - 1.0))
    d3 = -alpha * (alpha + 1.0) * (alpha + 2.0) * (x ** (-alpha - 3.0) - m_f ** (-alpha - 3.0))
    total = integral + 0.5 * (x**-alpha + m_f**-alpha) + d1 / 12.0 - d3 / 720.0
    return np.where(x < m_f, 0.0, total)


_CDF_CACHE: dict[tuple[int, float], tuple[np.ndarray, float]] = {}


def _zipf_head(rows: int, alpha: float) -> tuple[np.ndarray, float]:
    """Cumulative sums of ``k^-alpha`` for ``k <= min(rows, _HEAD)``, and the sum to ``rows``."""
    key = (rows, alpha)
    hit = _CDF_CACHE.get(key)
    if hit is None:
        head = np.cumsum(np.arange(1, min(rows, _HEAD) + 1, dtype=np.float64) ** -alpha)
        total = float(head[-1])
        if rows > _HEAD:
            total += float(zipf_tail_sum(_HEAD + 1, np.array([rows]), alpha)[0])
        if len(_CDF_CACHE) > 256:
            _CDF_CACHE.clear()
        hit = _CDF_CACHE[key] = (head, total)
    return hit


def _tail_ranks(rows: int, alpha: float, target: np.ndarray) -> np.ndarray:
    """For each ``target``, the least rank ``k`` in ``(_HEAD, rows]`` whose tail sum
    ``sum_{_HEAD < j <= k} j^-alpha`` exceeds it (``rows`` if none does): a midpoint-rule
    guess, then steps of one rank until no step changes it."""
    m = _HEAD + 1
    e = 1.0 - alpha
    lo = m - 0.5
    if abs(e) < 1e-12:
        guess = lo * np.exp(target)
    else:  # (x^e - lo^e) / e = target
        guess = np.maximum(lo**e + e * target, 1e-300) ** (1.0 / e)
    k = np.clip(np.ceil(np.minimum(guess, rows) - 0.5), m, rows).astype(np.int64)
    for _ in range(64):
        up = (k < rows) & (zipf_tail_sum(m, k, alpha) <= target)
        down = (k > m) & (zipf_tail_sum(m, k - 1, alpha) > target)
        if not (up.any() or down.any()):
            break
        k = k + up - down
    return k


def _zipf_ranks(rows: int, alpha: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ranks in ``1..rows`` with ``P(k) ∝ k^-alpha``.

    Inverse-CDF sampling: ``k`` is the least rank whose cumulative sum exceeds ``u`` times the
    total, ``u`` uniform. Only the first ``_HEAD`` ranks are tabulated; for larger tables the
    total and the tail come from :func:`zipf_tail_sum` instead of millions of powers (most of a
    learned planner's first call on new tables went to that tabulation). The ranks are those of
    the full table up to float64 rounding (``tests/sharding/test_workload.py``)."""
    if alpha == 0.0:
        return rng.integers(1, rows + 1, size=n)
    if rows <= _TABULATE_MAX:
        head, total = _zipf_head(rows, alpha)
        target = rng.random(n) * total
        ranks = np.searchsorted(head, target, side="right") + 1
        tail = ranks > len(head)
        if rows <= _HEAD or not tail.any():
            return np.minimum(ranks, rows)
        ranks[tail] = _tail_ranks(rows, alpha, target[tail] - head[-1])
        return ranks
    # continuous power law on [1, rows + 1), floored
    u = rng.random(n)
    if abs(alpha - 1.0) < 1e-9:
        x = np.exp(u * np.log(rows + 1.0))
    else:
        e = 1.0 - alpha
        x = (1.0 + u * ((rows + 1.0) ** e - 1.0)) ** (1.0 / e)
    return np.clip(np.floor(x).astype(np.int64), 1, rows)


def rank_to_row(ranks: np.ndarray, rows: int) -> np.ndarray:
    """The spec's spreading of ranks over the table: ``((k - 1) * 2654435761) mod rows``."""
    return ((ranks.astype(np.uint64) - 1) * np.uint64(HASH_MULT) % np.uint64(rows)).astype(np.int64)


def draw_bags(table: Table, batch_size: int, rng: np.random.Generator) -> Bags:
    """One batch of bags for ``table`` (zipf or uniform workloads)."""
    kind = table.index_distribution["kind"]
    if kind == "trace":
        from embedlab.sharding.trace import draw_trace_bags

        return draw_trace_bags(table, batch_size, rng)
    lengths = rng.poisson(table.pooling_factor, size=batch_size)
    offsets = np.zeros(batch_size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ranks = _zipf_ranks(table.rows, table.alpha, int(offsets[-1]), rng)
    return Bags(rank_to_row(ranks, table.rows), offsets)


def reuse_histogram(indices: np.ndarray) -> tuple[float, ...]:
    """The 17 reuse bins of a set of drawn indices (fractions of distinct indices)."""
    if len(indices) == 0:
        return tuple([0.0] * NUM_REUSE_BINS)
    _, counts = np.unique(indices, return_counts=True)
    # bin j holds counts in (2^(j-1), 2^j], bin 0 holds 1, the last is > 32768
    bins = np.where(counts <= 1, 0, np.ceil(np.log2(counts)).astype(np.int64))
    bins = np.minimum(bins, NUM_REUSE_BINS - 1)
    hist = np.bincount(bins, minlength=NUM_REUSE_BINS).astype(np.float64)
    return tuple((hist / len(counts)).tolist())


def table_reuse_bins(table: Table, seed: int = 0) -> tuple[float, ...]:
    """``table.reuse_bins``, or the histogram of a drawn 65,536-sample batch if absent."""
    if table.reuse_bins is not None:
        return table.reuse_bins
    rng = np.random.default_rng([seed, table.rows, int(table.dim)])
    return reuse_histogram(draw_bags(table, REUSE_BATCH, rng).indices)
