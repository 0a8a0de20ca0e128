"""How well *any* cost model could rank plans against a noisy DMP measurement.

Reads a result of ``benchmarks/sharding_fidelity.py`` (every plan of a task measured in
``R`` interleaved rounds) and asks, per task, how much of the measured ranking is the plans
and how much is the rounds' noise:

* the rounds of each distinct plan (planners that produced the same plan share one
  measurement and are counted once) as a plans × rounds table of log step costs;
* one-way ANOVA: ``ICC`` (the share of one round's variance that is between plans) and the
  **reliability** of the measured cost, the mean over ``R`` rounds:
  ``(MS_between - MS_within) / MS_between`` (Spearman-Brown);
* the **ceiling**: ``sqrt(reliability)``, the highest correlation that a cost model which knew
  every plan's true mean cost could be expected to reach against that measurement (classical
  attenuation; a Pearson correlation of log costs, which the Spearman the goal names follows
  closely for such data);
* the meter's Pearson correlation on log costs, and the same **disattenuated** (divided by the
  ceiling): an estimate of how the meter ranks the plans' true costs;
* the rounds a measurement would need for a ceiling of 0.8 and of 0.9 with this noise.

Usage::

    python benchmarks/sharding_noise_ceiling.py benchmarks/results/sharding_fidelity.json \\
        --out benchmarks/results/sharding_noise_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

ROOT = Path(__file__).resolve().parents[1]


def distinct_plans(task: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(rounds [P, R] ms, predicted [P] ms)`` of the task's distinct plans."""
    seen: dict[tuple[float, ...], float] = {}
    for rounds, pred in zip(task["measured_rounds_ms"], task["predicted_ms"]):
        seen.setdefault(tuple(rounds), pred)
    return np.array(list(seen.keys()), dtype=float), np.array(list(seen.values()), dtype=float)


def reliability(log_rounds: np.ndarray) -> dict[str, float]:
    """One-way ANOVA of ``[plans, rounds]``: ICC of one round, reliability of the mean."""
    p, r = log_rounds.shape
    means = log_rounds.mean(axis=1)
    ms_between = r * means.var(ddof=1)
    ms_within = log_rounds.var(axis=1, ddof=1).mean()
    icc = (ms_between - ms_within) / (ms_between + (r - 1) * ms_within)
    rel = max(0.0, (ms_between - ms_within) / ms_between) if ms_between > 0 else 0.0
    return {"icc_one_round": float(icc), "reliability": rel, "ceiling": math.sqrt(rel),
            "noise_sd_one_round": float(math.sqrt(ms_within)), "plan_sd": float(means.std(ddof=1))}  # fmt: skip


def rounds_for(icc: float, ceiling: float) -> float | None:
    """Rounds whose mean reaches ``ceiling`` (``None`` when one round's ICC is not positive)."""
    if icc <= 0:
        return None
    rel = ceiling**2
    return rel * (1 - icc) / (icc * (1 - rel))


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for task in result["tasks"]:
        rounds, pred = distinct_plans(task)
        logs = np.log(rounds)
        rel = reliability(logs)
        measured = np.median(rounds, axis=1)
        r_meter = float(pearsonr(np.log(pred), logs.mean(axis=1))[0]) if len(pred) > 2 else float("nan")
        row = {
            "task": task["task"], "tables": task["tables"], "plans": int(len(pred)), "rounds": int(rounds.shape[1]),
            **rel,
            "meter_spearman": float(spearmanr(pred, measured)[0]),
            "meter_pearson_log": r_meter,
            "meter_pearson_disattenuated": r_meter / rel["ceiling"] if rel["ceiling"] > 0 else None,
            "rounds_for_ceiling_0_8": rounds_for(rel["icc_one_round"], 0.8),
            "rounds_for_ceiling_0_9": rounds_for(rel["icc_one_round"], 0.9),
        }  # fmt: skip
        rows.append(row)

    def med(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None and np.isfinite(r[key])]
        return float(np.median(vals)) if vals else None

    return {"tasks": rows, "median": {k: med(k) for k in ("icc_one_round", "reliability", "ceiling", "meter_spearman",
                                                          "meter_pearson_log", "meter_pearson_disattenuated",
                                                          "rounds_for_ceiling_0_8", "rounds_for_ceiling_0_9")}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fidelity", type=Path, nargs="+", help="results of benchmarks/sharding_fidelity.py")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sharding_noise_ceiling.json")
    args = ap.parse_args()
    out: dict[str, Any] = {"command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])}
    for path in args.fidelity:
        res = json.loads(path.read_text())
        a = analyse(res)
        a["settings"] = {k: res["settings"][k] for k in ("rounds", "steps", "batch", "devices", "tables", "split")}
        out[str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)] = a
        print(path.name, json.dumps(a["median"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
