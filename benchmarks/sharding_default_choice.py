"""Choose what ``--planner default`` is on validation tasks, then report it on test tasks.

Both steps read results of ``benchmarks/sharding_fidelity.py``, where every planner's plan of
a task was trained under ``DistributedModelParallel`` in interleaved rounds (the measured
cost) and costed by the step-cost meter (the prediction):

1. **Choice** (``--valid``, a fidelity run on ``--split valid`` tasks). For every candidate
   set of :data:`CANDIDATE_SETS` and margin of ``--margins``, the portfolio's rule
   (:func:`embedlab.sharding.portfolio.choose`: the cheapest predicted plan, TorchRec's kept
   unless beaten by more than the margin) is applied to the run's predictions, and the chosen
   plan's *measured* cost is compared with TorchRec's plan's. Single planners are listed
   beside. The configuration kept is the one with the fewest tasks slower than TorchRec's
   plan, then the lowest mean ratio, then the larger margin, then the smaller set. The script
   says whether :mod:`embedlab.sharding.portfolio`'s defaults are that choice.
2. **Test** (``--test``, a fidelity run on ``--split test`` tasks, not used above). The real
   :class:`~embedlab.sharding.portfolio.PortfolioPlanner` with the package defaults plans each
   test task afresh: its own meter (a fresh measurement, the run's communication model), its
   own candidates' plans. Each candidate's plan is checked to be the plan the fidelity run
   measured for that planner (same placement), so the chosen plan's measured DMP cost is
   read from that run: the measurement was made before, and independently of, the choice.

Reported: per task and overall, the chosen plan's measured cost over TorchRec's plan's
(mean, max, tasks slower, and rounds in which it was slower), beside the previous default
(NeuroShard) and each learned planner; and the portfolio's planning time.

Usage::

    python benchmarks/sharding_default_choice.py --valid benchmarks/results/sharding_fidelity_valid.json \\
        --test benchmarks/results/sharding_fidelity_9rounds.json --out benchmarks/results/sharding_default_choice.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.planners import HEURISTICS  # noqa: E402
from embedlab.sharding.types import Plan, Shard  # noqa: E402

LEARNED = ("dreamshard", "autoshard", "neuroshard")
#: Candidate sets the choice compares (every set holds the anchor, TorchRec's planner).
CANDIDATE_SETS: dict[str, tuple[str, ...]] = {
    "learned": ("torchrec", *LEARNED),
    "learned+greedy": ("torchrec", *LEARNED, "dim_greedy", "lookup_greedy", "size_lookup_greedy"),
    "all": ("torchrec", *LEARNED, *HEURISTICS),
    "greedy": ("torchrec", "dim_greedy", "lookup_greedy", "size_lookup_greedy", "size_greedy"),
}


def against_torchrec(row: dict, planner_plan: str) -> dict[str, Any]:
    """The measured cost of ``planner_plan`` (a plan name of ``row``) over TorchRec's plan's:
    ratio of the medians over rounds, and rounds in which it was slower."""
    i, j = row["plans"].index(planner_plan), row["plans"].index(row["owner"]["torchrec"])
    mine, ref = row["measured_rounds_ms"][i], row["measured_rounds_ms"][j]
    return {"ratio": row["measured_ms"][i] / row["measured_ms"][j],
            "rounds_slower": sum(a > b for a, b in zip(mine, ref)), "rounds": len(mine)}  # fmt: skip


def simulate(row: dict, candidates: tuple[str, ...], margin: float) -> str:
    """The plan (name in ``row``) the portfolio's rule picks from the run's predictions."""
    from embedlab.sharding.portfolio import choose

    pred: dict[str, float] = {}
    for c in candidates:  # candidate order decides ties; merged plans are one entry
        if c in row["owner"]:
            pred.setdefault(row["owner"][c], row["predicted_by_planner"][c])
    anchor = row["owner"].get("torchrec")
    return choose(pred, anchor, margin)


def summary(results: list[dict]) -> dict[str, Any]:
    r = [x["ratio"] for x in results]
    return {"mean": statistics.fmean(r), "max": max(r), "min": min(r), "slower_tasks": sum(x > 1 for x in r),
            "tasks": len(r), "rounds_slower": sum(x["rounds_slower"] for x in results),
            "rounds": sum(x["rounds"] for x in results)}  # fmt: skip


def choice(valid: dict, margins: list[float]) -> dict[str, Any]:
    rows = valid["tasks"]
    configs = []
    for (set_name, cands), m in itertools.product(CANDIDATE_SETS.items(), margins):
        per = [against_torchrec(r, simulate(r, cands, m)) | {"task": r["task"]} for r in rows]
        configs.append({"candidates": set_name, "margin": m, **summary(per), "per_task": per})
    singles = {
        p: summary([against_torchrec(r, r["owner"][p]) for r in rows if p in r["owner"]])
        for p in ("torchrec", *LEARNED, *HEURISTICS)
    }  # fmt: skip
    order = list(CANDIDATE_SETS)
    best = min(configs, key=lambda c: (c["slower_tasks"], round(c["mean"], 4), -c["margin"],
                                       len(CANDIDATE_SETS[c["candidates"]]), order.index(c["candidates"])))  # fmt: skip
    return {"configs": configs, "single_planners": singles, "chosen": {"candidates": best["candidates"],
            "candidate_planners": list(CANDIDATE_SETS[best["candidates"]]), "margin": best["margin"]}}  # fmt: skip


def test(test_doc: dict, repeats: int | None) -> dict[str, Any]:
    from embedlab.sharding.comm import CommModel
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.portfolio import PortfolioPlanner, PortfolioSettings

    st = test_doc["settings"]
    tasks = {t.name: t for n in map(int, st["tables"].split(","))
             for t in gen_tasks("dreamshard", n, st["devices"], st["count"], seed=st["seed"], split=st["split"])}  # fmt: skip
    settings = PortfolioSettings(batch_size=st["batch"], **({"repeats": repeats} if repeats else {}))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        comm_path = str(Path(tmp) / "comm.json")
        CommModel.from_json(test_doc["comm_model"]).save(comm_path)
        for row in test_doc["tasks"]:
            task = tasks[row["task"]]
            planner = PortfolioPlanner(comm=comm_path, settings=settings)
            t0 = time.perf_counter()
            planner.plan(task)
            seconds = time.perf_counter() - t0
            rep = planner.last_report
            # each candidate's plan must be the plan the fidelity run measured for it
            mismatch = [c for c, o in rep["owner"].items()
                        if c in row["owner"] and row["owner"][c] != row["owner"].get(o)]  # fmt: skip
            if "plan_shards" in row:  # newer runs keep the placements: compare them exactly
                kept = {n: Plan(task.name, n, tuple(map(Shard.from_json, sh))).placement()
                        for n, sh in zip(row["plans"], row["plan_shards"])}  # fmt: skip
                plans, _, _ = planner.candidate_plans(task)
                mismatch += [p.planner for p in plans if p.placement() != kept.get(row["owner"].get(p.planner))]
            if mismatch:
                raise SystemExit(f"{task.name}: plans of {mismatch} differ from the fidelity run's; re-run it")
            chosen = row["owner"][rep["chosen"]]
            res = against_torchrec(row, chosen)
            out.append({"task": task.name, "chosen": rep["chosen"], "chosen_plan": chosen, **res,
                        "planning_seconds": seconds, "predicted_ms": rep["predicted_ms"],
                        "simulated_from_run": simulate(row, settings.candidates, settings.margin),
                        "previous_default_neuroshard": against_torchrec(row, row["owner"]["neuroshard"])["ratio"]})  # fmt: skip
            print(f"{task.name}: chose {rep['chosen']} ({chosen}), measured / TorchRec {res['ratio']:.3f} "
                  f"(slower in {res['rounds_slower']}/{res['rounds']} rounds), {seconds:.1f} s", flush=True)  # fmt: skip
    rows = test_doc["tasks"]
    return {
        "settings": {"candidates": list(settings.candidates), "margin": settings.margin,
                     "batch_size": settings.batch_size, "repeats": settings.repeats},
        "portfolio": summary(out),
        "planning_seconds": {"mean": statistics.fmean(x["planning_seconds"] for x in out),
                             "max": max(x["planning_seconds"] for x in out)},
        "single_planners": {p: summary([against_torchrec(r, r["owner"][p]) for r in rows if p in r["owner"]])
                            for p in ("torchrec", *LEARNED)},
        "per_task": out,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--valid", required=True, help="sharding_fidelity.py result on --split valid tasks")
    ap.add_argument("--test", default=None, help="sharding_fidelity.py result on --split test tasks")
    ap.add_argument("--margins", default="0,0.01,0.02,0.03,0.05,0.08,0.1,0.15")
    ap.add_argument("--repeats", type=int, default=None, help="meter repeats (default: the portfolio's)")
    ap.add_argument("--out", default="benchmarks/results/sharding_default_choice.json")
    args = ap.parse_args(argv)
    from embedlab.sharding import portfolio

    valid = read_json(args.valid)
    if valid["settings"]["split"] != "valid":
        raise SystemExit(f"{args.valid} is not a run on valid-split tasks")
    ch = choice(valid, [float(m) for m in args.margins.split(",")])
    c = ch["chosen"]
    agrees = tuple(c["candidate_planners"]) == portfolio.CANDIDATES and c["margin"] == portfolio.MARGIN
    best = next(x for x in ch["configs"] if x["candidates"] == c["candidates"] and x["margin"] == c["margin"])
    print(f"valid: chose {c['candidates']} with margin {c['margin']}: mean {best['mean']:.3f} of TorchRec, "
          f"slower on {best['slower_tasks']}/{best['tasks']} tasks; package defaults "
          f"{'agree' if agrees else 'DIFFER: update embedlab.sharding.portfolio'}", flush=True)  # fmt: skip
    doc: dict[str, Any] = {
        "benchmark": "choice of --planner default on valid tasks, reported on test tasks (DMP step time)",
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
        "valid_source": args.valid, "test_source": args.test, "valid": ch, "package_defaults_agree": agrees,
    }  # fmt: skip
    if args.test:
        test_doc = read_json(args.test)
        if test_doc["settings"]["split"] != "test":
            raise SystemExit(f"{args.test} is not a run on test-split tasks")
        doc["test"] = test(test_doc, args.repeats)
        s = doc["test"]["portfolio"]
        print(f"test: portfolio {s['mean']:.3f} of TorchRec (max {s['max']:.3f}), slower on "
              f"{s['slower_tasks']}/{s['tasks']} tasks", flush=True)  # fmt: skip
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
