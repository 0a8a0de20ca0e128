"""PU-learning experiments for ``embedlab reproduce``."""

from __future__ import annotations

import statistics

import numpy as np

from embedlab.experiments.registry import (
    ExperimentContext,
    ExperimentResult,
    Table,
    register_experiment,
)
from embedlab.io import read_json, write_json
from embedlab.report.plots import bar_plot

#: digits split: positives {0, 1, 2, 3, 4} (prior 0.5), 100 labeled positives.
DIGITS_POSITIVES = (0, 1, 2, 3, 4)


@register_experiment(
    "pu-digits",
    "PU learning on scikit-learn digits: puCL+puPL, puCL+nnPU fine-tuning, nnPU, supervised",
    "pu",
)
def pu_digits(ctx: ExperimentContext) -> ExperimentResult:
    """puCL+puPL, puCL pretraining + nnPU fine-tuning, nnPU and supervised PN (all labels) on
    28×28-upsampled digits, LeNet, 100 labeled positives; a fixed number of epochs, nothing
    chosen on the test split."""
    from embedlab.pu.classifier import PUClassifier, binary_metrics
    from embedlab.pu.data import binarize, load_digits28, pu_split

    data = load_digits28()
    y_test = binarize(data.y_test, DIGITS_POSITIVES)
    epochs = 2 if ctx.smoke else (10 if ctx.quick else 40)
    rows, names, accs, errs, metrics = [], [], [], [], {}
    recipes = {"pucl": {"method": "pucl"}, "pucl-ft-nnpu": {"method": "pucl", "probe": "nnpu", "finetune_epochs": epochs // 2},
               "nnpu": {"method": "nnpu"}, "pn": {"method": "pn"}}  # fmt: skip
    for method, kw in recipes.items():
        per = []
        for s in ctx.seeds:
            cache = ctx.out / f"{method}-s{s}-e{epochs}.json"
            if cache.is_file():
                per.append(read_json(cache))
                continue
            split = pu_split(data.y_train, DIGITS_POSITIVES, 100, seed=s)
            clf = PUClassifier(
                prior=split.prior, epochs=epochs, batch_size=256, random_state=s, **kw
            )
            clf.fit(data.x_train, split.y_true if method == "pn" else split.pu_labels)
            m = binary_metrics(y_test, clf.decision_function(data.x_test))
            write_json(cache, m)
            per.append(m)
        acc = [m["accuracy"] for m in per]
        mean, sd = statistics.fmean(acc), (statistics.stdev(acc) if len(acc) > 1 else 0.0)
        rows.append(
            [
                method,
                mean,
                sd,
                statistics.fmean(m["auc"] for m in per),
                statistics.fmean(m["f1"] for m in per),
            ]
        )
        names.append(method), accs.append(mean), errs.append(sd)
        metrics[f"{method}_test_accuracy"] = mean
    plot = bar_plot(ctx.out / "pu_digits.png", names, accs, errors=errs, title="Digits 0-4 vs 5-9, 100 labeled positives",
                    ylabel="test accuracy", ylim=(max(0.0, min(accs) - 0.1), 1.0))  # fmt: skip
    best = names[int(np.argmax(accs))]
    return ExperimentResult(
        summary=f"puCL+puPL {accs[0]:.3f}, puCL+nnPU fine-tuning {accs[1]:.3f}, nnPU {accs[2]:.3f}, "
                f"supervised {accs[3]:.3f} test accuracy (best {best})",
        tables=[Table(f"{epochs} epochs, LeNet, seeds {list(ctx.seeds)}", ["method", "test accuracy", "± sd", "AUC", "F1"], rows)],
        plots=[plot.name], metrics=metrics,
        notes="Digits 0-4 vs 5-9 is not two compact clusters, which puPL's two-cluster assumption needs; "
              "Fashion-MNIST numbers come from benchmarks/pu.py.",
    )  # fmt: skip
