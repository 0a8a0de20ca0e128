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

Each device's shard set becomes one prepared kernel (a TBE per precision, a few pre-drawn,
seeded batches). Kernels are timed **interleaved**: after ``warmup`` untimed iterations
each, the ``repeats`` timed iterations of every kernel being measured are split into
``rounds`` bursts, and the rounds cycle over all kernels (round 1 of every kernel, then
round 2, ...), so a burst of load from another process hits every compared plan alike
instead of one plan's whole measurement. :meth:`CostMeter.measure_plans` measures all
plans of a task this way in one pass (as many kernels live at once as
``max_live_bytes`` of weights allow; the rest in further passes). Forward and backward are
timed separately and summarized by a statistic of the same samples:

* ``median`` (what the spec names): the median over all timed iterations;
* ``min``: the fastest iteration (an iteration can only be slowed down by noise);
* ``round_min_median`` (default): the median over rounds of each round's fastest
  iteration -- robust to a descheduled iteration (min within a burst) and to one
  unlucky burst (median across bursts). Chosen by the repeatability measured in
  ``benchmarks/sharding_baselines.py`` (CV of the same plan re-measured, per statistic).

Every result carries all three, the chosen one in ``fwd_ms``/``bwd_ms``, and the
coefficient of variation of the per-iteration totals. Results are cached per meter, keyed
by (backend, settings, sorted multiset of (table spec, columns)), so shard sets that repeat
(across devices or plans) are timed once. A meter can be given a measurement budget
(``budget_s`` seconds of kernel building and timing): once spent, measuring anything not
yet cached raises :class:`MeasurementBudgetExceeded`.

Communication (the forward and backward all-to-all) comes from the meter's ``comm``, a
:class:`~embedlab.sharding.comm.CommModel` calibrated on real ``all_to_all_single`` timings,
evaluated at the timed batch; without one, those fields are 0.0 (compute only).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.types import Plan, Shard, Table, Task
from embedlab.sharding.workload import draw_bags

BACKENDS = ("cpu",)
STATISTICS = ("round_min_median", "min", "median")
#: Pre-drawn batches cycled over by the timed iterations.
NUM_BATCHES = 4

#: A table's spec as it matters to the kernel and its workload (the name does not).
TableSpec = tuple[int, int, float, int, str]
#: Cache key of one device: (backend, settings, sorted ((table spec, columns), ...)).
DeviceKey = tuple[str, "MeterSettings", tuple[tuple[TableSpec, int], ...]]


class MeasurementBudgetExceeded(UserError):
    """The meter's measurement budget is spent; nothing new can be timed."""


