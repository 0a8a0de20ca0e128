"""How additive are a device's costs? A fused kernel over several tables against its tables alone.

A check behind the DLRM-50 (4) goal (docs/sharding.md): balancing whole tables on per-table
costs can only reach a balanced *measured* step if a device's cost follows from its tables'
single-table costs. For ``--count`` train-split DLRM-50 (4) tasks (task seed 0, as the
retrain script's DreamShard training tasks), ``--sets`` random sets of 6-17 tables each (one
device's worth on 4 devices) are timed as one device, interleaved in the same passes with
every table of the task alone, by one meter at the benchmark's batch. For each set and for the
forward and backward pass: measured cost / sum of its tables' single-table costs. A least
squares fit of that ratio on the set's table count, log working set (bytes of its weights),
summed pooling factor and the largest table's share of the single-cost sum shows how much of
its spread those explain.

Usage::

    python benchmarks/sharding_additivity.py --out benchmarks/results/sharding_additivity.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.types import Shard  # noqa: E402

FEATURES = ("tables", "log_working_set", "pooling_sum", "largest_share")


def fit_summary(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Mean, sd and range of ``y``, its correlation with each column of ``x``, and the sd of
    the residual of a least-squares fit on ``x`` with an intercept."""
    a = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return {"mean": float(y.mean()), "sd": float(y.std(ddof=1)), "min": float(y.min()), "max": float(y.max()),
            "correlation": {f: float(np.corrcoef(x[:, j], y)[0, 1]) for j, f in enumerate(FEATURES)},
            "residual_sd_of_linear_fit": float((y - a @ coef).std(ddof=len(coef)))}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=6, help="train-split DLRM-50 (4) tasks")
    ap.add_argument("--sets", type=int, default=12, help="random table sets per task")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/sharding_additivity.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    meter = CostMeter(MeterSettings(batch_size=args.batch, repeats=args.repeats, seed=args.seed))
    rows: list[dict[str, Any]] = []
    for task in gen_tasks("dreamshard", 50, 4, args.count, seed=0, split="train"):
        sets = [rng.choice(len(task.tables), int(rng.integers(6, 18)), replace=False) for _ in range(args.sets)]
        singles = [[Shard(t.name, 0, 0, t.dim)] for t in task.tables]
        devices = [[Shard(task.tables[i].name, 0, 0, task.tables[i].dim) for i in idx] for idx in sets]
        costs = meter.measure_devices(task, singles + devices)  # interleaved in the same passes
        one, many = costs[: len(singles)], costs[len(singles) :]
        for idx, c in zip(sets, many):
            f1 = [one[i].fwd_ms for i in idx]
            b1 = [one[i].bwd_ms for i in idx]
            tot = [one[i].total_ms for i in idx]
            rows.append({"task": task.name, "tables": len(idx), "fwd_ms": c.fwd_ms, "bwd_ms": c.bwd_ms,
                         "single_fwd_sum_ms": sum(f1), "single_bwd_sum_ms": sum(b1),
                         "working_set_bytes": sum(task.tables[i].rows * task.tables[i].dim * task.tables[i].bytes_per_element for i in idx),
                         "pooling_sum": sum(task.tables[i].pooling_factor for i in idx),
                         "largest_share": max(tot) / sum(tot)})  # fmt: skip
        print(f"{task.name}: {len(rows)} sets so far ({time.perf_counter() - t0:.0f} s)", flush=True)
    x = np.array([[r["tables"], np.log(r["working_set_bytes"]), r["pooling_sum"], r["largest_share"]] for r in rows])
    summary = {
        "bwd_over_single_sum": fit_summary(x, np.array([r["bwd_ms"] / r["single_bwd_sum_ms"] for r in rows])),
        "fwd_over_single_sum": fit_summary(x, np.array([r["fwd_ms"] / r["single_fwd_sum_ms"] for r in rows])),
    }
    doc = {"benchmark": "device cost against the sum of its tables' single-table costs",
           "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
           "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
           "settings": vars(args), "wall_s": time.perf_counter() - t0, "summary": summary, "sets": rows}  # fmt: skip
    write_json(args.out, doc)
    for k, s in summary.items():
        print(f"{k}: mean {s['mean']:.3f}, sd {s['sd']:.3f}, range {s['min']:.3f}-{s['max']:.3f}; "
              f"linear fit leaves sd {s['residual_sd_of_linear_fit']:.3f}", flush=True)  # fmt: skip
    return doc


if __name__ == "__main__":
    main()
