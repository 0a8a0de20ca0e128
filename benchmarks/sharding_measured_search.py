"""How far a search that *measures* gets beyond DreamShard's plan: is a goal reachable at all?

Not a planner: a check of what plans exist near DreamShard's on a family (default DLRM-50 on 4
devices, valid-split tasks, task seed 1 as in ``sharding_learned.py``), with the cost network's
errors taken out of the search. For each task:

1. plans of the four greedy heuristics and of DreamShard (the registered default);
2. a **measured descent** from DreamShard's plan with a *search meter* (its own seed): at each
   step the neighbours of the placement (moves, and swaps with the measured straggler, memory
   kept; :func:`embedlab.sharding.moves.neighbours`) are ranked by DreamShard's composed cost
   and the ``--top`` best are measured, interleaved with each other (the present plan's cost
   is the same meter's, kept from when it was measured; with ``--rank
   dreamshard+proxy`` also the ``--top`` best by an additive proxy, the largest device sum of
   the tables' measured single-table costs); the lowest is
   taken if it is at least ``--min-gain`` below the present plan's measured cost; at most
   ``--steps`` steps;
3. a **fresh meter** (seed ``k``, as the benchmark's) measures the heuristics', DreamShard's and
   the searched plan interleaved. Every ratio comes from that measurement only, so the search's
   pick of low noisy costs in step 2 does not count in its favour.

Reported per task and as means: cost relative to the family's best heuristic and to the best
heuristic of each task (the goal's oracle), for DreamShard and the searched plan. ``--resume``
keeps finished tasks.

Usage::

    python benchmarks/sharding_measured_search.py --count 10 --out benchmarks/results/sharding_measured_search.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sharding_reach import (  # noqa: E402
    best_heuristic_ms,
    fresh_costs,
    reach_arguments,
    reference_plans,
    run_reach,
)
from embedlab.sharding.comm import CommModel  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings  # noqa: E402
from embedlab.sharding.dreamshard.agent import composed_candidates, task_tensors  # noqa: E402
from embedlab.sharding.dreamshard.train import plan_from_placement  # noqa: E402
from embedlab.sharding.moves import (  # noqa: E402
    apply_candidate,
    candidate_totals,
    neighbours,
    placement_of,
)
from embedlab.sharding.types import Plan, Task  # noqa: E402

BENCHMARK = "measured descent from DreamShard's plan, re-measured by a fresh meter"
NAMES = ("dreamshard", "measured")


def measured_descent(task: Task, start: Plan, planner: Any, meter: CostMeter, top: int, steps: int,
                     min_gain: float, rank: str = "dreamshard") -> tuple[Plan, list[dict[str, float]]]:  # fmt: skip
    """Step 2 of the module doc: the plan found and a log of each step's measured costs.
    ``rank="dreamshard+proxy"`` also measures the ``top`` neighbours with the lowest largest
    device total of the tables' measured single-table costs (an additive proxy)."""
    model = planner.model
    tt = task_tensors(task)
    place = torch.from_numpy(placement_of(task, start))
    log: list[dict[str, float]] = []
    with torch.no_grad():
        enc = model.cost.table_fc(tt.feats)
    single = None
    if "proxy" in rank:
        costs1 = meter.single_table_costs(task)
        single = torch.tensor([costs1[t.name].total_ms for t in task.tables], dtype=torch.float64)
    for _ in range(steps):
        cur = plan_from_placement(task, place.tolist(), "measured")
        cur_cost = meter.measure_plan(task, cur)  # the meter runs backward passes: outside no_grad
        straggler = int(np.argmax([p.fwd_ms + p.bwd_ms for p in cur_cost.devices]))
        nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, tt.devices)
        if len(nb) == 0:
            break
        with torch.no_grad():
            vec = torch.zeros(tt.devices, enc.shape[1]).index_add_(0, place, enc)
            cols = torch.zeros(tt.devices).index_add_(0, place, tt.cols)
            pay = torch.zeros(tt.devices).index_add_(0, place, tt.payload)
            current = (vec, cols, pay, model.cost.parts(vec))
            pred = composed_candidates(model, enc, tt, place, nb, straggler, current, planner.comm)
        picks = torch.argsort(pred)[:top].tolist()
        if single is not None:
            load = torch.zeros(tt.devices, dtype=torch.float64).index_add_(0, place, single)
            proxy = candidate_totals(load, single, place, nb, straggler).amax(-1)
            picks += [i for i in torch.argsort(proxy).tolist() if i not in picks][:top]
        cands = []
        for i in picks:
            p = place.clone()
            apply_candidate(p, nb, i, straggler)
            cands.append(p)
        costs = meter.measure_plans(task, [cur] + [plan_from_placement(task, p.tolist(), "measured") for p in cands])
        now = costs[0].total_ms
        j = int(np.argmin([c.total_ms for c in costs[1:]]))
        log.append({"present_ms": now, "best_candidate_ms": costs[1 + j].total_ms, "candidates": len(cands)})
        if costs[1 + j].total_ms > now * (1.0 - min_gain):
            break
        place = cands[j]
    return plan_from_placement(task, place.tolist(), "measured"), log


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=4, help="candidates measured per step")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--min-gain", type=float, default=0.005)
    ap.add_argument("--rank", default="dreamshard", choices=["dreamshard", "dreamshard+proxy"],
                    help="which neighbours are measured: DreamShard's top, or also the additive proxy's top")
    reach_arguments(ap, "benchmarks/results/sharding_measured_search.json")
    args = ap.parse_args(argv)

    def check(k: int, task: Task, planner: Any, comm: CommModel) -> tuple[dict[str, Any], str]:
        plans = reference_plans(task, planner)
        t0 = time.perf_counter()
        search_meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=1000 + k), comm=comm)
        plans["measured"], log = measured_descent(task, plans["dreamshard"], planner, search_meter, args.top,
                                                  args.steps, args.min_gain, args.rank)  # fmt: skip
        search_s = time.perf_counter() - t0
        costs = fresh_costs(task, plans, comm, args, seed=k)
        best = best_heuristic_ms(costs)
        return ({"cost_ms": costs, "steps": log, "search_s": search_s, "search_measurements": search_meter.measurements},
                f"DreamShard {costs['dreamshard'] / best:.3f}, measured search {costs['measured'] / best:.3f} "
                f"of the task's best heuristic ({len(log)} steps, {search_s:.0f} s)")  # fmt: skip

    return run_reach(args, BENCHMARK, NAMES, check)


if __name__ == "__main__":
    main()
