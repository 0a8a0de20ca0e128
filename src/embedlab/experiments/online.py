"""Future Gradient Descent vs batch update under temporal shift, for ``embedlab reproduce``."""

from __future__ import annotations

import statistics

from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.online.periods import DriftConfig, synth_stream
from embedlab.online.plot import plot_runs
from embedlab.online.protocol import OnlineConfig, read_periods, run_online

STRATEGIES = ("batch-update", "extrapolate", "fgd")


@register_experiment(
    "online-fgd", "Future Gradient Descent vs batch update on periodic drift", "online"
)
def online_fgd(ctx: ExperimentContext) -> ExperimentResult:
    """Prequential next-period NE of batch update, fixed extrapolation and FGD on a
    planted-truth stream whose teacher turns periodically (amplitude 1 rad)."""
    periods, rows = (16, 10_000) if ctx.quick else (30, 50_000)
    if ctx.smoke:
        periods, rows = 8, 3_000
    res: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    bayes = []
    for seed in ctx.seeds:
        drift = DriftConfig(
            periods=periods, rows=rows, drift="periodic", drift_scale=1.0, seed=seed
        )
        stream = synth_stream(drift)
        for s in STRATEGIES:
            cfg = OnlineConfig(strategy=s, drift=drift, seed=seed)
            res[s].append(
                run_online(
                    cfg, ctx.out / f"{s}-s{seed}", stream=stream, show_progress=ctx.show_progress
                )
            )
        bayes.append(res["batch-update"][-1]["mean_bayes_ne"])
    seed0 = ctx.seeds[0]
    plot = plot_runs({s: read_periods(ctx.out / f"{s}-s{seed0}") for s in STRATEGIES}, ctx.out / "online.png",
                     title=f"periodic drift, seed {seed0}")  # fmt: skip
    mean = lambda s, k: statistics.fmean(m[k] for m in res[s])  # noqa: E731
    bu_wall = mean("batch-update", "mean_update_wall_s")
    rows_t = [[s, mean(s, "mean_next_period_auc"), mean(s, "mean_next_period_ne"), mean(s, "mean_ne_gap"),
               mean(s, "mean_update_wall_s") / bu_wall] for s in STRATEGIES]  # fmt: skip
    fgd, bu = rows_t[2], rows_t[0]
    return ExperimentResult(
        summary=(f"FGD next-period NE {fgd[2]:.4f} vs batch update {bu[2]:.4f} (Bayes {statistics.fmean(bayes):.4f}) "
                 f"at {fgd[4]:.2f}x the update time"),
        tables=[Table(f"{periods} periods x {rows} rows, periodic drift, seeds {list(ctx.seeds)}",
                      ["strategy", "next-period AUC", "next-period NE", "NE - Bayes", "update time / BU"], rows_t)],
        plots=[plot.name],
        metrics={"fgd_ne": fgd[2], "bu_ne": bu[2], "extrapolate_ne": rows_t[1][2], "fgd_time_ratio": fgd[4]},
        notes="benchmarks/online.py adds smooth and abrupt drift, MovieLens weeks, full retrain and recency weighting.",
    )  # fmt: skip
