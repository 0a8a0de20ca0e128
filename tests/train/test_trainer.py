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
        ({"optimizer": "sgd", "optimizer_options": {"unit": "batch"}}, "takes no option unit"),
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


def _tb_scalars(run, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_tensorboard_resumed_run_logs_each_step_once(tmp_path, synth_dir):
    pytest.importorskip("tensorboard")
    c = cfg(synth_dir, max_steps=30, tensorboard=True)
    full = train(c, tmp_path / "full", show_progress=False)

    def boom(step: int) -> None:
        if step == 25:  # logged step 25, last checkpoint at step 20
            raise Kill

    with pytest.raises(Kill):
        train(c, tmp_path / "cut", show_progress=False, on_step=boom)
    resumed = resume_run(tmp_path / "cut", show_progress=False)
    assert resumed["test_auc"] == full["test_auc"]
    want = _tb_scalars(tmp_path / "full", "train_loss")
    assert [s for s, _ in want] == [5, 10, 15, 20, 25, 30]
    got = _tb_scalars(tmp_path / "cut", "train_loss")
    assert [s for s, _ in got] == [5, 10, 15, 20, 25, 30]  # step 25 once, not twice
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    # the final record's valid metrics (the best checkpoint's) are separate curves
    assert [s for s, _ in _tb_scalars(tmp_path / "cut", "final_test_auc")] == [30]
    assert [s for s, _ in _tb_scalars(tmp_path / "cut", "valid_auc")] == [30]


def test_tensorboard_fresh_run_leaves_no_old_events(tmp_path, synth_dir):
    pytest.importorskip("tensorboard")
    train(cfg(synth_dir, max_steps=10, tensorboard=True), tmp_path, show_progress=False)
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    train(cfg(synth_dir, max_steps=10, tensorboard=True, lr=0.5), tmp_path, show_progress=False)
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    assert [s for s, _ in _tb_scalars(tmp_path, "train_loss")] == [5, 10]
    # a fresh run without TensorBoard leaves no curves of another run beside its own files
    train(cfg(synth_dir, max_steps=10, lr=0.3), tmp_path, show_progress=False)
    assert not (tmp_path / "tb").exists()


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
    rows = a["params_embedding"] // 8  # tiny model: dim 8; tables sized by the vocabulary
    assert rows == a["data_vocab_rows"]
    per_row = {"cf-sgd": 12 if "optimizer_options" not in kw else 4, "fa-sgd": 4}[kw["optimizer"]]
    assert a["optimizer_state_bytes_embedding"] == rows * per_row
    assert a["embedding_kernel"] == ("fused" if kw == {"optimizer": "cf-sgd"} else "sparse")
    assert a["optimizer_state_bytes_dense"] > 0  # Adagrad (the companion) or Adam
    # the lr measured before training is restored from the checkpoint, not re-measured
    assert a["embedding_lr_effective"] == b["embedding_lr_effective"]
    from embedlab.train.trainer import learning_rates

    assert a["embedding_lr_effective"] == pytest.approx(learning_rates(c)[1] / a["embedding_grad_scale"])


# --- best-on-validation training, early stopping, table sizing ---------------------------


def _records(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.03), ("rowwise_adagrad", 0.3)])  # sparse, fused
def test_test_metrics_come_from_the_best_validation_checkpoint(tmp_path, synth_dir, optimizer, lr):
    from embedlab.data.registry import load_data
    from embedlab.train.trainer import evaluate, prepare_data

    c = cfg(synth_dir, optimizer=optimizer, lr=lr, epochs=4, early_stop_patience=None, eval_every=20)
    m = train(c, tmp_path, show_progress=False)
    evals = [r for r in _records(tmp_path) if "valid_auc" in r and "test_auc" not in r]
    assert [r["step"] for r in evals] == [20, 40, 46, 60, 80, 92, 100, 120, 138, 140, 160, 180, 184]
    best = max(evals, key=lambda r: r["valid_auc"])  # first of ties
    assert m["best_step"] == best["step"] and m["valid_auc"] == best["valid_auc"]
    assert not m["stopped_early"] and m["steps"] == 184
    # the reported test AUC is that of best.pt's weights
    from embedlab.models.dlrm import DLRM  # noqa: F401
    from embedlab.train.trainer import build_model

    data = prepare_data(c, load_data(c.data, **c.data_options))
    model, _ = build_model(c, data.schema)
    model.load_state_dict(load_checkpoint(tmp_path / "best.pt")["model"])
    assert evaluate(model, data.test, data.schema)["auc"] == m["test_auc"]
    assert m["embedding_kernel"] == ("sparse" if optimizer == "adam" else "fused")


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path, synth_dir, monkeypatch):
    import embedlab.train.trainer as tr

    script = iter([0.60, 0.70, 0.69, 0.68, 0.99, 0.99])  # epochs 1..: best at epoch 2, stop at 4
    seen = []
    real = tr.evaluate

    def fake(model, arrays, schema, batch_size=16384):
        m = real(model, arrays, schema, batch_size)
        w = next(iter(model.state_dict().values())).clone()
        seen.append(w)
        if arrays is fake.valid:
            return {**m, "auc": next(script)}
        return m

    from embedlab.data.registry import load_data

    c = cfg(synth_dir, epochs=10, early_stop_patience=2)
    data = load_data(c.data, **c.data_options)
    prepared = tr.prepare_data(c, data)
    fake.valid = None
    orig_prepare = tr.prepare_data

    def prep(cfg_, data_):
        out = orig_prepare(cfg_, data_)
        fake.valid = out.valid
        return out

    monkeypatch.setattr(tr, "evaluate", fake)
    monkeypatch.setattr(tr, "prepare_data", prep)
    m = train(c, tmp_path, data=data, show_progress=False)
    per_epoch = len(prepared.train) // c.batch_size
    assert m["stopped_early"] and m["steps"] == 4 * per_epoch and m["epochs_run"] == 4
    assert m["best_step"] == 2 * per_epoch and m["best_epoch"] == 2.0
    # the final evaluations (valid, then test) ran on the weights of epoch 2's evaluation
    assert torch.equal(seen[-1], seen[1]) and not torch.equal(seen[-1], seen[3])


