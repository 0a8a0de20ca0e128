"""PU-aware clustering (puPL): two-cluster k-means whose positive centroid starts at the labeled positives.

The reference (``run_lp.py::puPL``, see ``shared/reference/pu-learning.md``): on L2-normalised
frozen features, ``μ_P`` = mean of the labeled positives; the second centroid comes from
``KMeans(n_clusters=1, init=[μ_P]).fit(x_U)``, which converges to the mean of the unlabeled
points (its comment promises k-means++, its code does not do it); then Lloyd's k-means with
k = 2 over all points, centroids free, labeled positives not clamped; pseudo-label 1 = the
cluster that started at ``μ_P``.

Offered here (``init``):

* ``"reference"``: the second centroid at the mean of the unlabeled points, as the code does;
* ``"kmeans++"``: the second centroid drawn from the unlabeled points with probability
  proportional to the squared distance to ``μ_P`` (k-means++'s D² sampling, as the paper's
  text and the code's comment describe; seeded).

``clamp_labeled=True`` keeps the labeled positives in the positive cluster at every step
(they still move its centroid); the reference does not (default ``False``). Ties in the
assignment go to the positive cluster. Returns the pseudo-labels of all points in input
order (labeled positives included) and the final centroids ``[negative, positive]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INITS = ("reference", "kmeans++")


@dataclass(frozen=True)
class PUClustering:
    labels: np.ndarray  # [N] int64, 1 = positive cluster
    centers: np.ndarray  # [2, d]: negative, positive
    iterations: int


def l2_normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def pu_kmeans(x: np.ndarray, labeled: np.ndarray, *, init: str = "reference", clamp_labeled: bool = False,
              normalize: bool = True, max_iter: int = 300, tol: float = 1e-8, seed: int = 0) -> PUClustering:  # fmt: skip
    """Two-cluster PU k-means (see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    lab = np.asarray(labeled, dtype=bool).reshape(-1)
    if x.ndim != 2 or len(x) != len(lab):
        raise ValueError(
            f"need x [N, d] and one labeled flag per row; got {x.shape} and {lab.shape}"
        )
    if not lab.any():
        raise ValueError("PU clustering needs at least one labeled positive")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if normalize:
        x = l2_normalize(x)
    mu_p = x[lab].mean(0)
    u = x[~lab]
    if len(u) == 0:
        return PUClustering(np.ones(len(x), dtype=np.int64), np.stack([mu_p, mu_p]), 0)
    if init == "reference":
        mu_n = u.mean(0)
    else:
        d2 = ((u - mu_p) ** 2).sum(1)
        rng = np.random.default_rng(seed)
        prob = d2 / d2.sum() if d2.sum() > 0 else None
        mu_n = u[rng.choice(len(u), p=prob)]
    centers = np.stack([mu_n, mu_p])
    labels = np.zeros(len(x), dtype=np.int64)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        d = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(2)
        labels = (d[:, 1] <= d[:, 0]).astype(np.int64)
        if clamp_labeled:
            labels[lab] = 1
        new = centers.copy()
        for k in (0, 1):
            if (labels == k).any():
                new[k] = x[labels == k].mean(0)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol:
            break
    return PUClustering(labels, centers, iterations)


__all__ = ["INITS", "PUClustering", "l2_normalize", "pu_kmeans"]
