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
