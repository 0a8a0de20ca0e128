from __future__ import annotations

import json

import pytest
import torch

from embedlab.data.registry import load_data
from embedlab.errors import UserError
from embedlab.train.checkpoint import load_checkpoint, save_checkpoint
from embedlab.train.trainer import TrainConfig, resume_run, train


def cfg(synth_dir, **kw) -> TrainConfig:
    base = dict(
        data="synth",
        data_options={"data_dir": str(synth_dir)},
        model_size="tiny",
        batch_size=128,
        epochs=2,
        log_every=5,
        checkpoint_every=10,
        eval_batch_size=1024,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.01), ("rowwise_adagrad", 0.05), ("sgd", 1.0)])
def test_loss_falls_and_files_written(tmp_path, synth_dir, optimizer, lr):
    m = train(cfg(synth_dir, optimizer=optimizer, lr=lr), tmp_path, show_progress=False)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [l["train_loss"] for l in lines if "train_loss" in l]
    assert sum(losses[-3:]) / 3 < losses[0]
    assert m["test_auc"] > 0.6
    final = json.loads((tmp_path / "metrics.json").read_text())
    for k in (
        "test_auc",
        "test_logloss",
        "test_ne",
        "valid_auc",
        "valid_logloss",
        "valid_ne",
        "wall_time_s",
        "cfg_optimizer",
    ):
        assert k in final
    assert final["data_bayes_test_auc"] > final["test_auc"] - 0.02


class Kill(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["adam", "rowwise_adagrad"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, synth_dir, optimizer):
    c = cfg(
        synth_dir, optimizer=optimizer, max_steps=70
    )  # crosses an epoch boundary (46 steps/epoch)
    a = train(c, tmp_path / "a", show_progress=False)

    def boom(step: int) -> None:
        if step == 55:
            raise Kill

    with pytest.raises(Kill):
        train(c, tmp_path / "b", show_progress=False, on_step=boom)
    assert not (tmp_path / "b" / "metrics.json").exists()
    b = resume_run(tmp_path / "b", show_progress=False)
    for k in ("test_auc", "test_logloss", "valid_auc", "valid_ne"):
        assert a[k] == b[k]
    steps_a = [
        json.loads(l)["step"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    ]
    steps_b = [
        json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps_a == steps_b


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not an embedlab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint(tmp_path / "ok.pt", {"step": 3, "x": torch.ones(2)})
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 3


def test_resume_refuses_changed_settings(tmp_path, synth_dir):
    train(cfg(synth_dir, max_steps=5), tmp_path, show_progress=False)
    with pytest.raises(UserError, match="differs"):
        train(cfg(synth_dir, max_steps=5, lr=0.5), tmp_path, resume=True, show_progress=False)
    with pytest.raises(UserError, match="not a run folder"):
        resume_run(tmp_path / "nothing")


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"batch_size": 0}, "batch-size"),
        ({"optimizer": "lamb"}, "valid: adagrad"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"embedding_kernel": "gpu"}, "valid: auto"),
        ({"optimizer": "adam", "embedding_kernel": "fused"}, "cannot be fused"),
        ({"optimizer": "sgd", "optimizer_options": {"unit": "batch"}}, "takes no option 'unit'"),
        ({"optimizer": "cf-sgd", "optimizer_options": {"unit": "epoch"}}, "unknown unit 'epoch'"),
        ({"optimizer": "fa-sgd", "optimizer_options": {"unit": "batch"}}, "unknown unit 'batch'"),
        ({"optimizer": "cf-sgd", "optimizer_options": {"floor": 0.0}}, "floor must be a positive"),
        (
            {
                "optimizer": "cf-sgd",
                "optimizer_options": {"unit": "sample"},
                "embedding_kernel": "fused",
            },
            "cannot be fused",
        ),
        ({"optimizer": "fa-sgd", "embedding_kernel": "fused"}, "cannot be fused"),
        ({"optimizer": "cf-sgd", "dense_optimizer": "lamb"}, "unknown optimizer 'lamb'"),
    ],
)
def test_bad_settings(kw, msg, synth_dir):
    with pytest.raises(UserError, match=msg):
        cfg(synth_dir, **kw).validate()


