"""Sharding baselines on DreamShard-style test tasks: measured cost, ratio to the balanced estimate.

For DLRM-{20, 40, 80} tasks on {2, 4, 8} devices (tables from the *test* half of the
synthetic pool, dim 16, fp16; ``--count`` tasks each), every registered baseline planner
(and TorchRec's planner when available) plans every task; the :class:`CostMeter` (CPU
backend, single thread, ``--batch`` samples timed, ``--repeats`` iterations in ``--rounds``
interleaved rounds, summarized by ``--statistic``) measures all plans of a task in one
interleaved pass
with communication from an alpha-beta model calibrated per device count on real gloo
``all_to_all_single`` timings. Reported per configuration: mean measured cost, mean ratio
to the task's balanced estimate (not a bound) ``max(largest single-table cost, sum of single costs / D)`` plus
the least all-to-all time of any plan (columns spread evenly),
mean ratio to the best plan of the task, and planning time; how far a device's fused kernel
is from the sum of its tables timed alone. Repeatability: the first task's plans of each
configuration are re-measured ``--repeat-checks`` times with fresh meters (no cache), all
planners' plans interleaved, and the CV of each plan's cost reported under every statistic
(all computed from the same samples). ``--repeatability-only`` runs just those checks (the
first task of each configuration), for a measurement on an otherwise idle machine.

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
from embedlab.sharding.cost import STATISTICS, CostMeter, MeterSettings, balanced_estimate_from  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import (  # noqa: E402
    MEASURED_PLANNERS,
    MODEL_PLANNERS,
    PLANNERS,
    Infeasible,
    get_planner,
)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, nargs="+", default=[20, 40, 80])
    ap.add_argument("--devices", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--repeat-checks", type=int, default=5)
    ap.add_argument("--planners", nargs="+", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--statistic", default="round_min_median", choices=STATISTICS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeatability-only", action="store_true",
                    help="Only the re-measurement checks (run on an otherwise idle machine).")  # fmt: skip
    ap.add_argument("--out", default="benchmarks/results/sharding_baselines.json")
    args = ap.parse_args(argv)
    planners = args.planners or [p for p in PLANNERS if p not in MODEL_PLANNERS | MEASURED_PLANNERS]
    settings = MeterSettings(
        batch_size=args.batch,
        repeats=args.repeats,
        seed=args.seed,
        rounds=args.rounds,
        statistic=args.statistic,
    )
    t_start = time.perf_counter()
    comms = {d: calibrate(d) for d in sorted(set(args.devices)) if d > 1}
    results, checks, fused = [], [], []
    for d in args.devices:
        meter = CostMeter(settings, comm=comms.get(d))
        for n in args.tables:
            tasks = gen_tasks("dreamshard", n, d, args.count, seed=args.seed, split="test")
            per: dict[str, dict[str, list[float]]] = {
                p: {"cost": [], "ratio_bound": [], "ratio_best": [], "plan_s": []} for p in planners
            }
            infeasible: dict[str, int] = {p: 0 for p in planners}
            fused_ratios: list[float] = []
            for task in [] if args.repeatability_only else tasks:
                singles = meter.single_table_costs(task)
                bound = balanced_estimate_from(
                    [c.total_ms for c in singles.values()], d
                ) + meter.comm_lower_bound(task)
                plans = {}
                for name in planners:
                    try:
                        plans[name] = get_planner(name).plan(task)
                    except Infeasible:
                        infeasible[name] += 1
                measured = meter.measure_plans(task, list(plans.values()))  # interleaved
                costs = {
                    name: (pc.total_ms, plans[name].planning_seconds)
                    for name, pc in zip(plans, measured)
                }
                best = min(c for c, _ in costs.values())
                for name, (c, ps) in costs.items():
                    per[name]["cost"].append(c)
                    per[name]["ratio_bound"].append(c / bound)
                    per[name]["ratio_best"].append(c / best)
                    per[name]["plan_s"].append(ps)
                # non-additivity: a device's fused kernel vs the sum of its tables alone
                for pc, plan in zip(measured, plans.values()):
                    for part in pc.devices:
                        names = [s.table for s in plan.shards if s.device == part.device]
                        if len(names) > 1:
                            alone = sum(singles[t].total_ms for t in names)
                            fused_ratios.append((part.fwd_ms + part.bwd_ms) / alone)
            if not args.repeatability_only:
                fused.append({"tables": n, "devices": d, "devices_measured": len(fused_ratios),
                              "mean_fused_over_sum": statistics.fmean(fused_ratios) if fused_ratios else None,
                              "min": min(fused_ratios, default=None), "max": max(fused_ratios, default=None)})  # fmt: skip
            # repeatability: the first task's plans re-measured with fresh meters (no cache),
            # all planners' plans interleaved in each re-measurement
            task = tasks[0]
            plans = {}
            for name in planners:
                try:
                    plans[name] = get_planner(name).plan(task)
                except Infeasible:
                    pass
            totals: dict[str, dict[str, list[float]]] = {
                p: {st: [] for st in STATISTICS} for p in plans
            }
            for _ in range(args.repeat_checks):
                fresh = CostMeter(settings, comm=comms.get(d))
                for name, pc in zip(plans, fresh.measure_plans(task, list(plans.values()))):
                    for st in STATISTICS:
                        totals[name][st].append(pc.total_by_statistic[st])
            st0 = settings.statistic
            pass_best = [min(totals[p][st0][i] for p in totals) for i in range(args.repeat_checks)]
            for name, by in totals.items():
                ratio = [x / b for x, b in zip(by[st0], pass_best)]  # the comparison a pass makes
                checks.append({"tables": n, "devices": d, "planner": name, "task": task.name,
                               "totals_ms": by[st0],
                               "cv": statistics.pstdev(by[st0]) / statistics.fmean(by[st0]),
                               "cv_ratio_to_pass_best": statistics.pstdev(ratio) / statistics.fmean(ratio),
                               "cv_by_statistic": {st: statistics.pstdev(v) / statistics.fmean(v) for st, v in by.items()}})  # fmt: skip
            for name in planners:
                v = per[name]
                if not v["cost"]:
                    continue
                results.append({
                    "tables": n, "devices": d, "planner": name, "tasks": len(v["cost"]), "infeasible": infeasible[name],
                    "mean_cost_ms": statistics.fmean(v["cost"]), "mean_ratio_to_estimate": statistics.fmean(v["ratio_bound"]),
                    "mean_ratio_to_best": statistics.fmean(v["ratio_best"]), "mean_planning_s": statistics.fmean(v["plan_s"]),
                })  # fmt: skip
                print(f"DLRM-{n} d{d} {name:20s} cost {results[-1]['mean_cost_ms']:8.2f} ms  "
                      f"x{results[-1]['mean_ratio_to_estimate']:.3f} bound  x{results[-1]['mean_ratio_to_best']:.3f} best", flush=True)  # fmt: skip
            write_json(
                args.out,
                _doc(args, settings, comms, results, checks, fused, t_start, complete=False),
            )
    doc = _doc(args, settings, comms, results, checks, fused, t_start, complete=True)
    write_json(args.out, doc)
    rep = doc["repeatability"]
    print(f"repeatability ({settings.statistic}): median CV {rep['median_cv']:.4f}, max {rep['max_cv']:.4f}; "
          f"by statistic {rep['median_cv_by_statistic']}")  # fmt: skip
    return doc


def _doc(args, settings, comms, results, checks, fused, t_start, complete):  # noqa: ANN001, ANN202
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
        "fused_vs_sum_of_single_tables": fused,
        "repeatability": {
            "checks": checks,
            "median_cv_by_statistic": {
                st: statistics.median(c["cv_by_statistic"][st] for c in checks) for st in STATISTICS
            }
            if checks
            else None,
            "share_below_0.03": sum(c["cv"] < 0.03 for c in checks) / len(checks)
            if checks
            else None,
            "share_below_0.03_by_statistic": {
                st: sum(c["cv_by_statistic"][st] < 0.03 for c in checks) / len(checks)
                for st in STATISTICS
            }
            if checks
            else None,
            "median_cv_ratio_to_pass_best": statistics.median(
                c["cv_ratio_to_pass_best"] for c in checks if "cv_ratio_to_pass_best" in c
            )
            if checks and "cv_ratio_to_pass_best" in checks[0]
            else None,
            "median_cv": statistics.median(cvs) if cvs else None,
            "max_cv": max(cvs) if cvs else None,
            "goal": "CV below 0.03",
        },  # fmt: skip
        "wall_s": time.perf_counter() - t_start,
    }


if __name__ == "__main__":
    main()
