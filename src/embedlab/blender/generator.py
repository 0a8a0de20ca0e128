"""The small class-and-attribute-conditional diffusion model of the demo, and its training.

The paper adapts Stable Diffusion 1.5 (LoRA + Textual Inversion, 20k steps per category);
none of that can run here, so the demo trains a diffusers ``UNet2DModel`` from scratch on
the *training classes only* (the embedding's test classes are never seen).

Choices (``../shared/reference/blender.md`` section 5.3, measured in our feasibility run):

* ``UNet2DModel`` 32x32x3, block channels (16, 32, 32), one layer per block, no attention,
  epsilon prediction, ``DDPMScheduler(1000, "squaredcos_cap_v2")``.
* Conditioning as a bag of tokens, the small-scale stand-in for a text embedding:
  ``c = E_class[k] + sum_{a in S} E_attr[a]`` (all tokens initialised N(0, 1)), fed through
  ``class_embed_type="identity"`` (added to the time embedding) *and*, projected to
  ``cond_channels`` = 8 constant maps, concatenated to the input image. With the time-embedding
  path alone the trained model's condition residuals were ~1-2% of the predicted noise and
  guidance barely changed the samples. The null condition is a learned ``E_null`` with no
  attribute tokens.
* Condition dropout: the whole condition becomes null with probability 0.1 (for classifier-
  free guidance), and *each attribute token independently* with probability 0.3, so that
  ``(k, S')`` for any ``S'`` within an image's attributes is a trained condition ("S' present,
  the rest unspecified") -- the marginals composition needs. A token never means "absent".
* AdamW (lr 1e-3, weight decay 1e-4), batch 64, EMA of the weights (decay 0.999) used for
  sampling; resumable checkpoints every ``checkpoint_every`` iterations.
* ``device``: training runs on any torch device. Every random draw (batch indices, dropout,
  noise, timesteps) comes from one CPU ``torch.Generator`` and is moved to the device, so
  the data order is the same on every device (the arithmetic is not bit-identical).
  ``deadline_s`` stops early and saves the EMA weights reached so far; the iterations
  actually done are recorded in ``generator.json`` (``meta.iterations``,
  ``meta.stopped_at_deadline``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedlab.errors import UserError

FORMAT = "embedlab.blender-generator/v1"


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture and training settings (see the module doc for the choices)."""

    num_classes: int = 10
    num_attributes: int = 4
    channels: tuple[int, ...] = (16, 32, 32)
    layers_per_block: int = 1
    cond_channels: int = 8
    sample_size: int = 32
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    iterations: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    p_null: float = 0.1
    p_drop_attribute: float = 0.3
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    seed: int = 0

    @property
    def cond_dim(self) -> int:
        return 4 * self.channels[0]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GeneratorConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


class ConditionEncoder(nn.Module):
    """``c = E_class[k] + sum_a attrs[a] * E_attr[a]``; class ``-1`` is the learned null.

    ``attrs`` may be fractional (blended prompts) -- the map is linear in them."""

    def __init__(self, num_classes: int, num_attributes: int, dim: int) -> None:
        super().__init__()
        self.classes = nn.Embedding(num_classes + 1, dim)  # last row: null; N(0, 1) init
        # Same scale as the class rows: at 0.02 the attribute tokens stayed ~20x smaller than
        # the class tokens after 3k iterations and attribute guidance had almost no effect.
        self.attributes = nn.Parameter(torch.randn(num_attributes, dim))
        self.num_classes = num_classes

    def forward(self, cls: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        idx = torch.where(cls < 0, torch.full_like(cls, self.num_classes), cls)
        return self.classes(idx) + attrs.to(self.attributes.dtype) @ self.attributes


class ConditionalGenerator(nn.Module):
    """A ``UNet2DModel`` whose class embedding is the condition vector of a :class:`ConditionEncoder`."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        n = len(cfg.channels)
        self.cfg = cfg
        self.unet = UNet2DModel(
            sample_size=cfg.sample_size, in_channels=3 + cfg.cond_channels, out_channels=3,
            block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n,
            norm_num_groups=8, class_embed_type="identity",
        )  # fmt: skip
        self.encoder = ConditionEncoder(cfg.num_classes, cfg.num_attributes, cfg.cond_dim)
        self.cond_maps = nn.Linear(cfg.cond_dim, cfg.cond_channels) if cfg.cond_channels else None

    def condition(self, cls: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        return self.encoder(cls, attrs)

    def eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predicted noise for images ``x`` at timesteps ``t`` under condition vectors ``cond``."""
        if self.cond_maps is not None:
            maps = self.cond_maps(cond)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, maps], 1)
        return self.unet(x, t, class_labels=cond).sample

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def make_scheduler(cfg: GeneratorConfig, kind: str = "ddpm"):  # noqa: ANN201
    """The training (``ddpm``) or sampling (``ddim``) scheduler of a generator."""
    from diffusers import DDIMScheduler, DDPMScheduler

    ddpm = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type="epsilon", clip_sample=True)  # fmt: skip
    if kind == "ddpm":
        return ddpm
    if kind == "ddim":
        return DDIMScheduler.from_config(ddpm.config)
    raise UserError(f"unknown scheduler {kind!r}; valid: ddim, ddpm")


