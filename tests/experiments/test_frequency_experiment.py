"""The FA-SGD / CF-SGD experiment of ``embedlab reproduce`` at its smoke size."""

from __future__ import annotations

from embedlab.experiments.frequency import OPTIMIZERS, frequency_optimizers
from embedlab.experiments.registry import ExperimentContext


def test_frequency_optimizers_side_by_side(tmp_path):
    res = frequency_optimizers(ExperimentContext(tmp_path, quick=True, seeds=(0,), smoke=True))
    rows = {r[0]: r for r in res.tables[0].rows}
    assert list(rows) == list(OPTIMIZERS)
    bayes = res.metrics["bayes_test_auc"]
    for opt, r in rows.items():
        assert 0.55 < r[1] < bayes, opt  # every optimizer learns (0.5: chance), none beats Bayes
        assert res.metrics[f"{opt}_test_auc"] == r[1]
    state = {o: r[5] for o, r in rows.items()}
    assert state["sgd"] == 0
    # Adagrad keeps a float per weight (dim 16); FA-SGD one count per row, 1/16 of it
    assert state["fa-sgd"] * 16 == state["adagrad"]
    assert 0 < state["cf-sgd"] < state["adagrad"] / 4
    assert (tmp_path / res.plots[0]).is_file()
