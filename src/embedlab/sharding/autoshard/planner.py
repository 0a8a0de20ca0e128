"""The ``autoshard`` planner: the trained LSTM policy's argmax placement, optionally searched on
the cost head (no measurement).

``AutoShardPlanner(model)`` loads a model folder written by
:func:`~embedlab.sharding.autoshard.train.train_autoshard`; without one it uses the default
model shipped in the package (:data:`DEFAULT_MODEL`), if present. Tables are placed in
descending order of predicted single-table cost, each on the legal device (memory room:
weights plus optimizer state, :meth:`Task.table_bytes`) with the highest logit; that is the
paper's planner (``search="greedy"``).

Planning-time search (ours, as for DreamShard and NeuroShard; tokens of :func:`search_options`,
the registered planner uses :data:`DEFAULT_SEARCH`):

* ``bestN``: also roll out ``N`` sampled placements (seeded) and keep the lowest score;
* ``refineK``: then up to ``K`` steps of steepest descent (single-table moves, and swaps with
  the device of largest predicted compute, memory kept), every neighbour scored in one batch;
* ``startsN`` / ``heur`` (with ``refineK``): also descend from ``N`` sampled rollouts / from
  the greedy heuristics' placements, and keep the lowest score of all descents;
* ``step``: score with the step cost -- the cost head's largest per-device compute plus the
  pooled and input all-to-alls of a communication model (``comm``; without one the model
  shipped with DreamShard's default model, with a warning, as the portfolio does) -- instead of the compute
  alone. AutoShard's cost head models fused forward+backward compute only (as the paper
  measures); where the all-to-alls differ between plans (mixed dims, several devices) a
  compute-only score cannot see them.

The plan's ``estimated_cost_ms`` is the score of the kept placement: the cost head's largest
per-device prediction (single-device compute only, as AutoShard measures) or, with ``step``,
the step cost, in the units (backend, timed batch) of the measurements it was trained on.

Planning time with the default search: 0.36-0.46 s per 200-table task on an idle 2-core
machine, after a cold first call that also loads the model and draws the new tables'
features (0.95-0.99 s in 5 fresh processes, ``benchmarks/results/sharding_planning_time.json``).

Planning runs the network on one thread (the per-step operations are tiny; with two
threads on a loaded 2-core machine a 200-table plan took 4.8 s instead of 0.05 s).

Transfer: features are scaled the same way in every task and the network has no
per-table or per-device parameters, so any number of tables and devices can be planned.
"""

from __future__ import annotations

import time
from pathlib import Path

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.planners import placement_infeasible
from embedlab.sharding.types import Plan, Shard, Task

DEFAULT_MODEL = Path(__file__).parent / "default_model"
#: The planning-time search of ``--planner autoshard`` (:func:`search_options`): the argmax
#: placement and the four greedy heuristics' placements, each refined by up to 20 descent steps
#: on the step score, the lowest kept. Chosen on 10 valid-split tasks in each of 3 families
#: (``benchmarks/results/sharding_autoshard_search_valid.json``, every plan measured interleaved
#: by the step-cost meter at batch 4096; rule fixed before the run: lowest geometric mean of the
#: ratio to each family's best heuristic, planning 200 tables in under 2 s): 0.927, against
#: 0.941 without the heuristic starts (``step-refine20``), 1.017 for the descent on compute alone
#: (``refine20``) and 0.997 for the paper's argmax placement (``greedy``).
DEFAULT_SEARCH = "step-heur-refine20"
#: What a search name may hold (for command-line help).
SEARCH_TOKENS = ("tokens joined with '-': bestN (best of N sampled rollouts), refineK (K steps of descent), "
                 "startsN (with refineK: also descend from N samples), heur (with refineK: also descend from the "
                 "greedy heuristics' plans), step (score with the step cost: compute plus all-to-alls); or greedy; "
                 "e.g. step-heur-refine20")  # fmt: skip


