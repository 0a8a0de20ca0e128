"""Structured pruning and regrowth of the DLRM's MLPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embedlab.growth.structure import (
    apply_structure,
    full_structure,
    grow,
    importance,
    keep_count,
    mlp_widths,
    shrink,
    transplant_state,
)
from embedlab.models.dlrm import mlp


class Net(nn.Module):
    """Two MLPs like the DLRM's: bottom 5-8-6-4 (ReLU at the end), top 4-10-1."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bottom = mlp([5, 8, 6, 4], final_activation=True)
        self.top = mlp([4, 10, 1], final_activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(x))


def test_shrink_keeps_the_most_important_neurons_and_really_shrinks():
    net = Net()
    x = torch.randn(16, 5)
    s = full_structure(net)
    assert s.full == {"bottom.0": 8, "bottom.2": 6, "top.0": 10} and not s.sparse
    scores = importance(net.bottom[0], net.bottom[2])
    shrink(net, s, 0.5)
    assert mlp_widths(net, "bottom") == [5, 4, 3, 4] and mlp_widths(net, "top") == [4, 5, 1]
    assert set(s.keep["bottom.0"].tolist()) == set(torch.topk(scores, 4).indices.tolist())
    assert s.sparsity() == pytest.approx(1 - 12 / 24)
    assert net(x).shape == (16, 1)
    with pytest.raises(RuntimeError, match="already pruned"):
        shrink(net, s, 0.5)


def test_pruning_neurons_with_zero_outgoing_weights_changes_nothing():
    net = Net()
    x = torch.randn(16, 5)
    with torch.no_grad():  # half the neurons of every layer feed nothing: zero outgoing columns
        net.bottom[2].weight[:, :4] = 0
        net.bottom[4].weight[:, :3] = 0
        net.top[2].weight[:, :5] = 0
    before = net(x)
    s = full_structure(net)
    shrink(net, s, 0.5, score="l2-out")
    torch.testing.assert_close(net(x), before)


@pytest.mark.parametrize("init", ["function-preserving", "restore"])
def test_grow_preserves_the_function_or_restores_the_weights(init):
    net = Net()
    original = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(16, 5)
    s = full_structure(net)
    shrink(net, s, 0.5)
    sparse_out = net(x)
    grow(net, s, init=init, generator=torch.Generator().manual_seed(1))
    assert (
        mlp_widths(net, "bottom") == [5, 8, 6, 4]
        and mlp_widths(net, "top") == [4, 10, 1]
        and not s.sparse
    )
    if init == "function-preserving":
        torch.testing.assert_close(net(x), sparse_out)  # new neurons' outgoing weights are zero
        assert float(net.bottom[0].weight.abs().sum()) > 0
    else:
        for k, v in net.state_dict().items():
            torch.testing.assert_close(v, original[k], msg=k)


def test_random_regrowth_changes_the_function():
    net = Net()
    x = torch.randn(16, 5)
    s = full_structure(net)
    shrink(net, s, 0.5)
    out = net(x)
    grow(net, s, init="random")
    assert not torch.allclose(net(x), out)


def test_optimizer_state_follows_the_weights():
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net(torch.randn(8, 5)).sum().backward()
    opt.step()
    w0 = net.bottom[2].weight.detach().clone()
    m0 = opt.state[net.bottom[2].weight]["exp_avg"].clone()
    s = full_structure(net)
    t = shrink(net, s, 0.5)
    new = torch.optim.Adam(net.parameters(), lr=1e-2)
    transplant_state(opt, new, t)
    rows, cols = s.keep["bottom.2"], s.keep["bottom.0"]
    st = new.state[net.bottom[2].weight]
    torch.testing.assert_close(net.bottom[2].weight.detach(), w0[rows][:, cols])
    torch.testing.assert_close(st["exp_avg"], m0[rows][:, cols])
    assert int(st["step"]) == 1
    # and back: kept entries keep their state, regrown ones start from zero
    t2 = grow(net, s)
    full = torch.optim.Adam(net.parameters(), lr=1e-2)
    transplant_state(new, full, t2)
    back = full.state[net.bottom[2].weight]["exp_avg"]
    assert back.shape == m0.shape
    torch.testing.assert_close(back[rows][:, cols], m0[rows][:, cols])
    mask = torch.ones_like(back, dtype=torch.bool)
    mask[rows.unsqueeze(1), cols.unsqueeze(0)] = False
    assert float(back[mask].abs().sum()) == 0.0


def test_apply_structure_rebuilds_a_checkpointed_sparse_model():
    net = Net()
    s = full_structure(net)
    shrink(net, s, 0.75)
    state = net.state_dict()
    fresh = Net()
    apply_structure(fresh, type(s).from_state_dict(s.state_dict()))
    fresh.load_state_dict(state)
    x = torch.randn(4, 5)
    torch.testing.assert_close(fresh(x), net(x))


def test_keep_count():
    assert keep_count(10, 0.5) == 5 and keep_count(3, 0.99) == 1 and keep_count(8, 0.0) == 8


def test_regrown_adagrad_state_can_start_at_the_mean():
    net = Net()
    opt = torch.optim.Adagrad(net.parameters(), lr=0.1)
    net(torch.randn(8, 5)).sum().backward()
    opt.step()
    s = full_structure(net)
    t0 = shrink(net, s, 0.5)
    small = torch.optim.Adagrad(net.parameters(), lr=0.1)
    transplant_state(opt, small, t0)
    kept_rows = s.keep["top.0"]
    kept_sum = small.state[net.top[0].weight]["sum"].clone()
    t = grow(net, s)
    full = torch.optim.Adagrad(net.parameters(), lr=0.1)
    transplant_state(small, full, t, fill="mean")
    acc = full.state[net.top[0].weight]["sum"]
    torch.testing.assert_close(acc[kept_rows], kept_sum)
    new_rows = [i for i in range(10) if i not in set(kept_rows.tolist())]
    torch.testing.assert_close(
        acc[new_rows], torch.full((len(new_rows), 4), float(kept_sum.mean()))
    )
    with pytest.raises(ValueError, match="state fill"):
        transplant_state(small, full, t, fill="max")
