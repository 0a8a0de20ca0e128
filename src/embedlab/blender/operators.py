"""BLENDER's residual operators and blended conditions, as pure functions.

A *denoising residual* of prompt i at one step is ``r_i = eps(x_t, t, c_i) - eps(x_t, t, base)``
(base: the null condition, or the class-only condition when a class anchor is used; see
:mod:`~embedlab.blender.sampler`). Every operator maps a residual stack ``R`` of shape
``(n, B, C, H, W)`` -- n prompts, the same x_t and t for all -- to one residual ``(B, C, H, W)``.

What the paper states (arXiv 2601.20246, abstract): *union* "encourages any attribute
present across multiple prompts"; *intersection* "extracts the common direction through a
principal component surrogate". The formulas are not public; what follows is our
reconstruction (``../shared/reference/blender.md`` section 2.4), every choice selectable:

* :func:`union_max` (U-max, fuzzy union = max): per element (or per spatial location, by
  channel norm) the residual of largest magnitude. Rescaled by default to the norm of the
  mean residual, because an unrescaled max over n prompts grows with n and saturated the
  images in our feasibility run.
* :func:`union_sum` (U-sum): ``sum_i w_i r_i``, optionally rescaled the same way.
* :func:`intersection_pca` (I-PCA): the *uncentred* first principal component of the stack
  (centring would return the difference direction), sign fixed toward ``sum_i r_i``, scaled
  by the mean (I-mean) or the minimum (I-min, fuzzy intersection = min, clamped at 0) of the
  prompts' projections on it. ``granularity="global"`` takes one component per sample over
  all of C*H*W; ``"location"`` one per pixel over the channels. Algebra to keep in mind: with
  equal-norm residuals and nearly orthogonal private parts, the global component is parallel
  to the sum, so I-mean *equals* the mean residual; the per-location I-min is the variant that
  suppresses a direction present in one prompt only (its other prompts project ~0 there).
* :func:`intersection_consensus`: an alternative (TIES-style): per element, the smallest
  magnitude among the prompts when all agree in sign, else 0.
* References: :func:`mean_residual` (``mean_i r_i``, also the official Composable-Diffusion
  SD pipeline with its default weights 1/n) and :func:`composable_sum` (Liu et al. 2022
  conjunction ``sum_i w_i r_i`` with w_i = 1, not normalised).
* Blended conditions: :func:`blend_conditions` mixes prompt conditions with convex weights
  (fixed, or per sample from :func:`dirichlet_weights`) into one condition (one model pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from embedlab.errors import UserError, unknown_name

_EPS = 1e-12


class ResidualOperator(Protocol):
    """``op(R, **options) -> residual``: R is (n, B, ...) and the result (B, ...)."""

    def __call__(self, residuals: torch.Tensor, **options: Any) -> torch.Tensor: ...


def _check(r: torch.Tensor) -> torch.Tensor:
    if r.ndim < 2 or r.shape[0] < 1:
        raise ValueError(
            f"residual stack must be (n, B, ...) with n >= 1, got shape {tuple(r.shape)}"
        )
    return r


def _flat(r: torch.Tensor) -> torch.Tensor:
    """(n, B, ...) -> (n, B, D)."""
    return r.reshape(r.shape[0], r.shape[1], -1)


def rescale_to(r: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``r`` scaled per sample (dim 0 = batch) to the L2 norm of ``ref``."""
    rn = r.flatten(1).norm(dim=1).clamp(min=_EPS)
    fn = ref.flatten(1).norm(dim=1)
    return r * (fn / rn).view(-1, *([1] * (r.ndim - 1)))


def mean_residual(residuals: torch.Tensor) -> torch.Tensor:
    """``mean_i r_i`` (reference)."""
    return _check(residuals).mean(0)


def _weights(
    n: int, weights: Sequence[float] | torch.Tensor | None, like: torch.Tensor
) -> torch.Tensor:
    w = torch.ones(n) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (n,):
        raise ValueError(f"need {n} weights, got shape {tuple(w.shape)}")
    return w.to(device=like.device, dtype=like.dtype).view(n, *([1] * (like.ndim - 1)))


def composable_sum(residuals: torch.Tensor, weights: Sequence[float] | None = None) -> torch.Tensor:
    """Composable Diffusion's conjunction ``sum_i w_i r_i`` (w_i = 1 by default; reference)."""
    r = _check(residuals)
    return (r * _weights(r.shape[0], weights, r)).sum(0)


def union_sum(
    residuals: torch.Tensor, weights: Sequence[float] | None = None, rescale: bool = True
) -> torch.Tensor:
    """U-sum: ``sum_i w_i r_i``, rescaled to the mean residual's norm when ``rescale``."""
    r = _check(residuals)
    out = (r * _weights(r.shape[0], weights, r)).sum(0)
    return rescale_to(out, r.mean(0)) if rescale else out


