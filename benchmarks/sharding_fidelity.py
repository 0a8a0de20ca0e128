"""Does the CostMeter predict the step time TorchRec's DistributedModelParallel gives?

For ``--count`` DreamShard-family test tasks of each size in ``--tables`` (20 and 40 tables)
on ``--devices`` processes, every planner of ``--planners`` plans the task; each distinct
plan is trained under ``DistributedModelParallel`` (gloo, one thread per process) with
:func:`embedlab.sharding.run.run_plan` -- the code behind ``embedlab shard run`` -- in
``--rounds`` interleaved rounds of ``--steps`` timed steps (the plans' order rotates each
round; a plan's measured cost is the median over rounds of the straggler rank's embedding
time ``input_dist + fwd_compute + fwd_comm + bwd_comm + bwd_compute``). One process group
per task runs every plan of the task, so all plans of a task see the same machine state.

The same plans are then costed by the :class:`~embedlab.sharding.cost.CostMeter` at the
same global batch (CPU backend, communication from a per-kind model calibrated with
TorchRec's collectives among ``--devices`` gloo processes: three calibrations at the start,
their repeatability reported, the per-kind median of the three fitted lines used).

Reported per task: Spearman rank correlation of predicted and measured costs over the
distinct plans, MAPE, measured / predicted, whether both pick the same best plan, the
measured cost of the predicted best over the measured best; every learned planner's and
TorchRec's measured cost over the best heuristic's and the default planner's over
TorchRec's; and how many plans (measured or predicted) fall below the balanced estimate,
to check that it is not a bound. Phase by phase (median over plans of measured/predicted)
to show where a misprediction comes from.

Resumable: each finished task is kept in ``--work`` and skipped when run again.

Usage::

    .venv/bin/python benchmarks/sharding_fidelity.py --out benchmarks/results/sharding_fidelity.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.comm import CommModel, calibrate  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import DEFAULT_PLANNER, HEURISTICS, plan_distinct  # noqa: E402
from embedlab.sharding.types import Plan, Task  # noqa: E402

LEARNED = ("dreamshard", "autoshard", "neuroshard")
ALL_PLANNERS = (*HEURISTICS, "torchrec", *LEARNED, "portfolio")  # portfolio: the default
PHASES = ("input_dist_ms", "fwd_compute_ms", "fwd_comm_ms", "bwd_comm_ms", "bwd_compute_ms")


def _worker(rank: int, world: int, port: int, task_json: dict, plans_json: list[dict], args: dict,
            out: str) -> None:  # fmt: skip
    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))  # fmt: skip
    from embedlab.distributed import finish, init_distributed
    from embedlab.sharding.run import run_plan

    init_distributed(threads=1)
    torch.manual_seed(0)
    task = Task.from_json(task_json)
    plans = [Plan.from_json(p) for p in plans_json]
    try:
        per: list[list[list[dict]]] = [[] for _ in plans]  # plan -> round -> ranks
        for r in range(args["rounds"]):
            order = list(range(len(plans)))
            order = order[r % len(order):] + order[: r % len(order)]  # fmt: skip
            for i in order:
                ranks = run_plan(task, plans[i], steps=args["steps"], warmup=2,
                                 batch_size=args["batch"], seed=0)  # fmt: skip
                per[i].append([x.to_json() for x in ranks])
        if rank == 0:
            write_json(out, per)
    finally:
        finish()
    from embedlab.distributed import exit_worker

    exit_worker(0)


def measure_under_dmp(task: Task, plans: list[Plan], args: argparse.Namespace) -> list:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "per.json")
        ctx = mp.start_processes(_worker, args=(task.num_devices, port, task.to_json(), [p.to_json() for p in plans],
                                                vars(args), out), nprocs=task.num_devices, join=False,
                                 start_method="spawn")  # fmt: skip
        while not ctx.join():
            pass
        return read_json(out)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else 0.0


def median_comm(models: list[CommModel]) -> CommModel:
    """Per kind, the median of the fitted alphas and of the betas."""
    kinds = {
        k: [statistics.median(m.kinds[k][0] for m in models), statistics.median(m.kinds[k][1] for m in models)]
        for k in models[0].kinds
    }  # fmt: skip
    a, b = kinds["output_fwd"]
    settings = {**models[0].settings, "combined": f"per-kind median of {len(models)} calibrations",
                "calibrations": [m.kinds for m in models]}  # fmt: skip
    return CommModel(a, b, models[0].backend, settings, kinds)


def plan_task(task: Task, planners: list[str], comm_path: str) -> tuple[list[Plan], dict[str, str]]:
    """Every planner's plan, identical ones merged: (distinct plans, planner -> plan key)."""
    plans, owner, skipped = plan_distinct(task, planners, comm_path)
    for name, why in skipped.items():
        print(f"  {name}: no plan ({why})", flush=True)
    return plans, owner


