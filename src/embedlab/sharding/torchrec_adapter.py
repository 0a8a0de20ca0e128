"""Bridges between embedlab's sharding formats and TorchRec's planner and plans.

Three pieces:

* :class:`TorchRecPlanner` (registered as ``"torchrec"``): TorchRec's own
  ``EmbeddingShardingPlanner``, restricted to table-wise sharding, as an embedlab
  :class:`~embedlab.sharding.planners.Planner`.
* :func:`to_torchrec_plan`: an embedlab :class:`~embedlab.sharding.types.Plan`
  (table-wise or column-wise) as a TorchRec ``ShardingPlan`` for an
  ``EmbeddingBagCollection`` whose table names are the task's
  (:func:`embedding_bag_collection_for_task` builds one).
* :class:`EmbedlabPlanner`: any registered embedlab planner behind TorchRec's
  ``ShardingPlanner`` interface, so ``DistributedModelParallel(..., plan=...)`` can use it.

This module imports TorchRec (``EmbedlabPlanner`` subclasses its ``ShardingPlanner``);
:mod:`embedlab.sharding.planners` registers ``"torchrec"`` lazily, so importing the
planners never imports this module or TorchRec.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torchrec.distributed.types import ShardingPlanner

from embedlab.errors import UserError
from embedlab.sharding.planners import Infeasible, get_planner, infeasible, resolve_planner_name
from embedlab.sharding.types import OPTIMIZERS, Plan, Shard, Table, Task, state_bytes

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "EmbedlabPlanner",
    "TorchRecPlanner",
    "embedding_bag_collection_for_task",
    "to_torchrec_plan",
]


def _data_type(bytes_per_element: int) -> Any:
    from torchrec.modules.embedding_configs import DataType

    return DataType.FP16 if bytes_per_element == 2 else DataType.FP32


def embedding_bag_collection_for_task(task: Task, device: str | torch.device = "meta") -> nn.Module:
    """An ``EmbeddingBagCollection`` with one sum-pooled bag per table of ``task``.

    Table ``t`` is named ``t.name`` and reads the feature ``t.name`` (table and feature
    names live in separate namespaces in TorchRec); fp16 weights when
    ``bytes_per_element == 2``, fp32 otherwise. ``device="meta"`` allocates nothing.
    """
    import torch
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    tables = [
        EmbeddingBagConfig(
            name=t.name,
            embedding_dim=t.dim,
            num_embeddings=t.rows,
            feature_names=[t.name],
            data_type=_data_type(t.bytes_per_element),
        )
        for t in task.tables
    ]
    return EmbeddingBagCollection(tables=tables, device=torch.device(device))


# ---------------------------------------------------------------------------------------
# embedlab Plan -> TorchRec ShardingPlan


def _parameter_shardings(
    plan: Plan,
    task: Task,
    *,
    device_type: str,
    compute_kernel: str,
    local_size: int | None,
) -> dict[str, Any]:
    """``{table name: ParameterSharding}`` for a validated plan."""
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharding_spec import EnumerableShardingSpec
    from torchrec.distributed.sharding_plan import placement
    from torchrec.distributed.types import ParameterSharding, ShardingType

    plan.validate(task)
    local = local_size or task.num_devices
    by_table: dict[str, list[Shard]] = {t.name: [] for t in task.tables}
    for s in plan.shards:
        by_table[s.table].append(s)
    out: dict[str, Any] = {}
    for t in task.tables:
        shards = sorted(by_table[t.name], key=lambda s: s.column_offset)
        kind = ShardingType.TABLE_WISE if len(shards) == 1 else ShardingType.COLUMN_WISE
        spec = EnumerableShardingSpec(
            [
                ShardMetadata(
                    shard_offsets=[0, s.column_offset],
                    shard_sizes=[t.rows, s.columns],
                    placement=placement(device_type, s.device, local),
                )
                for s in shards
            ]
        )
        out[t.name] = ParameterSharding(
            sharding_type=kind.value,
            compute_kernel=compute_kernel,
            ranks=[s.device for s in shards],
            sharding_spec=spec,
        )
    return out


def to_torchrec_plan(
    plan: Plan,
    task: Task,
    module_path: str = "",
    *,
    device_type: str = "cpu",
    compute_kernel: str = "fused",
    local_size: int | None = None,
) -> Any:
    """A TorchRec ``ShardingPlan`` placing the EBC at ``module_path`` as ``plan`` does.

    The EBC's table names must be the task's (see
    :func:`embedding_bag_collection_for_task`; a DLRM's tables are ``t_<feature>``, so
    build the task with those names). A table with one shard becomes ``table_wise`` on
    that rank; a table with several becomes ``column_wise`` with one ``ShardMetadata``
    per shard (offsets ``[0, column_offset]``, sizes ``[rows, columns]``, in column
    order; uneven widths and repeated ranks are allowed, as TorchRec's own
    ``column_wise(size_per_rank=...)`` produces). Placements are ``rank:R/cpu`` on CPU
    and ``rank:R/cuda:R % local_size`` on CUDA (TorchRec's ``placement`` helper).
    ``compute_kernel`` defaults to ``"fused"`` (FBGEMM's table-batched kernel, which
    also runs on CPU). The plan is validated against the task first, memory counting
    weights plus the task's optimizer state (:class:`~embedlab.errors.UserError` if it is
    not valid); give the task the optimizer of the sharder's ``fused_params``.
    """
    from torchrec.distributed.types import EmbeddingModuleShardingPlan, ShardingPlan

    ps = _parameter_shardings(
        plan, task, device_type=device_type, compute_kernel=compute_kernel, local_size=local_size
    )
    return ShardingPlan({module_path: EmbeddingModuleShardingPlan(ps)})


# ---------------------------------------------------------------------------------------
# TorchRec's planner as an embedlab planner


def _weight_storage_estimator(task: Task) -> Any:
    from torchrec.distributed.planner.types import ShardEstimator, Storage

    bpe = {t.name: t.bytes_per_element for t in task.tables}
    optimizer = task.optimizer

    class WeightStorageEstimator(ShardEstimator):
        """Storage of a shard = its weights plus the task's optimizer state
        (``rows × columns × bytes + state(rows, columns)``, all HBM): what FBGEMM's fused
        kernel allocates for them, and embedlab's memory rule."""

        def __init__(self) -> None:  # noqa: D107 - nothing to configure
            pass

        def estimate(self, sharding_options: Any, sharder_data_map: Any = None) -> None:
            for opt in sharding_options:
                for shard in opt.shards:
                    rows, cols = shard.size
                    shard.storage = Storage(
                        hbm=rows * cols * bpe[opt.name] + state_bytes(optimizer, rows, cols), ddr=0
                    )

    return WeightStorageEstimator()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


