"""Scaling-law experiment for ``embedlab reproduce``: a data-size sweep and its fit."""

from __future__ import annotations

from embedlab.data.synth import SynthConfig, default_cardinalities
from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.experiments.training import synth_data
from embedlab.scaling.analysis import column, fit_runs
from embedlab.scaling.laws import extrapolation_check
from embedlab.scaling.plot import plot_fit
from embedlab.scaling.sweep import SweepSpec, run_sweep
from embedlab.train.trainer import TrainConfig


@register_experiment(
    "scaling-data", "Data-size scaling law on planted-truth data vs the Bayes limit", "scaling"
)
def scaling_data(ctx: ExperimentContext) -> ExperimentResult:
    """Six nested training-set sizes over 32x, one pass each (Adagrad, dim 32: a DLRM that
    can represent the teacher without interactions, see ``benchmarks/scaling.py``); ``test_ne = a n^(-alpha) + c``
    with bootstrap intervals, ``c`` against the generator's Bayes NE, and the two largest
    sizes predicted from a fit on the four smallest."""
    rows, cap, model = (1 << 18, 300, "32:64-32:64-32") if ctx.quick else (1 << 21, 2000, "32:128-64:128-64")  # fmt: skip
    if ctx.smoke:
        rows = 1 << 15
    cfg = SynthConfig(rows=rows, valid_rows=max(rows // 32, 4096), test_rows=max(rows // 16, 8192), seed=0,
                      cardinalities=default_cardinalities(cap), interaction_std=0.0)  # fmt: skip
    data = synth_data(ctx.out / "data", cfg)
    bayes = float(data.info["bayes_test_ne"])
    base = TrainConfig(data="synth", data_options={"data_dir": str(ctx.out / "data")}, model_size=model,
                       optimizer="adagrad", lr=0.01, batch_size=512, epochs=1, checkpoint_every=0, threads=1)  # fmt: skip
    sizes = tuple(sorted({round(rows / 2**k) for k in range(6)}))
    spec = SweepSpec("data", {"train_rows": sizes}, tuple(ctx.seeds), base)
    run_rows = run_sweep(spec, ctx.out / "sweep", data=data, show_progress=ctx.show_progress)
    fit, doc = fit_runs(run_rows, "samples", "test_ne", bootstrap=500, seed=0)
    xs, ys = column(run_rows, "train_samples"), column(run_rows, "test_ne")
    check = extrapolation_check(xs, ys, bootstrap=200, seed=0)
    plot_fit(xs, ys, fit, ctx.out / "scaling_data.png", reference=bayes)
    nan = float("nan")
    ci = tuple(nan if v is None else v for v in fit.intervals.get("c", (nan, nan)))
    table = [
        [f"{x:.0f}", float(ys[xs == x].mean()), len(ys[xs == x])] for x in sorted(set(xs.tolist()))
    ]
    c_ok = "c" not in fit.at_bound  # c on its cap: no asymptote identified, no comparison
    rel = (fit.c - bayes) / bayes if c_ok else nan
    end = lambda v: "open" if v != v else f"{v:.4f}"  # noqa: E731  (nan: an open end)
    law = (f"test NE = {fit.a:.3g} n^(-{fit.alpha:.3f}) + {fit.c:.4f} [{end(ci[0])}, {end(ci[1])}]; "
           f"Bayes NE {bayes:.4f} ({rel:+.1%})") if fit.identified else (
           f"not a law: {', '.join(fit.at_bound)} on a bound of the fit (c {fit.c:.4f}), not identified; "
           f"Bayes NE {bayes:.4f}")  # fmt: skip
    return ExperimentResult(
        summary=(f"{law}; 2 largest sizes predicted within {check['max_abs_relative_error_mean']:.2%}"),
        tables=[Table(f"model {model}, Adagrad lr 0.01, batch 512, one pass, seeds {list(ctx.seeds)}",
                      ["training samples", "mean test NE", "runs"], table)],
        plots=["scaling_data.png"],
        metrics={"alpha": fit.alpha, "c": fit.c, "identified": float(fit.identified), "c_low": ci[0], "c_high": ci[1], "bayes_test_ne": bayes,
                 "c_relative_error": rel, "extrapolation_error": check["max_abs_relative_error_mean"]},
        notes="benchmarks/scaling.py runs the full data and parameter sweeps with a validated learning rate.",
    )  # fmt: skip
