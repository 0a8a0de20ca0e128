"""Input and parameter checks of :class:`~embedlab.pu.classifier.PUClassifier`.

A mistake the user can fix (an unknown method, a prior outside (0, 1), ``y`` that is not PU
labels, ``X`` with NaN or the wrong shape, another fit's checkpoint) raises
:class:`PUInputError`. It is a :class:`~embedlab.errors.UserError`, which the CLI prints as one
line with exit code 2, and a :class:`ValueError`, which scikit-learn's conventions ask of an
estimator given invalid parameters or data (``check_estimator`` tests it). Any other exception
from a fit is a bug and keeps its traceback.

``X`` goes through scikit-learn's ``validate_data`` (``allow_nd``: rows ``[N, d]`` or images
``[N, H, W]`` / ``[N, C, H, W]``; float32; finite; not sparse, not complex; at least 2 samples
to fit, since BatchNorm needs 2), which also keeps ``n_features_in_`` (``X.shape[1]``, as
scikit-learn defines it) and ``feature_names_in_`` for data frames. ``y`` follows the PU
convention: 1 = labeled positive, 0 = unlabeled (``method="pn"``: true binary labels); a
column vector is accepted with scikit-learn's ``DataConversionWarning``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.errors import UserError


class PUInputError(UserError):
    """A user mistake in a parameter or the data of a PU fit (a ``UserError``, hence a
    ``ValueError`` as scikit-learn's checks expect)."""


def check_x(estimator: Any, X: Any, *, fitting: bool) -> np.ndarray:
    """``X`` as a float32 array of ``[N, d]`` rows or ``[N, C, H, W]`` images (see the module doc)."""
    from sklearn.utils.validation import validate_data

    fitted_shape = getattr(estimator, "input_shape_", None)
    if not fitting and fitted_shape is not None and len(fitted_shape) == 3 and hasattr(X, "shape"):
        shape = tuple(X.shape[1:])
        if (shape if len(shape) == 3 else (1, *shape)) != fitted_shape:  # images: say which shape
            raise PUInputError(
                f"X has sample shape {shape}, the model was fitted on images of shape {fitted_shape}"
            )
    try:
        x = validate_data(estimator, X, reset=fitting, allow_nd=True, dtype=np.float32,
                          ensure_min_samples=2 if fitting else 1, accept_sparse=False)  # fmt: skip
    except ValueError as e:  # scikit-learn's message names the mistake; keep it as the user's error
        raise PUInputError(str(e)) from e
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise PUInputError(
            f"X must be [N, d] rows or [N, H, W] / [N, C, H, W] images, got shape {np.shape(X)}"
        )
    return np.ascontiguousarray(x)


def check_y(y: Any, n: int, *, supervised: bool) -> tuple[np.ndarray, np.ndarray]:
    """PU labels (1 labeled positive, 0 unlabeled), or true binary labels when ``supervised``,
    as int64 0/1 ``[n]``, and the two labels as given (``classes_``). Any two numeric labels
    are accepted, the larger one being the labeled positive (scikit-learn's positive class,
    ``classes_[1]``; e.g. nnPU's 1 / -1); strings are refused, since their order says nothing
    about which is labeled. Both classes must occur."""
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise PUInputError("PUClassifier requires y to be passed, but the target y is None")
    try:
        yy = column_or_1d(y, warn=True)
    except ValueError as e:
        raise PUInputError(f"y must be 1-D with one label per sample ({n}): {e}") from e
    if len(yy) != n:
        raise PUInputError(f"y must be 1-D with one label per sample ({n}), got {len(yy)} labels")
    try:
        kind = type_of_target(yy, raise_unknown=True)
    except ValueError as e:
        raise PUInputError(f"{e}; y must hold 1 (labeled positive) or 0 (unlabeled)") from e
    if kind == "continuous":
        raise PUInputError(
            "Unknown label type: continuous; y must hold 1 (labeled positive) or 0 (unlabeled)"
        )
    if kind not in ("binary", "multiclass") or yy.dtype.kind not in "biuf":
        raise PUInputError(f"y must hold 1 (labeled positive) or 0 (unlabeled), got labels of type {kind} "
                           f"({yy.dtype})")  # fmt: skip
    classes = np.unique(yy)
    if len(classes) > 2:
        raise PUInputError(f"Only binary classification is supported. The type of the target is {kind}: "
                           "y must hold 1 (labeled positive) or 0 (unlabeled)")  # fmt: skip
    if len(classes) == 1:
        if classes[0] == 1:
            what = "negatives (0)" if supervised else "unlabeled samples (0)"
            raise PUInputError(f"y has only one class (1): the fit needs {what} too")
        raise PUInputError(f"y has only one class ({classes[0]}), no labeled positive: y must hold "
                           "1 (labeled positive) or 0 (unlabeled), with at least one 1")  # fmt: skip
    return (yy == classes[1]).astype(np.int64), classes


__all__ = ["PUInputError", "check_x", "check_y"]
