"""Zipf rank sampling: the tabulated head plus an Euler-Maclaurin tail draws the full table's ranks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedlab.sharding import workload as W


def _full_table_ranks(rows: int, alpha: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The sampler before the tail sum: every rank's power tabulated."""
    cdf = np.cumsum(np.arange(1, rows + 1, dtype=np.float64) ** -alpha)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), rows - 1) + 1


@pytest.mark.parametrize(
    ("rows", "alpha"),
    [(W._HEAD, 0.6), (W._HEAD + 1, 0.7), (300_000, 0.3), (1_000_000, 1.0), (2_000_000, 1.3), (W._TABULATE_MAX, 0.45)],
)
def test_ranks_equal_the_full_table(rows: int, alpha: float) -> None:
    W._CDF_CACHE.clear()
    got = W._zipf_ranks(rows, alpha, 100_000, np.random.default_rng(5))
    want = _full_table_ranks(rows, alpha, 100_000, np.random.default_rng(5))
    assert got.min() >= 1 and got.max() <= rows
    # float64 rounding of the two sums may move a draw that lands on a boundary; none here
    assert np.array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(st.integers(W._HEAD + 1, 3_000_000), st.floats(0.05, 2.5), st.integers(W._HEAD + 1, 3_000_000))
def test_tail_sum_equals_the_direct_sum(rows: int, alpha: float, x: int) -> None:
    x = min(x, rows)
    direct = np.sum(np.arange(W._HEAD + 1, x + 1, dtype=np.float64) ** -alpha)
    em = W.zipf_tail_sum(W._HEAD + 1, np.array([x]), alpha)[0]
    assert em == pytest.approx(direct, rel=1e-12, abs=1e-300)
    assert W.zipf_tail_sum(W._HEAD + 1, np.array([W._HEAD]), alpha)[0] == 0.0


def test_tail_ranks_are_least_ranks_exceeding_the_target() -> None:
    rows, alpha = 400_000, 0.8
    m = W._HEAD + 1
    total = W.zipf_tail_sum(m, np.array([rows]), alpha)[0]
    target = np.random.default_rng(0).random(2_000) * total
    k = W._tail_ranks(rows, alpha, target)
    assert np.all(W.zipf_tail_sum(m, k, alpha) > target)
    assert np.all(W.zipf_tail_sum(m, k - 1, alpha) <= target)


def test_rank_frequencies_follow_the_power_law() -> None:
    rows, alpha, n = 1_000_000, 0.9, 400_000
    ranks = W._zipf_ranks(rows, alpha, n, np.random.default_rng(1))
    total = W._zipf_head(rows, alpha)[1]
    for lo, hi in [(1, 1), (2, 10), (1_000, 100_000), (100_001, rows)]:
        p = (np.sum(np.arange(lo, hi + 1, dtype=np.float64) ** -alpha)) / total
        got = np.mean((ranks >= lo) & (ranks <= hi))
        assert got == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n) + 1e-9)
