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
devices, where column-wise sharding can matter. Reported per family and planner:

* ``ratio_to_family_best_heuristic``: mean over tasks of cost / cost of the family's best
  heuristic (the one heuristic with the lowest mean measured cost on the family), with a
  95% t-interval of the paired log ratio (``..._ci95``, as ratios). This is the headline:
  one fixed baseline a user would pick for this kind of task.
* ``ratio_to_best_heuristic``: cost / the lowest heuristic cost *of each task*, an oracle
  that picks the best of six heuristics per task after measuring them (biased low by the
  min over noisy measurements; every planner looks >= 1 against it).
* ``ratio_to_estimate`` (the balanced estimate (not a bound)), planning time, the share of tasks on which the
  planner is best of all (ties count for each), and for a planner that predicts its plan's
  cost, ``cost_model_mape``: mean |predicted - measured| / measured, where *measured* is
  what the prediction claims to be (plan total for DreamShard and NeuroShard and for AutoShard
  with its ``step`` search; the largest device's compute for AutoShard otherwise, whose cost
  head models compute only).

``summary`` names the planner with the lowest geometric-mean ratio over all families (the
candidate default) and each planner's worst family. ``--resume`` keeps the finished
families of an interrupted run with the same settings.

Usage::

    .venv/bin/python benchmarks/sharding_learned.py --eval-count 10 --torchrec --out benchmarks/results/sharding_learned.json
    .venv/bin/python benchmarks/sharding_learned.py --quick --out /tmp/sl.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.sharding.autoshard.planner import SEARCH_TOKENS as AUTOSHARD_TOKENS  # noqa: E402
from embedlab.sharding.comm import CommModel, calibrate  # noqa: E402
from embedlab.sharding.cost import CostMeter, MeterSettings, balanced_estimate_from  # noqa: E402
from embedlab.sharding.dreamshard.planner import SEARCH_TOKENS  # noqa: E402
from embedlab.sharding.generator import gen_tasks  # noqa: E402
from embedlab.sharding.planners import HEURISTICS, Infeasible, get_planner  # noqa: E402

