"""Small network pieces shared by the learned planners (DreamShard, AutoShard, NeuroShard)."""

from __future__ import annotations

from torch import nn


def mlp(sizes: list[int], last_relu: bool = False) -> nn.Sequential:
    """``Linear`` layers over ``sizes`` (input first) with a ReLU between them (and after the
    last one when ``last_relu``); PyTorch's default initialization."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
