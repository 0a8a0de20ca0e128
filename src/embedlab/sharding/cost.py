"""The measured cost of a sharding plan: the compute part of the plan-cost meter.

Per the v1 spec, the cost of a plan is the max over devices of
``forward compute + forward all-to-all + backward all-to-all + backward compute`` of that
device. Compute is the fused embedding-bag kernel (FBGEMM's
``SplitTableBatchedEmbeddingBagsCodegen``, pooling SUM, ``EXACT_SGD`` fused into the
backward) over all shards on the device, each shard a table of ``rows × columns``, fed with
indices drawn by :func:`~embedlab.sharding.workload.draw_bags`.

Backend ``"cpu"`` (the only one so far): ``EmbeddingLocation.HOST`` /
``ComputeDevice.CPU``. The CPU kernel supports FP32 and FP16 weights (both forward and the
fused SGD backward), so each shard is kept in its table's precision (``bytes_per_element``
4 → FP32, 2 → FP16). One TBE holds one weight precision, so a device with both kinds of
shards runs one kernel per precision and its time is their sum. The CPU backend times
``settings.batch_size`` samples (default 2048, usually smaller than the task's batch) and
records that batch in every result.

Each measurement runs ``warmup`` untimed forward+backward iterations, then ``repeats`` timed
iterations cycling over a few pre-drawn, seeded batches; forward and backward are timed
separately and reported through a robust statistic (``min`` or ``median``), with the
coefficient of variation of the per-iteration totals. Results are cached per meter, keyed by
(backend, settings, sorted multiset of (table spec, columns)), so shard sets that repeat
(across devices or plans) are timed once.

Communication (the forward and backward all-to-all) comes from the meter's ``comm``, a
:class:`~embedlab.sharding.comm.CommModel` calibrated on real ``all_to_all_single`` timings,
evaluated at the timed batch; without one, those fields are 0.0 (compute only).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.types import Plan, Shard, Table, Task
from embedlab.sharding.workload import draw_bags

BACKENDS = ("cpu",)
STATISTICS = ("min", "median")
#: Pre-drawn batches cycled over by the timed iterations.
NUM_BATCHES = 4

#: A table's spec as it matters to the kernel and its workload (the name does not).
TableSpec = tuple[int, int, float, int, str]
#: Cache key of one device: (backend, settings, sorted ((table spec, columns), ...)).
DeviceKey = tuple[str, "MeterSettings", tuple[tuple[TableSpec, int], ...]]


@dataclass(frozen=True)
class MeterSettings:
    """How the meter times kernels. ``batch_size`` is the batch actually timed."""

    backend: str = "cpu"
    batch_size: int = 2048
    warmup: int = 3
    repeats: int = 15
    statistic: str = "min"
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.statistic not in STATISTICS:
            raise UserError(f"unknown statistic {self.statistic!r}; valid: {', '.join(STATISTICS)}")
        for k in ("batch_size", "repeats", "threads"):
            if getattr(self, k) < 1:
                raise UserError(f"meter setting {k!r} must be >= 1, got {getattr(self, k)}")
        if self.warmup < 0:
            raise UserError(f"meter setting 'warmup' must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class DeviceCost:
    """Measured compute of one device's shards (ms per iteration at the timed batch)."""

    fwd_ms: float
    bwd_ms: float
    cv: float  # coefficient of variation of the per-iteration fwd+bwd times
    n: int  # timed iterations (0 for an empty device)

    @property
    def total_ms(self) -> float:
        return self.fwd_ms + self.bwd_ms


@dataclass(frozen=True)
class DevicePart:
    """One device's share of a plan's cost.

    ``fwd_comm_ms`` and ``bwd_comm_ms`` (the all-to-alls) come from the meter's calibrated
    alpha-beta model; every device waits for the slowest, so they are equal across devices.
    """

    device: int
    fwd_ms: float
    fwd_comm_ms: float
    bwd_comm_ms: float
    bwd_ms: float
    cv: float
    n: int

    @property
    def total_ms(self) -> float:
        return self.fwd_ms + self.fwd_comm_ms + self.bwd_comm_ms + self.bwd_ms


