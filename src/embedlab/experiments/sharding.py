"""Sharding experiment for ``embedlab reproduce``: every planner on generated tasks, measured
by the CostMeter, then one plan run for real under TorchRec's ``DistributedModelParallel``.

Protocol (the benchmarks' protocol at a small size; ``docs/sharding.md`` has the full one):

1. tasks of the ``dreamshard`` family (DLRM-like tables from the *test* part of the table
   pool, which no shipped model was trained on) on 2 devices;
2. one plan per task from every planner in :data:`PLANNERS`: the heuristics, the three
   learned ones with their shipped models, the measured portfolio (the default planner)
   and TorchRec's planner (``hill_climb`` is left out: it times kernels for 120 s per task);
3. one 2-process run (``embedlab shard run``: torchrun, gloo, :func:`~embedlab.sharding.run.run_plan`)
   of the default planner's plan on the first task; it calibrates the all-to-all model in
   its process group and reports each rank's measured phases beside the CostMeter's
   prediction;
4. every plan of every task timed by one CostMeter, interleaved per task (the same
   all-to-all model as the run, so communication counts alike for every plan); each cost is
   reported as a ratio to the task's best heuristic plan, and the geometric mean over
   tasks is charted.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.io import read_json
from embedlab.report.plots import bar_plot

#: Planners compared (``hill_climb``, a measured search of minutes per task, is not).
PLANNERS = (
    "random", "round_robin", "dim_greedy", "size_greedy", "lookup_greedy", "size_lookup_greedy",
    "dreamshard", "autoshard", "neuroshard", "portfolio", "torchrec",
)  # fmt: skip


def _kind(name: str) -> str:
    if name in ("dreamshard", "autoshard", "neuroshard"):
        return "learned"
    return {"torchrec": "TorchRec", "portfolio": "measured portfolio"}.get(name, "heuristic")


def _plan_portfolio(tasks: list, s: dict[str, Any]) -> list:
    """The default planner's plans, its meter at the experiment's batch and repeats; the
    communication model is the one shipped with DreamShard's default model (the run that
    calibrates this machine's comes after planning)."""
    from embedlab.sharding.portfolio import PortfolioPlanner, PortfolioSettings, default_comm

    planner = PortfolioPlanner(default_comm(), PortfolioSettings(batch_size=s["batch"], repeats=s["repeats"]))
    return [planner.plan(t) for t in tasks]


def _settings(ctx: ExperimentContext) -> dict[str, Any]:
    """Sizes per mode: smoke (CI), quick (``make demo``), full."""
    if ctx.smoke:
        return {"tasks": 1, "tables": 10, "batch": 1024, "repeats": 5, "steps": 3, "warmup": 1}
    if ctx.quick:
        # the meter's time goes mostly to building each device's kernel and drawing its batches
        # (about 10 s per task of 10 plans at batch 4096 on 2 cores), not to the repeats
        return {"tasks": 2, "tables": 20, "batch": 4096, "repeats": 8, "steps": 8, "warmup": 2}
    return {"tasks": 10, "tables": 20, "batch": 4096, "repeats": 15, "steps": 20, "warmup": 3}


