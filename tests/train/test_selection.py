from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.train.selection import BestOnValid


def test_best_and_patience_for_a_higher_is_better_metric():
    s = BestOnValid("auc", patience=2)
    assert s.update(10, 1.0, {"auc": 0.7})
    assert s.update(20, 2.0, {"auc": 0.72})
    assert not s.update(30, 3.0, {"auc": 0.72})  # a tie keeps the earlier step
    assert not s.should_stop()
    assert not s.update(40, 4.0, {"auc": 0.71})
    assert s.should_stop()
    assert (s.best, s.best_step, s.best_epoch) == (0.72, 20, 2.0)


def test_lower_is_better_metrics_and_no_patience():
    s = BestOnValid("logloss", patience=None)
    s.update(1, 0.5, {"logloss": 0.5})
    assert s.update(2, 1.0, {"logloss": 0.4})
    for i in range(10):
        s.update(3 + i, 2.0, {"logloss": 0.9})
    assert not s.should_stop() and s.best_step == 2


def test_state_round_trip_keeps_settings_from_the_config():
    a = BestOnValid("auc", patience=3)
    a.update(5, 1.0, {"auc": 0.6})
    a.update(6, 2.0, {"auc": 0.5})
    b = BestOnValid("auc", patience=3)
    b.load_state_dict({**a.state_dict(), "patience": 99})
    assert b.state_dict() == a.state_dict()


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="selection metric"):
        BestOnValid("accuracy")
    with pytest.raises(UserError, match="patience"):
        BestOnValid("auc", patience=0)


def test_evaluations_fall_at_epoch_ends_the_last_step_and_every_n_steps():
    from embedlab.train.selection import evaluation_due

    due = [s for s in range(1, 21) if evaluation_due(s, per_epoch=8, total=20, eval_every=0)]
    assert due == [8, 16, 20]
    due = [s for s in range(1, 21) if evaluation_due(s, per_epoch=8, total=20, eval_every=6)]
    assert due == [6, 8, 12, 16, 18, 20]
