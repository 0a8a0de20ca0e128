"""``embedlab online``: prequential training under temporal shift (batch update, FGD, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedlab.errors import UserError

app = typer.Typer(
    help="Online training under temporal shift: run, strategies, plot.", no_args_is_help=True
)


@app.command("strategies")
def strategies_cmd() -> None:
    """List the update strategies."""
    from embedlab.online.strategies import strategy_summaries

    for name, text in strategy_summaries().items():
        typer.echo(f"{name:17s} {text}")


@app.command("run")
def run_cmd(
    data: str = typer.Option(
        "synth", "--data", help="synth (drifting planted truth) or movielens."
    ),
    strategy: str = typer.Option(
        "batch-update",
        "--strategy",
        help="A strategy, or several comma-separated (see `online strategies`).",
    ),
    strategy_options: str | None = typer.Option(
        None, "--strategy-options", help="KEY=VALUE,... for the strategy (e.g. scale=1,lags=3)."
    ),
    period: str = typer.Option("week", "--period", help="movielens: week or month."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="movielens: folder of ml-100k.*"),
    drift: str = typer.Option("smooth", "--drift", help="synth: none, smooth, abrupt or periodic."),
    drift_scale: float = typer.Option(
        1.0, "--drift-scale", help="synth: rotation of the teacher (radians)."
    ),
    periods: int = typer.Option(30, "--periods", help="synth: number of periods."),
    rows: int = typer.Option(50_000, "--rows", help="synth: rows per period."),
    cap: int = typer.Option(200, "--cap", help="synth: largest table size."),
    model_size: str = typer.Option(
        "tiny", "--model-size", help="tiny, small, kaggle or DIM:BOTTOM:TOP."
    ),
    optimizer: str = typer.Option("adagrad", "--optimizer", help="adagrad, sgd or adam."),
    lr: float = typer.Option(0.1, "--lr", help="Adagrad learning rate (0.1: chosen on validation)."),
    epochs: int = typer.Option(1, "--epochs", help="Passes over each new period."),
    warmup_epochs: int = typer.Option(2, "--warmup-epochs", help="Passes over period 0."),
    batch_size: int = typer.Option(256, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads"),
    out: Path = typer.Option(
        ..., "--out", help="Run folder (one subfolder per strategy if several)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Train online, scoring each period before training on it; resumable."""
    from embedlab.online.periods import DriftConfig
    from embedlab.online.plot import plot_runs
    from embedlab.online.protocol import OnlineConfig, read_periods, run_online
    from embedlab.online.strategies import strategy_names
    from embedlab.options import parse_options

    names = [s.strip() for s in strategy.split(",") if s.strip()]
    if not names:
        raise UserError("--strategy names no strategy")
    for n in names:
        if n not in strategy_names():
            raise UserError(f"unknown strategy {n!r}; valid: {', '.join(strategy_names())}")
    opts = parse_options(strategy_options, "strategy")
    if opts and len(names) > 1:
        raise UserError("--strategy-options applies to one strategy; run them one at a time")
    data_options = {"data_dir": str(data_dir)} if data_dir is not None else {}
    if data_dir is not None and data != "movielens":
        raise UserError("--data-dir is for --data movielens")
    if data == "synth":
        drift_cfg = DriftConfig(
            periods=periods, rows=rows, drift=drift, drift_scale=drift_scale, cap=cap, seed=seed
        )
    else:
        drift_cfg = DriftConfig()  # not used (and not recorded) for timestamped data
    cfgs = [
        OnlineConfig(
            data=data, strategy=n, strategy_options=opts, period=period, drift=drift_cfg,
            data_options=data_options, model_size=model_size, optimizer=optimizer, lr=lr, epochs=epochs,
            warmup_epochs=warmup_epochs, batch_size=batch_size, seed=seed, threads=threads,
        )
        for n in names
    ]  # fmt: skip
    stream = cfgs[0].stream()
    summary = {}
    for cfg in cfgs:
        run_dir = out if len(cfgs) == 1 else out / cfg.strategy
        m = run_online(cfg, run_dir, stream=stream, show_progress=not no_progress)
        summary[cfg.strategy] = m
        line = f"{cfg.strategy}: next-period AUC {m['mean_next_period_auc']:.4f}, NE {m['mean_next_period_ne']:.4f}"
        if "mean_bayes_ne" in m:
            line += f" (Bayes NE {m['mean_bayes_ne']:.4f})"
        typer.echo(line + f" -> {run_dir}/metrics.json")
    if len(cfgs) > 1:
        plot_runs(
            {c.strategy: read_periods(out / c.strategy) for c in cfgs},
            out / "online.png",
            title=stream.name,
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        typer.echo(f"plot of every strategy -> {out}/online.png")


@app.command("plot")
def plot_cmd(
    runs: list[Path] = typer.Argument(..., help="Online run folders."),
    out: Path = typer.Option(..., "--out", help="PNG file."),
) -> None:
    """AUC and NE over time of several runs in one figure (labelled by strategy)."""
    from embedlab.io import read_json
    from embedlab.online.plot import plot_runs
    from embedlab.online.protocol import read_periods

    series = {}
    for r in runs:
        cfg = read_json(r / "config.json") if (r / "config.json").exists() else {}
        label = cfg.get("strategy", r.name)
        if label in series:
            label = f"{label} ({r.name})"
        series[label] = read_periods(r)
    plot_runs(series, out)
    typer.echo(f"-> {out}")
