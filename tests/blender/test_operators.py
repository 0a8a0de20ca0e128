"""Residual operators: definitions, algebraic properties, and where intersection differs."""

from __future__ import annotations

import pytest
import torch

from embedlab.blender.operators import (
    OPERATORS,
    blend_conditions,
    composable_sum,
    dirichlet_weights,
    get_operator,
    intersection_consensus,
    intersection_pca,
    mean_residual,
    rescale_to,
    union_max,
    union_sum,
)
from embedlab.errors import UserError


def _stack(n=3, b=2, seed=0):
    return torch.randn(n, b, 3, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_union_max_elementwise_picks_largest_magnitude():
    r = torch.tensor([[[1.0, -5.0, 0.5]], [[-2.0, 3.0, 0.1]]])  # (n=2, B=1, D=3)
    out = union_max(r, rescale=False)
    assert torch.equal(out, torch.tensor([[-2.0, -5.0, 0.5]]))


def test_union_max_location_takes_whole_channel_vector():
    r = torch.zeros(2, 1, 3, 1, 2)
    r[0, 0, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0])  # norm 1.73 at pixel 0
    r[1, 0, :, 0, 0] = torch.tensor([1.5, 0.0, 0.0])  # larger single entry, smaller norm
    r[1, 0, :, 0, 1] = torch.tensor([0.0, 2.0, 0.0])
    out = union_max(r, granularity="location", rescale=False)
    assert torch.equal(out[0, :, 0, 0], torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(out[0, :, 0, 1], torch.tensor([0.0, 2.0, 0.0]))
    # element granularity would have mixed prompts at pixel 0
    assert union_max(r, rescale=False)[0, 0, 0, 0] == 1.5


@pytest.mark.parametrize("op", [union_max, union_sum])
def test_union_rescale_matches_mean_norm(op):
    r = _stack(n=4)
    out = op(r)
    ref = r.mean(0)
    torch.testing.assert_close(out.flatten(1).norm(dim=1), ref.flatten(1).norm(dim=1))
    unscaled = op(r, rescale=False)
    assert unscaled.flatten(1).norm(dim=1).gt(ref.flatten(1).norm(dim=1)).all()


def test_sum_and_mean_references():
    r = _stack()
    torch.testing.assert_close(composable_sum(r), r.sum(0))
    torch.testing.assert_close(
        composable_sum(r, [0.5, 0.25, 0.25]), 0.5 * r[0] + 0.25 * r[1] + 0.25 * r[2]
    )
    torch.testing.assert_close(mean_residual(r), r.mean(0))
    with pytest.raises(ValueError):
        composable_sum(r, [1.0, 2.0])


def test_single_prompt_every_operator_is_identity_or_scaled():
    r = _stack(n=1)
    for name in ("union", "union-sum", "intersection", "intersection-consensus", "mean", "sum"):
        torch.testing.assert_close(OPERATORS[name](r), r[0], msg=name)


def test_intersection_global_equals_mean_for_equal_norm_orthogonal_privates():
    """The known algebra: v1 is parallel to the sum, so I-mean is the mean residual."""
    d = 4096
    g = torch.Generator().manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(d, 4, generator=g))
    c = basis[:, 0] * 3.0
    r = torch.stack([c + 2.0 * basis[:, i] for i in (1, 2, 3)])[:, None]  # (3, 1, d)
    out = intersection_pca(r)
    torch.testing.assert_close(out, r.mean(0), atol=1e-4, rtol=1e-4)


def test_intersection_global_differs_from_mean_when_norms_differ():
    d = 512
    basis, _ = torch.linalg.qr(torch.randn(d, 3, generator=torch.Generator().manual_seed(2)))
    c, p1, p2 = basis.T * 2.0
    r = torch.stack([c + 4.0 * p1, c + 0.5 * p2, c])[:, None]
    out = intersection_pca(r)[0]
    mean = r.mean(0)[0]
    assert not torch.allclose(out, mean, atol=1e-3)
    # min magnitude never exceeds the mean magnitude
    assert intersection_pca(r, magnitude="min").norm() <= out.norm() + 1e-6


def test_intersection_location_min_suppresses_private_direction():
    r = torch.zeros(3, 1, 3, 1, 2)
    shared = torch.tensor([1.0, -1.0, 0.5])
    r[:, 0, :, 0, 0] = shared  # every prompt has the shared attribute at pixel 0
    r[0, 0, :, 0, 1] = torch.tensor([0.0, 2.0, 0.0])  # only prompt 0 at pixel 1
    out = intersection_pca(r, magnitude="min", granularity="location")
    torch.testing.assert_close(out[0, :, 0, 0], shared)
    torch.testing.assert_close(out[0, :, 0, 1], torch.zeros(3), atol=1e-6, rtol=0)
    # the mean keeps a third of the private residual
    assert mean_residual(r)[0, 1, 0, 1] > 0.6


def test_intersection_sign_equivariance_and_zero_stack():
    r = _stack()
    for kw in ({}, {"magnitude": "min"}, {"granularity": "location"}):
        torch.testing.assert_close(intersection_pca(-r, **kw), -intersection_pca(r, **kw))
    assert torch.equal(intersection_pca(torch.zeros(3, 2, 3, 4, 4)), torch.zeros(2, 3, 4, 4))


def test_intersection_consensus():
    r = torch.tensor([[[1.0, -2.0, 3.0]], [[2.0, -1.0, -3.0]]])
    assert torch.equal(intersection_consensus(r), torch.tensor([[1.0, -1.0, 0.0]]))


def test_bad_options_and_names():
    r = _stack()
    with pytest.raises(UserError):
        union_max(r, granularity="pixel")
    with pytest.raises(UserError):
        intersection_pca(r, magnitude="max")
    with pytest.raises(UserError, match="valid"):
        get_operator("xor")
    with pytest.raises(ValueError):
        union_max(torch.zeros(3))
    with pytest.raises(ValueError):
        union_max(torch.zeros(2, 1, 5), granularity="location")


def test_blend_and_dirichlet():
    conds = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]).expand(2, 3, 2)  # (n=2, B=3, 2)
    torch.testing.assert_close(
        blend_conditions(conds, [0.25, 0.75]), torch.tensor([[0.25, 0.75]] * 3)
    )
    w = dirichlet_weights(3, 2, 1.0, torch.Generator().manual_seed(0))
    assert w.shape == (3, 2) and torch.allclose(w.sum(1), torch.ones(3)) and (w >= 0).all()
    torch.testing.assert_close(blend_conditions(conds, w), w)
    w2 = dirichlet_weights(3, 2, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(w, w2)
    with pytest.raises(ValueError):
        blend_conditions(conds, [0.5, 0.6])
    with pytest.raises(UserError):
        dirichlet_weights(2, 2, 0.0, torch.Generator())


def test_rescale_to_zero_reference():
    r = _stack()[0]
    assert torch.equal(rescale_to(r, torch.zeros_like(r)), torch.zeros_like(r))
