"""How long planners take to plan large tasks (the AutoShard goal: 200 tables in under 2 s).

Every run is a fresh Python process (``--repeats`` of them per planner, the planners'
runs interleaved), so each first call is cold: it creates the planner, loads its model and
draws the new tables' features, with no cache left by another planner. In a run the planner
plans ``--count`` test-split tasks of ``--tables`` tables on ``--devices`` devices one after
the other; the first call's wall time (creation included) is kept apart from the later ones.
``import torch`` is done before any timing (``import_s``), so no planner pays it.

Usage::

    python benchmarks/sharding_planning_time.py --out benchmarks/results/sharding_planning_time.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402


def one_run(name: str, tables: int, devices: int, count: int, seed: int) -> dict:
    """One planner in this process: the first call (creation included) and the later calls."""
    t0 = time.perf_counter()
    import torch  # noqa: F401

    import_s = time.perf_counter() - t0
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.planners import get_planner

    tasks = gen_tasks("dreamshard", tables, devices, count, seed=seed, split="test")
    t0 = time.perf_counter()
    planner = get_planner(name)
    seconds = []
    for task in tasks:
        t1 = time.perf_counter()
        planner.plan(task).validate(task)
        seconds.append(time.perf_counter() - t1)
    first = seconds[0] + (time.perf_counter() - t0 - sum(seconds))  # creation counts for the first call
    return {"first_call_s": first, "later_calls_s": seconds[1:], "import_s": import_s}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planners", default="autoshard,dreamshard,neuroshard,torchrec")
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per planner")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one run, JSON on stdout
    ap.add_argument("--out", default="benchmarks/results/sharding_planning_time.json")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(one_run(args.worker, args.tables, args.devices, args.count, args.seed)))
        return {}
    names = args.planners.split(",")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(args.repeats):
        for name in names:
            cmd = [sys.executable, __file__, "--worker", name, "--tables", str(args.tables), "--devices",
                   str(args.devices), "--count", str(args.count), "--seed", str(args.seed)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            run = json.loads(out.strip().splitlines()[-1])
            runs[name].append(run)
            later = ", ".join(f"{s:.2f}" for s in run["later_calls_s"])
            print(f"[{rep + 1}/{args.repeats}] {name}: first {run['first_call_s']:.2f} s, then {later} s", flush=True)
    results = {}
    for name, rs in runs.items():
        firsts = [r["first_call_s"] for r in rs]
        later = [s for r in rs for s in r["later_calls_s"]]
        results[name] = {"first_call_s": firsts, "first_call_median_s": statistics.median(firsts),
                         "first_call_max_s": max(firsts), "later_calls_s": later,
                         "later_call_max_s": max(later, default=None), "max_s": max(firsts + later)}  # fmt: skip
        print(f"{name}: first call {min(firsts):.2f}-{max(firsts):.2f} s (median {statistics.median(firsts):.2f}), "
              f"later {min(later, default=0):.2f}-{max(later, default=0):.2f} s", flush=True)  # fmt: skip
    doc = {"benchmark": "planning time on large tasks", "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
           "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
           "settings": {k: v for k, v in vars(args).items() if k != "worker"}, "results": results}  # fmt: skip
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