def test_resume_across_best_checkpoints_and_early_stop_equals_uninterrupted(tmp_path, synth_dir):
    c = cfg(synth_dir, optimizer="adam", lr=0.05, epochs=6, early_stop_patience=1, eval_every=23,
            checkpoint_every=17)
    a = train(c, tmp_path / "a", show_progress=False)

    def boom(step: int) -> None:
        if step == min(a["steps"] - 1, 60):
            raise Kill

    with pytest.raises(Kill):
        train(c, tmp_path / "b", show_progress=False, on_step=boom)
    b = resume_run(tmp_path / "b", show_progress=False)
    for k in ("test_auc", "test_logloss", "valid_auc", "best_step", "steps", "stopped_early"):
        assert a[k] == b[k], k
    assert [r["step"] for r in _records(tmp_path / "a")] == [r["step"] for r in _records(tmp_path / "b")]


def test_without_a_validation_split_the_run_says_so_once_and_reports_its_last_step(tmp_path, synth_dir, capsys):
    from dataclasses import replace

    from embedlab.data.registry import load_data

    data = load_data("synth", data_dir=str(synth_dir))
    empty = replace(data, valid=data.valid.take(slice(0, 0)))
    with pytest.raises(UserError, match="needs a validation split"):
        train(cfg(synth_dir, early_stop_patience=2), tmp_path / "a", data=empty, show_progress=False)
    m = train(cfg(synth_dir, early_stop_patience=None), tmp_path / "b", data=empty, show_progress=True)
    assert capsys.readouterr().err.count("no validation split") == 1
    assert m["best_step"] is None and m["steps"] == 2 * (len(data.train) // 128)


def test_vocab_tables_follow_the_data_and_are_saved(tmp_path, synth_dir):
    from embedlab.data.vocab import Vocabulary

    m = train(cfg(synth_dir, vocab_min_count=3, epochs=1), tmp_path, show_progress=False)
    v = Vocabulary.load(tmp_path / "vocab.npz")
    assert v.min_count == 3 and m["params_embedding"] == 8 * sum(v.table_sizes)
    assert m["tables"] == "vocab" and m["data_vocab_rows"] == sum(v.table_sizes)
    h = train(cfg(synth_dir, tables="hash", epochs=1), tmp_path / "h", show_progress=False)
    from embedlab.data.synth import read_meta

    assert h["params_embedding"] == 8 * sum(read_meta(synth_dir)["config"]["cardinalities"])
    assert not (tmp_path / "h" / "vocab.npz").exists()


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"tables": "vocab", "hash_rows": 10}, "cannot go with --tables vocab"),
        ({"tables": "bloom"}, "unknown table sizing"),
        ({"vocab_min_count": 0}, "vocab-min-count"),
        ({"embedding_init": 0.0}, "embedding-init"),
        ({"early_stop_patience": 0}, "early-stop-patience"),
        ({"select_metric": "f1"}, "selection metric"),
        ({"optimizer": "cf-sgd", "optimizer_options": {"lr_rule": "magic"}}, "lr_rule"),
    ],
)
def test_bad_selection_and_sizing_settings_are_user_errors(synth_dir, kw, msg):
    with pytest.raises(UserError, match=msg):
        cfg(synth_dir, **kw).validate()
