"""The online learner: period gradients, swapped parameters, the added gradient term."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedlab.data.schema import make_batch
from embedlab.online.learner import Learner
from embedlab.online.periods import DriftConfig, synth_stream


@pytest.fixture(scope="module")
def stream():
    return synth_stream(DriftConfig(periods=3, rows=1500, cap=30, seed=1))


def _mean_loss_grad(learner: Learner, arrays) -> list[torch.Tensor]:
    learner.model.zero_grad()
    dense, sparse, labels = make_batch(arrays, np.arange(len(arrays)), learner.schema)
    F.binary_cross_entropy_with_logits(learner.model(dense, sparse), labels).backward()
    out = [p.grad.clone() for p in learner.params]
    learner.model.zero_grad()
    return out


def test_period_gradient_is_the_mean_loss_gradient(stream) -> None:
    lr = Learner(stream.schema, seed=0)
    g, n = lr.period_gradient(stream.periods[0])
    assert n == 1500
    for a, b in zip(g, _mean_loss_grad(lr, stream.periods[0]), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    sub, m = lr.period_gradient(stream.periods[0], max_rows=500, seed=2)
    assert m == 500 and not torch.allclose(sub[-1], g[-1])


def test_gradient_at_other_params_leaves_the_model_alone(stream) -> None:
    lr = Learner(stream.schema, seed=0)
    other = Learner(stream.schema, seed=5)
    before = [p.detach().clone() for p in lr.params]
    g_other, _ = lr.period_gradient(stream.periods[1], params=[p.detach() for p in other.params])
    for a, b in zip(g_other, other.period_gradient(stream.periods[1])[0], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, lr.params, strict=True))
    p_other = lr.predict(stream.periods[1], [p.detach() for p in other.params])
    assert np.allclose(p_other, other.predict(stream.periods[1]))
    assert not np.allclose(p_other, lr.predict(stream.periods[1]))


def test_one_full_batch_sgd_step_is_the_mean_gradient_step(stream) -> None:
    a = Learner(stream.schema, optimizer="sgd", lr=0.1, batch_size=1500, seed=0)
    b = Learner(stream.schema, optimizer="sgd", lr=0.1, batch_size=1500, seed=0)
    a.train(stream.periods[0], 1, seed=0)
    g = _mean_loss_grad(b, stream.periods[0])
    for p, q, gi in zip(a.params, b.params, g, strict=True):
        assert torch.allclose(p, q - 0.1 * gi, atol=1e-5)


def test_training_is_reproducible_and_weights_matter(stream) -> None:
    runs = []
    for w in (None, None, np.linspace(0.1, 2.0, 1500)):
        lr = Learner(stream.schema, seed=0)
        st = lr.train(stream.periods[0], 2, seed=4, weights=w)
        runs.append(lr.predict(stream.periods[1]))
        assert st.rows == 2 * (1500 // 256) * 256
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