@dataclass(frozen=True)
class PlanCost:
    """A plan's cost: the max over devices of each device's total, and who set it."""

    task: str
    planner: str
    total_ms: float
    straggler: int
    devices: tuple[DevicePart, ...]
    backend: str
    settings: MeterSettings
    batch_size: int  # the batch actually timed (settings.batch_size)
    task_batch_size: int
    comm: dict[str, Any] | None = None  # the communication model used (None: compute only)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "planner": self.planner, "total_ms": self.total_ms,
            "straggler": self.straggler, "backend": self.backend, "batch_size": self.batch_size,
            "task_batch_size": self.task_batch_size, "settings": asdict(self.settings),
            "devices": [asdict(d) for d in self.devices], "comm": self.comm,
        }  # fmt: skip


def table_spec(table: Table) -> TableSpec:
    """What identifies a table to the meter: sizes, precision and workload (not the name)."""
    return (
        table.rows,
        table.dim,
        float(table.pooling_factor),
        table.bytes_per_element,
        json.dumps(table.index_distribution, sort_keys=True),
    )


def _spec_table(spec: TableSpec, columns: int) -> Table:
    rows, _dim, pf, bpe, dist = spec
    return Table("shard", rows, columns, pf, bpe, json.loads(dist))


@dataclass
class CostMeter:
    """Times devices' shard sets with FBGEMM's fused TBE kernel and caches the results."""

    settings: MeterSettings = field(default_factory=MeterSettings)
    comm: CommModel | None = None  # all-to-all model; None: communication not counted
    builds: int = 0  # TBE kernels built (one per precision per uncached device)
    _cache: dict[DeviceKey, DeviceCost] = field(default_factory=dict, repr=False)

    @property
    def backend(self) -> str:
        return self.settings.backend

    def device_key(self, task: Task, shards: Iterable[Shard]) -> DeviceKey:
        items = sorted((table_spec(task.table(s.table)), s.columns) for s in shards)
        return (self.settings.backend, self.settings, tuple(items))

    def measure_device(self, task: Task, shards: Iterable[Shard]) -> DeviceCost:
        """Compute cost of one device holding ``shards`` (cached; empty → zeros)."""
        key = self.device_key(task, shards)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        cost = self._time(key[2]) if key[2] else DeviceCost(0.0, 0.0, 0.0, 0)
        self._cache[key] = cost
        return cost

    def measure_plan(self, task: Task, plan: Plan) -> PlanCost:
        """Cost of ``plan``: per-device parts, the max over devices and its straggler.

        Communication comes from :attr:`comm` (the calibrated alpha-beta model of
        :mod:`embedlab.sharding.comm`) at the timed batch; without one it is 0.0.
        """
        plan.validate(task)
        by_dev: list[list[Shard]] = [[] for _ in range(task.num_devices)]
        for s in plan.shards:
            by_dev[s.device].append(s)
        fwd_comm = bwd_comm = 0.0
        if self.comm is not None:
            cols = [sum(s.columns for s in shards) for shards in by_dev]
            fwd_comm, bwd_comm = self.comm.all_to_all_ms(cols, self.settings.batch_size)
        parts = []
        for d, shards in enumerate(by_dev):
            c = self.measure_device(task, shards)
            parts.append(DevicePart(d, c.fwd_ms, fwd_comm, bwd_comm, c.bwd_ms, c.cv, c.n))
        straggler = max(range(len(parts)), key=lambda i: parts[i].total_ms)
        return PlanCost(
            task=task.name,
            planner=plan.planner,
            total_ms=parts[straggler].total_ms,
            straggler=straggler,
            devices=tuple(parts),
            backend=self.settings.backend,
            settings=self.settings,
            batch_size=self.settings.batch_size,
            task_batch_size=task.batch_size,
            comm=None
            if self.comm is None
            else {k: v for k, v in self.comm.to_json().items() if k != "settings"},
        )

    def single_table_costs(self, task: Task) -> dict[str, DeviceCost]:
        """Each table alone (all its columns) on one device."""
        return {
            t.name: self.measure_device(task, [Shard(t.name, 0, 0, t.dim)]) for t in task.tables
        }

    def lower_bound(self, task: Task) -> float:
        """``max(largest single-table cost, sum of single-table costs / num_devices)`` (ms)."""
        return lower_bound_from(
            [c.total_ms for c in self.single_table_costs(task).values()], task.num_devices
        )

    # --- timing ---------------------------------------------------------------------

    def _time(self, items: tuple[tuple[TableSpec, int], ...]) -> DeviceCost:
        s = self.settings
        groups: dict[int, list[tuple[int, TableSpec, int]]] = {}
        for i, (spec, cols) in enumerate(items):
            groups.setdefault(spec[3], []).append((i, spec, cols))
        old_threads = torch.get_num_threads()
        torch.set_num_threads(s.threads)
        try:
            per_group = [self._time_group(g) for _, g in sorted(groups.items())]
        finally:
            torch.set_num_threads(old_threads)
        fwd = np.sum([f for f, _ in per_group], axis=0)
        bwd = np.sum([b for _, b in per_group], axis=0)
        stat = np.min if s.statistic == "min" else np.median
        tot = fwd + bwd
        mean = float(np.mean(tot))
        cv = float(statistics.pstdev(tot.tolist()) / mean) if mean > 0 else 0.0
        return DeviceCost(float(stat(fwd)), float(stat(bwd)), cv, len(tot))

    def _time_group(self, group: list[tuple[int, TableSpec, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-iteration forward and backward ms of one TBE over ``group`` (one precision)."""
        from fbgemm_gpu.split_embedding_configs import EmbOptimType, SparseType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import (
            EmbeddingLocation,
            PoolingMode,
        )
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            SplitTableBatchedEmbeddingBagsCodegen,
        )

        s = self.settings
        B = s.batch_size
        precision = SparseType.FP16 if group[0][1][3] == 2 else SparseType.FP32
        tbe = SplitTableBatchedEmbeddingBagsCodegen(
            [(spec[0], cols, EmbeddingLocation.HOST, ComputeDevice.CPU) for _, spec, cols in group],
            optimizer=EmbOptimType.EXACT_SGD,
            learning_rate=0.01,
            pooling_mode=PoolingMode.SUM,
            weights_precision=precision,
            output_dtype=SparseType.FP32,
        )
        self.builds += 1
        total_cols = sum(cols for _, _, cols in group)
        batches = []
        for b in range(NUM_BATCHES):
            idx_parts, lengths = [], []
            for i, spec, cols in group:
                rng = np.random.default_rng([s.seed, i, b])
                bags = draw_bags(_spec_table(spec, cols), B, rng)
                idx_parts.append(bags.indices)
                lengths.append(bags.lengths)
            offsets = np.zeros(len(group) * B + 1, dtype=np.int64)
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
            indices = torch.from_numpy(np.concatenate(idx_parts).astype(np.int64))
            grad = torch.from_numpy(
                np.random.default_rng([s.seed, 1_000_003, b]).standard_normal(
                    (B, total_cols), dtype=np.float32
                )
            )
            batches.append((indices, torch.from_numpy(offsets), grad))

        for k in range(s.warmup):
            idx, off, grad = batches[k % NUM_BATCHES]
            tbe(idx, off).backward(grad)
        fwd = np.empty(s.repeats)
        bwd = np.empty(s.repeats)
        for k in range(s.repeats):
            idx, off, grad = batches[k % NUM_BATCHES]
            t0 = time.perf_counter()
            out = tbe(idx, off)
            t1 = time.perf_counter()
            out.backward(grad)
            t2 = time.perf_counter()
            fwd[k] = (t1 - t0) * 1e3
            bwd[k] = (t2 - t1) * 1e3
        return fwd, bwd


def lower_bound_from(single_costs: Iterable[float], num_devices: int) -> float:
    """``max(max(costs), sum(costs) / num_devices)``: no plan of whole tables costs less."""
    costs = list(single_costs)
    if not costs:
        return 0.0
    return max(max(costs), sum(costs) / num_devices)


__all__ = [
    "CostMeter",
    "DeviceCost",
    "DevicePart",
    "MeterSettings",
    "PlanCost",
    "lower_bound_from",
    "table_spec",
]