class TorchRecPlanner:
    """TorchRec's ``EmbeddingShardingPlanner``, table-wise only, on a task's devices.

    How the task maps onto TorchRec (chosen so that TorchRec's memory check is exactly
    embedlab's ``rows × columns × bytes_per_element + state(rows, columns) ≤
    device_memory_bytes`` per device, ``state`` the task's optimizer state):

    * Topology: ``world_size = local_world_size = num_devices`` (one host),
      ``compute_device="cuda"`` with ``hbm_cap = device_memory_bytes`` and
      ``ddr_cap = 0`` (built through ``TopologyFactory``; nothing is allocated, so no GPU
      is needed). On ``"cpu"`` TorchRec counts DDR instead; "cuda" is used because its
      perf model is TorchRec's main one.
    * Storage: no storage reservation (``FixedPercentageStorageReservation(0)``) and, in
      place of TorchRec's ``EmbeddingStorageEstimator`` (which adds input/output
      buffers that scale with the batch, and sizes optimizer state from the module's
      optimizer class, which a plan for fused kernels does not carry), an estimator
      that charges each shard its weights plus the task's optimizer state
      (:func:`~embedlab.sharding.types.state_bytes`: what FBGEMM's fused kernel allocates
      for them, e.g. 4 fp32 bytes per row for ``rowwise_adagrad`` also for fp16 weights,
      where TorchRec's estimator would charge 2). TorchRec's
      ``EmbeddingPerfEstimator`` is kept, so placement follows TorchRec's perf model.
    * Per table: ``ParameterConstraints(sharding_types=["table_wise"],
      compute_kernels=["fused"], pooling_factors=[pooling_factor])``; weights fp16 when
      ``bytes_per_element == 2``; the per-rank batch is ``max(1, batch_size //
      num_devices)``. The EBC is built on ``device="meta"``.

    Limits: TorchRec's default proposers and greedy partitioner are heuristics; a task
    that some table-wise packing fits may still be reported infeasible (TorchRec gives
    up, :class:`Infeasible` carries its first message line and, when TorchRec names it,
    the table it could not place). A table bigger than one device is reported before
    TorchRec runs, naming the table (weights plus optimizer state). The index distribution and reuse histogram are not
    seen by TorchRec (its perf model uses pooling factors and sizes only);
    ``estimated_cost_ms`` is left ``None``. ``planning_seconds`` covers building the
    meta EBC, planning and converting.
    """

    name = "torchrec"

    def __init__(self, compute_device: str = "cuda") -> None:
        self.compute_device = compute_device

    def _topology(self, task: Task) -> Any:
        from torchrec.distributed.planner.types import (
            KernelConfig,
            TopologyFactory,
            TrainerConfig,
        )

        return TopologyFactory.create_topology(
            TrainerConfig(
                world_size=task.num_devices,
                local_world_size=task.num_devices,
                hbm_cap_bytes=task.device_memory_bytes,
                ddr_cap_bytes=0,
            ),
            kernel_config=KernelConfig(compute_device=self.compute_device),
        )

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        for t in task.tables:
            if task.table_bytes(t) > task.device_memory_bytes:
                raise infeasible(task, t, [0] * task.num_devices)
        from torchrec.distributed.embedding_types import EmbeddingComputeKernel
        from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
        from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints
        from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
        from torchrec.distributed.planner.shard_estimators import EmbeddingPerfEstimator
        from torchrec.distributed.planner.storage_reservations import (
            FixedPercentageStorageReservation,
        )
        from torchrec.distributed.planner.types import PlannerError
        from torchrec.distributed.types import ShardingType

        topology = self._topology(task)
        batch = max(1, task.batch_size // task.num_devices)
        constraints = {
            t.name: ParameterConstraints(
                sharding_types=[ShardingType.TABLE_WISE.value],
                compute_kernels=[EmbeddingComputeKernel.FUSED.value],
                pooling_factors=[float(t.pooling_factor)],
            )
            for t in task.tables
        }
        enumerator = EmbeddingEnumerator(
            topology=topology,
            batch_size=batch,
            constraints=constraints,
            estimator=[
                EmbeddingPerfEstimator(topology=topology, constraints=constraints),
                _weight_storage_estimator(task),
            ],
        )
        planner = EmbeddingShardingPlanner(
            topology=topology,
            batch_size=batch,
            enumerator=enumerator,
            storage_reservation=FixedPercentageStorageReservation(0.0),
            constraints=constraints,
            debug=False,
        )
        ebc = embedding_bag_collection_for_task(task, "meta")
        try:
            tr_plan = planner.plan(ebc, [EmbeddingBagCollectionSharder()])
        except PlannerError as e:
            msg = f"task {task.name!r} is infeasible for TorchRec's planner: {_first_line(e)}"
            m = re.search(r"of table (\S+), largest device storage", str(e))
            if m:
                msg += f" (could not place table {m.group(1)!r})"
            raise Infeasible(msg) from None
        shards = []
        module_plan = tr_plan.plan.get("", {})
        for t in task.tables:
            ps = module_plan.get(t.name)
            if (
                ps is None
                or ps.sharding_type != ShardingType.TABLE_WISE.value
                or len(ps.ranks) != 1
            ):
                raise Infeasible(
                    f"task {task.name!r}: TorchRec's plan has no table-wise placement for table {t.name!r}"
                )
            shards.append(Shard(t.name, int(ps.ranks[0]), 0, t.dim))
        plan = Plan(task.name, self.name, tuple(shards))
        plan.validate(task)
        return Plan(task.name, self.name, tuple(shards), planning_seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# embedlab planners behind TorchRec's ShardingPlanner


def _embedding_bag_modules(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(path, module)`` of each (Fused)EmbeddingBagCollection, outermost only."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection

    kinds = (EmbeddingBagCollection, FusedEmbeddingBagCollection)
    found: list[tuple[str, nn.Module]] = []
    for path, m in module.named_modules():
        if isinstance(m, kinds) and not any(path.startswith(p + ".") for p, _ in found if p):
            found.append((path, m))
    return found


#: FBGEMM's fused-kernel optimizers (``fused_params["optimizer"]``) whose state embedlab
#: accounts, by ``EmbOptimType`` name, and the task ``optimizer`` each is.
EMB_OPTIMIZERS = {
    "EXACT_SGD": "sgd",
    "EXACT_ROWWISE_ADAGRAD": "rowwise_adagrad",
    "EXACT_ADAGRAD": "adagrad",
    "ADAM": "adam",
}
#: Device memory assumed when neither ``device_memory_bytes`` nor a topology is given.
UNLIMITED_MEMORY = 2**62


def optimizer_name(optimizer: Any) -> str:
    """The task optimizer (one of :data:`~embedlab.sharding.types.OPTIMIZERS`) for an
    embedlab name or an FBGEMM ``EmbOptimType`` (:data:`EMB_OPTIMIZERS`); any other is a
    :class:`~embedlab.errors.UserError` (its state is not accounted)."""
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return optimizer
    if isinstance(optimizer, str):  # an EmbOptimType value, e.g. "exact_sgd"
        from fbgemm_gpu.split_embedding_configs import EmbOptimType

        optimizer = next((o for o in EmbOptimType if o.value == optimizer), optimizer)
    name = getattr(optimizer, "name", None)
    if name in EMB_OPTIMIZERS:
        return EMB_OPTIMIZERS[name]
    raise UserError(
        f"optimizer {optimizer!r}: embedlab accounts the state of {', '.join(OPTIMIZERS)} "
        f"(EmbOptimType {', '.join(EMB_OPTIMIZERS)}) only"
    )


def _sharder_optimizer(sharders: Sequence[Any] | None) -> tuple[str | None, str]:
    """``(optimizer, where from)`` of the EmbeddingBagCollection sharders' ``fused_params``:
    the optimizer they name, or ``"sgd"`` (FBGEMM's default ``EXACT_SGD``) when an EBC
    sharder names none; ``(None, ...)`` when no EBC sharder is given."""
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder

    found: set[str] = set()
    ebc_sharders = [s for s in sharders or () if isinstance(s, EmbeddingBagCollectionSharder)]
    for sh in ebc_sharders:
        fp = getattr(sh, "fused_params", None) or {}
        found.add(optimizer_name(fp["optimizer"]) if "optimizer" in fp else "sgd")
    if len(found) > 1:
        raise UserError(
            f"the EmbeddingBagCollection sharders name several optimizers: {sorted(found)}"
        )
    if not found:
        return None, "no EmbeddingBagCollectionSharder"
    return found.pop(), "the sharder's fused_params"


def _module_optimizer(modules: Sequence[tuple[str, nn.Module]]) -> str | None:
    """The optimizer attached to the EBCs' weights by TorchRec's
    ``apply_optimizer_in_backward`` (it takes precedence over fused_params), if any."""
    from torchrec.distributed.utils import optimizer_type_to_emb_opt_type

    found: set[str] = set()
    for _, m in modules:
        for p in m.parameters():
            classes = getattr(p, "_optimizer_classes", None)
            if classes:
                try:
                    found.add(optimizer_name(optimizer_type_to_emb_opt_type(classes[0])))
                except ValueError as e:
                    raise UserError(f"optimizer {classes[0].__name__}: {e}") from None
    if len(found) > 1:
        raise UserError(f"the embedding tables use several optimizers: {sorted(found)}")
    return found.pop() if found else None


class EmbedlabPlanner(ShardingPlanner):
    """Any registered embedlab planner as a TorchRec ``ShardingPlanner``.

    ``plan(module, sharders)`` finds every (Fused)EmbeddingBagCollection in ``module``
    (the module itself, or e.g. a DLRM's ``sparse``), makes one :class:`Task` of all
    their tables (``rows``, ``dim`` and fp16/fp32 from the table configs; table names
    prefixed with the module path when there are several modules), plans it with the
    embedlab planner ``planner`` and converts the result with :func:`to_torchrec_plan`.
    Every table is sharded as the embedlab plan says (``sharders`` are read only for the
    optimizer, below).

    Where the task's numbers come from:

    * **Devices and memory**: ``world_size`` and ``device_memory_bytes`` if given, else
      from ``topology`` (a TorchRec ``Topology``: its ``world_size``, and per device the
      smallest HBM capacity, or DDR when its ``compute_device`` is ``"cpu"``);
      ``local_size`` and ``device_type`` default to the topology's too. Without either,
      memory is unlimited (:data:`UNLIMITED_MEMORY`) and a warning says so.
    * **Optimizer state** (memory = weights + state, as FBGEMM's fused kernel allocates
      it): ``optimizer`` (an embedlab name or an FBGEMM ``EmbOptimType``) if given; else the
      optimizer attached to the tables by ``apply_optimizer_in_backward``; else the
      ``fused_params["optimizer"]`` of an ``EmbeddingBagCollectionSharder`` among
      ``sharders`` (EXACT_SGD, EXACT_ROWWISE_ADAGRAD, EXACT_ADAGRAD, ADAM: see
      :data:`EMB_OPTIMIZERS`; an EBC sharder without one means FBGEMM's default, exact
      SGD); with none of these (no EBC sharder given), no state is counted and a warning
      says so. Another ``EmbOptimType`` is a :class:`~embedlab.errors.UserError`.
    * **Pooling factors**: ``pooling_factors[name]`` (by task name or table name), else
      the sum of ``constraints[name].pooling_factors`` (TorchRec ``ParameterConstraints``;
      one value per feature of the table), else 1.0, with one warning naming the tables
      that fell back.

    ``collective_plan(module, sharders, pg)`` plans on rank 0 and broadcasts the plan
    (TorchRec's ``invoke_on_rank_and_broadcast_result``), like TorchRec's own planner;
    the embedlab planners are deterministic, so planning on every rank would agree too,
    but broadcasting also covers seeded or learned planners.

    Without an initialized process group (and no ``pg``), ``collective_plan`` is
    ``plan``.
    """

    def __init__(
        self,
        planner: str,
        world_size: int | None = None,
        *,
        device_memory_bytes: int | None = None,
        batch_size: int = 1,
        pooling_factors: Mapping[str, float] | None = None,
        device_type: str | None = None,
        compute_kernel: str = "fused",
        local_size: int | None = None,
        task_name: str = "torchrec",
        optimizer: Any = None,
        topology: Any = None,
        constraints: Mapping[str, Any] | None = None,
    ) -> None:
        self.planner_name = resolve_planner_name(planner)
        self.topology = topology
        if world_size is None:
            if topology is None:
                raise UserError("EmbedlabPlanner needs world_size or a TorchRec topology")
            world_size = int(topology.world_size)
        elif topology is not None and int(topology.world_size) != world_size:
            raise UserError(
                f"EmbedlabPlanner: world_size {world_size} differs from the topology's {topology.world_size}"
            )
        self.world_size = world_size
        self.memory_source = "device_memory_bytes"
        if device_memory_bytes is None and topology is not None:
            kind = "ddr" if topology.compute_device == "cpu" else "hbm"
            device_memory_bytes = min(int(getattr(d.storage, kind)) for d in topology.devices)
            self.memory_source = f"the topology's {kind.upper()} capacity"
        elif device_memory_bytes is None:
            device_memory_bytes = UNLIMITED_MEMORY
            self.memory_source = "assumed"
        self.device_memory_bytes = device_memory_bytes
        self.batch_size = batch_size
        self.pooling_factors = dict(pooling_factors or {})
        self.constraints = dict(constraints or {})
        if device_type is None:
            device_type = topology.compute_device if topology is not None else "cpu"
        self.device_type = device_type
        self.compute_kernel = compute_kernel
        if local_size is None and topology is not None:
            local_size = int(topology.local_world_size)
        self.local_size = local_size
        self.task_name = task_name
        self.optimizer = optimizer_name(optimizer) if optimizer is not None else None
        self.last_plan: Plan | None = None
        self.last_task: Task | None = None

    def _pooling_factor(self, name: str, table: str) -> float | None:
        for key in (name, table):
            if key in self.pooling_factors:
                return float(self.pooling_factors[key])
        for key in (name, table):
            c = self.constraints.get(key)
            if c is not None and getattr(c, "pooling_factors", None):
                return float(sum(c.pooling_factors))
        return None

    def task_for(
        self, module: nn.Module, sharders: Sequence[Any] | None = None
    ) -> tuple[Task, list[tuple[str, list[str]]]]:
        """The task of ``module``'s tables and, per EBC path, its tables' task names
        (warnings name what was assumed: memory, optimizer, pooling factors)."""
        import warnings

        mods = _embedding_bag_modules(module)
        if not mods:
            raise UserError("no EmbeddingBagCollection found in the module to shard")
        prefix = len(mods) > 1
        tables: list[Table] = []
        layout: list[tuple[str, list[str]]] = []
        fallback: list[str] = []
        for path, m in mods:
            names = []
            for cfg in m.embedding_bag_configs():
                name = f"{path}.{cfg.name}" if prefix else cfg.name
                pf = self._pooling_factor(name, cfg.name)
                if pf is None:
                    fallback.append(name)
                    pf = 1.0
                bpe = 2 if str(cfg.data_type.name).upper() in ("FP16", "BF16") else 4
                tables.append(Table(name, int(cfg.num_embeddings), int(cfg.embedding_dim), pf, bpe))
                names.append(name)
            layout.append((path, names))
        optimizer = self.optimizer or _module_optimizer(mods)
        if optimizer is None:
            optimizer, source = _sharder_optimizer(sharders)
            if optimizer is None:
                warnings.warn(
                    f"EmbedlabPlanner: no optimizer given and {source} names one; planning "
                    "device memory for the weights alone (no optimizer state). Pass optimizer= "
                    "or the EmbeddingBagCollectionSharder with fused_params['optimizer'].",
                    UserWarning,
                    stacklevel=3,
                )
        if self.memory_source == "assumed":
            warnings.warn(
                f"EmbedlabPlanner: neither device_memory_bytes nor a topology given; assuming "
                f"unlimited device memory ({UNLIMITED_MEMORY} bytes per device), so the plan is "
                "not checked against any memory limit.",
                UserWarning,
                stacklevel=3,
            )
        if fallback:
            shown = ", ".join(repr(n) for n in fallback[:8]) + (
                f" and {len(fallback) - 8} more" if len(fallback) > 8 else ""
            )
            warnings.warn(
                f"EmbedlabPlanner: no pooling factor for {len(fallback)} table(s) ({shown}) in "
                "pooling_factors or constraints; assuming 1.0 lookups per sample for them.",
                UserWarning,
                stacklevel=3,
            )
        task = Task(
            self.task_name,
            self.world_size,
            self.device_memory_bytes,
            max(self.batch_size, 1),
            tuple(tables),
            optimizer,
        )
        return task, layout

    def plan(self, module: nn.Module, sharders: Sequence[Any] | None = None) -> Any:
        from torchrec.distributed.types import EmbeddingModuleShardingPlan, ShardingPlan

        task, layout = self.task_for(module, sharders)
        plan = get_planner(self.planner_name).plan(task)
        plan.validate(task)
        self.last_task, self.last_plan = task, plan
        ps = _parameter_shardings(
            plan,
            task,
            device_type=self.device_type,
            compute_kernel=self.compute_kernel,
            local_size=self.local_size,
        )
        out = {}
        for path, names in layout:
            strip = len(layout) > 1
            out[path] = EmbeddingModuleShardingPlan(
                {(n[len(path) + 1 :] if strip else n): ps[n] for n in names}
            )
        return ShardingPlan(out)

    def collective_plan(
        self, module: nn.Module, sharders: Sequence[Any] | None = None, pg: Any = None
    ) -> Any:
        import torch.distributed as dist
        from torchrec.distributed.collective_utils import invoke_on_rank_and_broadcast_result

        if pg is None:
            if not dist.is_initialized():
                return self.plan(module, sharders)
            pg = dist.GroupMember.WORLD
        return invoke_on_rank_and_broadcast_result(pg, 0, self.plan, module, sharders)
