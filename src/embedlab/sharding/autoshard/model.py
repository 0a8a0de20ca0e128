"""AutoShard's network and reward (``autoshard/training.py::Net`` and ``GymWrapper`` of the
reference, commit e861ecbb; paper: Zha et al., KDD 2022).

**What the reference has** (sizes as there):

* a shared table MLP ``t_fc`` 21→128→32 (ReLU) over the 21 table features
  (:mod:`embedlab.sharding.dreamshard.features`: dim, rows, pooling factor, size and the 17
  reuse bins -- the same features AutoShard extracts);
* the **cost head**: ``t_fc`` sum-pooled over a shard's tables → 32→64→1, trained with MSE
  on measured single-device fused forward+backward times of shards;
* the **state**: ``t_fc`` of the table being placed ⊕ ``s_fc_0`` (1→32) of the fraction of
  tables already placed → 64-d input of a 2-layer LSTM (hidden 64) that runs over the
  table sequence;
* the **action features** of device ``d`` (64-d): Σ ``t_fc`` over the tables already on
  ``d`` (32) ⊕ ``a_fc_0`` over the cost head's prediction for that shard and its size;
* one logit per device from an MLP over ``[state, action, state ⊙ action]``
  192→128→128→64→1, a value head 64→64→1 on the state;
* the **reward** (:func:`balance_reward`): at the end of an episode,
  ``min_d cost_d / max_d cost_d`` ∈ (0, 1] of the cost head's per-device estimates; if the
  plan exceeds memory, ``(max_mem - max_d size_d) / max_mem`` (negative) instead; 0 at
  every other step, discount 1.

**Our choices** (each documented where it lives):

* ``a_fc`` takes three inputs, not two: the predicted cost of the device's shard *now*, the
  predicted cost *with the current table added*, and the device's memory use after adding
  it as a fraction of the device memory (the reference: current predicted cost and size in
  GB). The "with the table" cost lets the policy see the non-additive cost of the move;
  the memory fraction makes the feature mean the same under any memory limit.
* ``t_fc`` is shared as in the reference but trained **only by the cost loss**: the policy
  sees its output detached. Policy updates on estimated costs therefore cannot move the
  cost head's representation between measurement rounds.
* Predicted costs are clamped at 0 and an empty device counts 0 (the reference's dummy zero
  row would give the head's bias).
"""

from __future__ import annotations

import torch
from torch import nn

from embedlab.sharding.dreamshard.features import NUM_FEATURES
from embedlab.sharding.nn import mlp

#: Inputs of the action-feature MLP: predicted cost now, with the table, memory fraction after.
ACTION_INPUTS = 3


class AutoShardNet(nn.Module):
    """Cost head, LSTM policy and value head of AutoShard (see the module docstring)."""

    def __init__(self, hidden: int = 128, emb: int = 32, lstm: int = 64) -> None:
        super().__init__()
        if lstm != 2 * emb:
            raise ValueError(
                "the LSTM size must equal the action size (2 * emb) for state ⊙ action"
            )
        self.t_fc = nn.Sequential(mlp([NUM_FEATURES, hidden, emb]), nn.ReLU())
        self.cost_fc = mlp([emb, 64, 1])
        self.s_fc = nn.Sequential(nn.Linear(1, emb), nn.ReLU())
        self.lstm = nn.LSTM(2 * emb, lstm, num_layers=2, batch_first=True)
        self.a_fc = nn.Sequential(nn.Linear(ACTION_INPUTS, emb), nn.ReLU())
        self.logit_fc = mlp([3 * lstm, 128, 128, 64, 1])
        self.value_fc = mlp([lstm, 64, 1])

    # --- cost head -------------------------------------------------------------------

    def shard_cost(self, enc_sum: torch.Tensor) -> torch.Tensor:
        """Predicted cost ``[...]`` (scaled ms) of shards given their summed encodings ``[..., 32]``."""
        return self.cost_fc(enc_sum).squeeze(-1)

    def cost(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predicted cost ``[B]`` of shards ``feats [B, N, 21]`` (``mask [B, N]``: real tables)."""
        return self.shard_cost((self.t_fc(feats) * mask.unsqueeze(-1)).sum(-2))

    # --- policy ----------------------------------------------------------------------

    def states(self, enc_seq: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        """LSTM outputs ``[T, 64]`` over the tables in placement order.

        ``enc_seq [T, 32]``: ``t_fc`` of each table (detached); ``frac [T]``: fraction of
        tables placed before it.
        """
        x = torch.cat([enc_seq, self.s_fc(frac.unsqueeze(-1))], -1)
        out, _ = self.lstm(x.unsqueeze(0))
        return out.squeeze(0)

    def action_features(self, dev_enc: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``[..., D, 64]`` from per-device summed encodings ``[..., D, 32]`` and the
        :data:`ACTION_INPUTS` scalars ``[..., D, 3]``."""
        return torch.cat([dev_enc, self.a_fc(inputs)], -1)

    def logits(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One logit per device ``[..., D]`` from ``state [..., 64]`` and ``action [..., D, 64]``."""
        s = state.unsqueeze(-2).expand_as(action)
        return self.logit_fc(torch.cat([s, action, s * action], -1)).squeeze(-1)

    def value(self, state: torch.Tensor) -> torch.Tensor:
        return self.value_fc(state).squeeze(-1)


def cost_loss(
    net: AutoShardNet, feats: torch.Tensor, mask: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """MSE of the cost head on measured shard costs (``target [B]`` in scaled ms)."""
    return ((net.cost(feats, mask) - target) ** 2).mean()


def balance_reward(
    device_cost: torch.Tensor, device_bytes: torch.Tensor, memory: float
) -> torch.Tensor:
    """AutoShard's episode reward (``GymWrapper._get_reward`` of the reference), batched.

    ``device_cost [..., D]`` (estimated per-device costs, any unit), ``device_bytes [..., D]``
    and the per-device ``memory`` (bytes). Within memory: ``min(cost) / max(cost)`` (1 when
    every device costs the same; 0 when a device is empty and another is not). Over memory
    on some device: ``(memory - max(bytes)) / memory`` < 0, so a plan that overflows less is
    punished less and every overflowing plan scores below every valid one.
    """
    cost = device_cost.to(torch.float64).clamp_min(0.0)
    hi = cost.max(-1).values
    ratio = torch.where(hi > 0, cost.min(-1).values / hi.clamp_min(1e-30), torch.ones_like(hi))
    top = device_bytes.to(torch.float64).max(-1).values
    return torch.where(top > memory, (memory - top) / memory, ratio)


__all__ = ["ACTION_INPUTS", "AutoShardNet", "balance_reward", "cost_loss"]
