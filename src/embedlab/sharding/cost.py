"""The measured cost of a sharding plan: one training step of the embedding part, as
TorchRec's ``DistributedModelParallel`` runs it.

Per the v1 spec, the cost of a plan is the max over devices of
``input all-to-all + forward compute + forward all-to-all + backward all-to-all + backward
compute`` of that device:

* **compute** is the fused embedding-bag kernel (FBGEMM's
  ``SplitTableBatchedEmbeddingBagsCodegen``, pooling SUM) over all shards on the device,
  each shard a table of ``rows × columns`` (real row counts), fed with indices drawn by
  :func:`~embedlab.sharding.workload.draw_bags`, its backward fused with the update of the
  task's ``optimizer`` (``EXACT_SGD`` for ``sgd`` or none, ``EXACT_ROWWISE_ADAGRAD``,
  ``EXACT_ADAGRAD``, ``ADAM``), as TorchRec's fused kernel does;
* **communication** comes from the meter's ``comm``, a per-kind
  :class:`~embedlab.sharding.comm.CommModel` calibrated on TorchRec's own collectives:
  the input all-to-all (ids and lengths, from each table's pooling factor), the pooled
  forward all-to-all and its backward. A collective ends when its slowest participant
  does, so a device's forward all-to-all also holds its wait for the slowest device's
  forward compute (``fwd_comm_ms = max forward compute - own forward compute +
  transfer``), exactly what a rank's clock shows under DMP
  (:mod:`embedlab.sharding.run` times the same phases). The plan cost is therefore
  ``input + max_d forward + forward a2a + backward a2a + max_d backward``. Without a comm
  model the cost is compute only (``max_d (forward + backward)``); a model without an
  ``input`` line leaves the input all-to-all out, and :attr:`PlanCost.input_counted` says so.

Backend ``"cpu"`` (the only one so far): ``EmbeddingLocation.HOST`` / ``ComputeDevice.CPU``.
The CPU kernel supports FP32 and FP16 weights, so each shard is kept in its table's precision
(``bytes_per_element`` 4 → FP32, 2 → FP16). One TBE holds one weight precision, so a device
with both kinds of shards runs one kernel per precision and its time is their sum.

**Batch.** A device computes its shards for the global batch, so the meter times
``settings.batch_size`` samples per kernel call: 4096 by default (at 512, the old default,
fixed per-call costs dominated and costs looked additive). Tasks say 65,536; a CPU times a
smaller batch and records it in every result; costs compare only at the same settings.

Each device's shard set becomes one prepared kernel (a TBE per precision, a few pre-drawn,
seeded batches). Kernels are timed **interleaved**: after ``warmup`` untimed iterations
each, the ``repeats`` timed iterations of every kernel being measured are split into
``rounds`` bursts, and the rounds cycle over all kernels, so a burst of load from another
process hits every compared plan alike. :meth:`CostMeter.measure_plans` measures all plans
of a task this way in one pass (as many kernels live at once as ``max_live_bytes`` of
weights allow; the rest in further passes). Forward and backward are timed separately and
summarized by a statistic of the same samples:

* ``median`` (what the spec names): the median over all timed iterations;
* ``min``: the fastest iteration;
* ``round_min_median`` (default): the median over rounds of each round's fastest
  iteration -- robust to a descheduled iteration and to one unlucky burst.

Every result carries all three, the chosen one in ``fwd_ms``/``bwd_ms``, and the
coefficient of variation of the per-iteration totals. Results are cached per meter, keyed
by (backend, settings, optimizer, sorted multiset of (table spec, columns)). A meter can be
given a measurement budget (``budget_s`` seconds of kernel building and timing): once
spent, measuring anything not yet cached raises :class:`MeasurementBudgetExceeded`.

**No lower bound.** :meth:`CostMeter.balanced_estimate` (the largest single table, or every
table's cost spread evenly over the devices, plus the least communication) is an
*estimate*, not a bound: a device's fused kernel over several tables costs less than the
sum of the tables alone (fixed per-call costs are paid once), so measured plans can fall
below it. Only :meth:`CostMeter.comm_lower_bound` is a bound (of the comm model).
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
from embedlab.sharding.comm import CommModel, input_payload
from embedlab.sharding.types import Plan, Shard, Table, Task, state_bytes
from embedlab.sharding.workload import draw_bags

BACKENDS = ("cpu",)
STATISTICS = ("round_min_median", "min", "median")
#: Pre-drawn batches cycled over by the timed iterations.
NUM_BATCHES = 4

#: A table's spec as it matters to the kernel and its workload (the name does not).
TableSpec = tuple[int, int, float, int, str]
#: Cache key of one device: (backend, settings, optimizer, sorted ((table spec, columns), ...)).
DeviceKey = tuple[str, "MeterSettings", str, tuple[tuple[TableSpec, int], ...]]

#: Task optimizers FBGEMM's CPU kernel cannot fuse (fbgemm-gpu-cpu 1.8 asserts "not
#: supported in CPU mode"): their plans are checked for memory, but the CPU backend cannot time them.
CPU_UNSUPPORTED = frozenset({"adam"})
#: The FBGEMM optimizer fused into the backward for each task optimizer (None: ``sgd``).
FUSED_OPTIMIZERS = {
    "sgd": "EXACT_SGD",
    "rowwise_adagrad": "EXACT_ROWWISE_ADAGRAD",
    "adagrad": "EXACT_ADAGRAD",
    "adam": "ADAM",
}


def fused_optimizer(optimizer: str | None) -> Any:
    """FBGEMM's ``EmbOptimType`` for a task's ``optimizer`` (None: exact SGD)."""
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    return getattr(EmbOptimType, FUSED_OPTIMIZERS[optimizer or "sgd"])


class MeasurementBudgetExceeded(UserError):
    """The meter's measurement budget is spent; nothing new can be timed."""


