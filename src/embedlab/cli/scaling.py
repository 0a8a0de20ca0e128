"""``embedlab scaling``: sweeps, power-law-plus-constant fits and predictions."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedlab.errors import UserError

app = typer.Typer(help="Scaling laws: sweep, fit, predict.", no_args_is_help=True)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not out:
        raise UserError("--seeds names no seed")
    return out


@app.command("sweep")
def sweep_cmd(
    axis: str = typer.Option(
        ..., "--axis", help="params, data or compute (picks the default grid)."
    ),
    grid: list[str] = typer.Option(
        [],
        "--grid",
        help="KEY=V1,V2,... (repeatable; keys dim, width, hash_rows, model, train_rows; "
        "integers also as geom:LO:HI:N). Default: six points over 32x on the axis.",
    ),
    data: str = typer.Option("synth", "--data", help="synth, movielens or criteo."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Synthetic data folder."),
    train: Path | None = typer.Option(None, "--train", help="Criteo: training TSV."),
    valid: Path | None = typer.Option(None, "--valid"),
    test: Path | None = typer.Option(None, "--test"),
    model_size: str = typer.Option(
        "small", "--model-size", help="Base model (tiny, small, kaggle or DIM:BOTTOM:TOP)."
    ),
    optimizer: str = typer.Option("adam", "--optimizer"),
    lr: float | None = typer.Option(None, "--lr"),
    embedding_lr: float | None = typer.Option(None, "--embedding-lr"),
    schedule: str = typer.Option(
        "constant", "--schedule", help="constant, warmup-decay or cosine."
    ),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(512, "--batch-size"),
    seeds: str = typer.Option(
        "0", "--seeds", help="Comma-separated seeds (each grid point once per seed)."
    ),
    threads: int | None = typer.Option(None, "--threads"),
    out: Path = typer.Option(..., "--out", help="Sweep folder (runs/, runs.csv, sweep.json)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Train a grid of DLRMs (resumable: finished runs are kept) and write runs.csv.

    runs.csv keys each run with the grids that contain it (its grid column); a finished run
    of an earlier grid that cannot be read is printed with its reason and listed in
    skipped.csv."""
    from embedlab.cli.train import _config
    from embedlab.data.registry import load_data
    from embedlab.scaling.sweep import (
        AXES,
        SweepSpec,
        default_grid,
        grid_id,
        parse_grid,
        run_sweep,
    )

    if axis not in AXES:
        raise UserError(f"unknown axis {axis!r}; valid: {', '.join(AXES)}")
    base = _config(data, data_dir, train, valid, test, 10_000_000, False, model_size, "auto", optimizer, lr,
                   embedding_lr, schedule, 0, epochs, None, batch_size, 0, 1000, 0, False, threads, False)  # fmt: skip
    parsed = parse_grid(grid)
    loaded = load_data(base.data, **base.data_options)
    if not parsed:
        parsed = default_grid(axis, len(loaded.train))
    spec = SweepSpec(axis=axis, grid=parsed, seeds=_seeds(seeds), base=base)
    n = len(spec.configs())
    typer.echo(
        f"{n} runs: grid {json.dumps({k: list(v) for k, v in parsed.items()})} x seeds {list(spec.seeds)}",
        err=True,
    )
    skipped: list[str] = []

    def on_skip(rid: str, reason: str) -> None:
        skipped.append(rid)
        typer.echo(f"skipped finished run {rid} of an earlier grid: {reason}", err=True)

    rows = run_sweep(spec, out, data=loaded, show_progress=not no_progress, on_skip=on_skip)
    typer.echo(f"{len(rows)} runs of grid {grid_id(spec.grid, spec.seeds)} -> {out}/runs.csv")
    if skipped:
        typer.echo(f"{len(skipped)} finished run(s) of earlier grids left out of runs.csv "
                   f"({', '.join(skipped)}); reasons in {out}/skipped.csv")  # fmt: skip


