"""Generating labelled synthetic images with a trained generator, and the prompt designs.

A *prompt* is (class k, attribute set S); its condition is the generator's bag of tokens.
:func:`generate` samples one image per row of ``cls`` with ``n`` prompts each (the same
``n`` for the whole call), chunked so memory stays small, reproducible from ``seed``.

Prompt designs (all draw attributes uniformly; ``A`` attributes):

* :func:`union_prompts`: ``n`` distinct single-attribute prompts ``{a}``, ``{b}``, ... --
  the union should show any (ideally several) of them, none of the others.
* :func:`intersection_prompts`: ``n`` prompts that share an attribute set ``I`` and each add
  one different private attribute, ``I + {p_i}`` -- the intersection should show ``I`` and
  none of the ``p_i``.
* :func:`class_only_prompts`: the class alone (plain classifier-free guidance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from embedlab.blender.generator import ConditionalGenerator, make_scheduler
from embedlab.blender.sampler import SamplerConfig, blender_sample
from embedlab.errors import UserError


@dataclass(frozen=True)
class PromptDesign:
    """Per sample: class, the prompts' attribute rows (n, B, A), and the attribute masks the
    operators are scored against (``union``: any prompt's; ``shared``: every prompt's)."""

    cls: torch.Tensor  # (B,)
    prompts: torch.Tensor  # (n, B, A) float 0/1
    union: torch.Tensor  # (B, A) bool
    shared: torch.Tensor  # (B, A) bool

    def __len__(self) -> int:
        return len(self.cls)


def _design(cls: torch.Tensor, prompts: torch.Tensor) -> PromptDesign:
    p = prompts.bool()
    return PromptDesign(cls, prompts.float(), p.any(0), p.all(0))


def class_only_prompts(cls: torch.Tensor, num_attributes: int) -> PromptDesign:
    return _design(cls, torch.zeros(1, len(cls), num_attributes))


def union_prompts(
    cls: torch.Tensor, num_attributes: int, n: int, gen: torch.Generator
) -> PromptDesign:
    if not 1 <= n <= num_attributes:
        raise UserError(f"union needs 1..{num_attributes} single-attribute prompts, got {n}")
    order = torch.argsort(torch.rand(len(cls), num_attributes, generator=gen), dim=1)[
        :, :n
    ]  # (B, n)
    prompts = torch.zeros(n, len(cls), num_attributes)
    for i in range(n):
        prompts[i, torch.arange(len(cls)), order[:, i]] = 1.0
    return _design(cls, prompts)


def intersection_prompts(cls: torch.Tensor, num_attributes: int, n: int, shared: int,
                         gen: torch.Generator) -> PromptDesign:  # fmt: skip
    if shared < 1 or n < 2 or shared + n > num_attributes:
        raise UserError(
            f"intersection needs shared >= 1, n >= 2 and shared + n <= {num_attributes}"
        )
    order = torch.argsort(torch.rand(len(cls), num_attributes, generator=gen), dim=1)
    common, private = order[:, :shared], order[:, shared : shared + n]
    prompts = torch.zeros(n, len(cls), num_attributes)
    rows = torch.arange(len(cls))
    for i in range(n):
        for j in range(shared):
            prompts[i, rows, common[:, j]] = 1.0
        prompts[i, rows, private[:, i]] = 1.0
    return _design(cls, prompts)


@torch.inference_mode()
def generate(model: ConditionalGenerator, design: PromptDesign, cfg: SamplerConfig, seed: int,
             chunk: int = 250) -> torch.Tensor:  # fmt: skip
    """One image per row of ``design`` (B, 3, H, W) in [-1, 1], on the CPU; the model runs on
    its own device, the random draws come from a CPU generator seeded with ``seed``."""
    sched = make_scheduler(model.cfg, "ddim")
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    a = model.cfg.num_attributes
    size = model.cfg.sample_size
    null = model.condition(torch.tensor([-1], device=dev), torch.zeros(1, a, device=dev))
    out = []
    for s in range(0, len(design), chunk):
        cls = design.cls[s : s + chunk].to(dev)
        anchor = (
            model.condition(cls, torch.zeros(len(cls), a, device=dev))
            if cfg.residual_base == "class"
            else None
        )
        prompts = torch.stack(
            [model.condition(cls, p[s : s + chunk].to(dev)) for p in design.prompts]
        )
        out.append(blender_sample(model, sched, (len(cls), 3, size, size), null, prompts, cfg,
                                  anchor=anchor, generator=gen).cpu())  # fmt: skip
    return torch.cat(out)


__all__ = [
    "PromptDesign",
    "class_only_prompts",
    "generate",
    "intersection_prompts",
    "union_prompts",
]
