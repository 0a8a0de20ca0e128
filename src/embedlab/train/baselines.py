"""Non-neural baselines for any :class:`~embedlab.data.registry.CTRData`.

Both are pure functions of the data (no files, no global state) that return click
probabilities for the ``valid`` and ``test`` splits, so they can be scored with
:func:`~embedlab.train.metrics.ctr_metrics` exactly like a DLRM.

* :func:`popularity_scores`: the positive rate of each id of one sparse feature on the
  training split, shrunk toward the global training rate (a Bayesian average). With
  ``feature="item_id"`` this is the classic "item popularity" recommender baseline.
* :func:`logistic_regression_scores`: scikit-learn's ``LogisticRegression`` on a one-hot
  encoding of the chosen sparse features plus the dense features, its inverse
  regularization ``C`` picked on the *validation* logloss (the test split is never used
  for any choice).

Our conventions for sparse ids (see :mod:`embedlab.data.schema`): ``-1`` is a missing
value or bag padding and is ignored; a multi-hot bag ``[N, L]`` contributes one count /
one column per id it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays
from embedlab.errors import UserError, unknown_name
from embedlab.train.metrics import auc, logloss

EVAL_SPLITS = ("valid", "test")
DEFAULT_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def _feature_index(data: CTRData, feature: str) -> int:
    names = data.schema.sparse_names
    if feature not in names:
        raise unknown_name("sparse feature", feature, names)
    return names.index(feature)


def _ids_2d(col: np.ndarray) -> np.ndarray:
    """A sparse id column as ``[N, L]`` int64 (one-hot columns become ``L = 1``)."""
    a = np.asarray(col, dtype=np.int64)
    return a[:, None] if a.ndim == 1 else a


def popularity_scores(
    data: CTRData, feature: str = "item_id", smoothing: float = 10.0
) -> dict[str, np.ndarray]:
    """Per-id positive rate of ``feature`` on TRAIN, shrunk toward the global train rate.

    For an id seen ``n`` times in training with ``k`` positives the score is the Bayesian
    average ``(k + smoothing * g) / (n + smoothing)``, ``g`` the global training positive
    rate (``smoothing`` pseudo-observations at rate ``g``). Ids never seen in training and
    missing values (``-1``) get ``g``. For a multi-hot feature every id of a row's bag
    counts once in training, and a row's score is the mean of its ids' scores (``g`` for an
    empty bag).

    Returns ``{"valid": p_valid, "test": p_test}`` (float64 probabilities, one per row).
    """
    if not smoothing >= 0:
        raise UserError(f"smoothing must be >= 0, got {smoothing}")
    f = _feature_index(data, feature)
    size = int(data.schema.table_sizes[f])
    y = np.asarray(data.train.labels, dtype=np.float64)
    if len(y) == 0:
        raise UserError("the training split is empty")
    g = float(y.mean())

    ids = _ids_2d(data.train.sparse[f])
    mask = (ids >= 0) & (ids < size)
    rows = np.nonzero(mask)[0]
    n = np.bincount(ids[mask], minlength=size).astype(np.float64)
    k = np.bincount(ids[mask], weights=y[rows], minlength=size)
    denom = n + smoothing
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(denom > 0, (k + smoothing * g) / np.where(denom > 0, denom, 1.0), g)

    out: dict[str, np.ndarray] = {}
    for split in EVAL_SPLITS:
        sids = _ids_2d(data.split(split).sparse[f])
        ok = (sids >= 0) & (sids < size)
        per = np.where(ok, rate[np.where(ok, sids, 0)], 0.0)
        cnt = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[split] = np.where(cnt > 0, per.sum(axis=1) / np.maximum(cnt, 1), g)
    return out


def one_hot_matrix(arrays: CTRArrays, data: CTRData, features: Sequence[str], dense: bool = True):
    """The ``scipy.sparse`` CSR design matrix of ``arrays``.

    One block of columns per feature in ``features`` (its table size wide; each id of a row
    sets a 1, ``-1`` and out-of-range ids set nothing; a repeated id in a bag sums), then,
    with ``dense``, the dense features as they are (already scaled by the loader).
    """
    import scipy.sparse as sp

    n = len(arrays)
    sizes = data.schema.table_sizes
    rows_l, cols_l = [], []
    offset = 0
    for name in features:
        f = _feature_index(data, name)
        ids = _ids_2d(arrays.sparse[f])
        ok = (ids >= 0) & (ids < sizes[f])
        r, c = np.nonzero(ok)
        rows_l.append(r)
        cols_l.append(ids[r, c] + offset)
        offset += int(sizes[f])
    rows = np.concatenate(rows_l) if rows_l else np.zeros(0, np.int64)
    cols = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, offset))
    if dense and data.schema.num_dense:
        x = sp.hstack([x, sp.csr_matrix(np.asarray(arrays.dense, dtype=np.float64))], format="csr")
    return x


def logistic_regression_scores(
    data: CTRData,
    features: Sequence[str] | None = None,
    Cs: Sequence[float] = DEFAULT_CS,  # noqa: N803 (scikit-learn's name)
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """L2 logistic regression on one-hot sparse features + dense features, C tuned on VALID.

    ``features`` are sparse feature names (default: all of them); the design matrix is
    :func:`one_hot_matrix`. One model per ``C`` in ``Cs`` is fit on the training split
    (``lbfgs``, intercept not penalized); the one with the lowest validation logloss wins
    (ties: the first in ``Cs``). The model is *not* refit on train + valid, so it sees the
    same rows as a DLRM trained on the training split.

    Returns ``({"valid": p_valid, "test": p_test}, info)`` where ``info`` holds the chosen
    ``C``, the validation logloss and AUC of every ``C``, the features and the number of
    columns.
    """
    from sklearn.linear_model import LogisticRegression

    feats = list(data.schema.sparse_names if features is None else features)
    if not feats:
        raise UserError("logistic regression needs at least one sparse feature")
    for name in feats:
        _feature_index(data, name)
    Cs = [float(c) for c in Cs]  # noqa: N806
    if not Cs or any(not c > 0 for c in Cs):
        raise UserError(f"Cs must be a non-empty list of positive numbers, got {Cs}")
    y_train = np.asarray(data.train.labels, dtype=np.float64)
    if len(np.unique(y_train)) < 2:
        raise UserError("logistic regression needs both labels in the training split")
    x = {s: one_hot_matrix(data.split(s), data, feats) for s in ("train", *EVAL_SPLITS)}
    y_valid = np.asarray(data.valid.labels, dtype=np.float64)

    per_c: list[dict[str, float]] = []
    best: tuple[float, int, Any] | None = None
    for i, c in enumerate(Cs):
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=2000, random_state=seed)
        model.fit(x["train"], y_train)
        p = model.predict_proba(x["valid"])[:, 1]
        ll = logloss(y_valid, p)
        per_c.append({"C": c, "valid_logloss": ll, "valid_auc": auc(y_valid, p)})
        if best is None or ll < best[0]:
            best = (ll, i, model)
    assert best is not None
    _, i_best, model = best
    scores = {s: model.predict_proba(x[s])[:, 1].astype(np.float64) for s in EVAL_SPLITS}
    info = {
        "C": Cs[i_best],
        "per_C": per_c,
        "features": feats,
        "dense_features": list(data.schema.dense_names),
        "columns": int(x["train"].shape[1]),
        "selected_by": "valid logloss",
    }
    return scores, info
