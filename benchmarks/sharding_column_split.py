"""Does DreamShard reach lower measured step costs when its largest tables may be split column-wise?

Not a planner that ships: a reachability check of the lead left open for DreamShard's goal
(0.92 of each task's best heuristic on DLRM-50, 4 devices). DreamShard places whole tables;
a device's cost is not additive in its tables' costs, so finer pieces might balance better.
For each task (valid split by default, task seed 1 as in ``sharding_learned.py``):

1. plans of the four greedy heuristics and of DreamShard (the registered default);
2. for each ``K`` of ``--splits`` (default 2, 4, 8): a derived task in which the ``K``
   tables with the largest lookup work (``dim * pooling_factor``; ties by order) whose half
   dim is a multiple of 4 (FBGEMM's alignment) are replaced by two tables of ``dim/2``
   columns each, same rows, pooling and index distribution. DreamShard (the same model and
   search, nothing retrained) plans the derived task; its placement becomes a plan of the
   original task with column shards (both halves on one device: one whole shard). The
   input all-to-all then carries the split table's ids to both devices, as DMP does, and
   the meter measures it so;
3. a fresh meter (seed ``k``) measures every plan of the task interleaved; every ratio
   comes from that measurement only.

Our choices, not from a paper: the halving (as NeuroShard's column-wise search halves
pieces), the lookup-work order, and ``K``. Reported per task and as means: cost relative to
each task's best heuristic and to the family's best heuristic. ``--resume`` keeps finished
tasks.

Usage::

    python benchmarks/sharding_column_split.py --count 10 --out benchmarks/results/sharding_column_split.json
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sharding_reach import (  # noqa: E402
    best_heuristic_ms,
    fresh_plan_costs,
    reach_arguments,
    reference_plans,
    run_reach,
)
from embedlab.sharding.comm import CommModel  # noqa: E402
from embedlab.sharding.cost import PlanCost  # noqa: E402
from embedlab.sharding.types import Plan, Shard, Task  # noqa: E402

BENCHMARK = "DreamShard with its largest tables split column-wise in halves, re-measured by a fresh meter"
HALF = ("#col0", "#col1")


def split_task(task: Task, k: int) -> tuple[Task, set[str]]:
    """``task`` with its ``k`` largest-work halvable tables replaced by two column halves
    (named ``NAME#col0`` and ``NAME#col1``); also the names of the split tables."""
    halvable = [t for t in task.tables if t.dim % 8 == 0]
    chosen = {t.name for t in sorted(halvable, key=lambda t: -t.dim * t.pooling_factor)[:k]}
    tables = []
    for t in task.tables:
        if t.name in chosen:
            tables.extend(replace(t, name=t.name + h, dim=t.dim // 2) for h in HALF)
        else:
            tables.append(t)
    return replace(task, tables=tuple(tables)), chosen


def merge_plan(task: Task, derived: Plan, chosen: set[str], planner: str) -> Plan:
    """A plan of ``task`` from a plan of its split task: a split table's halves become two
    column shards, or one whole shard when both halves are on one device."""
    where = {s.table: s.device for s in derived.shards}
    shards = []
    for t in task.tables:
        if t.name not in chosen:
            shards.append(Shard(t.name, where[t.name], 0, t.dim))
            continue
        d0, d1 = (where[t.name + h] for h in HALF)
        half = t.dim // 2
        shards.extend([Shard(t.name, d0, 0, t.dim)] if d0 == d1 else [Shard(t.name, d0, 0, half), Shard(t.name, d1, half, half)])
    plan = Plan(task.name, planner, tuple(shards))
    plan.validate(task)
    return plan


def parts(cost: PlanCost) -> dict[str, float]:
    """Where a plan's time goes: the compute (forward plus backward) summed over devices and
    on its largest device, and the input all-to-all (equal on every device)."""
    compute = [d.fwd_ms + d.bwd_ms for d in cost.devices]
    return {"compute_sum": sum(compute), "compute_max": max(compute), "input_comm": cost.devices[0].input_comm_ms}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default="2,4,8", help="numbers of tables to halve, comma-separated")
    reach_arguments(ap, "benchmarks/results/sharding_column_split.json")
    args = ap.parse_args(argv)
    ks = [int(x) for x in args.splits.split(",")]
    names = ("dreamshard", *(f"dreamshard_split{k}" for k in ks))

    def check(k: int, task: Task, planner: Any, comm: CommModel) -> tuple[dict[str, Any], str]:
        plans = reference_plans(task, planner)
        split_cols: dict[str, int] = {}
        for n in ks:
            derived, chosen = split_task(task, n)
            name = f"dreamshard_split{n}"
            plans[name] = merge_plan(task, planner.plan(derived), chosen, name)
            split_cols[name] = sum(len([s for s in plans[name].shards if s.table == c]) == 2 for c in chosen)
        measured = fresh_plan_costs(task, plans, comm, args, seed=k)
        costs = {n: c.total_ms for n, c in measured.items()}
        best = best_heuristic_ms(costs)
        return ({"cost_ms": costs, "parts_ms": {n: parts(c) for n, c in measured.items()},
                 "tables_split_across_devices": split_cols},
                ", ".join(f"{n} {costs[n] / best:.3f}" for n in names)
                + f" of the task's best heuristic; halves on two devices {split_cols}")  # fmt: skip

    return run_reach(args, BENCHMARK, names, check)


if __name__ == "__main__":
    main()
