"""The ``dreamshard`` planner: the trained policy's placement, searched on the cost network
(no measurement).

The paper plans with the policy's greedy placement. Our planning-time search (options, all
without measuring; the registered planner uses :data:`DEFAULT_SEARCH`):

* ``samples = N``: also draw ``N`` placements from the policy's softmax (seeded) and keep,
  of those and the greedy one, the placement with the lowest *predicted* plan cost.
* ``refine_steps = K``: then up to ``K`` steps of steepest descent on the predicted plan
  cost: each step scores, in one batch, every move of one table to another device with
  room and every swap of a table on the device with the largest predicted cost with a
  table elsewhere (memory permitting), and takes the best if it lowers the prediction by
  more than ``1e-4`` relative.
* ``starts = N`` (with ``refine_steps``): also descend from ``N`` sampled placements and keep
  the lowest prediction of all descents.
* ``heuristics = True`` (with ``refine_steps``; token ``heur``): also descend from the
  placements of the greedy heuristics (:data:`~embedlab.sharding.moves.START_HEURISTICS`)
  and keep the lowest prediction of all descents.
* ``cost``: how a plan's cost is predicted. ``"overall"`` is the reference's overall head
  (over max-pooled shard vectors). ``"composed"`` builds the step as DMP runs it from the
  per-device heads: slowest forward + slowest backward + the communication model's pooled
  and input all-to-alls (:meth:`~embedlab.sharding.dreamshard.agent.DreamShardModel.plan_cost`). The
  overall head sees the devices only through an element-wise max of their vectors, so it
  cannot tell which device is the straggler; the per-device heads are trained on each
  device's measured forward and backward time. Needs a model with analytic communication;
  the registered ``dreamshard`` planner uses the overall head for a model that learned
  communication.

``DreamShardPlanner(model)`` alone plans as the paper does (greedy placement, overall head);
the registered planner (``--planner dreamshard``) applies :data:`DEFAULT_SEARCH`.

They search the cost network, so they gain only where its ranking of nearby plans is right.
The default was chosen on validation tasks at batch 4096 (see :data:`DEFAULT_SEARCH`).
Planning time with the default (33 descents of up to 40 steps, each step one batched
evaluation of the two devices each candidate changes): 4.5-7.0 s at 200 tables on an idle
2-core machine, each run a fresh process (``benchmarks/results/sharding_planning_time.json``);
per task at 20-50 tables see ``benchmarks/results/sharding_learned.json``.

A model trained with analytic communication (the default ``comm_mode``) adds the
all-to-all time of a calibrated :class:`~embedlab.sharding.comm.CommModel` to its predicted
compute: its own (the training machine's, at the training device count) unless ``comm``
gives the model calibrated for the devices being planned (``embedlab shard calibrate-comm``,
``embedlab shard plan --comm``).

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
from embedlab.sharding.comm import CommModel
from embedlab.sharding.planners import placement_infeasible
from embedlab.sharding.types import Plan, Shard, Task

DEFAULT_MODEL = Path(__file__).parent / "default_model"
#: The planning-time search of ``--planner dreamshard`` (:func:`search_options`): the policy's
#: greedy placement and 32 sampled ones, each refined by up to 40 descent steps on the composed
#: cost, the lowest prediction kept. Chosen on 10 validation tasks in each of 3 families at
#: batch 4096 by a rule fixed before the run (switch from ``composed-starts8-refine20`` if the
#: geometric mean relative to each family's best heuristic is more than 0.005 lower;
#: ``benchmarks/results/sharding_dreamshard_valid.json``, every plan measured interleaved by
#: the step-cost meter): 0.9285 against 0.9347, with the model shipped before. An earlier run on
#: 5 tasks per family (``sharding_search_valid.json``) had found 32 starts (20 steps) at 0.953
#: against 0.950 for 8; the difference is near the noise of such runs. It plans 200 tables in
#: 4.5-7.0 s (``sharding_planning_time.json``), against 1.75-1.83 s recorded for the earlier
#: search in one process shared with other planners.
DEFAULT_SEARCH = "composed-starts32-refine40"


class DreamShardPlanner:
    name = "dreamshard"

    def __init__(self, model: str | Path | None = None, samples: int = 0, refine_steps: int = 0,
                 seed: int = 0, name: str | None = None, comm: CommModel | None = None,
                 cost: str = "overall", starts: int = 0, heuristics: bool = False) -> None:  # fmt: skip
        from embedlab.sharding.dreamshard.agent import COST_FORMS, DreamShardModel

        if samples < 0 or refine_steps < 0 or starts < 0:
            raise UserError("samples, refine_steps and starts must be >= 0")
        if (starts or heuristics) and not refine_steps:
            raise UserError("starts (startsN) and heuristics (heur) descend from more placements: they need "
                            "refine_steps (refineK)")  # fmt: skip
        if cost not in COST_FORMS:
            raise UserError(f"unknown DreamShard cost form {cost!r} ({', '.join(COST_FORMS)})")
        self.samples, self.refine_steps, self.seed, self.cost_form = samples, refine_steps, seed, cost
        self.starts, self.heuristics = starts, heuristics
        if name is not None:
            self.name = name

        folder = Path(model) if model is not None else DEFAULT_MODEL
        if model is None and not (folder / "model.json").is_file():
            raise UserError("no default DreamShard model is shipped in this install; train one with "
                            "`embedlab shard train dreamshard --tasks TASKS --out DIR` and pass --model DIR/model")  # fmt: skip
        self.model = DreamShardModel.load(folder)
        self.comm = comm
        if self.model.comm is None and (comm is not None or cost == "composed"):
            what = "a communication model applies" if comm is not None else "the composed cost applies"
            raise UserError(f"the DreamShard model in {folder} learned communication (comm_mode 'learned'); "
                            f"{what} only to models trained with comm_mode 'analytic'")  # fmt: skip

    def plan(self, task: Task) -> Plan:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny per-step ops: one thread is much faster on a busy CPU
        try:
            return self._plan(task)
        finally:
            torch.set_num_threads(threads)

    def _plan(self, task: Task) -> Plan:
        from embedlab.sharding.dreamshard.agent import (
            placement_order,
            search_placement,
            task_tensors,
        )
        from embedlab.sharding.moves import heuristic_placements

        t0 = time.perf_counter()
        tt = task_tensors(task)
        extra = heuristic_placements(task) if self.heuristics else []
        place, pred, ok = search_placement(self.model, tt, samples=self.samples, refine_steps=self.refine_steps,
                                           starts=self.starts, seed=self.seed, comm=self.comm,
                                           form=self.cost_form, extra_starts=extra)  # fmt: skip
        if not ok:
            order = placement_order(self.model.cost, tt).tolist()
            raise placement_infeasible(task, order, place.tolist(), "DreamShard")
        shards = tuple(Shard(t.name, int(d), 0, t.dim) for t, d in zip(task.tables, place.tolist()))
        plan = Plan(task.name, self.name, shards, estimated_cost_ms=pred * self.model.scale_ms,
                    planning_seconds=time.perf_counter() - t0)  # fmt: skip
        plan.validate(task)
        return plan


#: What a search name may hold (for command-line help).
SEARCH_TOKENS = ("tokens joined with '-': bestN (best of N policy samples by predicted cost), refineK (K steps "
                 "of descent on the predicted cost), startsN (with refineK: also descend from N samples), "
                 "heur (with refineK: also descend from the greedy heuristics' plans), "
                 "composed (the composed cost); or greedy; e.g. composed-starts8-refine20")  # fmt: skip


def search_options(variant: str) -> dict[str, int | str | bool]:
    """``DreamShardPlanner`` options of a planning-time search named by tokens joined with
    ``-``: ``bestN`` (best of N policy samples by predicted cost), ``refineK`` (K steps of
    descent on the predicted cost), ``startsN`` (with refineK: also descend from N sampled
    placements and keep the lowest prediction), ``heur`` (with refineK: also descend from the
    greedy heuristics' placements), ``composed`` (predict plan costs with the composed form,
    :meth:`~embedlab.sharding.dreamshard.agent.DreamShardModel.plan_cost`), or ``greedy``
    alone (the policy's greedy placement, no search); e.g. ``composed-refine20``."""
    from embedlab.sharding.moves import parse_search

    opts: dict[str, int | str | bool] = {"samples": 0, "refine_steps": 0, **parse_search(
        variant, "DreamShard", {"composed": ("cost", "composed"), "heur": ("heuristics", True)},
        {"best": "samples", "refine": "refine_steps", "starts": "starts"})}  # fmt: skip
    if (opts.get("starts") or opts.get("heuristics")) and not opts["refine_steps"]:
        raise UserError(f"DreamShard search {variant!r}: startsN and heur need refineK")
    return opts


def default_search(analytic: bool) -> dict[str, int | str | bool]:
    """:func:`search_options` of :data:`DEFAULT_SEARCH` for a model with (``analytic``) or
    without a communication model; the composed cost needs one, so without it the search
    predicts with the overall head."""
    opts = search_options(DEFAULT_SEARCH)
    if not analytic:
        opts["cost"] = "overall"
    return opts


__all__ = ["DEFAULT_MODEL", "DEFAULT_SEARCH", "SEARCH_TOKENS", "DreamShardPlanner", "default_search", "search_options"]