def task_row(task: Task, plans: list[Plan], owner: dict[str, str], per: list, meter: CostMeter) -> dict:
    measured = [statistics.median(max(r["embedding_ms"] for r in rnd) for rnd in rounds) for rounds in per]
    step = [statistics.median(max(r["step_ms"] for r in rnd) for rnd in rounds) for rounds in per]
    costs = meter.measure_plans(task, plans)
    predicted = [c.total_ms for c in costs]
    estimate = meter.balanced_estimate(task)
    # phases of the straggler rank: measured (median over rounds) and predicted
    phases = []
    for rounds, c in zip(per, costs):
        mine = {p: statistics.median(max(rnd, key=lambda r: r["embedding_ms"])[p] for rnd in rounds) for p in PHASES}
        s = c.devices[c.straggler]
        pred = {"input_dist_ms": s.input_comm_ms, "fwd_compute_ms": s.fwd_ms, "fwd_comm_ms": s.fwd_comm_ms,
                "bwd_comm_ms": s.bwd_comm_ms, "bwd_compute_ms": s.bwd_ms}  # fmt: skip
        phases.append({"measured": mine, "predicted": pred})
    names = [p.planner for p in plans]
    by_planner = {n: measured[names.index(o)] for n, o in owner.items()}
    pred_by_planner = {n: predicted[names.index(o)] for n, o in owner.items()}
    heur = [by_planner[n] for n in HEURISTICS if n in by_planner]
    best_h = min(heur) if heur else float("nan")
    bm = min(range(len(plans)), key=lambda i: measured[i])
    bp = min(range(len(plans)), key=lambda i: predicted[i])
    return {
        "task": task.name, "tables": len(task.tables), "devices": task.num_devices,
        "plans": names, "owner": owner, "plan_shards": [[s.to_json() for s in p.shards] for p in plans],
        "measured_ms": measured, "measured_step_ms": step,
        "measured_rounds_ms": [[max(r["embedding_ms"] for r in rnd) for rnd in rounds] for rounds in per],
        "predicted_ms": predicted, "phases": phases, "balanced_estimate_ms": estimate,
        "measured_below_estimate": sum(m < estimate for m in measured),
        "predicted_below_estimate": sum(p < estimate for p in predicted),
        "spearman": spearman(measured, predicted) if len(plans) > 2 else None,
        "mape": statistics.fmean(abs(p - m) / m for p, m in zip(predicted, measured)),
        "measured_over_predicted": statistics.fmean(m / p for m, p in zip(measured, predicted)),
        "same_best": bm == bp, "measured_best": names[bm], "predicted_best": names[bp],
        "predicted_best_measured_over_best": measured[bp] / measured[bm],
        "measured_by_planner": by_planner, "predicted_by_planner": pred_by_planner,
        "ratio_to_best_heuristic": {n: v / best_h for n, v in by_planner.items()},
        "default_over_torchrec": (by_planner[DEFAULT_PLANNER] / by_planner["torchrec"]
                                  if DEFAULT_PLANNER in by_planner and "torchrec" in by_planner else None),
    }  # fmt: skip


def round_to_round_spearman(row: dict) -> float | None:
    """Mean Spearman between the plans' costs in two different DMP rounds: how well the
    measurement ranks the plans against itself (the ceiling of any prediction's Spearman)."""
    rounds = list(zip(*row["measured_rounds_ms"]))  # round -> plan costs
    if len(rounds) < 2 or len(row["plans"]) < 3:
        return None
    pairs = [spearman(list(a), list(b)) for i, a in enumerate(rounds) for b in rounds[i + 1:]]
    return statistics.fmean(pairs)


