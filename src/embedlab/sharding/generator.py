"""Synthetic embedding tables like the open DLRM lookup dataset, and the papers' task families.

The 2021 ``facebookresearch/dlrm_datasets`` file holds 856 tables with a mean pooling factor
of about 15.8 (887M indices over 65,536 samples, 128.4M distinct rows: about 6.9 accesses
per distinct row, from its ``locality_stats.txt``). Its files are Git LFS objects we cannot
fetch, so :func:`table_pool` draws a seeded pool with the same kind of spread (our choices):

* ``rows``: ``10 ** N(5.0, 1.0)`` clipped to ``[100, 2e7]`` (heavy-tailed hash sizes);
* ``pooling_factor``: 30% of tables are one-hot-like (1.0); the others log-normal
  (``sigma = 1``), rescaled so the pool's mean is exactly 15.8;
* ``index_distribution``: Zipf with ``alpha ~ U(0.3, 1.3)``.

:func:`pool_statistics` reports the aggregate locality of a pool (distinct indices and
accesses per distinct index of one 65,536-sample batch) for comparison with the dataset.
Measured on the default pool (seed 0, one 65,536-sample batch of every table, seed 0):

==========================  =============  =================  ===============
                            indices        distinct indices   accesses/distinct
==========================  =============  =================  ===============
this pool                   886.4M         98.1M              9.0
2021 ``t856_bs65536``       887.0M         128.4M             6.9
2021 split files (each)     468.1M         61.7M              7.6
2022 ``t788_bs131072``      1,405M         110.3M             12.7
==========================  =============  =================  ===============

The pool matches the 2021 file's index count (its mean pooling factor) by construction;
its reuse (9.0 accesses per distinct row) lies inside the range of the dataset's published
files (6.9 to 12.7) but above the 2021 file the papers use: our tables repeat rows about
30% more often. The dataset publishes only aggregate histograms, not per-table ones, so
the per-table shape (Zipf exponents, hash sizes) stays our assumption; users with the real
files should load them with :mod:`embedlab.sharding.trace` instead.

Task families (``shard gen-tasks --family``):

Splits: the pool is split by a seeded permutation into disjoint parts: ``train`` (half the
pool), ``valid`` and ``test`` (a quarter each; together they are the former ``test`` half, so
models trained on ``train`` never saw a table of either). Every family draws its tables from
one split: train on ``train``, choose defaults on ``valid``, report on ``test``.

* ``dreamshard``: a task draws ``N`` tables without replacement from one split; dim 16,
  fp16, 5 GiB per device.
* ``autoshard``: like ``dreamshard`` but dims drawn from ``{16, 32}``, 7 GiB per device.
* ``neuroshard``: tables drawn with replacement from one split (the whole pool before the
  splits were enforced for every family), dims from
  ``{4, 8, 16, 32, 64, 128}``, fp32, 4 GiB per device, a task redrawn until its total size is
  at most ``(4 D - 1)`` GiB (memory-limited, as the reference's ``gen_tasks.py``).

With ``optimizer`` (``shard gen-tasks --optimizer``) the tasks carry that embedding
optimizer, and "size" in the neuroshard family's redraw rule is a table's device memory,
weights plus optimizer state (:meth:`~embedlab.sharding.types.Task.table_bytes`); without
one (the default) the key is omitted and the rule and the drawn tasks are as before. The
dreamshard and autoshard families keep their fixed device memory either way (they draw no
feasibility check; with ``adam`` state a task of many large tables on few devices may not
fit, and planners say so).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from embedlab.errors import UserError, unknown_name
from embedlab.sharding.types import OPTIMIZERS, Table, Task, shard_bytes
from embedlab.sharding.workload import REUSE_BATCH, draw_bags

GIB = 1 << 30
POOL_SIZE = 856
MEAN_POOLING = 15.8
FAMILIES = ("dreamshard", "autoshard", "neuroshard")


def table_pool(size: int = POOL_SIZE, seed: int = 0) -> list[Table]:
    """``size`` synthetic tables named ``p0 .. p{size-1}`` (dim 16, fp16 placeholders)."""
    if size < 1:
        raise UserError(f"pool size must be >= 1, got {size}")
    rng = np.random.default_rng([seed, 856])
    rows = np.clip(10 ** rng.normal(5.0, 1.0, size), 100, 2e7).astype(np.int64)
    one_hot = rng.random(size) < 0.3
    pooling = np.where(one_hot, 1.0, rng.lognormal(np.log(22.0) - 0.5, 1.0, size))
    multi = ~one_hot
    if multi.any():  # rescale the multi-hot tables so the pool mean is exactly MEAN_POOLING
        target = MEAN_POOLING * size - one_hot.sum()
        pooling[multi] *= target / pooling[multi].sum()
    alpha = rng.uniform(0.3, 1.3, size)
    return [
        Table(
            f"p{i}",
            int(rows[i]),
            16,
            float(round(pooling[i], 4)),
            2,
            {"kind": "zipf", "alpha": float(round(alpha[i], 4))},
        )
        for i in range(size)
    ]


def pool_statistics(
    pool: list[Table], batch_size: int = REUSE_BATCH, seed: int = 0
) -> dict[str, float]:
    """Indices, distinct indices and accesses per distinct index of one batch of every table."""
    rng = np.random.default_rng(seed)
    n_idx = n_unique = 0
    for t in pool:
        idx = draw_bags(t, batch_size, rng).indices
        n_idx += len(idx)
        n_unique += len(np.unique(idx))
    return {"tables": len(pool), "indices": n_idx, "distinct": n_unique, "accesses_per_distinct": n_idx / max(n_unique, 1),
            "mean_pooling_factor": float(np.mean([t.pooling_factor for t in pool]))}  # fmt: skip


SPLITS = ("train", "valid", "test")


def split_pool(pool: list[Table], seed: int = 0) -> dict[str, list[Table]]:
    """Disjoint ``train`` (half), ``valid`` and ``test`` (a quarter each) parts of the pool
    (one seeded permutation)."""
    perm = np.random.default_rng([seed, 1]).permutation(len(pool))
    half = len(pool) // 2
    three = half + (len(pool) - half) // 2
    return {
        "train": [pool[i] for i in perm[:half]],
        "valid": [pool[i] for i in perm[half:three]],
        "test": [pool[i] for i in perm[three:]],
    }


def gen_tasks(
    family: str,
    num_tables: int,
    num_devices: int,
    count: int,
    seed: int = 0,
    split: str = "train",
    pool: list[Table] | None = None,
    batch_size: int = 65_536,
    optimizer: str | None = None,
) -> list[Task]:
    """``count`` tasks of ``family`` with ``num_tables`` tables on ``num_devices`` devices;
    ``optimizer`` (one of :data:`~embedlab.sharding.types.OPTIMIZERS`, None: key omitted)
    is the embedding optimizer whose state the tasks' memory must hold."""
    if family not in FAMILIES:
        raise unknown_name("task family", family, FAMILIES)
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", optimizer, OPTIMIZERS)
    for name, v in (("tables", num_tables), ("devices", num_devices), ("count", count)):
        if v < 1:
            raise UserError(f"--{name} must be >= 1, got {v}")
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    pool = pool if pool is not None else table_pool()
    rng = np.random.default_rng([seed, FAMILIES.index(family), num_tables, num_devices])
    source = split_pool(pool)[split]
    if family != "neuroshard" and num_tables > len(source):
        raise UserError(
            f"{family} draws without replacement: {num_tables} tables > {len(source)} in the {split} pool"
        )
    tasks = []
    for k in range(count):
        name = f"{family}-{split}-n{num_tables}-d{num_devices}-{k:03d}"
        if family == "neuroshard":
            mem = 4 * GIB
            for _ in range(1000):
                picks = rng.integers(0, len(source), num_tables)
                dims = rng.choice([4, 8, 16, 32, 64, 128], num_tables)
                tables = _named(
                    [
                        replace(source[i], dim=int(d), bytes_per_element=4)
                        for i, d in zip(picks, dims)
                    ]
                )
                need = [shard_bytes(t, t.dim, optimizer) for t in tables]
                if sum(need) <= (4 * num_devices - 1) * GIB and max(need) <= mem:
                    break
            else:
                raise UserError(
                    f"could not draw a neuroshard task of {num_tables} tables within {(4 * num_devices - 1)} GiB"
                )
        else:
            picks = rng.choice(len(source), num_tables, replace=False)
            dims = (
                [16] * num_tables
                if family == "dreamshard"
                else rng.choice([16, 32], num_tables).tolist()
            )
            mem = (5 if family == "dreamshard" else 7) * GIB
            tables = _named(
                [replace(source[i], dim=int(d), bytes_per_element=2) for i, d in zip(picks, dims)]
            )
        tasks.append(Task(name, num_devices, mem, batch_size, tuple(tables), optimizer))
    return tasks


def _named(tables: list[Table]) -> list[Table]:
    """Keep pool names, suffixing repeats (drawing with replacement) so names stay unique."""
    seen: dict[str, int] = {}
    out = []
    for t in tables:
        n = seen.get(t.name, 0)
        seen[t.name] = n + 1
        out.append(t if n == 0 else replace(t, name=f"{t.name}_{n + 1}"))
    return out