@dataclass(frozen=True)
class MeterSettings:
    """How the meter times kernels. ``batch_size`` is the batch actually timed.

    ``repeats`` timed iterations per kernel, split into ``rounds`` interleaved bursts
    (``rounds`` is capped at ``repeats``).
    """

    backend: str = "cpu"
    batch_size: int = 4096
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
    split_by_statistic: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)

    @property
    def total_ms(self) -> float:
        return self.fwd_ms + self.bwd_ms


@dataclass(frozen=True)
class DevicePart:
    """One device's share of a plan's cost, phase by phase as its clock shows them.

    ``input_comm_ms`` and ``bwd_comm_ms`` (all-to-alls) are equal across devices;
    ``fwd_comm_ms`` is the forward all-to-all plus this device's wait for the slowest
    forward compute (0 wait on the slowest device).
    """

    device: int
    fwd_ms: float
    fwd_comm_ms: float
    bwd_comm_ms: float
    bwd_ms: float
    cv: float
    n: int
    compute_by_statistic: dict[str, float] = field(default_factory=dict, compare=False)
    input_comm_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.input_comm_ms + self.fwd_ms + self.fwd_comm_ms + self.bwd_comm_ms + self.bwd_ms


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
    optimizer: str = "sgd"
    input_counted: bool = False  # the input all-to-all is in the cost

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "planner": self.planner, "total_ms": self.total_ms,
            "statistic": self.settings.statistic, "total_by_statistic": self.total_by_statistic,
            "straggler": self.straggler, "backend": self.backend, "batch_size": self.batch_size,
            "task_batch_size": self.task_batch_size, "settings": asdict(self.settings),
            "optimizer": self.optimizer, "input_counted": self.input_counted,
            "devices": [asdict(d) | {"total_ms": d.total_ms} for d in self.devices], "comm": self.comm,
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
    split = {st: _stat_total(fwd, bwd, rounds, st) for st in STATISTICS}
    f, b = split[statistic]
    return DeviceCost(f, b, cv, len(tot), {st: sum(v) for st, v in split.items()}, split)


class _Kernel:
    """One device's shard set, ready to time: one FBGEMM TBE per precision, pre-drawn
    batches, and the forward/backward samples taken so far (with their round)."""

    def __init__(self, settings: MeterSettings, items: tuple[tuple[TableSpec, int], ...],
                 optimizer: str = "sgd") -> None:  # fmt: skip
        self.settings = settings
        self.optimizer = optimizer
        groups: dict[int, list[tuple[int, TableSpec, int]]] = {}
        for i, (spec, cols) in enumerate(items):
            groups.setdefault(spec[3], []).append((i, spec, cols))
        self.groups = [self._build(g) for _, g in sorted(groups.items())]
        self.fwd: list[float] = []
        self.bwd: list[float] = []
        self.rounds: list[int] = []
        self.calls = 0

    def _build(self, group: list[tuple[int, TableSpec, int]]) -> tuple[Any, list[tuple[Any, ...]]]:
        from fbgemm_gpu.split_embedding_configs import SparseType
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
            optimizer=fused_optimizer(self.optimizer),
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