@app.command("fit")
def fit_cmd(
    runs: Path = typer.Option(..., "--runs", help="runs.csv of a sweep."),
    x: str = typer.Option(
        "params",
        "--x",
        help="params, embedding_params, dense_params, samples, flops or a column; 'a,b' fits the joint law.",
    ),
    y: str = typer.Option("test_ne", "--y", help="The quality column (NE is the paper's)."),
    out: Path = typer.Option(..., "--out", help="Folder for fit.json and fit.png."),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", help="Bootstrap resamples for the intervals."
    ),
    level: float = typer.Option(0.95, "--level"),
    frontier: bool = typer.Option(
        False, "--frontier", help="Fit only the lower envelope (compute laws)."
    ),
    max_x: float | None = typer.Option(
        None, "--max-x", help="Fit only runs with x <= this (hold out the rest)."
    ),
    seed: int = typer.Option(0, "--seed"),
    grid_id: str | None = typer.Option(
        None, "--grid-id", help="Fit only the runs of this grid (runs.csv's grid column)."
    ),
) -> None:
    """Fit y = a * x^(-alpha) + c (or the joint law) with bootstrap intervals and a plot.

    A parameter the fit leaves on a bound (e.g. c at the best run's NE) is reported as not
    identified, with no interval: such a fit is no scaling law."""
    from embedlab.scaling.analysis import column, fit_runs, save_fit, select_grid
    from embedlab.scaling.laws import PowerLawFit
    from embedlab.scaling.sweep import read_runs_csv

    if bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0, got {bootstrap}")
    if not 0 < level < 1:
        raise UserError(f"--level must be in (0, 1), got {level}")
    rows = read_runs_csv(runs)
    fit, doc = fit_runs(rows, x, y, bootstrap=bootstrap, seed=seed, level=level, use_frontier=frontier,
                        max_x=max_x, grid=grid_id)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    save_fit(doc, out / "fit.json")
    iv = fit.intervals
    end = lambda v: "open" if v is None else f"{v:.4g}"  # noqa: E731
    fmt = lambda k: (" (on its bound)" if k in fit.at_bound  # noqa: E731
                     else f" [{end(iv[k][0])}, {end(iv[k][1])}]" if k in iv else "")  # fmt: skip
    rows = select_grid(rows, grid_id)  # the plot shows this grid's runs (held-out ones hollow)
    if isinstance(fit, PowerLawFit):
        from embedlab.scaling.plot import plot_fit

        xs, ys = column(rows, fit.x_name), column(rows, fit.y_name)
        held = [r.get("run_id") not in set(doc["runs"]) for r in rows]
        ref = doc.get("reference", {}).get("value")
        plot_fit(xs, ys, fit, out / "fit.png", reference=ref, held_out=held)
        typer.echo(f"{fit.y_name} = {fit.a:.4g}{fmt('a')} * {fit.x_name}^(-{fit.alpha:.4g}{fmt('alpha')}) "
                   f"+ {fit.c:.4g}{fmt('c')}  ({int(level * 100)}% intervals, {fit.n} runs)")  # fmt: skip
    else:
        co = fit.coefficients()
        typer.echo(f"{fit.y_name} = {fit.c:.4g}{fmt('c')} + {co['a']:.4g} * {fit.n_name}^(-{fit.alpha:.4g}{fmt('alpha')}) "
                   f"+ {co['b']:.4g} * {fit.d_name}^(-{fit.beta:.4g}{fmt('beta')})  ({fit.n} runs)")  # fmt: skip
    if not fit.identified:
        typer.echo(f"NOT A LAW: {', '.join(fit.at_bound)} on a bound of the fit, not identified by these "
                   "runs (no interval); c on its upper bound means the curve is flat within the data")  # fmt: skip
    b = fit.bootstrap
    if b.failed:
        typer.echo(f"bootstrap: {b.failed} of {b.drawn} refits failed ({'; '.join(b.errors)}); intervals: {b.intervals}")
    d = fit.diagnostics
    rt = lambda t: f"{t['runs']:.0f} (expected {t['expected']:.1f}, p {t['p_value']:.2f})"  # noqa: E731
    tests = ([f"sign runs {rt(d['runs_test'])}"] if "runs_test" in d else
             [f"sign runs along {k} {rt(t)}" for k, t in d["runs_test_by_axis"].items()])  # fmt: skip
    typer.echo(f"residuals: rms {d['rms_relative_residual']:.2%}, max {d['max_abs_relative_residual']:.2%}, "
               + ", ".join(tests))  # fmt: skip
    h = doc.get("holdout")
    if h is not None:
        typer.echo(f"held out: {h['skipped']}" if "skipped" in h else
                   f"held out ({h['scheme']}): {len(h['held_out'])} runs predicted within "
                   f"{h['max_abs_relative_error']:.2%}")  # fmt: skip
    if "reference" in doc:
        r = doc["reference"]
        if not r["c_identified"]:
            typer.echo(f"{r['name']} {r['value']:.4f}: c is not identified, no comparison")
        else:
            cover = {True: "covers", False: "misses", None: "(none) cannot cover"}[r["c_interval_covers"]]
            typer.echo(f"{r['name']} {r['value']:.4f}: c is {r['c_relative_error']:+.2%} off; interval {cover} it")
    typer.echo(f"-> {out}/fit.json")


@app.command("predict")
def predict_cmd(
    fit: Path = typer.Option(
        ..., "--fit", help="fit.json (or its folder) from `embedlab scaling fit`."
    ),
    at: list[str] = typer.Option(..., "--at", help="x value (repeatable); joint law: N,D."),
    level: float | None = typer.Option(
        None, "--level", help="Interval level (default: the fit's)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What y at x = ...: the prediction, the band of the law, and the range of one new run."""
    from embedlab.scaling.analysis import load_fit
    from embedlab.scaling.laws import JointFit

    law = load_fit(fit)
    if level is not None and not 0 < level < 1:
        raise UserError(f"--level must be in (0, 1), got {level}")
    results = []
    for text in at:
        try:
            vals = [float(v) for v in text.split(",")]
        except ValueError:
            raise UserError(f"--at takes numbers, got {text!r}") from None
        need = 2 if isinstance(law, JointFit) else 1
        if len(vals) != need or any(not v > 0 for v in vals):
            raise UserError(f"--at needs {need} positive number(s) for this fit, got {text!r}")
        p = law.predict(*vals, level=level) if need == 2 else law.predict(vals[0], level=level)
        first = lambda iv: None if iv is None else [iv[0][0], iv[1][0]]  # noqa: E731
        results.append({"at": vals, "prediction": p["prediction"][0], "band": first(p["band"]),
                        "run": first(p["run"]), "level": p["level"], "identified": law.identified,
                        "at_bound": list(law.at_bound)})  # fmt: skip
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    if not law.identified:
        typer.echo(f"warning: {', '.join(law.at_bound)} of this fit sit on a bound (not identified); "
                   "these are not predictions of a scaling law", err=True)  # fmt: skip
    for r in results:
        at_s = ",".join(f"{v:.4g}" for v in r["at"])
        if r["band"] is None:
            typer.echo(f"at {at_s}: {r['prediction']:.4f} (no interval: too many bootstrap refits failed)")
            continue
        typer.echo(f"at {at_s}: {r['prediction']:.4f} (law {int(r['level'] * 100)}%: [{r['band'][0]:.4f}, {r['band'][1]:.4f}]; "
                   f"one run: [{r['run'][0]:.4f}, {r['run'][1]:.4f}])")  # fmt: skip
