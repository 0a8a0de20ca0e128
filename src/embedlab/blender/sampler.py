"""The BLENDER sampler: guided DDIM (or any diffusers scheduler) with a residual operator.

Per step, one batched model call evaluates the null condition, the class anchor (if any)
and every prompt at the same ``x_t`` and ``t``; the prompts' residuals go through the
chosen operator (:mod:`~embedlab.blender.operators`) and the guided noise is

    eps~ = eps_null + s_c * (eps_class - eps_null) + s_a * op({eps_i - eps_base})

``eps_base`` is ``eps_class`` when a class anchor is given (``residual_base="class"``: the
operator then combines pure attribute directions and the class comes from the anchor), or
``eps_null`` (``"null"``: the reference form ``eps_null + s * op({eps_i - eps_null})``, the
anchor term dropped). With op = mean, one prompt and ``s_a = s_c`` this is classifier-free
guidance. Outside the optional step ``window`` (fractions of the trajectory, 0 = first step)
the attribute term is off and only the anchor guides. ``op="blend"`` replaces the prompts by
one convex blend of their conditions (fixed or Dirichlet weights, one model pass each).

The paper's guidance scales and scheduler are not public; we use DDIM (eta = 0) with 25
steps and scales chosen on the *training* classes (``benchmarks/blender.py``).

Any epsilon-prediction model fits through an :class:`EpsModel`: :class:`UNet2DEps` for a
diffusers ``UNet2DModel`` conditioned through ``class_labels`` (class indices or vectors),
:class:`UNet2DConditionEps` for a ``UNet2DConditionModel`` (Stable-Diffusion style
``encoder_hidden_states``; decode latents with the pipeline's VAE yourself), and
:class:`~embedlab.blender.generator.ConditionalGenerator` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from embedlab.blender.operators import blend_conditions, dirichlet_weights, get_operator
from embedlab.errors import UserError
from embedlab.options import coerce_options


class EpsModel(Protocol):
    """``eps(x, t, cond)``: predicted noise for a batch; ``cond`` has the batch's length."""

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...


@dataclass
class UNet2DEps:
    """A diffusers ``UNet2DModel`` with a class embedding (``class_labels``)."""

    unet: Any

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=cond).sample


