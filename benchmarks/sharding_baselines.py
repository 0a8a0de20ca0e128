"""Sharding baselines on DreamShard-style test tasks: measured cost, ratio to the bound.

For DLRM-{20, 40, 80} tasks on {2, 4, 8} devices (tables from the *test* half of the
synthetic pool, dim 16, fp16; ``--count`` tasks each), every registered baseline planner
(and TorchRec's planner when available) plans every task; the :class:`CostMeter` (CPU
backend, single thread, ``--batch`` samples timed, min of ``--repeats``) measures each plan
with communication from an alpha-beta model calibrated per device count on real gloo
``all_to_all_single`` timings. Reported per configuration: mean measured cost, mean ratio
to the task's lower value ``max(largest single-table cost, sum of single costs / D)``,
mean ratio to the best plan of the task, and planning time. Repeatability: one plan per
configuration is re-measured ``--repeat-checks`` times with fresh meters (no cache),
interleaved with the other planners' plans of that task, and the CV of its cost reported.

Usage::

    .venv/bin/python benchmarks/sharding_baselines.py --count 10 --out benchmarks/results/sharding_baselines.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.comm import calibrate  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import PLANNERS, Infeasible, get_planner  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, nargs="+", default=[20, 40, 80])
    ap.add_argument("--devices", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--repeat-checks", type=int, default=5)
    ap.add_argument("--planners", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/sharding_baselines.json")
    args = ap.parse_args(argv)
    planners = args.planners or list(PLANNERS)
    settings = MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=args.seed)
    t_start = time.perf_counter()
    comms = {d: calibrate(d) for d in sorted(set(args.devices)) if d > 1}
    results, checks = [], []
    for d in args.devices:
        meter = CostMeter(settings, comm=comms.get(d))
        for n in args.tables:
            tasks = gen_tasks("dreamshard", n, d, args.count, seed=args.seed, split="test")
            per: dict[str, dict[str, list[float]]] = {
                p: {"cost": [], "ratio_bound": [], "ratio_best": [], "plan_s": []} for p in planners
            }
            infeasible: dict[str, int] = {p: 0 for p in planners}
            for task in tasks:
                bound = meter.lower_bound(task)
                costs = {}
                for name in planners:
                    try:
                        plan = get_planner(name).plan(task)
                    except Infeasible:
                        infeasible[name] += 1
                        continue
                    costs[name] = (meter.measure_plan(task, plan).total_ms, plan.planning_seconds)
                best = min(c for c, _ in costs.values())
                for name, (c, ps) in costs.items():
                    per[name]["cost"].append(c)
                    per[name]["ratio_bound"].append(c / bound)
                    per[name]["ratio_best"].append(c / best)
                    per[name]["plan_s"].append(ps)
            # repeatability: the first task's plans, re-measured with fresh meters, interleaved
            task = tasks[0]
            plans = {}
            for name in planners:
                try:
                    plans[name] = get_planner(name).plan(task)
                except Infeasible:
                    pass
            totals: dict[str, list[float]] = {p: [] for p in plans}
            for _ in range(args.repeat_checks):
                for name, plan in plans.items():
                    totals[name].append(
                        CostMeter(settings, comm=comms.get(d)).measure_plan(task, plan).total_ms
                    )
            for name, ts in totals.items():
                checks.append({"tables": n, "devices": d, "planner": name, "task": task.name, "totals_ms": ts,
                               "cv": statistics.pstdev(ts) / statistics.fmean(ts)})  # fmt: skip
            for name in planners:
                v = per[name]
                if not v["cost"]:
                    continue
                results.append({
                    "tables": n, "devices": d, "planner": name, "tasks": len(v["cost"]), "infeasible": infeasible[name],
                    "mean_cost_ms": statistics.fmean(v["cost"]), "mean_ratio_to_bound": statistics.fmean(v["ratio_bound"]),
                    "mean_ratio_to_best": statistics.fmean(v["ratio_best"]), "mean_planning_s": statistics.fmean(v["plan_s"]),
                })  # fmt: skip
                print(f"DLRM-{n} d{d} {name:20s} cost {results[-1]['mean_cost_ms']:8.2f} ms  "
                      f"x{results[-1]['mean_ratio_to_bound']:.3f} bound  x{results[-1]['mean_ratio_to_best']:.3f} best", flush=True)  # fmt: skip
            write_json(
                args.out, _doc(args, settings, comms, results, checks, t_start, complete=False)
            )
    doc = _doc(args, settings, comms, results, checks, t_start, complete=True)
    write_json(args.out, doc)
    print(
        f"repeatability: median CV {doc['repeatability']['median_cv']:.4f}, max {doc['repeatability']['max_cv']:.4f}"
    )
    return doc


def _doc(args, settings, comms, results, checks, t_start, complete):  # noqa: ANN001, ANN202
    cvs = [c["cv"] for c in checks]
    return {
        "complete": complete,
        "benchmark": "sharding baselines on DreamShard-style test tasks",
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe(),
        "settings": {**vars(args), "meter": settings.__dict__},
        "comm_models": {d: m.to_json() for d, m in comms.items()},
        "results": results,
        "repeatability": {
            "checks": checks,
            "median_cv": statistics.median(cvs) if cvs else None,
            "max_cv": max(cvs) if cvs else None,
            "goal": "CV below 0.03",
        },  # fmt: skip
        "wall_s": time.perf_counter() - t_start,
    }


if __name__ == "__main__":
    main()