def summarize(rows: list[dict]) -> dict:
    sp = [r["spearman"] for r in rows if r["spearman"] is not None]
    rr = [x for r in rows if (x := round_to_round_spearman(r)) is not None]
    out = {
        "median_round_to_round_spearman": statistics.median(rr) if rr else None,
        "tasks": len(rows),
        "median_spearman": statistics.median(sp) if sp else None,
        "min_spearman": min(sp) if sp else None,
        "mape": statistics.fmean(r["mape"] for r in rows),
        "mean_measured_over_predicted": statistics.fmean(r["measured_over_predicted"] for r in rows),
        "same_best_share": sum(r["same_best"] for r in rows) / len(rows),
        "mean_predicted_best_measured_over_best": statistics.fmean(r["predicted_best_measured_over_best"] for r in rows),
        "plans": sum(len(r["plans"]) for r in rows),
        "measured_below_estimate": sum(r["measured_below_estimate"] for r in rows),
        "predicted_below_estimate": sum(r["predicted_below_estimate"] for r in rows),
    }  # fmt: skip
    planners = sorted({n for r in rows for n in r["ratio_to_best_heuristic"]})
    out["ratio_to_best_heuristic"] = {
        n: {"mean": statistics.fmean(v), "max": max(v), "tasks": len(v)}
        for n in planners
        if (v := [r["ratio_to_best_heuristic"][n] for r in rows if n in r["ratio_to_best_heuristic"]])
    }
    dt_ = [r["default_over_torchrec"] for r in rows if r["default_over_torchrec"] is not None]
    if dt_:
        out["default_over_torchrec"] = {"mean": statistics.fmean(dt_), "max": max(dt_),
                                        "slower_tasks": sum(x > 1 for x in dt_), "tasks": len(dt_)}  # fmt: skip
    ratios: dict[str, list[float]] = {p: [] for p in PHASES}
    for r in rows:
        for ph in r["phases"]:
            for p in PHASES:
                if ph["predicted"][p] > 0:
                    ratios[p].append(ph["measured"][p] / ph["predicted"][p])
    out["phase_measured_over_predicted_median"] = {p: statistics.median(v) for p, v in ratios.items() if v}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="20,40", help="table counts, comma-separated")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--count", type=int, default=5, help="tasks per table count")
    ap.add_argument("--batch", type=int, default=4096, help="global batch (DMP and the meter)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15, help="meter repeats per kernel")
    ap.add_argument("--calibrations", type=int, default=3)
    ap.add_argument("--planners", default=",".join(ALL_PLANNERS))
    ap.add_argument("--seed", type=int, default=7, help="task seed (not one the planners were chosen on)")
    ap.add_argument("--split", default="test", help="table pool split of the tasks (valid to choose, test to report)")
    ap.add_argument("--work", default="benchmarks/.work/sharding_fidelity")
    ap.add_argument("--out", default="benchmarks/results/sharding_fidelity.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    comm_path = work / "comm.json"
    if comm_path.exists():
        comm = CommModel.load(comm_path)
    else:
        models = [calibrate(args.devices) for _ in range(args.calibrations)]
        comm = median_comm(models)
        comm.save(comm_path)
    for k, v in comm.kinds.items():
        fits = [c[k] for c in comm.settings.get("calibrations", [])]
        print(f"comm {k}: alpha {v[0]:.3f} ms, beta {v[1] * 1e6:.3f} ms/MB "
              f"(calibrations: {', '.join(f'{a:.3f}/{b * 1e6:.3f}' for a, b in fits)})", flush=True)  # fmt: skip
    meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=0), comm=comm)
    planners = args.planners.split(",")
    tasks = [t for n in map(int, args.tables.split(","))
             for t in gen_tasks("dreamshard", n, args.devices, args.count, seed=args.seed, split=args.split)]  # fmt: skip
    rows = []
    for i, task in enumerate(tasks):
        done = work / f"{task.name}.json"
        if done.exists():
            rows.append(read_json(done))
            continue
        t1 = time.perf_counter()
        plans, owner = plan_task(task, planners, str(comm_path))
        per = measure_under_dmp(task, plans, args)
        row = task_row(task, plans, owner, per, meter)
        row["wall_s"] = time.perf_counter() - t1
        write_json(done, row)
        rows.append(row)
        print(f"[{i + 1}/{len(tasks)}] {task.name}: {len(plans)} plans, spearman {row['spearman']}, "
              f"MAPE {row['mape']:.1%}, measured/predicted {row['measured_over_predicted']:.2f}, "
              f"best measured {row['measured_best']} predicted {row['predicted_best']}, "
              f"{row['wall_s']:.0f}s", flush=True)  # fmt: skip
    by_size = {n: summarize([r for r in rows if r["tables"] == n]) for n in sorted({r["tables"] for r in rows})}
    doc = {
        "benchmark": "CostMeter prediction vs DistributedModelParallel step time (sharding fidelity)",
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe(), "settings": vars(args), "comm_model": comm.to_json(),
        "summary": summarize(rows), "summary_by_tables": {str(k): v for k, v in by_size.items()},
        "tasks": rows, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    write_json(args.out, doc)
    s = doc["summary"]
    sp = "n/a" if s["median_spearman"] is None else f"{s['median_spearman']:.2f}"
    print(f"median spearman {sp}, MAPE {s['mape']:.1%}, measured/predicted "
          f"{s['mean_measured_over_predicted']:.2f}, same best {s['same_best_share']:.0%}; plans below the "
          f"estimate: {s['measured_below_estimate']} measured, {s['predicted_below_estimate']} predicted", flush=True)  # fmt: skip
    return doc


if __name__ == "__main__":
    main()
