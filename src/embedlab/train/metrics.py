"""CTR metrics as pure NumPy functions: ROC AUC, logloss and normalized entropy.

NE follows He et al. (2014), "Practical Lessons from Predicting Clicks on Ads at
Facebook": the average logloss divided by the entropy of the base click rate. Our choice:
the base rate is the mean label of the evaluated set itself, so NE < 1 means "better than
always predicting this set's click rate".
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7


def binary_entropy(p: float) -> float:
    """Entropy (nats) of a Bernoulli(``p``); 0 at the ends."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def logloss(y: np.ndarray, p: np.ndarray, eps: float = EPS) -> float:
    """Mean binary cross-entropy (nats), probabilities clipped to ``[eps, 1 - eps]``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given half credit.

    Returns NaN when only one class is present.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def normalized_entropy(y: np.ndarray, p: np.ndarray) -> float:
    """Logloss divided by the entropy of the mean label (NaN if the labels are constant)."""
    h = binary_entropy(float(np.mean(y)))
    return logloss(y, p) / h if h > 0 else float("nan")


def ctr_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """``auc``, ``logloss``, ``ne``, ``accuracy`` and the observed ``ctr``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return {
        "auc": auc(y, p),
        "logloss": logloss(y, p),
        "ne": normalized_entropy(y, p),
        "accuracy": float(np.mean((p >= 0.5) == (y >= 0.5))),
        "ctr": float(y.mean()),
    }
