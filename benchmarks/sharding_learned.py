"""DreamShard, AutoShard and NeuroShard beside the heuristics and TorchRec's planner, on the
same measurements.

Every planner plans each task; all plans of a task are then measured in one interleaved pass
of one fresh :class:`~embedlab.sharding.cost.CostMeter` (FBGEMM CPU kernels, gloo-calibrated
all-to-all model), so every method is compared on the same backend and the same noise.
The learned planners use the models that ship with the package (trained on this machine's
measurements; see each ``default_model/model.json``) unless ``--model-dir NAME=DIR`` names
another; none is fine-tuned on the evaluation tasks, which come from the *test* table pool.

Families: (a) DreamShard-style DLRM-{20, 50, 100, 200} on 4 devices and DLRM-50 on 2 and 8
devices; (b) NeuroShard-style memory-limited tasks with mixed dims (4..128, fp32) on 4
devices, where column-wise sharding can matter. Reported per family and planner: mean
measured cost as a ratio to the best heuristic of each task (± sd over tasks) and to the
lower bound, mean planning time, and the share of tasks on which the planner is the best of
all (ties count for each).

Usage::

    .venv/bin/python benchmarks/sharding_learned.py --eval-count 10 --torchrec --out benchmarks/results/sharding_learned.json
    .venv/bin/python benchmarks/sharding_learned.py --quick --out /tmp/sl.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.comm import calibrate  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings, lower_bound_from  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import HEURISTICS, Infeasible, get_planner  # noqa: E402

LEARNED = ("dreamshard", "autoshard", "neuroshard")
FAMILIES = [("dreamshard", 20, 4), ("dreamshard", 50, 4), ("dreamshard", 100, 4), ("dreamshard", 200, 4),
            ("dreamshard", 50, 2), ("dreamshard", 50, 8), ("neuroshard", 40, 4)]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-count", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument(
        "--families", default=None, help="e.g. dreamshard:50x4,neuroshard:40x4 (default: all)"
    )
    ap.add_argument("--torchrec", action="store_true", help="Also TorchRec's planner.")
    ap.add_argument(
        "--model-dir",
        action="append",
        default=[],
        help="NAME=DIR: another model for a learned planner.",
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/sharding_learned.json")
    args = ap.parse_args(argv)
    families = FAMILIES
    if args.families:
        families = []
        for f in args.families.split(","):
            fam, size = f.split(":")
            n, d = (int(x) for x in size.split("x"))
            families.append((fam, n, d))
    if args.quick:
        args.eval_count, families = 1, [("dreamshard", 20, 4), ("neuroshard", 20, 4)]
    models = dict(m.split("=", 1) for m in args.model_dir)
    t0 = time.perf_counter()
    comms = {d: calibrate(d) for d in sorted({d for _, _, d in families}) if d > 1}
    names = [*HEURISTICS, *(["torchrec"] if args.torchrec else []), *LEARNED]
    planners = {n: get_planner(n, models.get(n)) for n in names}
    results = []
    for fam, n, d in families:
        tasks = gen_tasks(fam, n, d, args.eval_count, seed=1, split="test")
        ratio: dict[str, list[float]] = {}
        bound_ratio: dict[str, list[float]] = {}
        plan_s: dict[str, list[float]] = {}
        best: dict[str, int] = {}
        infeasible: dict[str, int] = {}
        col_split: dict[str, int] = {}
        for k, task in enumerate(tasks):
            plans = {}
            for name, planner in planners.items():
                try:
                    plans[name] = planner.plan(task)
                except Infeasible:
                    infeasible[name] = infeasible.get(name, 0) + 1
            meter = CostMeter(
                MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=k),
                comm=comms.get(d),
            )
            costs = dict(zip(plans, meter.measure_plans(task, list(plans.values()))))
            singles = meter.single_table_costs(task)
            bound = lower_bound_from(
                [c.total_ms for c in singles.values()], d
            ) + meter.comm_lower_bound(task)
            feasible_h = [c.total_ms for name, c in costs.items() if name in HEURISTICS]
            if not feasible_h:
                continue
            best_h = min(feasible_h)
            lowest = min(c.total_ms for c in costs.values())
            for name, c in costs.items():
                ratio.setdefault(name, []).append(c.total_ms / best_h)
                bound_ratio.setdefault(name, []).append(c.total_ms / bound)
                plan_s.setdefault(name, []).append(plans[name].planning_seconds)
                best[name] = best.get(name, 0) + int(c.total_ms <= lowest * (1 + 1e-9))
                if len({s.table for s in plans[name].shards}) < len(plans[name].shards):
                    col_split[name] = col_split.get(name, 0) + 1
        row: dict[str, Any] = {
            "family": fam,
            "tables": n,
            "devices": d,
            "tasks": len(tasks),
            "planners": {},
        }
        for name in ratio:
            r = ratio[name]
            row["planners"][name] = {
                "ratio_to_best_heuristic": statistics.fmean(r),
                "ratio_to_best_heuristic_sd": statistics.stdev(r) if len(r) > 1 else 0.0,
                "ratio_to_bound": statistics.fmean(bound_ratio[name]),
                "planning_s": statistics.fmean(plan_s[name]),
                "share_best": best.get(name, 0) / len(r),
                "tasks_with_column_splits": col_split.get(name, 0),
            }
        row["infeasible"] = infeasible
        results.append(row)
        line = ", ".join(
            f"{k} {v['ratio_to_best_heuristic']:.3f}"
            for k, v in row["planners"].items()
            if k in LEARNED
        )
        print(f"{fam} DLRM-{n} ({d}): {line}", flush=True)
        write_json(args.out, _doc(args, results, comms, t0, False))
    doc = _doc(args, results, comms, t0, True)
    write_json(args.out, doc)
    return doc


def _doc(args, results, comms, t0, complete):  # noqa: ANN001, ANN202
    return {"benchmark": "learned sharding planners vs heuristics, one backend, interleaved", "complete": complete,
            "command": " ".join(["python", *map(shlex.quote, sys.argv)]), "machine": describe(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "settings": vars(args),
            "comm_models": {d: m.to_json() for d, m in comms.items()}, "results": results,
            "wall_s": time.perf_counter() - t0}  # fmt: skip


if __name__ == "__main__":
    main()
