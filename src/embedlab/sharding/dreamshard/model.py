"""DreamShard's cost network and placement policy (``dreamshard/models.py`` of the reference).

:class:`CostNet`: a table encoder 21→128→32 (ReLU), sum-pooled over a device's tables into a
32-d shard vector; three shard heads 32→64→1 predicting the device's forward compute,
backward compute and communication; an overall head over the max-pool of the shard
vectors, 32→64→1, predicting the plan cost. Trained with MSE on the overall cost plus MSE on
each per-device part (:func:`cost_loss`). Targets are in milliseconds divided by
``scale_ms`` (stored with the model) so the losses are of order one.

:class:`Policy`: its own table encoder 21→128→32 sum-pooled per device, concatenated with an
encoding 3→64→32 of the cost network's (detached) predictions for that device, then a
linear layer to one logit per device; devices without memory room get ``-inf``.
"""

from __future__ import annotations

import torch
from torch import nn

from embedlab.sharding.dreamshard.features import NUM_FEATURES
from embedlab.sharding.nn import mlp


class CostNet(nn.Module):
    def __init__(self, hidden: int = 128, emb: int = 32) -> None:
        super().__init__()
        self.table_fc = nn.Sequential(mlp([NUM_FEATURES, hidden, emb]), nn.ReLU())
        self.fwd_head = mlp([emb, 64, 1])
        self.bwd_head = mlp([emb, 64, 1])
        self.comm_head = mlp([emb, 64, 1])
        self.overall_head = mlp([emb, 64, 1])

    def shard_vectors(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``feats [..., D, T, 21]`` with ``mask [..., D, T]`` (1 = table on device) → ``[..., D, 32]``."""
        return (self.table_fc(feats) * mask.unsqueeze(-1)).sum(-2)

    def parts(self, vec: torch.Tensor) -> torch.Tensor:
        """Per-device ``[..., D, 3]``: forward, backward, communication."""
        return torch.cat([self.fwd_head(vec), self.bwd_head(vec), self.comm_head(vec)], -1)

    def overall(self, vec: torch.Tensor) -> torch.Tensor:
        """Plan cost ``[...]`` from the shard vectors ``[..., D, 32]`` (max-pooled over devices)."""
        return self.overall_head(vec.max(-2).values).squeeze(-1)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vec = self.shard_vectors(feats, mask)
        return self.parts(vec), self.overall(vec)


def cost_loss(net: CostNet, feats: torch.Tensor, mask: torch.Tensor, parts: torch.Tensor,
              overall: torch.Tensor, device_valid: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """MSE(overall) + MSE of the per-device parts over real devices (``device_valid [B, D]``)."""
    p_parts, p_overall = net(feats, mask)
    err = ((p_parts - parts) ** 2).sum(-1) * device_valid
    return ((p_overall - overall) ** 2).mean() + err.sum() / device_valid.sum().clamp_min(1)


class Policy(nn.Module):
    def __init__(self, hidden: int = 128, emb: int = 32) -> None:
        super().__init__()
        self.table_fc = nn.Sequential(mlp([NUM_FEATURES, hidden, emb]), nn.ReLU())
        self.cost_fc = nn.Sequential(mlp([3, 64, emb]), nn.ReLU())
        self.out = nn.Linear(2 * emb, 1)

    def logits(self, feats: torch.Tensor, mask: torch.Tensor, cost_parts: torch.Tensor,
               legal: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """One logit per device ``[..., D]``; illegal devices at ``-inf``."""
        dev = (self.table_fc(feats) * mask.unsqueeze(-1)).sum(-2)
        h = torch.cat([dev, self.cost_fc(cost_parts.detach())], -1)
        return self.out(h).squeeze(-1).masked_fill(~legal, float("-inf"))


__all__ = ["CostNet", "Policy", "cost_loss"]
