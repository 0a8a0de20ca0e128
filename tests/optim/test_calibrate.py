from __future__ import annotations

import math
from itertools import islice

import pytest
import torch
import torch.nn.functional as F

from embedlab.data.registry import load_data
from embedlab.data.schema import iter_batches
from embedlab.models.dlrm import DLRM, model_config
from embedlab.optim.calibrate import embedding_grad_scale, row_gradients
from embedlab.train.trainer import TrainConfig, embedding_lr_rule, prepare_data


@pytest.fixture(scope="module")
def data(synth_dir):
    return prepare_data(TrainConfig(), load_data("synth", data_dir=str(synth_dir)))


def _model(data, kernel: str) -> DLRM:
    torch.manual_seed(0)
    s = data.schema
    return DLRM(s.num_dense, s.table_sizes, s.sparse_names, model_config("tiny"), embedding_kernel=kernel,
                embedding_init_bound=0.05)


def test_row_gradients_equal_autograd_embedding_gradients(data):
    model = _model(data, "dense")
    batch = next(iter_batches(data.train, data.schema, 64, seed=0))
    loss = F.binary_cross_entropy_with_logits(model(batch.dense, batch.sparse), batch.labels)
    loss.backward()
    pooled = model.pooled_embeddings(batch.sparse).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(model._dense_forward(batch.dense, pooled), batch.labels), [pooled]
    )
    rows = row_gradients(g, batch.sparse, model.config.embedding_dim)
    per = batch.sparse.to_dict()
    for f, (bag, name) in enumerate(zip(model.sparse.embedding_bags.values(), model.feature_names)):
        ids = torch.unique(per[name].values())
        torch.testing.assert_close(rows[f], bag.weight.grad[ids], rtol=1e-5, atol=1e-7)


def test_measuring_the_scale_moves_no_parameter(data):
    model = _model(data, "fused")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = embedding_grad_scale(model, islice(iter_batches(data.train, data.schema, 64, seed=0), 3))
    assert g > 0 and math.isfinite(g)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_auto_rule_divides_the_relative_rate_by_the_scale_plain_uses_it_as_given(data):
    model = _model(data, "fused")
    auto = TrainConfig(optimizer="cf-sgd", embedding_lr=0.02, batch_size=64)
    elr, scale = embedding_lr_rule(auto, model, data)
    assert scale is not None and elr == pytest.approx(0.02 / scale)
    plain = TrainConfig(optimizer="cf-sgd", embedding_lr=0.02, batch_size=64, optimizer_options={"lr_rule": "plain"})
    assert embedding_lr_rule(plain, model, data) == (0.02, None)
    assert embedding_lr_rule(TrainConfig(optimizer="adagrad"), model, data) == (0.01, None)


def test_the_rule_follows_the_gradient_scale(data):
    """A larger batch halves the mean loss's per-row gradient of rare rows: the auto rule
    raises the plain lr with it (what a fixed plain lr cannot do)."""
    model = _model(data, "fused")
    small = embedding_lr_rule(TrainConfig(optimizer="cf-sgd", batch_size=32), model, data)
    large = embedding_lr_rule(TrainConfig(optimizer="cf-sgd", batch_size=512), model, data)
    assert large[1] < small[1] and large[0] > 2 * small[0]