def test_batch_larger_than_data(tmp_path, synth_dir):
    data = load_data("synth", data_dir=synth_dir)
    with pytest.raises(UserError, match="fewer than one batch"):
        train(cfg(synth_dir, batch_size=10**6), tmp_path, data=data, show_progress=False)


def test_fresh_run_discards_old_checkpoint_and_cut_metrics_line(tmp_path, synth_dir):
    train(cfg(synth_dir, max_steps=20), tmp_path, show_progress=False)
    assert (tmp_path / "checkpoint.pt").exists()

    def boom(step: int) -> None:
        raise Kill

    with pytest.raises(Kill):  # a new config in the same folder, killed at its first step
        train(cfg(synth_dir, max_steps=20, lr=0.5), tmp_path, show_progress=False, on_step=boom)
    with pytest.raises(UserError, match="no checkpoint.pt"):
        resume_run(tmp_path, show_progress=False)


def test_resume_tolerates_a_cut_metrics_line(tmp_path, synth_dir):
    c = cfg(synth_dir, max_steps=30)

    def boom(step: int) -> None:
        if step == 25:
            raise Kill

    with pytest.raises(Kill):
        train(c, tmp_path, show_progress=False, on_step=boom)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 26, "trai')  # a write cut short by the crash
    m = resume_run(tmp_path, show_progress=False)
    assert m["steps"] == 30
    for ln in (tmp_path / "metrics.jsonl").read_text().splitlines():
        json.loads(ln)


def test_checkpoint_of_other_settings_is_refused(tmp_path, synth_dir):
    train(cfg(synth_dir, max_steps=20), tmp_path / "a", show_progress=False)
    train(cfg(synth_dir, max_steps=20, lr=0.5), tmp_path / "b", show_progress=False)
    (tmp_path / "a" / "checkpoint.pt").replace(tmp_path / "b" / "checkpoint.pt")
    with pytest.raises(UserError, match="other settings"):
        resume_run(tmp_path / "b", show_progress=False)


def test_tensorboard_events_written(tmp_path, synth_dir):
    pytest.importorskip("tensorboard")
    train(cfg(synth_dir, max_steps=10, tensorboard=True), tmp_path, show_progress=False)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "kw",
    [
        {"optimizer": "cf-sgd"},  # fused: FBGEMM's counter mode; its row counter is checkpointed
        {"optimizer": "cf-sgd", "optimizer_options": {"unit": "occurrence", "max_lr": 0.5}},
        {"optimizer": "fa-sgd", "dense_optimizer": "adam"},
    ],
)
def test_frequency_optimizers_resume_exactly_and_report_state(tmp_path, synth_dir, kw):
    c = cfg(synth_dir, max_steps=40, lr=0.05, **kw)
    a = train(c, tmp_path / "a", show_progress=False)

    def boom(step: int) -> None:
        if step == 25:
            raise Kill

    with pytest.raises(Kill):
        train(c, tmp_path / "b", show_progress=False, on_step=boom)
    b = resume_run(tmp_path / "b", show_progress=False)
    for k in ("test_auc", "test_logloss", "valid_auc"):
        assert a[k] == b[k], k
    rows = sum(load_data("synth", data_dir=str(synth_dir)).schema.table_sizes)
    per_row = {"cf-sgd": 12 if "optimizer_options" not in kw else 4, "fa-sgd": 4}[kw["optimizer"]]
    assert a["optimizer_state_bytes_embedding"] == rows * per_row
    assert a["embedding_kernel"] == ("fused" if kw == {"optimizer": "cf-sgd"} else "sparse")
    assert (a["optimizer_state_bytes_dense"] > 0) == (kw.get("dense_optimizer") == "adam")
