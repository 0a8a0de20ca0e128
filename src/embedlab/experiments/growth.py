"""Growth-and-pruning experiment for ``embedlab reproduce``."""

from __future__ import annotations

import statistics

from embedlab.data.synth import SynthConfig, default_cardinalities
from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.experiments.training import run_or_load, synth_data
from embedlab.report.plots import bar_plot
from embedlab.train.trainer import TrainConfig


@register_experiment(
    "growth-pruning", "Alternate growth and pruning vs dense and prune-only (DLRM MLPs)", "growth"
)
def growth_pruning(ctx: ExperimentContext) -> ExperimentResult:
    """Dense, prune-only and growth-pruning at sparsity 0.5 on planted-truth data (schedule
    defaults); training FLOPs, wall time, test NE and the final model's size."""
    rows, cap, model = (
        (100_000, 5_000, "16:256-64:256-64") if ctx.quick else (400_000, 20_000, "kaggle")
    )
    if ctx.smoke:
        rows = 10_000
    data = synth_data(
        ctx.out / "data", SynthConfig(rows=rows, seed=0, cardinalities=default_cardinalities(cap))
    )
    bayes = float(data.info["bayes_test_ne"])
    base = TrainConfig(data="synth", data_options={"data_dir": str(ctx.out / "data")}, model_size=model,
                       optimizer="adagrad", lr=0.03, batch_size=512, epochs=1, checkpoint_every=0, threads=1)  # fmt: skip
    schemes = [
        ("dense", {}),
        ("prune-only", {"sparsity": 0.5}),
        ("growth-pruning", {"sparsity": 0.5}),
    ]
    res: dict[str, list[dict]] = {}
    for seed in ctx.seeds:
        for name, opts in schemes:
            cfg = TrainConfig(
                **{**base.to_dict(), "seed": seed, "scheme": name, "scheme_options": opts}
            )
            res.setdefault(name, []).append(
                run_or_load(cfg, ctx.out / f"{name}-s{seed}", data, ctx.show_progress)
            )
    mean = lambda name, k: statistics.fmean(m[k] for m in res[name])  # noqa: E731
    rows_t = [[n, mean(n, "test_ne"), mean(n, "test_ne") - bayes, mean(n, "train_flops") / mean("dense", "train_flops"),
               mean(n, "wall_time_s") / mean("dense", "wall_time_s"), int(res[n][0]["params_dense"])]
              for n, _ in schemes]  # fmt: skip
    plot = bar_plot(ctx.out / "growth.png", [r[0] for r in rows_t], [r[1] for r in rows_t], title="test NE at sparsity 0.5",
                    ylabel="test NE", ylim=(min(r[1] for r in rows_t) - 0.01, max(r[1] for r in rows_t) + 0.01))  # fmt: skip
    gp = rows_t[2]
    return ExperimentResult(
        summary=(f"growth-pruning at 0.5: {1 - gp[3]:.0%} fewer training FLOPs, {1 - gp[4]:.0%} less wall time, "
                 f"test NE {gp[1]:.4f} vs dense {rows_t[0][1]:.4f} and prune-only {rows_t[1][1]:.4f}; ends full size"),
        tables=[Table(f"model {model}, Adagrad 0.03, one pass over {rows} rows, seeds {list(ctx.seeds)}",
                      ["scheme", "test NE", "NE - Bayes", "FLOPs / dense", "wall / dense", "final dense params"], rows_t)],
        plots=[plot.name],
        metrics={"growth_ne": gp[1], "dense_ne": rows_t[0][1], "prune_only_ne": rows_t[1][1], "growth_flops_ratio": gp[3],
                 "growth_wall_ratio": gp[4]},
        notes="benchmarks/growth.py runs all sparsities, MovieLens and recurring training on a drifted day.",
    )  # fmt: skip
