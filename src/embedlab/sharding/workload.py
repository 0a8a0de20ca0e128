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
#: Above this many rows the Zipf CDF is not tabulated; ranks come from inverse-CDF sampling
#: of the continuous power law (exact for alpha = 0, a close approximation otherwise).
_TABULATE_MAX = 5_000_000


@dataclass(frozen=True)
class Bags:
    """Indices of one table for one batch: flat ``indices`` and ``offsets`` (``B + 1``)."""

    indices: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


_CDF_CACHE: dict[tuple[int, float], np.ndarray] = {}


def _zipf_ranks(rows: int, alpha: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ranks in ``1..rows`` with ``P(k) ∝ k^-alpha``."""
    if alpha == 0.0:
        return rng.integers(1, rows + 1, size=n)
    if rows <= _TABULATE_MAX:
        key = (rows, alpha)
        cdf = _CDF_CACHE.get(key)
        if cdf is None:
            cdf = np.cumsum(np.arange(1, rows + 1, dtype=np.float64) ** -alpha)
            cdf /= cdf[-1]
            if len(_CDF_CACHE) > 64:
                _CDF_CACHE.clear()
            _CDF_CACHE[key] = cdf
        return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), rows - 1) + 1
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
