"""``embedlab reproduce``: run every registered experiment and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def reproduce_cmd(
    out: Path = typer.Option(
        Path("reports/latest"), "--out", help="Report folder (index.html, results.json)."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Small, fast versions of every experiment (one seed)."
    ),
    smoke: bool = typer.Option(
        False, "--smoke", help="The smallest setting of every experiment (CI; about 2 minutes)."
    ),
    only: list[str] | None = typer.Option(
        None, "--only", help="Run only these experiments (repeatable)."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds (default 0 quick, 0,1,2 full)."
    ),
    rerun: bool = typer.Option(
        False, "--rerun", help="Ignore finished experiments' cached results."
    ),
    list_: bool = typer.Option(False, "--list", help="List the registered experiments and exit."),
) -> None:
    """Run the registered experiments and write OUT/index.html and OUT/results.json."""
    from embedlab.errors import UserError
    from embedlab.experiments.registry import all_experiments
    from embedlab.experiments.runner import reproduce

    if list_:
        for e in all_experiments().values():
            typer.echo(f"{e.name:24s} {e.capability:12s} {e.title}")
        return
    seed_t = None
    if seeds:
        try:
            seed_t = tuple(int(s) for s in seeds.split(","))
        except ValueError:
            raise UserError(f"--seeds must be comma-separated integers, got {seeds!r}") from None

    def event(kind: str, d: dict[str, Any]) -> None:
        if kind == "start":
            typer.echo(f"▶ {d['name']}: {d['title']} ...", err=True)
        elif kind == "cached":
            typer.echo(f"✓ {d['name']} (finished earlier): {d['result']['summary']}", err=True)
        elif kind == "done":
            if d["status"] == "ok":
                typer.echo(
                    f"✓ {d['name']} ({d['wall_time_s']:.0f}s): {d['result']['summary']}", err=True
                )
            else:
                typer.echo(f"✗ {d['name']} failed: {d['error']}", err=True)

    results = reproduce(
        out, quick=quick, smoke=smoke, only=only or None, seeds=seed_t, rerun=rerun, on_event=event
    )
    ok = sum(r["status"] == "ok" for r in results.values())
    typer.echo(f"{ok}/{len(results)} experiments ok; report: {out}/index.html")
    if ok < len(results):
        raise typer.Exit(1)