LEARNED = ("dreamshard", "autoshard", "neuroshard")
FAMILIES = [("dreamshard", 20, 4), ("dreamshard", 50, 4), ("dreamshard", 100, 4), ("dreamshard", 200, 4),
            ("dreamshard", 50, 2), ("dreamshard", 50, 8), ("neuroshard", 40, 4)]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-count", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--split", default="test", help="table pool split: valid (to choose) or test (to report)")
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
    ap.add_argument("--candidate", action="append", default=[],
                    help="NAME=DIR[@SEARCH]: a candidate model beside the shipped one, planned like the registered "
                         "planner NAME's prefix or with SEARCH (e.g. dreamshard-retrained=DIR: --planner dreamshard "
                         "with model DIR; neuroshard-x=DIR@input-refine20).")  # fmt: skip
    ap.add_argument("--dreamshard-variants", default="",
                    help=f"Comma-separated planning-time searches of the DreamShard model, each {SEARCH_TOKENS}: "
                         "planners dreamshard-VARIANT.")  # fmt: skip
    ap.add_argument("--autoshard-variants", default="",
                    help=f"Comma-separated AutoShard searches, each {AUTOSHARD_TOKENS}: planners autoshard-VARIANT.")
    ap.add_argument("--neuroshard-variants", default="",
                    help="Comma-separated NeuroShard searches, tokens joined with '-': refineK (K steps of descent on "
                         "the simulated cost after its beam search; refine0: none), input (the simulator adds the "
                         "input all-to-all); e.g. input-refine20: planners neuroshard-VARIANT.")  # fmt: skip
    ap.add_argument("--portfolio", action="store_true",
                    help="Also the measured portfolio (the default planner), with the family's comm model.")  # fmt: skip
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--resume", action="store_true", help="Keep finished families of --out.")
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
    old = _resumable(args)
    kept = {int(d): CommModel(**m) for d, m in old.get("comm_models", {}).items()}
    comms = {d: kept.get(d) or calibrate(d) for d in sorted({d for _, _, d in families}) if d > 1}
    names = [*HEURISTICS, *(["torchrec"] if args.torchrec else []), *LEARNED]
    planners = {n: get_planner(n, models.get(n)) for n in names}
    planners.update(_candidates(args.candidate, ap))
    planners.update(_variants("dreamshard", args.dreamshard_variants, models.get("dreamshard")))
    planners.update(_variants("autoshard", args.autoshard_variants, models.get("autoshard")))
    planners.update(_variants("neuroshard", args.neuroshard_variants, models.get("neuroshard")))
    results = list(old.get("results", []))
    done = {(r["family"], r["tables"], r["devices"]) for r in results}
    for fam, n, d in families:
        if (fam, n, d) in done:
            print(f"{fam} DLRM-{n} ({d}): kept from {args.out}", flush=True)
            continue
        tasks = gen_tasks(fam, n, d, args.eval_count, seed=1, split=args.split)
        ratio: dict[str, list[float]] = {}
        bound_ratio: dict[str, list[float]] = {}
        plan_s: dict[str, list[float]] = {}
        best: dict[str, int] = {}
        infeasible: dict[str, int] = {}
        col_split: dict[str, int] = {}
        per_task: list[dict[str, Any]] = []
        model_err: dict[str, list[float]] = {}
        family_planners = dict(planners)
        if args.portfolio:
            from embedlab.sharding.portfolio import PortfolioPlanner, PortfolioSettings

            family_planners["portfolio"] = PortfolioPlanner(
                comms.get(d), PortfolioSettings(batch_size=args.batch, repeats=args.repeats)
            )
        for k, task in enumerate(tasks):
            plans = {}
            for name, planner in family_planners.items():
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
            bound = balanced_estimate_from(
                [c.total_ms for c in singles.values()], d
            ) + meter.comm_lower_bound(task)
            feasible_h = [c.total_ms for name, c in costs.items() if name in HEURISTICS]
            if not feasible_h:
                continue
            best_h = min(feasible_h)
            lowest = min(c.total_ms for c in costs.values())
            per_task.append({"task": task.name, "bound_ms": bound,
                             "cost_ms": {name: c.total_ms for name, c in costs.items()}})  # fmt: skip
            for name, c in costs.items():
                est = plans[name].estimated_cost_ms
                if est is not None and _learned(name):
                    target = _predicted_quantity(family_planners[name], c)
                    model_err.setdefault(name, []).append(abs(est - target) / target)
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
        fam_best = _family_best_heuristic(per_task)
        row["family_best_heuristic"] = fam_best
        for name in ratio:
            r = ratio[name]
            row["planners"][name] = {
                **_paired_ratio(per_task, name, fam_best),
                "ratio_to_best_heuristic": statistics.fmean(r),
                "ratio_to_best_heuristic_sd": statistics.stdev(r) if len(r) > 1 else 0.0,
                "ratio_to_estimate": statistics.fmean(bound_ratio[name]),
                "planning_s": statistics.fmean(plan_s[name]),
                "planning_s_max": max(plan_s[name]),
                "share_best": best.get(name, 0) / len(r),
                "tasks_with_column_splits": col_split.get(name, 0),
            }
            if name in model_err:
                row["planners"][name]["cost_model_mape"] = statistics.fmean(model_err[name])
            vs = [t["cost_ms"][name] / t["cost_ms"]["torchrec"] for t in per_task
                  if name in t["cost_ms"] and "torchrec" in t["cost_ms"]]  # fmt: skip
            if vs:
                row["planners"][name]["vs_torchrec"] = {"mean": statistics.fmean(vs), "max": max(vs),
                                                        "slower_tasks": sum(v > 1 for v in vs), "tasks": len(vs)}  # fmt: skip
        row["infeasible"] = infeasible
        row["per_task"] = per_task
        results.append(row)
        line = ", ".join(
            f"{k} {v['ratio_to_family_best_heuristic']:.3f}"
            for k, v in row["planners"].items()
            if _learned(k) or k == "portfolio"
        )
        print(f"{fam} DLRM-{n} ({d}) vs {fam_best}: {line}", flush=True)
        write_json(args.out, _doc(args, results, comms, t0, False))
    doc = _doc(args, results, comms, t0, True)
    write_json(args.out, doc)
    return doc


def _learned(name: str) -> bool:
    """A learned planner, or a variant or candidate of one (``--dreamshard-variants``, ``--candidate``, ...)."""
    return name in LEARNED or name.startswith(tuple(f"{n}-" for n in LEARNED))


def _searched(base: str, model: str | None, search: str, name: str) -> Any:
    """The learned planner ``base`` with ``model`` (None: the shipped one) and the
    planning-time ``search`` named by its tokens, called ``name``."""
    from embedlab.sharding.autoshard import planner as autoshard
    from embedlab.sharding.dreamshard.planner import DreamShardPlanner, search_options
    from embedlab.sharding.neuroshard.planner import NeuroShardPlanner, search_settings

    if base == "dreamshard":
        return DreamShardPlanner(model, name=name, **search_options(search))
    if base == "autoshard":
        return autoshard.AutoShardPlanner(model, name=name, **autoshard.search_options(search))  # type: ignore[arg-type]
    return NeuroShardPlanner(model, search_settings(search), name=name)


