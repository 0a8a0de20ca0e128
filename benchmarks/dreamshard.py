"""DreamShard against the heuristics and TorchRec's planner, on unseen tables and device counts.

Training: ``--train-count`` DLRM-50 tasks on 4 devices from the *training* table pool
(DreamShard family), ``embedlab.sharding.dreamshard.train`` with the CostMeter (CPU, batch
``--batch``) and a gloo-calibrated all-to-all model, per training seed. Evaluation, without
fine-tuning, on tasks from the disjoint *test* pool: DLRM-{20, 50, 100, 200} on 4 devices and
DLRM-50 on 2 and 8 devices (``--eval-count`` each). Every planner's plan of a task, DreamShard's
included, is measured in one interleaved pass of a fresh meter; reported per family: mean
cost as a ratio to the best heuristic of each task and to the balanced estimate (not a bound), and planning time.
Also the cost network's MAPE on the evaluation plans (shards it never saw).

Usage::

    .venv/bin/python benchmarks/dreamshard.py --out benchmarks/results/dreamshard.json
    .venv/bin/python benchmarks/dreamshard.py --quick --out /tmp/ds.json
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
from embedlab.sharding.cost import CostMeter, MeterSettings, balanced_estimate_from  # noqa: E402
from embedlab.sharding.dreamshard.planner import (  # noqa: E402
    SEARCH_TOKENS,
    DreamShardPlanner,
    search_options,
)
from embedlab.sharding.dreamshard.train import (
    COMM_MODES,
    TrainSettings,
    cost_mape,
    sample_from_cost,
    train_dreamshard,
)  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import HEURISTICS, Infeasible, get_planner  # noqa: E402
from embedlab.sharding.search import HillClimbPlanner, HillClimbSettings  # noqa: E402

FAMILIES = [(20, 4), (50, 4), (100, 4), (200, 4), (50, 2), (50, 8)]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-count", type=int, default=50)
    ap.add_argument("--eval-count", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--rollout-tasks", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--families", default=None, help="e.g. 50x4,20x4 (default: all six)")
    ap.add_argument("--torchrec", action="store_true", help="Also TorchRec's planner.")
    ap.add_argument("--hill-climb-s", type=float, default=0.0,
                    help="Also the measured hill-climb baseline with this many seconds per task (0: off).")  # fmt: skip
    ap.add_argument("--variants", default="",
                    help=f"Comma-separated planning-time search variants of DreamShard, each {SEARCH_TOKENS}.")  # fmt: skip
    ap.add_argument("--comm-modes", default="analytic",
                    help="Comma-separated DreamShard communication modes to train and compare (analytic, learned); "
                         "the first is reported as 'dreamshard', the others as 'dreamshard-MODE'. An analytic "
                         "model plans each family with that family's calibrated all-to-all model, the one the "
                         "evaluation meter adds to measured compute.")  # fmt: skip
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", default="benchmarks/.work/dreamshard")
    ap.add_argument("--out", default="benchmarks/results/dreamshard.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_count, args.eval_count, args.iterations, args.rollout_tasks, args.seeds = (
            6,
            2,
            2,
            3,
            [0],
        )
    families = (
        FAMILIES
        if not args.families
        else [tuple(int(x) for x in f.split("x")) for f in args.families.split(",")]
    )
    t0 = time.perf_counter()
    settings = MeterSettings(batch_size=args.batch, repeats=args.repeats)
    comms = {d: calibrate(d) for d in sorted({4, *(d for _, d in families)}) if d > 1}
    train_tasks = gen_tasks("dreamshard", 50, 4, args.train_count, seed=0, split="train")
    modes = [m for m in args.comm_modes.split(",") if m]
    if not modes or any(m not in COMM_MODES for m in modes):
        raise SystemExit(f"--comm-modes takes {', '.join(COMM_MODES)}, got {args.comm_modes!r}")
    models: dict[tuple[str, int], str] = {}
    train_info = {}
    for mode in modes:
        for seed in args.seeds:
            run = Path(args.work) / (
                f"train-s{seed}" if mode == "learned" else f"train-{mode}-s{seed}"
            )
            meter = CostMeter(
                MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=seed), comm=comms[4]
            )
            ts = time.perf_counter()
            m = train_dreamshard(train_tasks, run, meter, TrainSettings(iterations=args.iterations, rollout_tasks=args.rollout_tasks,
                                                                        seed=seed, comm_mode=mode),
                                 resume=True, meta={"command": "benchmarks/dreamshard.py", "seed": seed})  # fmt: skip
            models[mode, seed] = str(run / "model")
            train_info[f"{mode}-s{seed}"] = {"wall_s": m.meta.get("wall_s"), "measure_s": m.meta.get("measure_s"),
                                             "samples": m.meta.get("samples"), "this_call_s": time.perf_counter() - ts}  # fmt: skip
    names = [*HEURISTICS, *(["torchrec"] if args.torchrec else [])]
    variants = {"dreamshard": {}}
    for v in filter(None, args.variants.split(",")):
        variants[f"dreamshard-{v}"] = search_options(v)
    learned = {f"{name}-s{seed}": DreamShardPlanner(folder, name=name, seed=seed, **opts)
               for (mode, seed), folder in models.items() if mode == modes[0]
               for name, opts in variants.items()}  # fmt: skip
    bases = ["dreamshard", *(f"dreamshard-{m}" for m in modes[1:])]
    for mode in modes[1:]:
        learned.update({f"dreamshard-{mode}-s{seed}": DreamShardPlanner(folder, name=f"dreamshard-{mode}", seed=seed)
                        for (m, seed), folder in models.items() if m == mode})  # fmt: skip
    results = []
    for n, d in families:
        tasks = gen_tasks("dreamshard", n, d, args.eval_count, seed=1, split="test")
        ratio: dict[str, list[float]] = {}
        bound_ratio: dict[str, list[float]] = {}
        plan_s: dict[str, list[float]] = {}
        mape: dict[str, list[float]] = {}
        seed_ratio: dict[str, list[float]] = {}
        for planner in learned.values():  # analytic models: this family's all-to-all model
            planner.comm = comms.get(d) if planner.model.comm is not None else None
        for task in tasks:
            plans = {}
            for name in names:
                try:
                    plans[name] = get_planner(name).plan(task)
                except Infeasible:
                    pass
            for key, planner in learned.items():
                try:
                    plans[key] = planner.plan(task)
                except Infeasible:
                    pass
            if (
                args.hill_climb_s > 0
            ):  # its own meter: the evaluation below re-measures its plan afresh
                hc_meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats,
                                                   seed=1000 + len(plan_s.get("dreamshard", []))),
                                     comm=comms.get(d))  # fmt: skip
                plans["hill_climb"] = HillClimbPlanner(
                    hc_meter, HillClimbSettings(budget_s=args.hill_climb_s)
                ).plan(task)
            meter = CostMeter(settings, comm=comms.get(d))
            costs = dict(zip(plans, meter.measure_plans(task, list(plans.values()))))
            singles = meter.single_table_costs(task)
            bound = balanced_estimate_from(
                [c.total_ms for c in singles.values()], d
            ) + meter.comm_lower_bound(task)
            best_h = min(c.total_ms for k, c in costs.items() if k in HEURISTICS)
            for k, c in costs.items():
                key = k.rsplit("-s", 1)[0] if k in learned else k
                ratio.setdefault(key, []).append(c.total_ms / best_h)
                if k in learned:
                    seed_ratio.setdefault(k, []).append(c.total_ms / best_h)
                bound_ratio.setdefault(key, []).append(c.total_ms / bound)
                plan_s.setdefault(key, []).append(plans[k].planning_seconds)
                if key in bases:
                    sample = sample_from_cost(task, plans[k], c)
                    mape.setdefault(key, []).append(
                        cost_mape(learned[k].model, [sample], learned[k].comm)
                    )
        row: dict[str, Any] = {"tables": n, "devices": d, "tasks": len(tasks), "planners": {}}
        for k in ratio:
            row["planners"][k] = {"ratio_to_best_heuristic": statistics.fmean(ratio[k]),
                                  "ratio_to_best_heuristic_sd": statistics.stdev(ratio[k]) if len(ratio[k]) > 1 else 0.0,
                                  "ratio_to_estimate": statistics.fmean(bound_ratio[k]), "planning_s": statistics.fmean(plan_s[k])}  # fmt: skip
        row["cost_net_mape_on_eval_plans"] = (
            statistics.fmean(mape["dreamshard"]) if mape.get("dreamshard") else None
        )
        row["mape_by_comm_mode"] = {k: statistics.fmean(v) for k, v in mape.items()}
        per_seed = {k: statistics.fmean(v) for k, v in sorted(seed_ratio.items())}
        row["dreamshard_per_training_seed"] = {
            k: v for k, v in per_seed.items() if k.rsplit("-s", 1)[0] == "dreamshard"
        }
        row["per_training_seed_sd"] = {
            b: statistics.stdev(vs) if len(vs := [v for k, v in per_seed.items() if k.rsplit("-s", 1)[0] == b]) > 1 else 0.0
            for b in bases
        }  # fmt: skip
        row["dreamshard_training_seed_sd"] = (
            statistics.stdev(row["dreamshard_per_training_seed"].values())
            if len(row["dreamshard_per_training_seed"]) > 1
            else 0.0
        )
        row["variants_per_training_seed"] = per_seed  # fmt: skip
        results.append(row)
        ds = row["planners"].get("dreamshard", {})
        print(f"DLRM-{n} ({d}): dreamshard x{ds.get('ratio_to_best_heuristic', float('nan')):.3f} of best heuristic, "
              f"MAPE {row['cost_net_mape_on_eval_plans']}", flush=True)  # fmt: skip
        for k in [*variants, *bases[1:]]:
            if k != "dreamshard" and k in row["planners"]:
                v = row["planners"][k]
                print(
                    f"  {k}: x{v['ratio_to_best_heuristic']:.3f} ({v['planning_s']:.3f} s)",
                    flush=True,
                )
        write_json(args.out, _doc(args, results, train_info, comms, t0, False))
    doc = _doc(args, results, train_info, comms, t0, True)
    write_json(args.out, doc)
    return doc


def _doc(args, results, train_info, comms, t0, complete):  # noqa: ANN001, ANN202
    return {"benchmark": "DreamShard vs heuristics on unseen tables and device counts", "complete": complete,
            "command": " ".join(["python", *map(shlex.quote, sys.argv)]), "machine": describe(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "settings": vars(args),
            "training": train_info, "comm_models": {d: m.to_json() for d, m in comms.items()}, "results": results,
            "wall_s": time.perf_counter() - t0}  # fmt: skip


if __name__ == "__main__":
    main()