def run_under_dmp(task_file: Path, plan_file: Path, task: str, planner: str, out: Path,
                  *, steps: int, warmup: int, batch_size: int, repeats: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """``embedlab shard run`` with 2 processes (it relaunches itself under torchrun); the
    run report it writes (``embedlab.sharding-run/v1``). Its console output goes to
    ``out.with_suffix('.log')``."""
    cmd = [sys.executable, "-m", "embedlab", "shard", "run", "--task", str(task_file), "--name", task,
           "--plan", str(plan_file), "--planner", planner, "--nproc", "2", "--steps", str(steps),
           "--warmup", str(warmup), "--batch-size", str(batch_size), "--repeats", str(repeats),
           "--seed", str(seed), "--out", str(out)]  # fmt: skip
    env = dict(os.environ)
    # the workers import this embedlab, even when it is not the installed one
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    out.with_suffix(".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"embedlab shard run exited {proc.returncode}: " + " | ".join(tail))
    return read_json(out)


def geomean(xs: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(x) for x in xs))


@register_experiment(
    "sharding-planners",
    "Sharding planners measured side by side, and one plan run under DistributedModelParallel",
    "sharding",
)
def sharding_planners(ctx: ExperimentContext) -> ExperimentResult:
    from embedlab.sharding.comm import CommModel
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.planners import DEFAULT_PLANNER, HEURISTICS, plan_all
    from embedlab.sharding.types import save_plans, save_tasks

    s = _settings(ctx)
    seed = ctx.seeds[0]
    tasks = gen_tasks("dreamshard", s["tables"], 2, s["tasks"], seed=seed, split="test")
    plans = {name: _plan_portfolio(tasks, s) if name == "portfolio" else plan_all(tasks, name) for name in PLANNERS}
    save_tasks(ctx.out / "tasks.json", tasks)
    save_plans(ctx.out / "plans.json", [p for ps in plans.values() for p in ps])

    # the real run first: it calibrates the all-to-all model the meter then uses for every plan
    run = run_under_dmp(ctx.out / "tasks.json", ctx.out / "plans.json", tasks[0].name, DEFAULT_PLANNER,
                        ctx.out / "dmp_run.json", steps=s["steps"], warmup=s["warmup"], batch_size=s["batch"],
                        repeats=s["repeats"], seed=seed)  # fmt: skip
    comm = CommModel.from_json(run["comm_model"], "the run's comm model")
    meter = CostMeter(
        MeterSettings(batch_size=s["batch"], repeats=s["repeats"], seed=seed), comm=comm
    )
    ratios: dict[str, list[float]] = {name: [] for name in PLANNERS}
    ms: dict[str, list[float]] = {name: [] for name in PLANNERS}
    for i, task in enumerate(tasks):
        costs = meter.measure_plans(task, [plans[name][i] for name in PLANNERS])  # interleaved
        best_heuristic = min(c.total_ms for name, c in zip(PLANNERS, costs) if name in HEURISTICS)
        for name, c in zip(PLANNERS, costs):
            ratios[name].append(c.total_ms / best_heuristic)
            ms[name].append(c.total_ms)
    rows = [[name, _kind(name), geomean(ratios[name]),
             statistics.fmean(ms[name]), statistics.fmean(p.planning_seconds for p in plans[name])]
            for name in PLANNERS]  # fmt: skip
    plot = bar_plot(ctx.out / "planners.png", list(PLANNERS), [r[2] for r in rows],
                    title=f"Plan cost / best heuristic ({len(tasks)} tasks, geometric mean; lower is better)",
                    ylabel="measured cost / best heuristic",
                    ylim=(min(r[2] for r in rows) * 0.95, max(r[2] for r in rows) * 1.02), hline=1.0)  # fmt: skip

    pred = run["predicted"]
    measured = run["measured_embedding_ms"]
    phase_rows = []
    for r in run["ranks"]:
        d = pred["devices"][r["rank"]] if pred else None
        phase_rows.append([f"rank {r['rank']}", r["input_dist_ms"], r["fwd_compute_ms"], r["fwd_comm_ms"],
                           r["bwd_comm_ms"], r["bwd_compute_ms"], r["embedding_ms"],
                           d["total_ms"] if d else float("nan")])  # fmt: skip
    labels = [f"rank {r['rank']} measured" for r in run["ranks"]] + ["CostMeter prediction"]
    values = [r["embedding_ms"] for r in run["ranks"]] + [
        pred["total_ms"] if pred else float("nan")
    ]
    plot2 = bar_plot(ctx.out / "dmp_predicted_vs_measured.png", labels, values,
                     title=f"{run['planner']} plan under DMP, 2 processes, batch {run['batch_size']}",
                     ylabel="embedding ms per step")  # fmt: skip
    default = dict(zip(PLANNERS, rows))[DEFAULT_PLANNER]
    best_learned = min((r for r in rows if r[1] == "learned"), key=lambda r: r[2])
    ratio = measured / pred["total_ms"] if pred else float("nan")
    return ExperimentResult(
        summary=(f"{best_learned[0]} {best_learned[2]:.3f}× the best heuristic's measured cost, TorchRec's planner "
                 f"{rows[-1][2]:.3f}× (geometric mean, {len(tasks)} tasks); the {DEFAULT_PLANNER} plan under DMP "
                 f"measured {measured:.1f} ms vs {pred['total_ms'] if pred else float('nan'):.1f} ms predicted "
                 f"(×{ratio:.2f})"),
        tables=[
            Table(f"{len(tasks)} dreamshard-family tasks ({s['tables']} tables, 2 devices, test split), CostMeter "
                  f"at batch {s['batch']} with the run's all-to-all model",
                  ["planner", "kind", "cost / best heuristic", "mean cost (ms)", "planning (s)"], rows),
            Table(f"{run['planner']} plan of {run['task']} under DistributedModelParallel ({run['nproc']} processes, "
                  f"{run['backend']}, median of {run['steps']} steps, ms)",
                  ["rank", "input dist", "fwd compute", "fwd comm", "bwd comm", "bwd compute", "embedding",
                   "predicted (device)"], phase_rows),
        ],
        plots=[plot.name, plot2.name],
        metrics={"default_planner_ratio": default[2], "torchrec_ratio": rows[-1][2],
                 "best_learned_ratio": best_learned[2], "dmp_measured_ms": measured,
                 "dmp_predicted_ms": pred["total_ms"] if pred else float("nan"), "dmp_measured_over_predicted": ratio},
        notes=("Measured on a shared CPU machine: ratios within a few percent are noise. The prediction is the "
               "CostMeter (single-process kernels plus the alpha-beta all-to-all model calibrated in the run); "
               "the measurement is each rank's clock under DMP. Full comparison: benchmarks/sharding_learned.py."),
    )  # fmt: skip
