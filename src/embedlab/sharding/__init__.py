"""Embedding-table sharding: tasks and plans (the JSON files of :mod:`embedlab.sharding.types`), planners
(heuristics, DreamShard, AutoShard, NeuroShard, TorchRec's), the CostMeter, TorchRec
integration (:class:`EmbedlabPlanner`) and real runs under ``DistributedModelParallel``.

The task/plan types are imported eagerly (no torch); everything else on first use.
"""

from embedlab._lazy import lazy_exports
from embedlab.sharding.types import (
    Plan,
    Shard,
    Table,
    Task,
    load_plans,
    load_tasks,
    save_plans,
    save_tasks,
)

__getattr__, __dir__, _lazy_all = lazy_exports(
    __name__,
    {
        "PLANNERS": "embedlab.sharding.planners",
        "HEURISTICS": "embedlab.sharding.planners",
        "DEFAULT_PLANNER": "embedlab.sharding.planners",
        "Infeasible": "embedlab.sharding.planners",
        "get_planner": "embedlab.sharding.planners",
        "plan_all": "embedlab.sharding.planners",
        "register_planner": "embedlab.sharding.planners",
        "gen_tasks": "embedlab.sharding.generator",
        "table_pool": "embedlab.sharding.generator",
        "CostMeter": "embedlab.sharding.cost",
        "MeterSettings": "embedlab.sharding.cost",
        "PlanCost": "embedlab.sharding.cost",
        "CommModel": "embedlab.sharding.comm",
        "TorchRecPlanner": "embedlab.sharding.torchrec_adapter",
        "EmbedlabPlanner": "embedlab.sharding.torchrec_adapter",
        "to_torchrec_plan": "embedlab.sharding.torchrec_adapter",
        "run_plan": "embedlab.sharding.run",
        "DreamShardPlanner": "embedlab.sharding.dreamshard.planner",
        "AutoShardPlanner": "embedlab.sharding.autoshard.planner",
        "NeuroShardPlanner": "embedlab.sharding.neuroshard.planner",
    },
    submodules=("autoshard", "dreamshard", "neuroshard"),
)
__all__ = ["Plan", "Shard", "Table", "Task", "load_plans", "load_tasks", "save_plans", "save_tasks",
           *_lazy_all]  # fmt: skip
