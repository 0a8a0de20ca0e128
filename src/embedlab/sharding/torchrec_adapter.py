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

from embedlab.sharding.planners import Infeasible, get_planner, resolve_planner_name
from embedlab.sharding.types import Plan, Shard, Table, Task

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
    also runs on CPU). The plan is validated against the task first
    (:class:`~embedlab.errors.UserError` if it is not valid).
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

    class WeightStorageEstimator(ShardEstimator):
        """Storage of a shard = its weights only (``rows × columns × bytes``, all HBM)."""

        def __init__(self) -> None:  # noqa: D107 - nothing to configure
            pass

        def estimate(self, sharding_options: Any, sharder_data_map: Any = None) -> None:
            for opt in sharding_options:
                for shard in opt.shards:
                    rows, cols = shard.size
                    shard.storage = Storage(hbm=rows * cols * bpe[opt.name], ddr=0)

    return WeightStorageEstimator()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


class TorchRecPlanner:
    """TorchRec's ``EmbeddingShardingPlanner``, table-wise only, on a task's devices.

    How the task maps onto TorchRec (chosen so that TorchRec's memory check is exactly
    embedlab's ``rows × columns × bytes_per_element ≤ device_memory_bytes`` per device):

    * Topology: ``world_size = local_world_size = num_devices`` (one host),
      ``compute_device="cuda"`` with ``hbm_cap = device_memory_bytes`` and
      ``ddr_cap = 0`` (built through ``TopologyFactory``; nothing is allocated, so no GPU
      is needed). On ``"cpu"`` TorchRec counts DDR instead; "cuda" is used because its
      perf model is TorchRec's main one.
    * Storage: no storage reservation (``FixedPercentageStorageReservation(0)``) and, in
      place of TorchRec's ``EmbeddingStorageEstimator`` (which adds input/output
      buffers that scale with the batch and, for some kernels, optimizer state), an
      estimator that charges each shard its weights only. TorchRec's
      ``EmbeddingPerfEstimator`` is kept, so placement follows TorchRec's perf model.
    * Per table: ``ParameterConstraints(sharding_types=["table_wise"],
      compute_kernels=["fused"], pooling_factors=[pooling_factor])``; weights fp16 when
      ``bytes_per_element == 2``; the per-rank batch is ``max(1, batch_size //
      num_devices)``. The EBC is built on ``device="meta"``.

    Limits: TorchRec's default proposers and greedy partitioner are heuristics; a task
    that some table-wise packing fits may still be reported infeasible (TorchRec gives
    up, :class:`Infeasible` carries its first message line and, when TorchRec names it,
    the table it could not place). A table bigger than one device is reported before
    TorchRec runs, naming the table. The index distribution and reuse histogram are not
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
            if t.size_bytes > task.device_memory_bytes:
                raise Infeasible(
                    f"task {task.name!r} is infeasible: table {t.name!r} ({t.size_bytes} bytes) fits on no device "
                    f"({task.device_memory_bytes} bytes each)"
                )
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


class EmbedlabPlanner(ShardingPlanner):
    """Any registered embedlab planner as a TorchRec ``ShardingPlanner``.

    ``plan(module, sharders)`` finds every (Fused)EmbeddingBagCollection in ``module``
    (the module itself, or e.g. a DLRM's ``sparse``), makes one :class:`Task` of all
    their tables (``rows``, ``dim`` and fp16/fp32 from the table configs; pooling factor
    from ``pooling_factors`` by table name, default 1.0; table names prefixed with the
    module path when there are several modules), plans it with the embedlab planner
    ``planner`` on ``world_size`` devices of ``device_memory_bytes`` each, and converts
    the result with :func:`to_torchrec_plan`. ``sharders`` is accepted for the interface
    and not consulted: every table is sharded as the embedlab plan says.

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
        world_size: int,
        *,
        device_memory_bytes: int = 2**62,
        batch_size: int = 1,
        pooling_factors: Mapping[str, float] | None = None,
        device_type: str = "cpu",
        compute_kernel: str = "fused",
        local_size: int | None = None,
        task_name: str = "torchrec",
    ) -> None:
        self.planner_name = resolve_planner_name(planner)
        self.world_size = world_size
        self.device_memory_bytes = device_memory_bytes
        self.batch_size = batch_size
        self.pooling_factors = dict(pooling_factors or {})
        self.device_type = device_type
        self.compute_kernel = compute_kernel
        self.local_size = local_size
        self.task_name = task_name
        self.last_plan: Plan | None = None
        self.last_task: Task | None = None

    def task_for(self, module: nn.Module) -> tuple[Task, list[tuple[str, list[str]]]]:
        """The task of ``module``'s tables and, per EBC path, its tables' task names."""
        mods = _embedding_bag_modules(module)
        if not mods:
            from embedlab.errors import UserError

            raise UserError("no EmbeddingBagCollection found in the module to shard")
        prefix = len(mods) > 1
        tables: list[Table] = []
        layout: list[tuple[str, list[str]]] = []
        for path, m in mods:
            names = []
            for cfg in m.embedding_bag_configs():
                name = f"{path}.{cfg.name}" if prefix else cfg.name
                pf = self.pooling_factors.get(name, self.pooling_factors.get(cfg.name, 1.0))
                bpe = 2 if str(cfg.data_type.name).upper() in ("FP16", "BF16") else 4
                tables.append(
                    Table(name, int(cfg.num_embeddings), int(cfg.embedding_dim), float(pf), bpe)
                )
                names.append(name)
            layout.append((path, names))
        task = Task(
            self.task_name,
            self.world_size,
            self.device_memory_bytes,
            max(self.batch_size, 1),
            tuple(tables),
        )
        return task, layout

    def plan(self, module: nn.Module, sharders: Sequence[Any] | None = None) -> Any:
        from torchrec.distributed.types import EmbeddingModuleShardingPlan, ShardingPlan

        task, layout = self.task_for(module)
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
