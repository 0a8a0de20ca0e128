"""Per-step DCP checkpoints with a pointer (:class:`StepCheckpoints`), on one process."""

from __future__ import annotations

import json

import pytest
import torch

from embedlab.errors import UserError
from embedlab.train.checkpoint import StepCheckpoints


def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(5, 3, generator=g), "b": torch.randn(3, generator=g)},
            "optim": {"state": {"w": {"sum": torch.rand(5, 3, generator=g)}}, "param_groups": [{"lr": 0.1}]}}  # fmt: skip


def _zeros_like(state: dict) -> dict:
    if isinstance(state, dict):
        return {k: _zeros_like(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_zeros_like(v) for v in state]
    return torch.zeros_like(state) if isinstance(state, torch.Tensor) else state


def test_pointer_names_the_newest_complete_step_and_older_folders_go(tmp_path):
    store = StepCheckpoints(tmp_path, keep=2)
    assert store.latest() is None
    for step in (10, 20, 30):
        store.save(step, _state(step), {"loss_sum": step / 10})
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 30
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step_000000020", "step_000000030"]
    into = _zeros_like(_state(0))
    meta = store.load(into)
    assert meta == {"step": 30, "loss_sum": 3.0}
    want = _state(30)
    for k in ("w", "b"):
        assert torch.equal(into["model"][k], want["model"][k])
    assert torch.equal(into["optim"]["state"]["w"]["sum"], want["optim"]["state"]["w"]["sum"])


def test_an_interrupted_save_is_never_read_and_is_replaced(tmp_path):
    store = StepCheckpoints(tmp_path, keep=2)
    store.save(10, _state(10), {})
    partial = store.folder(20)  # what a crash mid-save leaves: files, no .metadata, no pointer flip
    partial.mkdir(parents=True)
    (partial / "__0_0.distcp").write_bytes(b"half a shard")
    into = _zeros_like(_state(0))
    assert store.load(into)["step"] == 10
    assert torch.equal(into["model"]["w"], _state(10)["model"]["w"])
    store.save(20, _state(20), {})  # the resumed run saves that step again, into a clean folder
    into = _zeros_like(_state(0))
    assert store.load(into)["step"] == 20
    assert torch.equal(into["model"]["w"], _state(20)["model"]["w"])
    assert not (partial / "__0_0.distcp").read_bytes() == b"half a shard"


def test_bad_pointers_and_foreign_state_are_user_errors(tmp_path):
    store = StepCheckpoints(tmp_path)
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 16, "world_size": 2}))
    with pytest.raises(UserError, match="older embedlab layout"):
        store.latest()
    (tmp_path / "checkpoint.json").write_text(json.dumps({"step": 16, "dir": "ckpt/step_000000016"}))
    with pytest.raises(UserError, match="not a complete checkpoint"):
        store.latest()
    store.save(16, _state(16), {})
    with pytest.raises(UserError, match="does not fit this model"):
        store.load({"model": {"w": torch.zeros(7, 3)}})
    store.clear()
    assert store.latest() is None and not (tmp_path / "ckpt").exists()
    with pytest.raises(UserError, match="no complete checkpoint"):
        store.load({})
