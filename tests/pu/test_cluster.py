from __future__ import annotations

import numpy as np
import pytest

from embedlab.pu.cluster import pu_kmeans, pu_overcluster


def _blobs(n_pos=300, n_neg=700, labeled=30, seed=0, sep=4.0):
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 1, (n_pos, 5)) + np.r_[sep, 0, 0, 0, 0]
    neg = rng.normal(0, 1, (n_neg, 5)) - np.r_[sep, 0, 0, 0, 0]
    x = np.vstack([pos, neg])
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    lab = np.zeros(len(x), dtype=bool)
    lab[rng.choice(n_pos, labeled, replace=False)] = True
    return x, y, lab


@pytest.mark.parametrize("init", ["reference", "kmeans++"])
@pytest.mark.parametrize("clamp", [False, True])
def test_recovers_planted_clusters(init, clamp):
    x, y, lab = _blobs()
    r = pu_kmeans(x, lab, init=init, clamp_labeled=clamp, normalize=False, seed=3)
    assert (r.labels == y).mean() > 0.99
    assert r.labels[lab].all()


def test_positive_cluster_is_the_one_started_at_the_labeled_positives():
    # positives are the *minority*: a plain 2-means would still split right, but which
    # index is "positive" must come from the labeled points
    x, y, lab = _blobs(n_pos=100, n_neg=900, labeled=5, seed=1)
    r = pu_kmeans(x, lab, normalize=False)
    assert (r.labels == y).mean() > 0.99


def test_clamping_keeps_labeled_points_positive():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, 2))
    lab = np.zeros(200, dtype=bool)
    lab[np.argsort(x[:, 0])[:3]] = True  # three labeled points deep in one side
    free = pu_kmeans(x, lab, normalize=False)
    clamped = pu_kmeans(x, lab, normalize=False, clamp_labeled=True)
    assert clamped.labels[lab].all()
    assert free.labels.shape == clamped.labels.shape


def test_errors():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="at least one labeled positive"):
        pu_kmeans(x, np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="one labeled flag per row"):
        pu_kmeans(x, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="init"):
        pu_kmeans(x, np.ones(4, dtype=bool), init="random")


def _multimodal(seed=0, labeled=150):
    """Six blobs on a circle, positives at alternating angles: no two-cluster split separates them."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for j in range(6):
        a = 2 * np.pi * j / 6
        xs.append(rng.normal(0, 0.3, (200, 2)) + 5 * np.r_[np.cos(a), np.sin(a)])
        ys.append(np.full(200, j % 2))
    x, y = np.vstack(xs), np.concatenate(ys)
    lab = np.zeros(len(x), dtype=bool)
    lab[rng.choice(np.flatnonzero(y == 1), labeled, replace=False)] = True
    return x, y, lab


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overclustering_recovers_multimodal_positives_where_two_clusters_cannot(seed):
    x, y, lab = _multimodal(seed)
    two = pu_kmeans(x, lab, normalize=False)
    many = pu_overcluster(x, lab, 12, normalize=False, seed=seed)
    assert (two.labels == y).mean() < 0.8
    assert (many.labels == y).mean() > 0.99
    assert many.centers.shape == (12, 2)


def test_overclustering_threshold_and_clamping():
    x, y, lab = _multimodal(0, labeled=3)
    strict = pu_overcluster(x, lab, 6, normalize=False, threshold=1.0)
    assert strict.labels.sum() <= (y == 1).sum()  # only the purest clusters
    clamped = pu_overcluster(x, lab, 6, normalize=False, threshold=1.0, clamp_labeled=True)
    assert clamped.labels[lab].all()
    with pytest.raises(ValueError, match="k must be"):
        pu_overcluster(x, lab, 1)
    with pytest.raises(ValueError, match="threshold"):
        pu_overcluster(x, lab, 4, threshold=0.0)
    with pytest.raises(ValueError, match="at least one labeled positive"):
        pu_overcluster(x, np.zeros(len(x), dtype=bool), 4)
