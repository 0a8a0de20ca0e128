"""Attributed Animal Silhouettes: safe loading, dedupe, rendering and exact detectors."""

from __future__ import annotations

import gzip
import itertools
import pickle

import numpy as np
import pytest
import torch

from embedlab.blender.data import (
    ATTRIBUTES,
    ClassPartition,
    dedupe,
    detect_attributes,
    load_animal_shapes,
    make_splits,
    oracle_images,
    partial_support,
    random_combinations,
    render,
    silhouettes,
)
from embedlab.errors import UserError


def test_every_detector_is_exact_on_every_combination():
    s = silhouettes()
    idx = torch.arange(0, len(s.y), 7)
    combos = torch.tensor(list(itertools.product([0, 1], repeat=len(ATTRIBUTES))), dtype=torch.bool)
    for combo in combos:
        attrs = combo.expand(len(idx), -1)
        x = render(s.big[idx], s.small[idx], attrs)
        assert x.shape == (len(idx), 3, 32, 32) and x.min() >= -1 and x.max() <= 1
        assert torch.equal(detect_attributes(x), attrs), combo.tolist()


def test_silhouettes_are_deduplicated_and_labelled():
    s = silhouettes()
    assert 9600 < len(s.y) < 9716
    assert set(s.y.tolist()) == set(range(10))
    flat = (s.big.flatten(1) > 0.5).numpy()
    assert len({r.tobytes() for r in flat}) > 0.99 * len(flat)


def test_dedupe_removes_copies_and_tiny_shapes():
    x = np.zeros((4, 28, 28), np.uint8)
    x[0, 5:20, 5:20] = 255
    x[1] = x[0]
    x[2, 5:20, 3:25] = 255
    x[3, 10:12, 10:12] = 255  # 2-px blob: dropped
    xd, yd = dedupe(x, np.arange(4))
    assert yd.tolist() == [0, 2]


def test_loader_refuses_arbitrary_pickles(tmp_path):
    evil = pickle.dumps(print)  # builtins.print: not a numpy array
    for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(evil)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_animal_shapes(tmp_path)


def test_loader_missing_folder_names_the_path(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path)):
        load_animal_shapes(tmp_path)


def test_partial_support_and_random_combinations():
    g = torch.Generator().manual_seed(0)
    a = partial_support(4000, g, p_none=0.2)
    assert a.sum(1).max() == 1
    assert abs((a.sum(1) == 0).float().mean().item() - 0.2) < 0.03
    r = random_combinations(4000, g)
    assert abs(r.float().mean().item() - 0.5) < 0.03
    assert len({tuple(row) for row in r.tolist()}) == 16


def test_partition_and_splits():
    p = ClassPartition.from_seed(3)
    assert len(p.train) == 5 and len(p.val) == 2 and len(p.test) == 3
    assert not set(p.train) & set(p.test) and not set(p.val) & set(p.test)
    with pytest.raises(UserError):
        ClassPartition((0, 1), (1, 2), (3, 4))
    sp = make_splits(p, seed=0)
    assert set(sp.train.y.tolist()) == set(p.train) and set(sp.test.y.tolist()) == set(p.test)
    assert sp.train.attrs.sum(1).max() <= 1 and sp.test.attrs.sum(1).max() == len(ATTRIBUTES)
    assert torch.equal(detect_attributes(sp.test.x), sp.test.attrs)
    again = make_splits(p, seed=0)
    assert torch.equal(again.train.x, sp.train.x)
    o = oracle_images(sp.train, 300, seed=1)
    assert set(o.y.tolist()) <= set(p.train) and torch.equal(detect_attributes(o.x), o.attrs)
    assert o.attrs.sum(1).max() >= 2
