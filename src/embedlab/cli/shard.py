"""``embedlab shard``: sharding tasks and plans (the v1 formats of specs/sharding-formats.md)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Embedding-table sharding: planners and plans.", no_args_is_help=True)


@app.command("planners")
def planners_cmd() -> None:
    """List the registered planners."""
    from embedlab.sharding.planners import PLANNERS

    for name in PLANNERS:
        typer.echo(name)


@app.command("plan")
def plan_cmd(
    tasks: Path = typer.Option(..., "--tasks", help="Task file (embedlab.sharding-tasks/v1)."),
    planner: str = typer.Option(..., "--planner", help="A name from `embedlab shard planners`."),
    out: Path = typer.Option(..., "--out", help="Plan file to write (embedlab.sharding-plans/v1)."),
) -> None:
    """One plan per task, with the planning time recorded; plans are validated."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.planners import plan_all
    from embedlab.sharding.types import load_tasks, save_plans

    ts = load_tasks(tasks)
    plans = plan_all(ts, planner)
    ensure_dir(out.parent if str(out.parent) else Path("."))
    save_plans(out, plans)
    total = sum(p.planning_seconds for p in plans)
    typer.echo(f"{len(plans)} plans by {planner} ({total * 1000:.1f} ms planning) -> {out}")


@app.command("gen-tasks")
def gen_tasks_cmd(
    family: str = typer.Option(..., "--family", help="dreamshard, autoshard or neuroshard."),
    tables: int = typer.Option(..., "--tables", help="Tables per task."),
    devices: int = typer.Option(..., "--devices", help="Devices per task."),
    count: int = typer.Option(10, "--count", help="Number of tasks."),
    seed: int = typer.Option(0, "--seed"),
    split: str = typer.Option(
        "train", "--split", help="train or test half of the table pool (not for neuroshard)."
    ),
    out: Path = typer.Option(..., "--out", help="Task file to write (embedlab.sharding-tasks/v1)."),
) -> None:
    """Tasks of one of the papers' families over the synthetic DLRM-like table pool."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.types import save_tasks

    ts = gen_tasks(family, tables, devices, count, seed=seed, split=split)
    ensure_dir(out.parent if str(out.parent) else Path("."))
    save_tasks(out, ts)
    typer.echo(f"{len(ts)} {family} tasks ({tables} tables, {devices} devices) -> {out}")


@app.command("eval")
def eval_cmd(
    tasks: Path = typer.Option(..., "--tasks", help="Task file (embedlab.sharding-tasks/v1)."),
    plans: Path = typer.Option(
        ..., "--plans", help="Plan file(s) (embedlab.sharding-plans/v1).", exists=False
    ),
    out: Path = typer.Option(..., "--out", help="Costs JSON to write."),
    backend: str = typer.Option("cpu", "--backend"),
    batch_size: int = typer.Option(
        2048, "--batch-size", help="Batch the CPU backend times (recorded)."
    ),
    repeats: int = typer.Option(15, "--repeats", help="Timed iterations per device kernel."),
    rounds: int = typer.Option(
        5, "--rounds", help="Interleaved rounds the repeats are split into."
    ),
    statistic: str = typer.Option(
        "round_min_median", "--statistic", help="round_min_median, min or median of the repeats."
    ),
    budget_s: float | None = typer.Option(
        None, "--budget-s", help="Stop with an error after this many seconds of measuring."
    ),
    comm: Path | None = typer.Option(
        None, "--comm", help="Communication model from `shard calibrate-comm`."
    ),
) -> None:
    """Measure plans with the CostMeter: cost, parts, straggler, ratio to best and to the bound."""
    from embedlab.io import ensure_dir, write_json
    from embedlab.sharding.cost import CostMeter, MeterSettings
    from embedlab.sharding.types import load_plans, load_tasks

    by_name = {t.name: t for t in load_tasks(tasks)}
    all_plans = load_plans(plans)
    from embedlab.sharding.comm import CommModel

    settings = MeterSettings(
        backend=backend, batch_size=batch_size, repeats=repeats, rounds=rounds, statistic=statistic
    )
    meter = CostMeter(settings, comm=CommModel.load(comm) if comm else None, budget_s=budget_s)
    rows = []
    for p in all_plans:
        if p.task not in by_name:
            from embedlab.errors import UserError

            raise UserError(f"{plans}: plan for task {p.task!r}, which is not in {tasks}")
    for name, task in by_name.items():
        mine = [p for p in all_plans if p.task == name]
        if not mine:
            continue
        bound = meter.lower_bound(task)
        costs = meter.measure_plans(task, mine)  # all plans of the task timed interleaved
        best = min(c.total_ms for c in costs)
        typer.echo(f"task {name} (bound {bound:.2f} ms at batch {batch_size}):")
        for c in costs:
            s = c.devices[c.straggler]
            typer.echo(
                f"  {c.planner:20s} {c.total_ms:8.2f} ms  x{c.total_ms / best:5.2f} of best  x{c.total_ms / bound:5.2f} of bound"
                f"  straggler {c.straggler} (fwd {s.fwd_ms:.2f} + comm {s.fwd_comm_ms + s.bwd_comm_ms:.2f}"
                f" + bwd {s.bwd_ms:.2f}, cv {s.cv:.3f})"
            )
            rows.append({**c.to_json(), "ratio_to_best": c.total_ms / best, "lower_bound_ms": bound,
                         "ratio_to_bound": c.total_ms / bound})  # fmt: skip
    ensure_dir(out.parent if str(out.parent) else Path("."))
    write_json(out, {"format": "embedlab.sharding-costs/v1", "costs": rows})
    typer.echo(f"{len(rows)} plan costs -> {out}")


@app.command("calibrate-comm")
def calibrate_comm_cmd(
    nproc: int = typer.Option(2, "--nproc", help="Processes taking part in the all-to-all."),
    repeats: int = typer.Option(10, "--repeats"),
    out: Path = typer.Option(..., "--out", help="JSON of the fitted alpha-beta model."),
) -> None:
    """Time real gloo all_to_all_single calls among local processes and fit alpha/beta."""
    from embedlab.io import ensure_dir
    from embedlab.sharding.comm import calibrate

    if nproc < 2:
        from embedlab.errors import UserError

        raise UserError(f"--nproc must be at least 2, got {nproc}")
    ensure_dir(out.parent if str(out.parent) else Path("."))
    model = calibrate(nproc, repeats=repeats)
    model.save(out)
    typer.echo(
        f"alpha {model.alpha_ms:.3f} ms, beta {model.beta_ms_per_byte * 1e6:.3f} ms/MB ({model.backend}, {nproc} processes) -> {out}"
    )
