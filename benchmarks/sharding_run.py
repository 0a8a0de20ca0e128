"""Do CostMeter predictions rank plans the way real sharded training does?

For ``--count`` DreamShard-style test tasks (``--tables`` tables on ``--devices`` devices),
every baseline planner's plan is trained under TorchRec's ``DistributedModelParallel`` in
``--devices`` local processes (gloo, one thread each; :func:`embedlab.sharding.run.run_plan`),
``--rounds`` interleaved rounds of ``--steps`` timed steps per plan (the median of a plan's
per-round straggler embedding times is its measured cost). The same plans are then measured
by the :class:`CostMeter` (CPU backend, the same global batch, communication from an
alpha-beta model calibrated in the same kind of process group). Reported per task: the
Spearman rank correlation between measured and predicted costs over the planners, whether
both pick the same best plan, and the ratio measured / predicted.

Usage::

    .venv/bin/python benchmarks/sharding_run.py --count 3 --out benchmarks/results/sharding_run.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.comm import calibrate  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import (  # noqa: E402
    MEASURED_PLANNERS,
    MODEL_PLANNERS,
    PLANNERS,
    Infeasible,
    get_planner,
)
from embedlab.sharding.types import Plan, Task  # noqa: E402


def _worker(
    rank: int, world: int, port: int, task_json: dict, plans_json: list[dict], args: dict, out: str
) -> None:
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
        per: list[list[float]] = [[] for _ in plans]
        for _ in range(args["rounds"]):
            for i, plan in enumerate(plans):
                ranks = run_plan(
                    task, plan, steps=args["steps"], warmup=2, batch_size=args["batch"], seed=0
                )
                per[i].append(max(r.embedding_ms for r in ranks))
        if rank == 0:
            write_json(out, per)
    finally:
        finish()


def measure_under_dmp(task: Task, plans: list[Plan], args: argparse.Namespace) -> list[list[float]]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "per.json")
        mp.start_processes(_worker, args=(task.num_devices, port, task.to_json(), [p.to_json() for p in plans],
                                          vars(args), out), nprocs=task.num_devices, join=True, start_method="spawn")  # fmt: skip
        return read_json(out)


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for pos, i in enumerate(order):
            r[i] = float(pos)
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=20)
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/sharding_run.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    comm = calibrate(args.devices) if args.devices > 1 else None
    meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=0), comm=comm)
    rows = []
    for task in gen_tasks(
        "dreamshard", args.tables, args.devices, args.count, seed=args.seed, split="test"
    ):
        plans = []
        for name in [p for p in PLANNERS if p not in MODEL_PLANNERS | MEASURED_PLANNERS]:
            try:
                plans.append(get_planner(name).plan(task))
            except Infeasible:
                pass
        per = measure_under_dmp(task, plans, args)
        measured = [statistics.median(x) for x in per]
        predicted = [c.total_ms for c in meter.measure_plans(task, plans)]
        best_m = min(range(len(plans)), key=lambda i: measured[i])
        best_p = min(range(len(plans)), key=lambda i: predicted[i])
        rows.append({
            "task": task.name, "planners": [p.planner for p in plans], "measured_ms": measured,
            "measured_rounds_ms": per, "predicted_ms": predicted,
            "spearman": spearman(measured, predicted), "same_best": best_m == best_p,
            "measured_best": plans[best_m].planner, "predicted_best": plans[best_p].planner,
            "predicted_best_measured_over_best": measured[best_p] / measured[best_m],
            "mean_measured_over_predicted": statistics.fmean(m / p for m, p in zip(measured, predicted)),
        })  # fmt: skip
        r = rows[-1]
        print(f"{task.name}: spearman {r['spearman']:.2f}, best measured {r['measured_best']} / predicted "
              f"{r['predicted_best']} (x{r['predicted_best_measured_over_best']:.3f}), measured/predicted "
              f"{r['mean_measured_over_predicted']:.2f}", flush=True)  # fmt: skip
    doc = {
        "benchmark": "CostMeter prediction vs training under DistributedModelParallel",
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe(), "settings": vars(args), "comm_model": None if comm is None else comm.to_json(),
        "tasks": rows,
        "mean_spearman": statistics.fmean(r["spearman"] for r in rows),
        "same_best_share": sum(r["same_best"] for r in rows) / len(rows),
        "mean_predicted_best_measured_over_best": statistics.fmean(r["predicted_best_measured_over_best"] for r in rows),
        "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    write_json(args.out, doc)
    print(f"mean spearman {doc['mean_spearman']:.2f}; same best {doc['same_best_share']:.0%}")
    return doc


if __name__ == "__main__":
    main()