def drop_conditions(cls: torch.Tensor, attrs: torch.Tensor, cfg: GeneratorConfig,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Training-time dropout: whole condition -> null w.p. ``p_null``; else each present
    attribute token dropped w.p. ``p_drop_attribute``."""
    n = len(cls)
    null = torch.rand(n, generator=gen) < cfg.p_null
    keep = torch.rand(attrs.shape, generator=gen) >= cfg.p_drop_attribute
    a = attrs.float() * keep.float() * (~null).float()[:, None]
    return torch.where(null, torch.full_like(cls, -1), cls), a


@dataclass
class TrainLog:
    iterations: int = 0
    losses: list[float] = field(default_factory=list)  # mean loss per 50 iterations
    wall_s: float = 0.0


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def train_generator(x: torch.Tensor, y: torch.Tensor, attrs: torch.Tensor, cfg: GeneratorConfig,
                    out: str | Path, progress: bool = False, resume: bool = True,
                    device: str | torch.device = "cpu",
                    deadline_s: float | None = None) -> ConditionalGenerator:  # fmt: skip
    """Train on images ``x`` (N, 3, 32, 32) in [-1, 1] with classes ``y`` and attribute rows
    ``attrs``; writes ``out/checkpoint.pt`` (resumable) and finally ``out/generator.pt``
    (EMA weights only) and ``out/generator.json``. Returns the EMA model."""
    import copy

    from tqdm import tqdm

    if x.ndim != 4 or x.shape[1:] != (3, cfg.sample_size, cfg.sample_size) or len(x) != len(y):
        raise UserError(
            f"training images must be (N, 3, {cfg.sample_size}, {cfg.sample_size}) with one label each"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    model = ConditionalGenerator(cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    log = TrainLog()
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=True, map_location=device)
        if st["config"] != json.dumps(cfg.to_json(), sort_keys=True):
            raise UserError(f"{ckpt} was written with another generator config; use a new --out")
        (
            model.load_state_dict(st["model"]),
            ema.load_state_dict(st["ema"]),
            opt.load_state_dict(st["opt"]),
        )
        gen.set_state(st["gen"].cpu())
        log = TrainLog(int(st["iterations"]), list(st["losses"]), float(st["wall_s"]))
    t0 = time.perf_counter() - log.wall_s
    started = time.perf_counter()
    stopped = False
    bar = tqdm(total=cfg.iterations, initial=log.iterations, desc="generator", disable=not progress)
    window: list[float] = []
    model.train()
    while log.iterations < cfg.iterations:
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen)
        x0 = x[idx]
        cls, a = drop_conditions(y[idx], attrs[idx], cfg, gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, cfg.train_timesteps, (len(x0),), generator=gen)
        x0, noise, t, cls, a = (v.to(device) for v in (x0, noise, t, cls, a))
        xt = sched.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(model.eps(xt, t, model.condition(cls, a)), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _ema_update(ema, model, cfg.ema_decay)
        log.iterations += 1
        window.append(loss.item())
        if len(window) == 50:
            log.losses.append(sum(window) / 50)
            window = []
            bar.set_postfix(loss=f"{log.losses[-1]:.4f}")
        bar.update(1)
        stopped = deadline_s is not None and time.perf_counter() - started > deadline_s
        if (
            log.iterations % cfg.checkpoint_every == 0
            or log.iterations == cfg.iterations
            or stopped
        ):
            log.wall_s = time.perf_counter() - t0
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "iterations": log.iterations, "losses": log.losses,
                        "wall_s": log.wall_s, "config": json.dumps(cfg.to_json(), sort_keys=True)}, tmp)  # fmt: skip
            tmp.replace(ckpt)
        if stopped:
            break
    bar.close()
    meta = {"iterations": log.iterations, "loss_per_50": log.losses, "wall_s": log.wall_s,
            "device": _device_name(device), "stopped_at_deadline": stopped}  # fmt: skip
    save_generator(ema, out, meta)
    return ema.eval()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def save_generator(model: ConditionalGenerator, out: str | Path, meta: dict[str, Any]) -> None:
    """Weights only (``generator.pt``, CPU tensors) and the config and metadata (``generator.json``)."""
    out = Path(out)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / "generator.pt")
    doc = {
        "format": FORMAT,
        "config": model.cfg.to_json(),
        "parameters": model.num_parameters(),
        "meta": meta,
    }
    (out / "generator.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


def load_generator(folder: str | Path) -> ConditionalGenerator:
    """A generator saved by :func:`train_generator` (weights only; no pickled objects)."""
    folder = Path(folder)
    meta, weights = folder / "generator.json", folder / "generator.pt"
    if not meta.is_file() or not weights.is_file():
        raise UserError(f"no trained generator in {folder} (need generator.json and generator.pt)")
    doc = json.loads(meta.read_text())
    if doc.get("format") != FORMAT:
        raise UserError(f"{meta}: not an embedlab BLENDER generator (format {doc.get('format')!r})")
    model = ConditionalGenerator(GeneratorConfig.from_json(doc["config"]))
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


__all__ = [
    "ConditionEncoder",
    "ConditionalGenerator",
    "GeneratorConfig",
    "drop_conditions",
    "load_generator",
    "make_scheduler",
    "save_generator",
    "train_generator",
]
