"""FA-SGD and CF-SGD beside SGD and Adagrad on frequency-skewed data, for ``embedlab reproduce``.

The protocol of ``benchmarks/fasgd.py`` at a small size: only the *embedding* optimizer
varies (the MLPs train with Adam at 3e-3), each at the embedding learning rate that
benchmark chose on validation for the same kind of data (:data:`EMBEDDING_LR`; FA-SGD and
CF-SGD with the paper's plain rule, ``lr / count^0.5``), one pass over planted-truth data
whose ids follow Zipf laws with exponents 0.8 to 1.3 (a strong frequency skew). The full
comparison (the learning-rate grids, three seeds, tail rows, step times) is
``benchmarks/fasgd.py``.
"""

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

OPTIMIZERS = ("sgd", "adagrad", "fa-sgd", "cf-sgd")
ZIPF_RANGE = (0.8, 1.3)
#: Embedding learning rates chosen on validation AUC by ``benchmarks/fasgd.py`` on its Zipf
#: 0.8-1.3 synthetic data (``benchmarks/results/fasgd.json``, ``synth-zipf``).
EMBEDDING_LR = {"sgd": 30.0, "adagrad": 0.01, "fa-sgd": 300.0, "cf-sgd": 99.9}
#: The rest of that benchmark's settings (MLPs on Adam; hashed tables; one pass).
SETTINGS = {"model_size": "small", "dense_optimizer": "adam", "lr": 3e-3, "batch_size": 512, "epochs": 1,
            "tables": "hash", "embedding_init": None, "early_stop_patience": None,
            "checkpoint_every": 0, "threads": 1}  # fmt: skip


@register_experiment(
    "frequency-optimizers",
    "Frequency-aware embedding optimizers (FA-SGD, CF-SGD) vs SGD and Adagrad on skewed ids",
    "optim",
)
def frequency_optimizers(ctx: ExperimentContext) -> ExperimentResult:
    if ctx.smoke:
        n, cap = 10_000, 2_000
    elif ctx.quick:
        n, cap = 100_000, 20_000
    else:
        n, cap = 300_000, 100_000
    evals = 5_000 if ctx.smoke else 20_000
    data = synth_data(ctx.out / "data", SynthConfig(rows=n, valid_rows=evals, test_rows=evals, seed=2,
                                                   cardinalities=default_cardinalities(cap), zipf_range=ZIPF_RANGE))  # fmt: skip
    rows, aucs, errs = [], [], []
    for opt in OPTIMIZERS:
        options = {"lr_rule": "plain"} if opt in ("fa-sgd", "cf-sgd") else {}
        cfg = TrainConfig(
            optimizer=opt, embedding_lr=EMBEDDING_LR[opt], optimizer_options=options, **SETTINGS
        )
        runs = [run_or_load(TrainConfig(**{**cfg.to_dict(), "seed": s}), ctx.out / "runs" / f"{opt}-s{s}", data,
                            ctx.show_progress) for s in ctx.seeds]  # fmt: skip
        a = [r["test_auc"] for r in runs]
        a_m, a_s = statistics.fmean(a), (statistics.stdev(a) if len(a) > 1 else 0.0)
        rows.append([opt, a_m, a_s, statistics.fmean(r["test_logloss"] for r in runs),
                     statistics.fmean(r["test_ne"] for r in runs), int(runs[0]["optimizer_state_bytes_embedding"]),
                     statistics.median(r["train_samples_per_s"] for r in runs)])  # fmt: skip
        aucs.append(a_m), errs.append(a_s)
    bayes = float(data.info["bayes_test_auc"])
    plot = bar_plot(ctx.out / "frequency_optimizers.png", list(OPTIMIZERS), aucs, errors=errs,
                    title=f"Zipf {ZIPF_RANGE[0]}–{ZIPF_RANGE[1]} ids, {n:,} rows: test AUC",
                    ylabel="test AUC", ylim=(min(aucs) - 0.02, max(bayes, max(aucs)) + 0.01))  # fmt: skip
    by = {r[0]: r for r in rows}
    best_freq = max(("fa-sgd", "cf-sgd"), key=lambda o: by[o][1])
    return ExperimentResult(
        summary=(f"{best_freq} test AUC {by[best_freq][1]:.4f} vs SGD {by['sgd'][1]:.4f} and Adagrad "
                 f"{by['adagrad'][1]:.4f} (Bayes {bayes:.4f}); CF-SGD keeps "
                 f"{by['cf-sgd'][5] / max(by['adagrad'][5], 1):.2f}× Adagrad's embedding state"),
        tables=[Table(f"One pass over {n:,} rows (ids capped at {cap:,}), MLPs on Adam 3e-3, embedding lr "
                      f"{EMBEDDING_LR}, seeds {list(ctx.seeds)}",
                      ["optimizer", "test AUC", "± sd", "test logloss", "test NE", "embedding state (bytes)",
                       "samples/s"], rows)],
        plots=[plot.name],
        metrics={**{f"{o}_test_auc": by[o][1] for o in OPTIMIZERS}, "bayes_test_auc": bayes},
        notes=("FA-SGD and CF-SGD step each embedding row by lr / count^0.5 (FA-SGD: counts from the training "
               "split; CF-SGD: counted online, FBGEMM's fused counter mode). The learning-rate grids, tail-row AUC "
               "and step times: benchmarks/fasgd.py."),
    )  # fmt: skip
