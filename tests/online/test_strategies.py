"""Strategies: one interface, the registry, and what each does to the learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab.errors import UserError
from embedlab.online.learner import Learner
from embedlab.online.periods import DriftConfig, synth_stream
from embedlab.online.strategies import make_strategy, strategy_names


@pytest.fixture(scope="module")
def stream():
    return synth_stream(
        DriftConfig(periods=7, rows=1200, cap=30, drift="smooth", drift_scale=2.0, seed=2)
    )


def _params(lr: Learner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in lr.params]


def test_registry_names_and_errors(stream) -> None:
    assert {
        "batch-update",
        "full-retrain",
        "recency-weighted",
        "static",
        "extrapolate",
        "fgd",
    } <= set(strategy_names())
    lr = Learner(stream.schema)
    with pytest.raises(UserError, match="unknown strategy"):
        make_strategy("magic", {}, lr, 0)
    with pytest.raises(UserError, match="takes no option"):
        make_strategy("batch-update", {"window": 2}, lr, 0)
    with pytest.raises(UserError, match="window"):
        make_strategy("recency-weighted", {"window": 0}, lr, 0)


def test_fgd_trains_exactly_like_batch_update_and_deploys_a_moved_model(stream) -> None:
    """FGD's base trajectory is batch update's; only the served model differs."""
    bu_l, fgd_l = Learner(stream.schema, seed=0), Learner(stream.schema, seed=0)
    bu = make_strategy("batch-update", {}, bu_l, 0)
    fgd = make_strategy("fgd", {"lags": 2, "gate": False, "meta_steps": 2}, fgd_l, 0)
    moved = []
    for t in range(1, 6):
        bu.update(bu_l, stream, t, 1, t)
        st = fgd.update(fgd_l, stream, t, 1, t)
        assert all(torch.equal(a, b) for a, b in zip(_params(bu_l), _params(fgd_l), strict=True))
        dep = fgd.deployed_params()
        if t >= 2:
            assert st.info["forecast_applied"] is True and dep is not None
            moved.append(
                max(float((d - p).abs().max()) for d, p in zip(dep, fgd_l.params, strict=True))
            )
        if t >= 3:  # meta steps from the first complete pair on
            assert st.rows > st.steps * 256
        # The served step is scored once the generator is no longer zero (untrained).
        assert ("forecast_gain" in st.info) == (t >= 4)
    assert moved[0] == 0.0  # the generator starts at zero: the first deployment is BU's
    assert max(moved[1:]) > 0  # after meta steps it moves the served model


def test_fgd_gate_serves_the_base_model_without_a_past_gain(stream) -> None:
    lr = Learner(stream.schema, seed=0)
    fgd = make_strategy("fgd", {"lags": 1}, lr, 0)
    st = fgd.update(lr, stream, 1, 1, 1)
    assert st.info["forecast_applied"] is False and fgd.deployed_params() is None


def test_extrapolate_deploys_the_extrapolated_update(stream) -> None:
    lr = Learner(stream.schema, seed=0)
    ex = make_strategy("extrapolate", {"c": 0.5}, lr, 0)
    before = _params(lr)
    ex.update(lr, stream, 1, 1, 1)
    for d, p, b in zip(ex.deployed_params(), lr.params, before, strict=True):
        assert torch.allclose(d, p + 0.5 * (p - b))


def test_full_retrain_starts_afresh_on_the_window(stream) -> None:
    a, b = Learner(stream.schema, seed=0), Learner(stream.schema, seed=0)
    a.train(stream.periods[0], 3, seed=9)  # history a fresh model must not carry
    st = make_strategy("full-retrain", {"window": 2}, a, 0).update(a, stream, 3, 1, 5)
    assert st.info["window_periods"] == 2 and st.rows == (2400 // 256) * 256
    from embedlab.data.schema import CTRArrays

    b.reset(5)
    b.train(CTRArrays.concat(stream.periods[2:4]), 1, seed=5)
    assert np.allclose(a.predict(stream.periods[4]), b.predict(stream.periods[4]))


def test_static_does_nothing_and_recency_weights_recent_rows(stream) -> None:
    lr = Learner(stream.schema, seed=0)
    before = _params(lr)
    assert make_strategy("static", {}, lr, 0).update(lr, stream, 2, 1, 0).rows == 0
    assert all(torch.equal(a, b) for a, b in zip(before, _params(lr), strict=True))
    st = make_strategy("recency-weighted", {"window": 3, "decay": 0.5}, lr, 0).update(
        lr, stream, 4, 1, 0
    )
    assert st.rows == (3600 // 256) * 256
    preds = []
    for decay in (1.0, 0.5, 0.5):
        other = Learner(stream.schema, seed=0)
        strat = make_strategy("recency-weighted", {"window": 3, "decay": decay}, other, 0)
        strat.update(other, stream, 4, 1, 0)
        preds.append(other.predict(stream.periods[5]))
    assert np.array_equal(preds[1], preds[2]) and not np.allclose(preds[0], preds[1])
