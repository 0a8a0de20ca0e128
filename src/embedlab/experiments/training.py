"""Experiments of the foundation: DLRM training on planted-truth data and MovieLens-100k."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedlab.data.registry import CTRData, load_data
from embedlab.data.synth import SynthConfig, config_dict, default_cardinalities, generate
from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.io import read_json
from embedlab.report.plots import bar_plot, line_plot
from embedlab.train.trainer import TrainConfig, saved_config_matches, train


def run_or_load(
    cfg: TrainConfig, out: Path, data: CTRData, show_progress: bool = False
) -> dict[str, Any]:
    """Train unless ``out/metrics.json`` already holds this run's result (resume-friendly)."""
    same = saved_config_matches(out, cfg)
    if same and (out / "metrics.json").is_file():
        return read_json(out / "metrics.json")
    resume = same and (out / "checkpoint.pt").is_file()
    metrics = train(cfg, out, data=data, resume=resume, show_progress=show_progress)
    (out / "checkpoint.pt").unlink(missing_ok=True)  # finished: metrics.json is the record
    return metrics


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def synth_data(folder: Path, cfg: SynthConfig) -> CTRData:
    """Generate (once per configuration) and load planted-truth data."""
    meta = folder / "meta.json"
    if not meta.is_file() or read_json(meta).get("config") != _jsonable(config_dict(cfg)):
        generate(cfg, folder)
    return load_data("synth", data_dir=folder, cache_root=folder / "cache")


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


@register_experiment("dlrm-synth", "DLRM against the Bayes limit on planted-truth data", "training")
def dlrm_synth(ctx: ExperimentContext) -> ExperimentResult:
    """Learning curve: test AUC / NE of the default trainer vs training rows, against the
    Bayes-optimal values of the generator."""
    evals = 50_000
    if ctx.smoke:
        sizes, cap, model, epochs, evals = [10_000, 20_000], 2_000, "small", 1, 5_000
    elif ctx.quick:
        sizes, cap, model, epochs = [50_000, 100_000, 200_000, 400_000], 20_000, "small", 2
    else:
        sizes, cap, model, epochs = [125_000, 250_000, 500_000, 1_000_000], 100_000, "kaggle", 2
    scfg = SynthConfig(rows=max(sizes), valid_rows=evals, test_rows=evals, seed=0,
                       cardinalities=default_cardinalities(cap))  # fmt: skip
    full = synth_data(ctx.out / "data", scfg)
    rows, auc_pts, ne_pts = [], {}, {}
    for n in sizes:
        data = replace(full, train=full.train.take(slice(0, n)))
        runs = []
        for s in ctx.seeds:
            cfg = TrainConfig(
                data="synth", model_size=model, epochs=epochs, seed=s, checkpoint_every=0
            )
            runs.append(run_or_load(cfg, ctx.out / "runs" / f"n{n}-s{s}", data, ctx.show_progress))
        auc_m, auc_s = _mean_std([r["test_auc"] for r in runs])
        ne_m, ne_s = _mean_std([r["test_ne"] for r in runs])
        b_auc, b_ne = full.info["bayes_test_auc"], full.info["bayes_test_ne"]
        rows.append([n, auc_m, auc_s, b_auc, b_auc - auc_m, ne_m, b_ne, ne_m - b_ne])
        auc_pts[n], ne_pts[n] = (auc_m, auc_s), (ne_m, ne_s)
    plot = line_plot(
        ctx.out / "auc_vs_rows.png", {"DLRM (embedlab train defaults)": (sizes, [auc_pts[n][0] for n in sizes])},
        errors={"DLRM (embedlab train defaults)": [auc_pts[n][1] for n in sizes]},
        hlines={"Bayes-optimal AUC": full.info["bayes_test_auc"]}, logx=True,
        title="Planted-truth CTR: test AUC vs training rows", xlabel="training rows", ylabel="test AUC",
    )  # fmt: skip
    plot2 = line_plot(
        ctx.out / "ne_vs_rows.png", {"DLRM": (sizes, [ne_pts[n][0] for n in sizes])},
        hlines={"Bayes-optimal NE": full.info["bayes_test_ne"]}, logx=True,
        title="Planted-truth CTR: test NE vs training rows", xlabel="training rows", ylabel="test NE",
    )  # fmt: skip
    gaps = [r[4] for r in rows]
    return ExperimentResult(
        summary=(f"test AUC {rows[-1][1]:.4f} at {sizes[-1]:,} rows vs Bayes {rows[-1][3]:.4f}; "
                 f"AUC gap {gaps[0]:.4f} → {gaps[-1]:.4f} from {sizes[0]:,} to {sizes[-1]:,} rows"),
        tables=[Table("Learning curve (mean over seeds)",
                      ["train rows", "test AUC", "± std", "Bayes AUC", "AUC gap", "test NE", "Bayes NE", "NE gap"], rows)],
        plots=[plot.name, plot2.name],
        metrics={"final_test_auc": rows[-1][1], "final_auc_gap": gaps[-1], "first_auc_gap": gaps[0],
                 "bayes_test_auc": full.info["bayes_test_auc"]},
        notes=f"synthetic data: 26 Criteo-like features capped at {cap:,} ids, model {model}, {epochs} epochs, Adam.",
    )  # fmt: skip