def union_max(
    residuals: torch.Tensor, granularity: str = "element", rescale: bool = True
) -> torch.Tensor:
    """U-max: per element (``granularity="element"``) the residual entry of largest
    magnitude, or per spatial location (``"location"``, tensors (n, B, C, H, W)) the whole
    channel vector of the prompt with the largest channel norm there."""
    r = _check(residuals)
    if granularity == "element":
        idx = r.abs().argmax(0, keepdim=True)
        out = r.gather(0, idx)[0]
    elif granularity == "location":
        if r.ndim != 5:
            raise ValueError("granularity='location' needs residuals (n, B, C, H, W)")
        idx = r.norm(dim=2, keepdim=True).argmax(0, keepdim=True)  # (1, B, 1, H, W)
        out = r.gather(0, idx.expand(1, *r.shape[1:]))[0]
    else:
        raise unknown_name("union granularity", granularity, ["element", "location"])
    return rescale_to(out, r.mean(0)) if rescale else out


def _pca_rows(m: torch.Tensor, magnitude: str) -> torch.Tensor:
    """Uncentred first component of each row stack: m (K, n, D) -> (K, D)."""
    m64 = m.double()
    gram = m64 @ m64.transpose(1, 2)  # (K, n, n)
    # The n x n Gram matrices are tiny but may number B*H*W; cuSOLVER's batched eigh asks for
    # workspace in proportion to the batch (129 GiB at 256k matrices), so they go to the CPU.
    vals, vecs = (v.to(m.device) for v in torch.linalg.eigh(gram.cpu()))  # ascending
    lam, u = vals[:, -1].clamp(min=0), vecs[:, :, -1]  # (K,), (K, n)
    v = torch.einsum("kn,knd->kd", u, m64) / lam.sqrt().clamp(min=_EPS)[:, None]
    sign = torch.sign((v * m64.sum(1)).sum(1))
    v = v * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
    proj = torch.einsum("knd,kd->kn", m64, v)  # (K, n)
    if magnitude == "mean":
        a = proj.mean(1)
    elif magnitude == "min":
        a = proj.min(1).values.clamp(min=0)
    else:
        raise unknown_name("intersection magnitude", magnitude, ["mean", "min"])
    a = torch.where(lam > _EPS, a, torch.zeros_like(a))
    return (a[:, None] * v).to(m.dtype)


def intersection_pca(
    residuals: torch.Tensor, magnitude: str = "mean", granularity: str = "global"
) -> torch.Tensor:
    """I-PCA: the uncentred principal component of the prompts' residuals, sign toward
    their sum, scaled by the mean or min projection (see the module doc)."""
    r = _check(residuals)
    n, b = r.shape[:2]
    if granularity == "global":
        out = _pca_rows(_flat(r).transpose(0, 1), magnitude)  # (B, D)
        return out.view(r.shape[1:])
    if granularity == "location":
        if r.ndim != 5:
            raise ValueError("granularity='location' needs residuals (n, B, C, H, W)")
        _, _, c, h, w = r.shape
        m = r.permute(1, 3, 4, 0, 2).reshape(b * h * w, n, c)
        out = _pca_rows(m, magnitude).view(b, h, w, c).permute(0, 3, 1, 2)
        return out.contiguous()
    raise unknown_name("intersection granularity", granularity, ["global", "location"])


def intersection_consensus(residuals: torch.Tensor) -> torch.Tensor:
    """Per element: ``sign * min_i |r_i|`` where all prompts agree in sign, else 0."""
    r = _check(residuals)
    pos, neg = (r > 0).all(0), (r < 0).all(0)
    mag = r.abs().min(0).values
    return torch.where(pos, mag, torch.where(neg, -mag, torch.zeros_like(mag)))


def dirichlet_weights(
    batch: int, n: int, alpha: float | Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """(batch, n) convex weights from Dirichlet(alpha), drawn reproducibly from ``generator``."""
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n,))
    if (a <= 0).any():
        raise UserError(f"Dirichlet concentration must be > 0, got {alpha}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).dirichlet(a, size=batch)).float()


def blend_conditions(conds: torch.Tensor, weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Convex blend of prompt conditions ``conds`` (n, B, ...) with weights (n,) shared by
    the batch or (B, n) per sample; returns (B, ...). Weights must be >= 0 and sum to 1."""
    w = torch.as_tensor(weights, dtype=conds.dtype, device=conds.device)
    n, b = conds.shape[:2]
    if w.shape == (n,):
        w = w[None].expand(b, n)
    if w.shape != (b, n):
        raise ValueError(f"weights must be ({n},) or ({b}, {n}), got {tuple(w.shape)}")
    if (w < 0).any() or not torch.allclose(
        w.sum(1), torch.ones(b, dtype=w.dtype, device=w.device), atol=1e-4
    ):
        raise ValueError("blend weights must be non-negative and sum to 1")
    return torch.einsum("bn,nb...->b...", w, conds)


#: Residual operators by name (``--op``); each entry's options are its keyword arguments.
OPERATORS: dict[str, Callable[..., torch.Tensor]] = {
    "union": union_max,
    "union-sum": union_sum,
    "intersection": intersection_pca,
    "intersection-consensus": intersection_consensus,
    "mean": mean_residual,
    "sum": composable_sum,
}


def get_operator(name: str) -> Callable[..., torch.Tensor]:
    if name not in OPERATORS:
        raise unknown_name("residual operator", name, [*OPERATORS, "blend"])
    return OPERATORS[name]


__all__ = [
    "OPERATORS",
    "ResidualOperator",
    "blend_conditions",
    "composable_sum",
    "dirichlet_weights",
    "get_operator",
    "intersection_consensus",
    "intersection_pca",
    "mean_residual",
    "rescale_to",
    "union_max",
    "union_sum",
]