def _candidates(specs: list[str], ap: argparse.ArgumentParser) -> dict[str, Any]:
    """``--candidate NAME=DIR[@SEARCH]`` planners: the registered learned planner ``NAME``'s
    prefix with the model in ``DIR`` -- its default search, or ``SEARCH`` (a DreamShard or
    NeuroShard search name) -- called ``NAME``."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, _, where = spec.partition("=")
        folder, _, search = where.partition("@")
        base = name.split("-", 1)[0]
        if base not in LEARNED or "-" not in name or not folder:
            ap.error(f"--candidate {spec!r}: expected NAME=DIR[@SEARCH] with NAME one of {', '.join(LEARNED)} "
                     "plus a suffix, e.g. dreamshard-retrained=DIR")  # fmt: skip
        if search:
            out[name] = _searched(base, folder, search, name)
        else:
            out[name] = get_planner(base, folder)
            out[name].name = name
    return out


def _variants(base: str, spec: str, model: str | None) -> dict[str, Any]:
    """``BASE-VARIANT`` planners of ``--dreamshard-variants``, ``--autoshard-variants`` and
    ``--neuroshard-variants`` (the same model, another search)."""
    return {f"{base}-{v}": _searched(base, model, v, f"{base}-{v}") for v in filter(None, spec.split(","))}


def _predicted_quantity(planner: Any, cost: Any) -> float:
    """The measured value a planner's ``estimated_cost_ms`` predicts (see the module doc)."""
    if getattr(planner, "predicts", "step") == "compute":
        return max(p.fwd_ms + p.bwd_ms for p in cost.devices)
    return cost.total_ms


def _family_best_heuristic(per_task: list[dict[str, Any]]) -> str:
    """The heuristic with the lowest mean cost over the tasks where every heuristic planned."""
    ok = [t["cost_ms"] for t in per_task if all(h in t["cost_ms"] for h in HEURISTICS)]
    return min(HEURISTICS, key=lambda h: statistics.fmean(c[h] for c in ok))


def _paired_ratio(per_task: list[dict[str, Any]], name: str, ref: str) -> dict[str, Any]:
    """Mean cost ratio of ``name`` to ``ref`` over the tasks both planned, with a 95%
    t-interval of the mean log ratio (exponentiated)."""
    logs = [math.log(t["cost_ms"][name] / t["cost_ms"][ref]) for t in per_task
            if name in t["cost_ms"] and ref in t["cost_ms"]]  # fmt: skip
    if not logs:
        return {"ratio_to_family_best_heuristic": None, "ratio_to_family_best_heuristic_ci95": None}
    mean = statistics.fmean(logs)
    half = (
        _t975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
        if len(logs) > 1
        else math.inf
    )
    return {"ratio_to_family_best_heuristic": statistics.fmean(math.exp(x) for x in logs),
            "ratio_to_family_best_heuristic_geo": math.exp(mean),
            "ratio_to_family_best_heuristic_ci95": [math.exp(mean - half), math.exp(mean + half)]}  # fmt: skip


def _t975(df: int) -> float:
    """Two-sided 95% Student t quantile (scipy-free; exact table to 30, normal beyond)."""
    table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
             2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
             2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip
    return table[df - 1] if 1 <= df <= len(table) else 1.96


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometric-mean ratio to each family's best heuristic over all families, and the worst."""
    names = set.intersection(*(set(r["planners"]) for r in results)) if results else set()
    out: dict[str, Any] = {}
    for name in sorted(names):
        vals = [(r["planners"][name].get("ratio_to_family_best_heuristic_geo"),
                 f"{r['family']}:{r['tables']}x{r['devices']}") for r in results]  # fmt: skip
        vals = [(v, f) for v, f in vals if v is not None]
        if len(vals) < len(results):
            continue
        worst = max(vals)
        out[name] = {"geo_mean_ratio": math.exp(statistics.fmean(math.log(v) for v, _ in vals)),
                     "worst_family": worst[1], "worst_ratio": worst[0]}  # fmt: skip
    best = min(out, key=lambda k: out[k]["geo_mean_ratio"]) if out else None
    return {"planners": out, "lowest_geo_mean": best}


def _resumable(args: argparse.Namespace) -> dict[str, Any]:
    """An interrupted run with the same settings (``--resume``): its finished family rows
    are kept and its all-to-all models reused, so old and new rows share one backend."""
    path = Path(args.out)
    if not args.resume or not path.exists():
        return {}
    old = json.loads(path.read_text())
    keep = ("batch", "eval_count", "repeats", "torchrec", "model_dir", "candidate", "quick", "split", "dreamshard_variants",
            "autoshard_variants", "neuroshard_variants", "portfolio")
    was = {"candidate": [], "autoshard_variants": "", **old.get("settings", {})}  # files written before these existed
    if any(was.get(k) != getattr(args, k) for k in keep):
        sys.exit(f"error: {path} was written with other settings; drop --resume or change --out")
    return old


def _doc(args, results, comms, t0, complete):  # noqa: ANN001, ANN202
    return {"benchmark": "learned sharding planners vs heuristics, one backend, interleaved", "complete": complete,
            "summary": _summary(results),
            "command": " ".join(["python", *map(shlex.quote, sys.argv)]), "machine": describe(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "settings": vars(args),
            "comm_models": {d: m.to_json() for d, m in comms.items()}, "results": results,
            "wall_s": time.perf_counter() - t0}  # fmt: skip


if __name__ == "__main__":
    main()
