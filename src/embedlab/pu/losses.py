"""Contrastive and risk-estimator losses for positive-unlabeled (PU) learning.

Contrastive losses take the projections of two augmented views ``z1, z2`` (``[B, d]``; they
are L2-normalised here) and a labeled-positive mask ``labeled`` (``[B]``, True for labeled
positives, False for unlabeled). With ``Z = [z1; z2]`` (``2B`` views), ``s_ij = z_i · z_j / τ``
and ``a(i)`` the other view of ``i``'s image, every loss is an average over the ``2B``
anchors of a per-anchor loss built from

    ℓ_ij = −log( exp(s_ij) / Σ_{k≠i} exp(s_ik) )     (log-softmax, the diagonal at −inf)

(the reference code exponentiates without max-subtraction; we use ``log_softmax``, which
is the same value without overflow). Definitions follow the reference implementation
(``anishacharya/Contrastive-Positive-Unlabled-PU-Learning``, ``losses.py``; see
``shared/reference/pu-learning.md``):

* :class:`NTXentLoss` (SimCLR): ``L_i = ℓ_{i,a(i)}``.
* :class:`SupConLoss` (Khosla et al., "L_out"): ``L_i`` = mean of ``ℓ_ij`` over the views
  ``j ≠ i`` with ``y_j = y_i`` (with PU labels this is "sCL-PU": the unlabeled set is one
  class, so hidden positives are pulled toward unlabeled negatives -- biased).
* :class:`PUContrastiveLoss` (puCL, prior-free): a labeled-positive anchor averages ``ℓ_ij``
  over all other labeled-positive views (its own other view included); an unlabeled anchor
  uses SimCLR's ``ℓ_{i,a(i)}``. No labeled positive in the batch: exactly NT-Xent.
* :class:`PUNCELoss` (puNCE, prior-aware, the reference's default variant): positive
  anchors as in puCL; an unlabeled anchor adds the pull toward labeled positives with
  weight ``π``: ``[ℓ_{i,a(i)} + π · mean_{j∈P} ℓ_ij] / (1 + π)``. With no labeled positive
  in the batch the ``π`` term is absent (``ℓ_{i,a(i)}``); the reference raises
  ``AttributeError`` there (it calls a loss it never created).

Risk estimators (:class:`PURiskLoss`) take the classifier's logits ``g(x)`` (``[B]``) and the
same mask, with the class prior ``π`` and the logistic (softplus) loss:
``R_p^+ = mean_P softplus(−g)``, ``R_p^− = mean_P softplus(g)``, ``R_u^− = mean_U softplus(g)``
(an empty set contributes 0). uPU (du Plessis et al.): ``π R_p^+ + R_u^− − π R_p^−``. nnPU
(Kiryo et al. 2017, ``β = 0, γ = 1`` as the reference): when the negative-class risk
``R_u^− − π R_p^−`` is below ``−β``, the loss to minimise is ``−γ (R_u^− − π R_p^−)`` (the
non-negative correction: a gradient step that pushes that risk back up), otherwise the
uPU value. ``PURiskLoss.last_risk`` holds the uPU risk of the last call. The reference uses
a two-class cross-entropy; the logistic loss on one logit is the same loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pair_logprobs(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[2B, 2B]`` matrix of ``log softmax_k≠i (s_ik)`` at ``j`` (``-inf`` on the diagonal)."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"need two [B, d] views of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    s = z @ z.T / temperature
    s = s.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    return torch.log_softmax(s, dim=1)


def _other_view(n2: int, device: torch.device) -> torch.Tensor:
    b = n2 // 2
    return (torch.arange(n2, device=device) + b) % n2


def _mask(labeled: torch.Tensor, batch: int) -> torch.Tensor:
    m = torch.as_tensor(labeled, dtype=torch.bool).reshape(-1)
    if m.numel() != batch:
        raise ValueError(f"labeled mask has {m.numel()} entries for a batch of {batch}")
    return m


class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent (see the module doc)."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, labeled: torch.Tensor | None = None
    ) -> torch.Tensor:
        lp = pair_logprobs(z1, z2, self.temperature)
        a = _other_view(len(lp), lp.device)
        return -lp[torch.arange(len(lp), device=lp.device), a].mean()


class SupConLoss(nn.Module):
    """Supervised contrastive loss over labels ``y`` (``[B]``, any integer classes)."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        lp = pair_logprobs(z1, z2, self.temperature)
        y = torch.as_tensor(labels, device=lp.device).reshape(-1)
        if y.numel() != len(z1):
            raise ValueError(f"labels has {y.numel()} entries for a batch of {len(z1)}")
        y2 = torch.cat([y, y])
        pos = (y2[:, None] == y2[None, :]) & ~torch.eye(len(lp), dtype=torch.bool, device=lp.device)
        return -(lp.masked_fill(~pos, 0.0).sum(1) / pos.sum(1)).mean()


