"""How long planners take to plan large tasks (the AutoShard goal: 200 tables in under 2 s).

Each planner of ``--planners`` is created once and plans ``--count`` test-split tasks of
``--tables`` tables on ``--devices`` devices, one after the other; the wall time of each call
is recorded, the first one (which also creates the planner and loads its model) kept apart.
``import torch`` is done before any timing (``import_s``), so no planner pays it.

Usage::

    python benchmarks/sharding_planning_time.py --out benchmarks/results/sharding_planning_time.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import get_planner  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planners", default="autoshard,dreamshard,neuroshard,torchrec")
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/sharding_planning_time.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import torch  # noqa: F401

    import_s = time.perf_counter() - t0
    tasks = gen_tasks("dreamshard", args.tables, args.devices, args.count, seed=args.seed, split="test")
    results = {}
    for name in args.planners.split(","):
        t0 = time.perf_counter()
        planner = get_planner(name)
        seconds = []
        for task in tasks:
            t1 = time.perf_counter()
            planner.plan(task).validate(task)
            seconds.append(time.perf_counter() - t1)
        first = seconds[0] + (time.perf_counter() - t0 - sum(seconds))  # creation counts for the first call
        results[name] = {"first_call_s": first, "later_calls_s": seconds[1:], "max_s": max(first, *seconds)}
        print(f"{name}: first {first:.2f} s, then {', '.join(f'{s:.2f}' for s in seconds[1:])} s", flush=True)
    doc = {"benchmark": "planning time on large tasks", "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
           "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
           "settings": vars(args), "import_s": import_s, "results": results}  # fmt: skip
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
