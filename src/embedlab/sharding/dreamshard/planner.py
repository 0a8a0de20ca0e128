"""The ``dreamshard`` planner: the trained policy's greedy placement (no measurement).

``DreamShardPlanner(model)`` loads a model folder written by ``embedlab shard train
dreamshard`` (or :func:`~embedlab.sharding.dreamshard.train.train_dreamshard`); without one it
uses the default model shipped in the package (:data:`DEFAULT_MODEL`), if present. The plan's
``estimated_cost_ms`` is the cost network's prediction for it, in the units (backend, timed
batch) of the measurements the model was trained on.
"""

from __future__ import annotations

import time
from pathlib import Path

from embedlab.errors import UserError
from embedlab.sharding.planners import Infeasible
from embedlab.sharding.types import Plan, Shard, Task

DEFAULT_MODEL = Path(__file__).parent / "default_model"


class DreamShardPlanner:
    name = "dreamshard"

    def __init__(self, model: str | Path | None = None) -> None:
        from embedlab.sharding.dreamshard.agent import DreamShardModel

        folder = Path(model) if model is not None else DEFAULT_MODEL
        if model is None and not (folder / "model.json").is_file():
            raise UserError("no default DreamShard model is shipped in this install; train one with "
                            "`embedlab shard train dreamshard --tasks TASKS --out DIR` and pass --model DIR/model")  # fmt: skip
        self.model = DreamShardModel.load(folder)

    def plan(self, task: Task) -> Plan:
        import torch

        from embedlab.sharding.dreamshard.agent import rollout, task_tensors

        t0 = time.perf_counter()
        with torch.no_grad():
            r = rollout(self.model, task_tensors(task), episodes=1, greedy=True)
        if not bool(r.feasible[0]):
            raise Infeasible(
                f"task {task.name!r}: DreamShard found no placement within {task.device_memory_bytes} bytes per device"
            )
        shards = tuple(
            Shard(t.name, int(d), 0, t.dim) for t, d in zip(task.tables, r.placement[0].tolist())
        )
        plan = Plan(task.name, self.name, shards, estimated_cost_ms=float(r.predicted[0]) * self.model.scale_ms,
                    planning_seconds=time.perf_counter() - t0)  # fmt: skip
        plan.validate(task)
        return plan


__all__ = ["DEFAULT_MODEL", "DreamShardPlanner"]