@dataclass(frozen=True)
class MeterSettings:
    """How the meter times kernels. ``batch_size`` is the batch actually timed.

    ``repeats`` timed iterations per kernel, split into ``rounds`` interleaved bursts
    (``rounds`` is capped at ``repeats``).
    """

    backend: str = "cpu"
    batch_size: int = 2048
    warmup: int = 3
    repeats: int = 15
    statistic: str = "round_min_median"
    threads: int = 1
    seed: int = 0
    rounds: int = 5

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.statistic not in STATISTICS:
            raise UserError(f"unknown statistic {self.statistic!r}; valid: {', '.join(STATISTICS)}")
        for k in ("batch_size", "repeats", "threads", "rounds"):
            if getattr(self, k) < 1:
                raise UserError(f"meter setting {k!r} must be >= 1, got {getattr(self, k)}")
        if self.warmup < 0:
            raise UserError(f"meter setting 'warmup' must be >= 0, got {self.warmup}")

    def round_sizes(self) -> list[int]:
        """Timed iterations in each round (they sum to ``repeats``)."""
        r = min(self.rounds, self.repeats)
        return [self.repeats // r + (1 if i < self.repeats % r else 0) for i in range(r)]


@dataclass(frozen=True)
class DeviceCost:
    """Measured compute of one device's shards (ms per iteration at the timed batch).

    ``fwd_ms``/``bwd_ms`` by the settings' statistic; ``by_statistic`` maps every statistic
    to the fwd+bwd total it gives on the same samples.
    """

    fwd_ms: float
    bwd_ms: float
    cv: float  # coefficient of variation of the per-iteration fwd+bwd times
    n: int  # timed iterations (0 for an empty device)
    by_statistic: dict[str, float] = field(default_factory=dict, compare=False)

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
    compute_by_statistic: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def total_ms(self) -> float:
        return self.fwd_ms + self.fwd_comm_ms + self.bwd_comm_ms + self.bwd_ms


@dataclass(frozen=True)
class PlanCost:
    """A plan's cost: the max over devices of each device's total, and who set it.

    ``total_by_statistic`` is the plan cost under every statistic (the spec's ``median``
    among them), computed from the same samples.
    """

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
    total_by_statistic: dict[str, float] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "planner": self.planner, "total_ms": self.total_ms,
            "statistic": self.settings.statistic, "total_by_statistic": self.total_by_statistic,
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


def _stat_total(
    fwd: np.ndarray, bwd: np.ndarray, rounds: np.ndarray, statistic: str
) -> tuple[float, float]:
    """``(fwd, bwd)`` under ``statistic`` from per-iteration samples labelled by round."""
    if statistic == "min":
        return float(fwd.min()), float(bwd.min())
    if statistic == "median":
        return float(np.median(fwd)), float(np.median(bwd))
    labels = np.unique(rounds)
    f = [fwd[rounds == r].min() for r in labels]
    b = [bwd[rounds == r].min() for r in labels]
    return float(np.median(f)), float(np.median(b))


def summarize(fwd: np.ndarray, bwd: np.ndarray, rounds: np.ndarray, statistic: str) -> DeviceCost:
    """A :class:`DeviceCost` from per-iteration forward/backward ms and their round labels."""
    tot = fwd + bwd
    mean = float(np.mean(tot))
    cv = float(statistics.pstdev(tot.tolist()) / mean) if mean > 0 else 0.0
    by = {st: sum(_stat_total(fwd, bwd, rounds, st)) for st in STATISTICS}
    f, b = _stat_total(fwd, bwd, rounds, statistic)
    return DeviceCost(f, b, cv, len(tot), by)


class _Kernel:
    """One device's shard set, ready to time: one FBGEMM TBE per precision, pre-drawn
    batches, and the forward/backward samples taken so far (with their round)."""

    def __init__(self, settings: MeterSettings, items: tuple[tuple[TableSpec, int], ...]) -> None:
        self.settings = settings
        groups: dict[int, list[tuple[int, TableSpec, int]]] = {}
        for i, (spec, cols) in enumerate(items):
            groups.setdefault(spec[3], []).append((i, spec, cols))
        self.groups = [self._build(g) for _, g in sorted(groups.items())]
        self.fwd: list[float] = []
        self.bwd: list[float] = []
        self.rounds: list[int] = []
        self.calls = 0

    def _build(self, group: list[tuple[int, TableSpec, int]]) -> tuple[Any, list[tuple[Any, ...]]]:
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
        return tbe, batches

    def warm(self) -> None:
        for k in range(self.settings.warmup):
            for tbe, batches in self.groups:
                idx, off, grad = batches[k % NUM_BATCHES]
                tbe(idx, off).backward(grad)

    def run(self, n: int, round_index: int) -> None:
        """Time ``n`` iterations (every precision group once per iteration)."""
        for _ in range(n):
            f = b = 0.0
            for tbe, batches in self.groups:
                idx, off, grad = batches[self.calls % NUM_BATCHES]
                t0 = time.perf_counter()
                out = tbe(idx, off)
                t1 = time.perf_counter()
                out.backward(grad)
                t2 = time.perf_counter()
                f += (t1 - t0) * 1e3
                b += (t2 - t1) * 1e3
            self.calls += 1
            self.fwd.append(f)
            self.bwd.append(b)
            self.rounds.append(round_index)

    def result(self) -> DeviceCost:
        return summarize(
            np.asarray(self.fwd), np.asarray(self.bwd), np.asarray(self.rounds),
            self.settings.statistic,
        )  # fmt: skip


def _weight_bytes(items: tuple[tuple[TableSpec, int], ...]) -> int:
    return sum(spec[0] * cols * spec[3] for spec, cols in items)


@dataclass
class CostMeter:
    """Times devices' shard sets with FBGEMM's fused TBE kernel and caches the results.

    ``budget_s``: seconds of building and timing kernels this meter may spend (None: no
    limit); ``spent_s`` and ``measurements`` count what it has spent. ``max_live_bytes``:
    weight bytes of kernels held at once while interleaving (a larger set is measured in
    several interleaved passes; a single kernel above it is still measured, alone).
    """

    settings: MeterSettings = field(default_factory=MeterSettings)
    comm: CommModel | None = None  # all-to-all model; None: communication not counted
    budget_s: float | None = None
    max_live_bytes: int = 4 << 30
    builds: int = 0  # TBE kernels built (one per precision per uncached device)
    measurements: int = 0  # device shard sets timed
    spent_s: float = 0.0
    _cache: dict[DeviceKey, DeviceCost] = field(default_factory=dict, repr=False)

    @property
    def backend(self) -> str:
        return self.settings.backend

    def device_key(self, task: Task, shards: Iterable[Shard]) -> DeviceKey:
        items = sorted((table_spec(task.table(s.table)), s.columns) for s in shards)
        return (self.settings.backend, self.settings, tuple(items))

    def measure_device(self, task: Task, shards: Iterable[Shard]) -> DeviceCost:
        """Compute cost of one device holding ``shards`` (cached; empty → zeros)."""
        return self.measure_devices(task, [list(shards)])[0]

    def measure_devices(
        self, task: Task, shard_sets: Sequence[Iterable[Shard]]
    ) -> list[DeviceCost]:
        """Compute cost of each shard set, the uncached ones timed interleaved (cached)."""
        keys = [self.device_key(task, shards) for shards in shard_sets]
        todo = list(dict.fromkeys(k for k in keys if k[2] and k not in self._cache))
        if todo:
            self._measure_interleaved(todo)
        zero = DeviceCost(0.0, 0.0, 0.0, 0, dict.fromkeys(STATISTICS, 0.0))
        return [self._cache[k] if k[2] else zero for k in keys]

    def measure_plan(self, task: Task, plan: Plan) -> PlanCost:
        """Cost of ``plan``: per-device parts, the max over devices and its straggler.

        Communication comes from :attr:`comm` (the calibrated alpha-beta model of
        :mod:`embedlab.sharding.comm`) at the timed batch; without one it is 0.0.
        """
        return self.measure_plans(task, [plan])[0]

    def measure_plans(self, task: Task, plans: Sequence[Plan]) -> list[PlanCost]:
        """Costs of several plans of one task, their devices timed interleaved in one pass."""
        by_plan: list[list[list[Shard]]] = []
        for plan in plans:
            plan.validate(task)
            by_dev: list[list[Shard]] = [[] for _ in range(task.num_devices)]
            for s in plan.shards:
                by_dev[s.device].append(s)
            by_plan.append(by_dev)
        costs = self.measure_devices(task, [d for by_dev in by_plan for d in by_dev])
        out = []
        for i, (plan, by_dev) in enumerate(zip(plans, by_plan)):
            mine = costs[i * task.num_devices : (i + 1) * task.num_devices]
            out.append(self._plan_cost(task, plan, by_dev, mine))
        return out

    def _plan_cost(
        self, task: Task, plan: Plan, by_dev: list[list[Shard]], costs: list[DeviceCost]
    ) -> PlanCost:
        fwd_comm = bwd_comm = 0.0
        if self.comm is not None:
            cols = [sum(s.columns for s in shards) for shards in by_dev]
            fwd_comm, bwd_comm = self.comm.all_to_all_ms(cols, self.settings.batch_size)
        parts = [
            DevicePart(d, c.fwd_ms, fwd_comm, bwd_comm, c.bwd_ms, c.cv, c.n, dict(c.by_statistic))
            for d, c in enumerate(costs)
        ]
        straggler = max(range(len(parts)), key=lambda i: parts[i].total_ms)
        by_stat = {
            st: max(c.by_statistic.get(st, 0.0) for c in costs) + fwd_comm + bwd_comm
            for st in STATISTICS
        }
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
            total_by_statistic=by_stat,
        )

    def single_table_costs(self, task: Task) -> dict[str, DeviceCost]:
        """Each table alone (all its columns) on one device."""
        costs = self.measure_devices(task, [[Shard(t.name, 0, 0, t.dim)] for t in task.tables])
        return {t.name: c for t, c in zip(task.tables, costs)}

    def comm_lower_bound(self, task: Task) -> float:
        """Least forward+backward all-to-all time any plan of ``task`` can have (ms).

        The model's time grows with the most columns on a device and with the fewest, so
        columns spread as evenly as a column-wise split allows give the minimum.
        """
        if self.comm is None:
            return 0.0
        total, d = sum(t.dim for t in task.tables), task.num_devices
        cols = [total // d + (1 if i < total % d else 0) for i in range(d)]
        return sum(self.comm.all_to_all_ms(cols, self.settings.batch_size))

    def lower_bound(self, task: Task) -> float:
        """``max(largest single-table cost, sum of single-table costs / D)`` plus the
        least all-to-all time (:meth:`comm_lower_bound`; 0 without a comm model), in ms."""
        compute = lower_bound_from(
            [c.total_ms for c in self.single_table_costs(task).values()], task.num_devices
        )
        return compute + self.comm_lower_bound(task)

    # --- timing ---------------------------------------------------------------------

    def _check_budget(self, pending: int) -> None:
        if self.budget_s is not None and self.spent_s >= self.budget_s:
            raise MeasurementBudgetExceeded(
                f"measurement budget of {self.budget_s:g} s spent after {self.measurements} "
                f"device measurements; {pending} shard sets left unmeasured"
            )

    def _measure_interleaved(self, keys: list[DeviceKey]) -> None:
        """Time ``keys`` in passes of at most ``max_live_bytes`` of weights, rounds interleaved."""
        old_threads = torch.get_num_threads()
        torch.set_num_threads(self.settings.threads)
        try:
            i = 0
            while i < len(keys):
                self._check_budget(len(keys) - i)
                chunk, live = [keys[i]], _weight_bytes(keys[i][2])
                i += 1
                while i < len(keys) and live + _weight_bytes(keys[i][2]) <= self.max_live_bytes:
                    live += _weight_bytes(keys[i][2])
                    chunk.append(keys[i])
                    i += 1
                self._measure_pass(chunk)
        finally:
            torch.set_num_threads(old_threads)

    def _measure_pass(self, keys: list[DeviceKey]) -> None:
        t0 = time.perf_counter()
        kernels = []
        for k in keys:
            kernels.append(_Kernel(self.settings, k[2]))
            self.builds += len(kernels[-1].groups)
        for kern in kernels:
            kern.warm()
        for r, n in enumerate(self.settings.round_sizes()):
            # rotate the starting kernel each round so no kernel always runs first
            order = kernels[r % len(kernels) :] + kernels[: r % len(kernels)]
            for kern in order:
                kern.run(n, r)
        for k, kern in zip(keys, kernels):
            self._cache[k] = kern.result()
        self.measurements += len(keys)
        self.spent_s += time.perf_counter() - t0


def lower_bound_from(single_costs: Iterable[float], num_devices: int) -> float:
    """``max(max(costs), sum(costs) / num_devices)``: no plan of whole tables costs less."""
    costs = list(single_costs)
    if not costs:
        return 0.0
    return max(max(costs), sum(costs) / num_devices)


__all__ = [
    "STATISTICS",
    "CostMeter",
    "MeasurementBudgetExceeded",
    "DeviceCost",
    "DevicePart",
    "MeterSettings",
    "PlanCost",
    "lower_bound_from",
    "summarize",
    "table_spec",
]
