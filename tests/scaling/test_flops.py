"""Analytic DLRM FLOP counts against a hand count and the model's own layers."""

from __future__ import annotations

import pytest
from torch import nn

from embedlab.models.dlrm import DLRM, DLRMConfig
from embedlab.scaling.flops import dlrm_flops, interaction_flops, linear_flops


def test_hand_count_of_a_tiny_dlrm():
    # dim 2, bottom 2-3-2, top (2 + 3) -5-> 4 -> 1, two tables pooling 1 and 0.5
    f = dlrm_flops(DLRMConfig(2, (3,), (4,)), num_dense=2, num_tables=2, pooling=[1.0, 0.5])
    assert f.bottom_mlp == (2 * 2 * 3 + 3) + (2 * 3 * 2 + 2) == 29
    assert f.top_mlp == (2 * 5 * 4 + 4) + (2 * 4 * 1 + 1) == 53
    assert f.interaction == 3 * (2 * 2 - 1) == 9  # 3 pairs among bottom + 2 tables
    assert f.embeddings == pytest.approx(3.0)
    assert f.forward == pytest.approx(94.0)
    assert f.train == pytest.approx(3 * 91 + 2 * 3)
    with pytest.raises(ValueError):
        dlrm_flops(DLRMConfig(2, (3,), (4,)), 2, 2, pooling=[1.0])


def test_counts_match_the_linear_layers_the_model_builds():
    cfg = DLRMConfig(8, (16, 4), (32,))
    model = DLRM(5, [10, 20, 30], ["a", "b", "c"], cfg, embedding_kernel="dense")
    macs = sum(
        2 * m.in_features * m.out_features + m.out_features
        for m in model.modules()
        if isinstance(m, nn.Linear)
    )
    f = dlrm_flops(cfg, num_dense=5, num_tables=3)
    assert f.bottom_mlp + f.top_mlp == macs
    assert interaction_flops(3, 8) == 6 * 15 and linear_flops([4]) == 0
