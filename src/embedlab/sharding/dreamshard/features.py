"""The 21 DreamShard table features and their normalisation.

Features per table (the reference's order): ``dim``, ``rows``, ``pooling_factor``, ``size``
and the 17 index-reuse bins (:func:`~embedlab.sharding.workload.reuse_histogram`).

Normalisation (our choice): every feature is scaled the same way in every task --
``dim / 128``, ``log10(rows) / 8``, ``log10(1 + pooling_factor) / 2``,
``log10(size in bytes) / 10``, bins as fractions. The reference z-scores ``rows``, ``size``
and ``pooling_factor`` *within each task*, so a table's features depend on the other tables
of its task; with global scaling a table means the same thing in a 20-table and in a
200-table task, which is what transfer to other task sizes needs.

Reuse bins are computed once per table spec from a :data:`FEATURE_BATCH`-sample draw
(2,048 samples, our choice for planning speed: about 5 ms per table; the dataset's bins describe 65,536-sample
batches), or taken from ``Table.reuse_bins`` when the table carries measured ones.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embedlab.sharding.types import Table, Task
from embedlab.sharding.workload import draw_bags, reuse_histogram

NUM_FEATURES = 21
FEATURE_BATCH = 2_048
_PARALLEL_MIN = 16  # fewer uncached tables are drawn in the caller's thread


Key = tuple[int, int, float, int, str]  # a table's spec: rows, dim, pooling, bytes, workload
_BINS: dict[Key, tuple[float, ...]] = {}  # drawn bins by spec (a few hundred bytes each)


def _key(table: Table) -> Key:
    return (table.rows, table.dim, float(table.pooling_factor), table.bytes_per_element,
            json.dumps(table.index_distribution, sort_keys=True))  # fmt: skip


def _bins(key: Key) -> tuple[float, ...]:
    """The drawn bins of a spec, cached (a second thread drawing the same spec draws the same)."""
    if key not in _BINS:
        rows, dim, pf, bpe, dist = key
        rng = np.random.default_rng([rows, int(pf * 1000), 17])
        bags = draw_bags(Table("f", rows, dim, pf, bpe, json.loads(dist)), FEATURE_BATCH, rng)
        _BINS[key] = reuse_histogram(bags.indices)
    return _BINS[key]


def reuse_bins(table: Table) -> tuple[float, ...]:
    if table.reuse_bins is not None:
        return table.reuse_bins
    return _bins(_key(table))


def table_features(table: Table, columns: int | None = None) -> np.ndarray:
    """The normalised 21 features of ``table`` (or of a column shard of ``columns``)."""
    dim = table.dim if columns is None else columns
    size = table.rows * dim * table.bytes_per_element
    head = [dim / 128.0, math.log10(max(table.rows, 1)) / 8.0, math.log10(1.0 + table.pooling_factor) / 2.0,
            math.log10(max(size, 1)) / 10.0]  # fmt: skip
    return np.asarray(head + list(reuse_bins(table)), dtype=np.float32)


def task_features(task: Task) -> np.ndarray:
    """``[num_tables, 21]`` features of a task's tables, in task order.

    Tables without ``reuse_bins`` get theirs drawn (about 0.4 s for 200 new DLRM tables
    here: Zipf ranks tabulate only the first 2^16 ranks, :func:`~embedlab.sharding.workload._zipf_ranks`;
    ``benchmarks/results/sharding_planning_time.json``). When at least ``_PARALLEL_MIN`` distinct specs are not drawn yet, they
    are drawn on a thread pool (numpy releases the GIL), one seeded draw per spec, so the
    result does not depend on the threads."""
    todo = {_key(t) for t in task.tables if t.reuse_bins is None} - _BINS.keys()
    if len(todo) >= _PARALLEL_MIN:
        workers = min(len(todo), os.cpu_count() or 1, 8)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                # largest tables first, so no thread is left with a big one at the end
                list(pool.map(_bins, sorted(todo, key=lambda k: (-k[0], k))))
    return np.stack([table_features(t) for t in task.tables])


__all__ = ["FEATURE_BATCH", "NUM_FEATURES", "reuse_bins", "table_features", "task_features"]