class AutoShardPlanner:
    name = "autoshard"

    def __init__(self, model: str | Path | None = None, *, samples: int = 0, refine_steps: int = 0,
                 starts: int = 0, heuristics: bool = False, step: bool = False, comm: CommModel | None = None,
                 seed: int = 0, name: str | None = None) -> None:  # fmt: skip
        from embedlab.sharding.autoshard.agent import AutoShardModel

        if min(samples, refine_steps, starts) < 0:
            raise UserError("samples, refine_steps and starts must be >= 0")
        if (starts or heuristics) and not refine_steps:
            raise UserError("starts (startsN) and heuristics (heur) descend from more placements: they need "
                            "refine_steps (refineK)")  # fmt: skip
        folder = Path(model) if model is not None else DEFAULT_MODEL
        if model is None and not (folder / "model.json").is_file():
            raise UserError("no default AutoShard model is shipped in this install; train one with "
                            "`embedlab shard train autoshard --tasks TASKS --out DIR` and pass --model DIR/model")  # fmt: skip
        self.model = AutoShardModel.load(folder)
        self.samples, self.refine_steps, self.starts, self.heuristics = samples, refine_steps, starts, heuristics
        self.step, self.seed = step, seed
        self.comm = comm
        if name is not None:
            self.name = name

    @property
    def predicts(self) -> str:
        """What ``estimated_cost_ms`` predicts: ``"step"`` (the plan's step cost) or
        ``"compute"`` (the largest device's fused forward+backward compute)."""
        return "step" if self.step else "compute"

    def _comm(self) -> CommModel | None:
        if not self.step:
            return None
        if self.comm is None:
            import warnings

            from embedlab.sharding.portfolio import default_comm

            warnings.warn("autoshard planner: no --comm given; its step score uses the communication model shipped "
                          "with DreamShard's default model (gloo, 4 processes): calibrate yours with "
                          "'embedlab shard calibrate-comm'", stacklevel=3)  # fmt: skip
            self.comm = default_comm()
        return self.comm

    def plan(self, task: Task) -> Plan:
        import torch

        from embedlab.sharding.autoshard.agent import (
            placement_order,
            search_placement,
            task_tensors,
        )
        from embedlab.sharding.moves import heuristic_placements

        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny per-step ops: one thread is ~10x faster on a busy CPU
        try:
            with torch.inference_mode():
                tt = task_tensors(task)
                extra = heuristic_placements(task) if self.heuristics else []
                place, score, ok = search_placement(self.model, tt, samples=self.samples,
                                                    refine_steps=self.refine_steps, starts=self.starts,
                                                    seed=self.seed, comm=self._comm(), extra_starts=extra)  # fmt: skip
                if not ok:
                    order = placement_order(self.model.net, tt).tolist()
        finally:
            torch.set_num_threads(threads)
        if not ok:
            raise placement_infeasible(task, order, place.tolist(), "AutoShard")
        shards = tuple(Shard(t.name, int(d), 0, t.dim) for t, d in zip(task.tables, place.tolist()))
        plan = Plan(task.name, self.name, shards, planning_seconds=time.perf_counter() - t0,
                    estimated_cost_ms=score * self.model.scale_ms)  # fmt: skip
        plan.validate(task)
        return plan


def search_options(variant: str) -> dict[str, int | bool]:
    """``AutoShardPlanner`` options of a search named by :data:`SEARCH_TOKENS`: ``bestN``,
    ``refineK``, ``startsN``, ``heur``, ``step``, or ``greedy`` alone (the paper's argmax
    placement); e.g. ``step-heur-refine20``."""
    from embedlab.sharding.moves import parse_search

    opts = {"samples": 0, "refine_steps": 0, **parse_search(
        variant, "AutoShard", {"heur": ("heuristics", True), "step": ("step", True)},
        {"best": "samples", "refine": "refine_steps", "starts": "starts"})}  # fmt: skip
    if (opts.get("starts") or opts.get("heuristics")) and not opts["refine_steps"]:
        raise UserError(f"AutoShard search {variant!r}: startsN and heur need refineK")
    return opts


__all__ = ["DEFAULT_MODEL", "DEFAULT_SEARCH", "SEARCH_TOKENS", "AutoShardPlanner", "search_options"]