class PUContrastiveLoss(nn.Module):
    """puCL (prior-free; see the module doc)."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        self.temperature = temperature

    def per_anchor(self, z1: torch.Tensor, z2: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        """Per-anchor puCL losses ``[2B]`` (views of ``z1`` first)."""
        lp = pair_logprobs(z1, z2, self.temperature)
        p = _mask(labeled, len(z1)).to(lp.device)
        return _pucl_anchors(lp, torch.cat([p, p]))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        return self.per_anchor(z1, z2, labeled).mean()


def _pucl_anchors(lp: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """puCL per anchor from the log-probabilities and the labeled mask of the ``2B`` views."""
    n2, dev = len(lp), lp.device
    simclr = -lp[torch.arange(n2, device=dev), _other_view(n2, dev)]
    pos = p2[:, None] & p2[None, :] & ~torch.eye(n2, dtype=torch.bool, device=dev)
    sup = -(lp.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp_min(1))
    return torch.where(p2, sup, simclr)


class PUNCELoss(PUContrastiveLoss):
    """puNCE (prior-aware; see the module doc). ``prior`` = π, a tuning knob in practice."""

    def __init__(self, prior: float, temperature: float = 0.5) -> None:
        super().__init__(temperature)
        if not 0.0 <= prior <= 1.0:
            raise ValueError(f"prior must be in [0, 1], got {prior}")
        self.prior = prior

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        lp = pair_logprobs(z1, z2, self.temperature)
        p = _mask(labeled, len(z1)).to(lp.device)
        p2 = torch.cat([p, p])
        base = _pucl_anchors(lp, p2)  # P anchors final; U anchors SimCLR
        n_p = int(p2.sum())
        if n_p == 0:
            return base.mean()
        to_p = -(lp.masked_fill(~p2[None, :], 0.0).sum(1) / n_p)  # mean over labeled-P views
        u_loss = (base + self.prior * to_p) / (1.0 + self.prior)
        return torch.where(p2, base, u_loss).mean()


class PURiskLoss(nn.Module):
    """uPU (``non_negative=False``) or nnPU (``True``) risk on logits (see the module doc)."""

    def __init__(
        self, prior: float, non_negative: bool = True, beta: float = 0.0, gamma: float = 1.0
    ) -> None:
        super().__init__()
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior must be in (0, 1), got {prior}")
        self.prior, self.non_negative, self.beta, self.gamma = prior, non_negative, beta, gamma
        self.last_risk: float | None = None

    def forward(self, logits: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        g = logits.reshape(-1)
        p = _mask(labeled, len(g)).to(g.device)
        u = ~p
        zero = g.sum() * 0.0

        def mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return x[m].mean() if bool(m.any()) else zero

        r_p_pos = mean(F.softplus(-g), p)
        r_p_neg = mean(F.softplus(g), p)
        r_u_neg = mean(F.softplus(g), u)
        neg = r_u_neg - self.prior * r_p_neg
        risk = self.prior * r_p_pos + neg
        self.last_risk = float(risk.detach())
        if self.non_negative and float(neg.detach()) < -self.beta:
            return -self.gamma * neg
        return risk


__all__ = [
    "NTXentLoss",
    "PUContrastiveLoss",
    "PUNCELoss",
    "PURiskLoss",
    "SupConLoss",
    "pair_logprobs",
]