@dataclass
class UNet2DConditionEps:
    """A diffusers ``UNet2DConditionModel`` (cross-attention on ``encoder_hidden_states``)."""

    unet: Any

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=cond).sample


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample (see the module doc)."""

    op: str = "union"
    op_options: dict[str, Any] = field(default_factory=dict)
    steps: int = 25
    attr_scale: float = 3.0
    class_scale: float = 3.0
    residual_base: str = "class"  # or "null"
    window: tuple[float, float] = (0.0, 1.0)
    blend_alpha: float | None = 1.0  # Dirichlet concentration for op="blend"; None: equal weights
    eta: float = 0.0

    def __post_init__(self) -> None:
        if self.op != "blend":
            import inspect

            # the operator's keyword defaults are the schema: "rescale=false" becomes False
            params = inspect.signature(get_operator(self.op)).parameters
            schema = {n: None if p.default is inspect.Parameter.empty else p.default
                      for n, p in params.items() if n != "residuals"}  # fmt: skip
            typed = coerce_options(f"operator {self.op!r}", self.op_options, schema)
            object.__setattr__(self, "op_options", typed)
        elif self.op_options:
            raise UserError("op 'blend' takes no operator options (see blend_alpha)")
        if self.residual_base not in ("class", "null"):
            raise UserError(f"residual_base must be 'class' or 'null', got {self.residual_base!r}")
        lo, hi = self.window
        if not 0.0 <= lo < hi <= 1.0:
            raise UserError(f"window must satisfy 0 <= start < end <= 1, got {self.window}")
        if self.steps < 1:
            raise UserError("steps must be >= 1")


def _repeat(c: torch.Tensor, b: int) -> torch.Tensor:
    """A condition for one sample (1, ...) or for the batch (b, ...) -> (b, ...)."""
    return c.expand(b, *c.shape[1:]) if c.shape[0] == 1 else c


@torch.inference_mode()
def blender_sample(model: EpsModel, scheduler: Any, shape: tuple[int, ...], null: torch.Tensor,
                   prompts: torch.Tensor, cfg: SamplerConfig, anchor: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
    """Sample ``shape = (B, C, H, W)`` images.

    ``null``: the null condition (1, ...) or (B, ...); ``prompts``: (n, 1 or B, ...) prompt
    conditions; ``anchor``: the class-only condition (1 or B, ...) or None. ``generator``:
    the randomness of the initial noise and of stochastic steps (None: fresh randomness, as
    diffusers pipelines do). Works with any diffusers scheduler: ``eta`` and ``generator``
    are passed to ``step`` only where it takes them (PNDM, UniPC and LMS take neither).
    Returns the final sample, clamped only where the scheduler's config asks
    (``clip_sample``, to ``clip_sample_range``: DDIM and DDPM by default), so latents of a
    Stable-Diffusion-style model are returned as they are."""
    b = shape[0]
    if generator is None:
        gen = torch.Generator()
        gen.seed()  # non-deterministic
    else:
        gen = generator
    if prompts.ndim < 2 or prompts.shape[0] < 1:
        raise UserError("need at least one prompt condition")
    device = null.device
    conds = torch.stack([_repeat(p, b) for p in prompts])  # (n, B, ...)
    if cfg.op == "blend":
        w = (dirichlet_weights(b, len(conds), cfg.blend_alpha, gen) if cfg.blend_alpha is not None
             else torch.full((len(conds),), 1.0 / len(conds)))  # fmt: skip
        conds = blend_conditions(conds, w.to(device))[None]
        op, opts = get_operator("mean"), {}
    else:
        op, opts = get_operator(cfg.op), dict(cfg.op_options)
    use_anchor = anchor is not None
    if cfg.residual_base == "class" and not use_anchor:
        raise UserError("residual_base='class' needs an anchor (class-only) condition")
    if cfg.residual_base == "null" and use_anchor:
        raise UserError(
            "residual_base='null' is the reference form eps_null + s * op(eps_i - eps_null), "
            "without the anchor term: pass anchor=None, or residual_base='class' to use the anchor"
        )
    parts = [_repeat(null, b), *([_repeat(anchor, b)] if use_anchor else []), *conds]
    batch_cond = torch.cat(parts)
    k = len(parts)
    x = torch.randn(shape, generator=gen).to(device)  # CPU draws: the same samples on any device
    scheduler.set_timesteps(cfg.steps)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)
    steps = list(scheduler.timesteps)
    takes = _step_parameters(scheduler)
    step_kw = {k: v for k, v in (("eta", cfg.eta), ("generator", gen)) if k in takes}
    for i, t in enumerate(steps):
        frac = i / max(1, len(steps))
        xin = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
        tt = torch.full((b * k,), int(t), dtype=torch.long, device=device)
        eps = model.eps(xin.repeat(k, *([1] * (x.ndim - 1))), tt, batch_cond).view(k, *shape)
        e_null = eps[0]
        guided = e_null.clone()
        if use_anchor:
            e_cls = eps[1]
            guided = guided + cfg.class_scale * (e_cls - e_null)
            base = e_cls if cfg.residual_base == "class" else e_null
            prompt_eps = eps[2:]
        else:
            base, prompt_eps = e_null, eps[1:]
        if cfg.window[0] <= frac < cfg.window[1]:
            guided = guided + cfg.attr_scale * op(prompt_eps - base[None], **opts)
        x = scheduler.step(guided, t, x, **step_kw).prev_sample
    config = getattr(scheduler, "config", {})
    if config.get("clip_sample", False):
        r = float(config.get("clip_sample_range", 1.0))
        x = x.clamp(-r, r)
    return x


def _step_parameters(scheduler: Any) -> set[str]:
    import inspect

    return set(inspect.signature(scheduler.step).parameters)


__all__ = ["EpsModel", "SamplerConfig", "UNet2DConditionEps", "UNet2DEps", "blender_sample"]