@register_experiment(
    "dlrm-optimizers", "Embedding optimizers side by side (fused FBGEMM vs sparse)", "training"
)
def dlrm_optimizers(ctx: ExperimentContext) -> ExperimentResult:
    """SGD, Adagrad, row-wise Adagrad (fused into FBGEMM) and Adam (sparse kernel) on the
    same planted-truth data, with their default learning rates."""
    n, cap, model = (100_000, 20_000, "small") if ctx.quick else (500_000, 100_000, "kaggle")
    evals = 20_000
    if ctx.smoke:
        n, cap, evals = 10_000, 2_000, 5_000
    data = synth_data(ctx.out / "data", SynthConfig(rows=n, valid_rows=evals, test_rows=evals, seed=1,
                                                   cardinalities=default_cardinalities(cap)))  # fmt: skip
    table, names, aucs, errs = [], [], [], []
    for opt in ("sgd", "adagrad", "rowwise_adagrad", "adam"):
        runs = [run_or_load(TrainConfig(optimizer=opt, model_size=model, seed=s, epochs=1, checkpoint_every=0),
                            ctx.out / "runs" / f"{opt}-s{s}", data, ctx.show_progress) for s in ctx.seeds]  # fmt: skip
        a_m, a_s = _mean_std([r["test_auc"] for r in runs])
        ne_m, _ = _mean_std([r["test_ne"] for r in runs])
        sps = statistics.median(r["train_samples_per_s"] for r in runs)
        kernel = "fused" if opt != "adam" else "sparse"
        table.append([opt, kernel, runs[0]["cfg_lr"] or "default", a_m, a_s, ne_m, sps])
        names.append(opt), aucs.append(a_m), errs.append(a_s)
    lo = min(aucs) - 0.02
    plot = bar_plot(ctx.out / "optimizers.png", names, aucs, errors=errs, title="Test AUC by embedding optimizer",
                    ylabel="test AUC", ylim=(lo, data.info["bayes_test_auc"] + 0.01))  # fmt: skip
    best = names[aucs.index(max(aucs))]
    return ExperimentResult(
        summary=f"best {best} (test AUC {max(aucs):.4f}); Bayes limit {data.info['bayes_test_auc']:.4f}",
        tables=[Table("One epoch, default learning rates", ["optimizer", "kernel", "lr", "test AUC", "± std", "test NE", "samples/s"], table)],
        plots=[plot.name],
        metrics={f"{nm}_test_auc": a for nm, a in zip(names, aucs)},
        notes="Throughput here is measured inside a training run on a shared machine; see benchmarks/throughput.py for the controlled comparison.",
    )  # fmt: skip


#: DLRM settings for MovieLens-100k, chosen on validation AUC by ``benchmarks/movielens.py``.
MOVIELENS_DLRM: dict[str, Any] = {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "embedding_lr": 1e-4,
                                  "batch_size": 256, "epochs": 1, "tables": "hash", "embedding_init": None,
                                  "early_stop_patience": None}  # fmt: skip


@register_experiment(
    "dlrm-movielens", "MovieLens-100k: DLRM vs popularity and logistic regression", "training"
)
def dlrm_movielens(ctx: ExperimentContext) -> ExperimentResult:
    """Same 80/10/10 time split for all methods; baselines are deterministic."""
    from embedlab.train.baselines import logistic_regression_scores, popularity_scores
    from embedlab.train.metrics import ctr_metrics

    data = load_data("movielens")
    y = {s: data.split(s).labels.astype("float64") for s in ("valid", "test")}
    rows = []
    pop = popularity_scores(data, "item_id")
    m = ctr_metrics(y["test"], pop["test"])
    rows.append(["item popularity", m["auc"], 0.0, m["logloss"]])
    # smoke (CI): one C instead of the validation grid
    lr_probs, lr_info = logistic_regression_scores(data, **({"Cs": (0.01,)} if ctx.smoke else {}))
    m = ctr_metrics(y["test"], lr_probs["test"])
    rows.append([f"logistic regression (C={lr_info['C']})", m["auc"], 0.0, m["logloss"]])
    smoke = {"max_steps": 30} if ctx.smoke else {}  # CI: a few steps show the pipeline runs
    runs = [run_or_load(TrainConfig(data="movielens", seed=s, checkpoint_every=0, **MOVIELENS_DLRM, **smoke),
                        ctx.out / "runs" / f"s{s}", data, ctx.show_progress) for s in ctx.seeds]  # fmt: skip
    a_m, a_s = _mean_std([r["test_auc"] for r in runs])
    l_m, _ = _mean_std([r["test_logloss"] for r in runs])
    rows.append(["DLRM (TorchRec)", a_m, a_s, l_m])
    plot = bar_plot(ctx.out / "movielens.png", ["popularity", "log. regression", "DLRM"], [r[1] for r in rows],
                    errors=[r[2] for r in rows], title="MovieLens-100k, time split: test AUC", ylabel="test AUC",
                    ylim=(0.6, max(r[1] for r in rows) + 0.03))  # fmt: skip
    return ExperimentResult(
        summary=f"DLRM test AUC {a_m:.4f} vs popularity {rows[0][1]:.4f} and logistic regression {rows[1][1]:.4f}",
        tables=[Table("Test metrics (DLRM: mean over seeds)", ["method", "test AUC", "± std", "test logloss"], rows)],
        plots=[plot.name],
        metrics={"dlrm_test_auc": a_m, "popularity_test_auc": rows[0][1], "logreg_test_auc": rows[1][1]},
        notes=(f"DLRM settings {MOVIELENS_DLRM} chosen on validation AUC (benchmarks/movielens.py). "
               "DLRM and the logistic regression see the causal history features (strictly earlier "
               "ratings, prequential); item popularity is computed on the training split only."),
    )  # fmt: skip
