"""The ``autoshard`` planner: the trained LSTM policy's argmax placement (no measurement).

``AutoShardPlanner(model)`` loads a model folder written by
:func:`~embedlab.sharding.autoshard.train.train_autoshard`; without one it uses the default
model shipped in the package (:data:`DEFAULT_MODEL`), if present. Tables are placed in
descending order of predicted single-table cost, each on the legal device (memory room:
weights plus optimizer state, :meth:`Task.table_bytes`) with the highest logit. The plan's
``estimated_cost_ms`` is the cost head's largest per-device prediction -- single-device
compute only, as AutoShard measures, in the units (backend, timed batch) of the
measurements it was trained on.

Planning runs the network on one thread (the per-step operations are tiny; with two
threads on a loaded 2-core machine a 200-table plan took 4.8 s instead of 0.05 s).

Transfer: features are scaled the same way in every task and the network has no
per-table or per-device parameters, so any number of tables and devices can be planned.
"""

from __future__ import annotations

import time
from pathlib import Path

from embedlab.errors import UserError
from embedlab.sharding.planners import placement_infeasible
from embedlab.sharding.types import Plan, Shard, Task

DEFAULT_MODEL = Path(__file__).parent / "default_model"


class AutoShardPlanner:
    name = "autoshard"

    def __init__(self, model: str | Path | None = None) -> None:
        from embedlab.sharding.autoshard.agent import AutoShardModel

        folder = Path(model) if model is not None else DEFAULT_MODEL
        if model is None and not (folder / "model.json").is_file():
            raise UserError("no default AutoShard model is shipped in this install; train one with "
                            "`embedlab shard train autoshard --tasks TASKS --out DIR` and pass --model DIR/model")  # fmt: skip
        self.model = AutoShardModel.load(folder)

    def plan(self, task: Task) -> Plan:
        import torch

        from embedlab.sharding.autoshard.agent import placement_order, rollout, task_tensors

        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny per-step ops: one thread is ~10x faster on a busy CPU
        try:
            with torch.inference_mode():
                tt = task_tensors(task)
                r = rollout(self.model, tt, episodes=1, greedy=True)
        finally:
            torch.set_num_threads(threads)
        if not bool(r.feasible[0]):
            order = placement_order(self.model.net, tt).tolist()
            raise placement_infeasible(task, order, r.placement[0].tolist(), "AutoShard")
        shards = tuple(
            Shard(t.name, int(d), 0, t.dim) for t, d in zip(task.tables, r.placement[0].tolist())
        )
        est = float(r.device_cost[0].max()) * self.model.scale_ms
        plan = Plan(task.name, self.name, shards, planning_seconds=time.perf_counter() - t0,
                    estimated_cost_ms=est)  # fmt: skip
        plan.validate(task)
        return plan


__all__ = ["DEFAULT_MODEL", "AutoShardPlanner"]
