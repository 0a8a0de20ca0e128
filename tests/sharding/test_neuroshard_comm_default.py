"""NeuroShard reads only its own model format: without a communication model, pre-training
takes the one recorded in NeuroShard's shipped model (``meta.comm_model``), never
DreamShard's ``model.json`` (whose format has no such key: that read ended in
``KeyError: 'comm_model'``)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.generator import table_pool
from embedlab.sharding.neuroshard.data import PretrainSettings
from embedlab.sharding.neuroshard.planner import DEFAULT_MODEL
from embedlab.sharding.neuroshard.train import default_comm_model, pretrain_neuroshard


def test_default_comm_model_is_neuroshards_own():
    shipped = json.loads((DEFAULT_MODEL / "model.json").read_text())
    assert default_comm_model() == CommModel.from_json(shipped["meta"]["comm_model"])


def test_default_comm_model_refuses_other_formats(tmp_path):
    dream = DEFAULT_MODEL.parent.parent / "dreamshard" / "default_model" / "model.json"
    with pytest.raises(UserError, match="is not embedlab.neuroshard-model"):
        default_comm_model(dream)
    (tmp_path / "model.json").write_text('{"format": "embedlab.neuroshard-model/v1", "meta": {}}')
    with pytest.raises(UserError, match="records no communication model"):
        default_comm_model(tmp_path / "model.json")
    with pytest.raises(UserError, match="calibrate-comm"):
        default_comm_model(tmp_path / "none.json")


def test_pretraining_without_a_comm_model_on_a_tiny_budget(tmp_path):
    pool = [replace(t, rows=min(t.rows, 1500)) for t in table_pool(12)]
    meter = CostMeter(MeterSettings(batch_size=32, warmup=1, repeats=2, rounds=1))  # no comm
    assert meter.comm is None
    settings = PretrainSettings(compute_samples=16, chunk=8, max_tables=3, comm_samples=120, device_counts=(2,),
                                compute_epochs=5, comm_epochs=2, compute_batch=64, comm_batch=64)  # fmt: skip
    model = pretrain_neuroshard(tmp_path / "run", meter=meter, comm=None, settings=settings, pool=pool,
                                measure_budget_s=1e-9, show_progress=False)  # fmt: skip
    assert model.meta["comm_model"] == default_comm_model().to_json()
    assert model.device_counts == [2]
