"""What the reachability checks share (``sharding_measured_search.py``,
``sharding_single_cost_balance.py``, ``sharding_column_split.py``): their options, the loop over
tasks with resume, the reference plans of a task, their re-measurement on a fresh meter, and
the results document with its ratios to each task's best heuristic."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedlab.io import read_json, write_json
from embedlab.machine import describe
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeterSettings, PlanCost
from embedlab.sharding.generator import gen_tasks
from embedlab.sharding.moves import START_HEURISTICS
from embedlab.sharding.planners import get_planner
from embedlab.sharding.types import Plan, Task


def reach_arguments(ap: argparse.ArgumentParser, out: str) -> None:
    """The options every reachability check takes (the task family and split, the meter's
    batch and repeats, the communication model, ``--resume`` and ``--out``)."""
    ap.add_argument("--family", default="dreamshard")
    ap.add_argument("--tables", type=int, default=50)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--comm", default=None, help="communication model (default: the one DreamShard's model ships with)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", default=out)


#: One task of a check: ``(k, task, dreamshard, comm) -> (row, line)``, the task's results row
#: (with its ``cost_ms``) and what to print after the task's name.
TaskCheck = Callable[[int, Task, Any, CommModel], tuple[dict[str, Any], str]]


def run_reach(args: argparse.Namespace, benchmark: str, names: tuple[str, ...], check: TaskCheck) -> dict:
    """Run ``check`` on each task (``args``' family and split, task seed 1 as in
    ``sharding_learned.py``) with DreamShard (the registered planner) and the communication
    model (``--comm``, else DreamShard's); write the results document after every task, so
    ``--resume`` keeps finished tasks; print the summary of ``names``. Returns the document."""
    planner = get_planner("dreamshard")
    comm = CommModel.load(args.comm) if args.comm else planner.model.comm
    tasks = gen_tasks(args.family, args.tables, args.devices, args.count, seed=1, split=args.split)
    old = read_json(args.out) if args.resume and Path(args.out).is_file() else {}
    rows: list[dict[str, Any]] = list(old.get("tasks", []))
    t_start = time.perf_counter()
    for k, task in enumerate(tasks):
        if any(r["task"] == task.name for r in rows):
            continue
        row, line = check(k, task, planner, comm)
        rows.append({"task": task.name, **row})
        print(f"{task.name}: {line}", flush=True)
        write_json(args.out, reach_doc(benchmark, args, rows, comm, t_start, False, names))
    doc = reach_doc(benchmark, args, rows, comm, t_start, True, names)
    write_json(args.out, doc)
    print_summary(doc)
    return doc


def reference_plans(task: Task, dreamshard: Any) -> dict[str, Plan]:
    """The plans of :data:`START_HEURISTICS` and of ``dreamshard`` (the registered planner)."""
    plans = {name: get_planner(name).plan(task) for name in START_HEURISTICS}
    plans["dreamshard"] = dreamshard.plan(task)
    return plans


def fresh_plan_costs(task: Task, plans: dict[str, Plan], comm: CommModel, args: argparse.Namespace,
                     seed: int) -> dict[str, PlanCost]:  # fmt: skip
    """Every plan measured interleaved by a new meter (``args.batch``, ``args.repeats``,
    ``seed``), so a search's pick of low noisy costs does not count for it."""
    meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=seed), comm=comm)
    return dict(zip(plans, meter.measure_plans(task, list(plans.values()))))


def fresh_costs(task: Task, plans: dict[str, Plan], comm: CommModel, args: argparse.Namespace, seed: int) -> dict[str, float]:
    """Every plan's step cost (ms), as :func:`fresh_plan_costs` measures it."""
    return {name: c.total_ms for name, c in fresh_plan_costs(task, plans, comm, args, seed).items()}


def best_heuristic_ms(costs: dict[str, float]) -> float:
    return min(costs[h] for h in START_HEURISTICS)


def reach_doc(benchmark: str, args: argparse.Namespace, rows: list[dict[str, Any]], comm: CommModel, t0: float,
              complete: bool, names: tuple[str, ...]) -> dict:  # fmt: skip
    """The results document: per-task ``rows`` (each with ``cost_ms``) and, for ``names``, the
    mean ratio to each task's best heuristic (sd, tasks at or under 0.92) and to the family's."""
    fam_best = min(START_HEURISTICS, key=lambda h: statistics.fmean(r["cost_ms"][h] for r in rows)) if rows else None
    summary = {}
    for name in names if rows else ():
        per_task = [r["cost_ms"][name] / best_heuristic_ms(r["cost_ms"]) for r in rows]
        fam = [r["cost_ms"][name] / r["cost_ms"][fam_best] for r in rows]
        summary[name] = {"ratio_to_best_heuristic": statistics.fmean(per_task),
                         "ratio_to_best_heuristic_sd": statistics.stdev(per_task) if len(rows) > 1 else 0.0,
                         "ratio_to_family_best_heuristic": statistics.fmean(fam),
                         "tasks_at_most_0.92": sum(v <= 0.92 for v in per_task)}  # fmt: skip
    return {"benchmark": benchmark, "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
            "settings": vars(args), "comm": comm.to_json(),
            "complete": complete, "wall_s": time.perf_counter() - t0, "family_best_heuristic": fam_best,
            "summary": summary, "tasks": rows}  # fmt: skip


def print_summary(doc: dict) -> None:
    for name, s in doc["summary"].items():
        print(f"{name}: {s['ratio_to_best_heuristic']:.3f} (sd {s['ratio_to_best_heuristic_sd']:.3f}) of each task's "
              f"best heuristic, {s['ratio_to_family_best_heuristic']:.3f} of {doc['family_best_heuristic']}", flush=True)  # fmt: skip
