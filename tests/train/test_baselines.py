"""Baselines on a tiny hand-made CTRData: popularity math, unseen ids, LR's C by valid."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.errors import UserError
from embedlab.train.baselines import (
    logistic_regression_scores,
    one_hot_matrix,
    popularity_scores,
)
from embedlab.train.metrics import logloss

SCHEMA = CTRSchema(
    dense_names=("x",),
    sparse=(
        SparseFeature("item", 4),
        SparseFeature("user", 3),
        SparseFeature("tags", 3, multi_hot=True),
    ),
)


def _arrays(items, users, tags, labels) -> CTRArrays:
    n = len(labels)
    return CTRArrays(
        dense=np.linspace(0, 1, n, dtype=np.float32)[:, None],
        sparse=[np.array(items, np.int64), np.array(users, np.int64), np.array(tags, np.int64)],
        labels=np.array(labels, np.float32),
    )


def tiny() -> CTRData:
    # train: item 0 -> 3/4 positive, item 1 -> 0/2, item 2 -> 1/1, item 3 never seen;
    # global rate 4/8 = 0.5 (one row has a missing item, -1, with label 0).
    train = _arrays(
        items=[0, 0, 0, 0, 1, 1, 2, -1],
        users=[0, 1, 2, 0, 1, 2, 0, 1],
        tags=[[0, 1], [0, -1], [1, -1], [0, 2], [2, -1], [2, -1], [1, -1], [-1, -1]],
        labels=[1, 1, 0, 1, 0, 0, 1, 0],
    )
    valid = _arrays(
        items=[0, 1, 2, 3, -1],
        users=[0, 1, 2, 0, 1],
        tags=[[0, -1], [2, -1], [0, 1], [-1, -1], [1, -1]],
        labels=[1, 0, 1, 0, 1],
    )
    test = _arrays(
        items=[3, 0, 1],
        users=[2, 1, 0],
        tags=[[1, -1], [-1, -1], [0, 2]],
        labels=[1, 0, 0],
    )
    return CTRData("tiny", SCHEMA, train, valid, test)


def test_popularity_is_a_bayesian_average_by_hand():
    d = tiny()
    p = popularity_scores(d, "item", smoothing=2.0)
    g = 0.5
    item0, item1, item2 = (3 + 2 * g) / (4 + 2), (0 + 2 * g) / (2 + 2), (1 + 2 * g) / (1 + 2)
    np.testing.assert_allclose(p["valid"], [item0, item1, item2, g, g])
    np.testing.assert_allclose(p["test"], [g, item0, item1])
    assert set(p) == {"valid", "test"}


def test_popularity_without_smoothing_is_the_raw_rate_and_unseen_ids_get_global():
    d = tiny()
    p = popularity_scores(d, "item", smoothing=0.0)
    np.testing.assert_allclose(p["valid"], [0.75, 0.0, 1.0, 0.5, 0.5])
    # item 3 never appears in train: the global train rate, not a NaN
    assert p["test"][0] == pytest.approx(0.5)


def test_popularity_of_a_multi_hot_feature_averages_the_bag():
    d = tiny()
    p = popularity_scores(d, "tags", smoothing=0.0)
    # train rows per tag: tag 0 -> 0,1,3 (3/3 positive), tag 1 -> 0,2,6 (2/3),
    # tag 2 -> 3,4,5 (1/3)
    t0, t1, t2 = 1.0, 2 / 3, 1 / 3
    np.testing.assert_allclose(p["valid"], [t0, t2, (t0 + t1) / 2, 0.5, t1])
    np.testing.assert_allclose(p["test"], [t1, 0.5, (t0 + t2) / 2])


def test_unknown_feature_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown sparse feature 'genre'.*item, tags, user"):
        popularity_scores(tiny(), "genre")
    with pytest.raises(UserError, match="unknown sparse feature 'nope'"):
        logistic_regression_scores(tiny(), ["item", "nope"])


def test_bad_smoothing_and_cs_are_user_errors():
    with pytest.raises(UserError, match="smoothing"):
        popularity_scores(tiny(), "item", smoothing=-1.0)
    with pytest.raises(UserError, match="Cs"):
        logistic_regression_scores(tiny(), Cs=[0.0])


def test_one_hot_matrix_has_one_block_per_feature_then_dense():
    d = tiny()
    x = one_hot_matrix(d.valid, d, ["item", "tags"]).toarray()
    assert x.shape == (5, 4 + 3 + 1)
    np.testing.assert_array_equal(x[0], [1, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(x[2, :7], [0, 0, 1, 0, 1, 1, 0])  # bag [0, 1]: two ones
    np.testing.assert_array_equal(x[3, :7], [0, 0, 0, 1, 0, 0, 0])  # empty bag: nothing
    np.testing.assert_array_equal(x[4, :7], [0, 0, 0, 0, 0, 1, 0])  # item -1 ignored
    np.testing.assert_allclose(x[:, 7], d.valid.dense[:, 0])
    assert one_hot_matrix(d.valid, d, ["item"], dense=False).shape == (5, 4)


def test_logistic_regression_picks_c_by_valid_logloss():
    d = tiny()
    cs = (0.001, 10.0, 1000.0)
    probs, info = logistic_regression_scores(d, ["item"], Cs=cs)
    assert set(probs) == {"valid", "test"}
    assert probs["valid"].shape == (5,) and probs["test"].shape == (3,)
    assert np.all((probs["test"] > 0) & (probs["test"] < 1))
    per = info["per_C"]
    assert [r["C"] for r in per] == list(cs)
    lls = [r["valid_logloss"] for r in per]
    assert info["C"] == cs[int(np.argmin(lls))] == 10.0  # neither end of the list
    assert len(set(np.round(lls, 6))) == 3  # the Cs really give different models
    # the returned valid scores are those of the chosen C
    assert logloss(d.valid.labels, probs["valid"]) == pytest.approx(min(lls))
    assert info["features"] == ["item"]
    assert info["columns"] == 4 + 1


def test_logistic_regression_choice_follows_valid_labels_not_test():
    d = tiny()
    cs = (0.001, 10.0)
    _, info = logistic_regression_scores(d, ["item"], Cs=cs)
    assert info["C"] == 10.0
    # flipping the test labels changes nothing; flipping valid labels changes the choice
    d_test = CTRData("t", SCHEMA, d.train, d.valid, d.test.take(np.arange(3)))
    d_test.test.labels[:] = 1 - d_test.test.labels
    assert logistic_regression_scores(d_test, ["item"], Cs=cs)[1]["C"] == info["C"]
    d_valid = CTRData("v", SCHEMA, d.train, d.valid.take(np.arange(5)), d.test)
    d_valid.valid.labels[:] = 1 - d_valid.valid.labels
    assert logistic_regression_scores(d_valid, ["item"], Cs=cs)[1]["C"] != info["C"]


def test_logistic_regression_defaults_to_all_sparse_features():
    _, info = logistic_regression_scores(tiny(), Cs=(1.0,))
    assert info["features"] == ["item", "user", "tags"]
    assert info["C"] == 1.0
