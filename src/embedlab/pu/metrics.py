"""A model-selection score computable from PU labels: Lee & Liu's F1 surrogate.

Accuracy against PU labels (1 labeled positive, 0 unlabeled) counts every hidden positive the
model finds as an error, so it prefers a model that calls the unlabeled set negative: that is
what scikit-learn's default ``score`` would make ``GridSearchCV`` choose.

Lee and Liu (2003, *Learning with positive and unlabeled examples using weighted logistic
regression*, ICML, section 4) score a classifier ``f`` by ``r² / P(f(x) = 1)``, where ``r`` is
its recall on the positives. Under SCAR (the labeled positives are a uniform sample of the
positives) ``r`` is estimated by the recall on the labeled positives and ``P(f(x) = 1)`` by the
share of all samples predicted positive, so neither the true labels nor the class prior are
needed. Since ``precision = r · P(y = 1) / P(f(x) = 1)``, the criterion equals
``precision · recall / P(y = 1)``: on a fixed data set it ranks classifiers as the product of
precision and recall (the square of their geometric mean) does, which behaves like F1. It is not
bounded by 1 (at most ``1 / P(y = 1)``, reached by the perfect classifier); a classifier that
predicts no positive scores 0.

Computed on held-out data, as cross-validation does: on the data a model was fitted on, a model
that memorises the labeled positives would score ``n / n_labeled``; no PU criterion can tell it
from a good one there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.pu.validation import PUInputError


def lee_liu_score(y_pu: Any, y_pred: Any, sample_weight: Any = None) -> float:
    """``recall_L² / P(ŷ = 1)``: recall on the labeled positives (``y_pu == 1``) squared over the
    share of samples predicted positive (see the module doc); weighted by ``sample_weight``."""
    y = np.asarray(y_pu).reshape(-1)
    pred = np.asarray(y_pred).reshape(-1)
    if len(y) != len(pred):
        raise PUInputError(f"{len(y)} PU labels for {len(pred)} predictions")
    if not np.isin(y, (0, 1)).all() or not np.isin(pred, (0, 1)).all():
        raise PUInputError("PU labels and predictions must be 1 (positive) or 0")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    labeled = w * (y == 1)
    if labeled.sum() <= 0:
        raise PUInputError(
            "the PU score needs labeled positives (1) in y: recall is undefined without"
        )
    recall = float((labeled * (pred == 1)).sum() / labeled.sum())
    rate = float((w * (pred == 1)).sum() / w.sum())
    return recall**2 / rate if rate > 0 else 0.0


__all__ = ["lee_liu_score"]
