"""Data augmentations in plain torch (torchvision does not import beside this torch).

:class:`ImageAugment` works on batches ``[B, C, H, W]`` of images in ``[0, 1]`` and draws a
different transform per image: random resized crop (area fraction ``scale``, aspect ``ratio``),
horizontal flip, small rotation and translation -- all folded into one affine sampling grid
(``affine_grid`` + bilinear ``grid_sample``, zero padding: Fashion-MNIST's background) --
then brightness and contrast jitter and Gaussian noise. The reference's F-MNIST views use
RandomResizedCrop, ColorJitter, Gaussian blur, flips, perspective and 90° rotations via
torchvision; ours is the subset above (our choice: fewer, milder geometric changes, since
vertical flips and 90° rotations change what a garment looks like).

:class:`FeatureNoise` makes views of tabular rows: Gaussian noise of ``sigma`` on
standardised features (the reference's UCI draft uses σ = 0.1), optional feature dropout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ImageAugment:
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    rotate_deg: float = 10.0
    translate: float = 0.08
    brightness: float = 0.3
    contrast: float = 0.3
    noise: float = 0.03

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"need images [B, C, H, W], got {tuple(x.shape)}")
        b, dev = x.shape[0], x.device

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=generator, device="cpu").to(dev)

        area = u(*self.scale)
        logr = u(math.log(self.ratio[0]), math.log(self.ratio[1]))
        w = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
        cx = (1 - w) * u(-1.0, 1.0) + u(-self.translate, self.translate)
        cy = (1 - h) * u(-1.0, 1.0) + u(-self.translate, self.translate)
        ang = u(-self.rotate_deg, self.rotate_deg) * math.pi / 180
        flip = torch.where(u(0.0, 1.0) < self.flip, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([
            torch.stack([w * cos * flip, -w * sin, cx], 1),
            torch.stack([h * sin * flip, h * cos, cy], 1),
        ], 1)  # fmt: skip
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        c = u(1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1)
        br = u(-self.brightness, self.brightness).view(b, 1, 1, 1) * 0.5
        out = (out - mean) * c + mean + br
        if self.noise > 0:
            out = out + self.noise * torch.randn(out.shape, generator=generator).to(dev)
        return out.clamp(0.0, 1.0)


@dataclass(frozen=True)
class FeatureNoise:
    sigma: float = 0.1
    dropout: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = x + self.sigma * torch.randn(x.shape, generator=generator).to(x.device)
        if self.dropout > 0:
            keep = (torch.rand(x.shape, generator=generator) >= self.dropout).to(x.device)
            out = out * keep
        return out


__all__ = ["FeatureNoise", "ImageAugment"]