def _weight_bytes(key: DeviceKey) -> int:
    """Weights plus optimizer state of a device key's kernel."""
    return sum(spec[0] * cols * spec[3] + state_bytes(key[2], spec[0], cols) for spec, cols in key[3])


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
        return (self.settings.backend, self.settings, task.optimizer or "sgd", tuple(items))

    def measure_device(self, task: Task, shards: Iterable[Shard]) -> DeviceCost:
        """Compute cost of one device holding ``shards`` (cached; empty → zeros)."""
        return self.measure_devices(task, [list(shards)])[0]

    def measure_devices(
        self, task: Task, shard_sets: Sequence[Iterable[Shard]]
    ) -> list[DeviceCost]:
        """Compute cost of each shard set, the uncached ones timed interleaved (cached)."""
        if self.settings.backend == "cpu" and task.optimizer in CPU_UNSUPPORTED:
            raise UserError(
                f"task {task.name!r}: FBGEMM's CPU kernel has no fused {task.optimizer!r}; the cpu "
                f"backend can time sgd, rowwise_adagrad and adagrad tasks"
            )
        keys = [self.device_key(task, shards) for shards in shard_sets]
        todo = list(dict.fromkeys(k for k in keys if k[3] and k not in self._cache))
        if todo:
            self._measure_interleaved(todo)
        zero = DeviceCost(0.0, 0.0, 0.0, 0, dict.fromkeys(STATISTICS, 0.0),
                          dict.fromkeys(STATISTICS, (0.0, 0.0)))  # fmt: skip
        return [self._cache[k] if k[3] else zero for k in keys]

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
        B = self.settings.batch_size
        input_ms = a2a_fwd = a2a_bwd = 0.0
        if self.comm is not None:
            cols = [sum(s.columns for s in shards) for shards in by_dev]
            a2a_fwd, a2a_bwd = self.comm.all_to_all_ms(cols, B)
            payload = [
                sum(input_payload(task.table(s.table).pooling_factor) for s in shards)
                for shards in by_dev
            ]
            input_ms = self.comm.input_ms(payload, B)
        synced = self.comm is not None and task.num_devices > 1
        max_fwd = max(c.fwd_ms for c in costs)
        parts = [
            DevicePart(d, c.fwd_ms, a2a_fwd + (max_fwd - c.fwd_ms if synced else 0.0), a2a_bwd,
                       c.bwd_ms, c.cv, c.n, dict(c.by_statistic), input_ms)  # fmt: skip
            for d, c in enumerate(costs)
        ]
        straggler = max(range(len(parts)), key=lambda i: parts[i].total_ms)
        by_stat = {}
        for st in STATISTICS:
            fb = [c.split_by_statistic.get(st, (c.fwd_ms, c.bwd_ms)) for c in costs]
            if synced:
                compute = max(f for f, _ in fb) + max(b for _, b in fb)
            else:
                compute = max(f + b for f, b in fb)
            by_stat[st] = compute + input_ms + a2a_fwd + a2a_bwd
        return PlanCost(
            task=task.name,
            planner=plan.planner,
            total_ms=parts[straggler].total_ms,
            straggler=straggler,
            devices=tuple(parts),
            backend=self.settings.backend,
            settings=self.settings,
            batch_size=B,
            task_batch_size=task.batch_size,
            comm=None
            if self.comm is None
            else {k: v for k, v in self.comm.to_json().items() if k != "settings"},
            total_by_statistic=by_stat,
            optimizer=task.optimizer or "sgd",
            input_counted=self.comm is not None and self.comm.has_input,
        )

    def single_table_costs(self, task: Task) -> dict[str, DeviceCost]:
        """Each table alone (all its columns) on one device."""
        costs = self.measure_devices(task, [[Shard(t.name, 0, 0, t.dim)] for t in task.tables])
        return {t.name: c for t, c in zip(task.tables, costs)}

    def comm_lower_bound(self, task: Task) -> float:
        """Least input + forward + backward all-to-all time any plan of ``task`` can have
        under the comm model (ms): a bound of the model, not of measurements.

        The pooled all-to-alls grow with the most columns on a device, the input all-to-all
        with the most ids on a device (column-wise splits only add ids), so an even spread
        of columns and of ids gives the minimum of each.
        """
        if self.comm is None:
            return 0.0
        d, B = task.num_devices, self.settings.batch_size
        total = sum(t.dim for t in task.tables)
        cols = [total // d + (1 if i < total % d else 0) for i in range(d)]
        payload = sum(input_payload(t.pooling_factor) for t in task.tables)
        return sum(self.comm.all_to_all_ms(cols, B)) + self.comm.input_ms([payload / d] * d, B)

    def balanced_estimate(self, task: Task) -> float:
        """``max(largest single-table cost, sum of single-table costs / D)`` plus the least
        communication (:meth:`comm_lower_bound`), in ms: an estimate of the best plan's cost,
        **not** a lower bound (see the module doc; measured plans fall below it)."""
        compute = balanced_estimate_from(
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
                chunk, live = [keys[i]], _weight_bytes(keys[i])
                i += 1
                while i < len(keys) and live + _weight_bytes(keys[i]) <= self.max_live_bytes:
                    live += _weight_bytes(keys[i])
                    chunk.append(keys[i])
                    i += 1
                self._measure_pass(chunk)
        finally:
            torch.set_num_threads(old_threads)

    def _measure_pass(self, keys: list[DeviceKey]) -> None:
        t0 = time.perf_counter()
        kernels = []
        for k in keys:
            kernels.append(_Kernel(self.settings, k[3], k[2]))
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


def balanced_estimate_from(single_costs: Iterable[float], num_devices: int) -> float:
    """``max(max(costs), sum(costs) / num_devices)``: what a perfectly balanced plan of
    whole tables would cost if costs added up (they do not quite: an estimate, not a bound)."""
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
    "CPU_UNSUPPORTED",
    "FUSED_OPTIMIZERS",
    "balanced_estimate_from",
    "fused_optimizer",
    "summarize",
    "table_spec",
]
