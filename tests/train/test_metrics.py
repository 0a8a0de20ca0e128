from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from embedlab.train.metrics import auc, binary_entropy, ctr_metrics, logloss, normalized_entropy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = rng.random(300)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


def test_ne_of_base_rate_predictor_is_one():
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0])
    p = np.full(len(y), y.mean())
    assert normalized_entropy(y, p) == pytest.approx(1.0)
    assert binary_entropy(0.25) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_degenerate_labels():
    assert math.isnan(auc(np.ones(4), np.arange(4)))
    m = ctr_metrics(np.zeros(3), np.full(3, 0.1))
    assert math.isnan(m["ne"]) and m["accuracy"] == 1.0
