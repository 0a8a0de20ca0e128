"""Each loss against a brute-force loop over pairs on a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from embedlab.pu.losses import NTXentLoss, PUContrastiveLoss, PUNCELoss, PURiskLoss, SupConLoss

TAU = 0.5


def _views(b: int = 5, d: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


def _ell(z1, z2):
    """Brute force: ell[i][j] = -log(exp(s_ij) / sum_{k != i} exp(s_ik))."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2])]
    n = len(z)
    s = [[float(z[i] @ z[j]) / TAU for j in range(n)] for i in range(n)]
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        den = sum(math.exp(s[i][k]) for k in range(n) if k != i)
        for j in range(n):
            if j != i:
                out[i][j] = -math.log(math.exp(s[i][j]) / den)
    return out


def _brute_pucl(z1, z2, lab, prior=None):
    b = len(z1)
    ell = _ell(z1, z2)
    n = 2 * b
    p = [bool(x) for x in lab] * 2
    total = 0.0
    for i in range(n):
        a = (i + b) % n
        if p[i]:
            js = [j for j in range(n) if j != i and p[j]]
            total += sum(ell[i][j] for j in js) / len(js)
        else:
            li = ell[i][a]
            ps = [j for j in range(n) if p[j]]
            if prior is not None and ps:
                li = (li + prior * sum(ell[i][j] for j in ps) / len(ps)) / (1 + prior)
            total += li
    return total / n


@pytest.mark.parametrize(
    "lab", [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 1, 1, 0], [1, 1, 1, 1, 1]]
)
def test_pucl_and_punce_match_brute_force(lab):
    z1, z2 = _views()
    m = torch.tensor(lab, dtype=torch.bool)
    assert float(PUContrastiveLoss(TAU)(z1, z2, m)) == pytest.approx(
        _brute_pucl(z1, z2, lab), rel=1e-5
    )
    assert float(PUNCELoss(0.3, TAU)(z1, z2, m)) == pytest.approx(
        _brute_pucl(z1, z2, lab, prior=0.3), rel=1e-5
    )


def test_ntxent_and_supcon_match_brute_force():
    z1, z2 = _views(4, 3, seed=1)
    ell = _ell(z1, z2)
    n = 8
    assert float(NTXentLoss(TAU)(z1, z2)) == pytest.approx(
        sum(ell[i][(i + 4) % n] for i in range(n)) / n, rel=1e-5
    )
    y = [0, 1, 0, 2]
    y2 = y * 2
    brute = 0.0
    for i in range(n):
        js = [j for j in range(n) if j != i and y2[j] == y2[i]]
        brute += sum(ell[i][j] for j in js) / len(js)
    assert float(SupConLoss(TAU)(z1, z2, torch.tensor(y))) == pytest.approx(brute / n, rel=1e-5)


def test_prior_free_pucl_is_simclr_without_labeled_positives():
    z1, z2 = _views(6, 5, seed=2)
    none = torch.zeros(6, dtype=torch.bool)
    assert torch.allclose(PUContrastiveLoss(TAU)(z1, z2, none), NTXentLoss(TAU)(z1, z2))
    assert torch.allclose(PUNCELoss(0.4, TAU)(z1, z2, none), NTXentLoss(TAU)(z1, z2))


def test_losses_have_gradients_and_validate():
    z1, z2 = _views()
    z1.requires_grad_(True)
    PUNCELoss(0.5)(z1, z2, torch.tensor([1, 0, 0, 1, 0], dtype=torch.bool)).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
    with pytest.raises(ValueError, match="labeled mask"):
        PUContrastiveLoss()(z1, z2, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="prior"):
        PUNCELoss(1.5)
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)(z1, z2)


def _sp(x):
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("lab", [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
def test_upu_and_nnpu_match_hand_computation(lab):
    g = torch.tensor([2.0, -1.0, 0.5, 3.0])
    pi = 0.4
    P = [float(x) for x, l in zip(g, lab) if l]
    U = [float(x) for x, l in zip(g, lab) if not l]
    r_pp = sum(_sp(-x) for x in P) / len(P) if P else 0.0
    r_pn = sum(_sp(x) for x in P) / len(P) if P else 0.0
    r_un = sum(_sp(x) for x in U) / len(U) if U else 0.0
    neg = r_un - pi * r_pn
    upu = pi * r_pp + neg
    m = torch.tensor(lab, dtype=torch.bool)
    assert float(PURiskLoss(pi, non_negative=False)(g, m)) == pytest.approx(upu, rel=1e-6)
    nn_loss = PURiskLoss(pi)
    expected = -neg if neg < 0 else upu
    assert float(nn_loss(g, m)) == pytest.approx(expected, rel=1e-6)
    assert nn_loss.last_risk == pytest.approx(upu, rel=1e-6)
