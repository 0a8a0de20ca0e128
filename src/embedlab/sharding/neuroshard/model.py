"""NeuroShard's cost networks and the saved model (``compute_cost_model.py`` and
``comm_cost_model.py`` of the reference).

:class:`ComputeCostNet` (paper/reference): a per-table encoder 20→128→32 (ReLU), summed over
the tables of a shard, then a head 32→64→1 predicting the shard's compute cost (forward +
backward of the fused kernel on one device). Inputs are z-scored with the pre-training
set's statistics (kept here as buffers, so they travel with the weights).

:class:`CommCostNet` (paper/reference): an MLP in→128→64→32→16→D, one per device count
``D`` and direction: the forward network reads ``[dim sums (D), straggler offsets (D)]``,
the backward one ``[dim sums (D)]``; each outputs the per-device all-to-all time. Our
choices: dim sums are divided by :data:`DIM_SCALE` and offsets by :data:`SLEEP_SCALE_MS`
before they enter the network.

Targets are milliseconds divided by a scale stored with the model (``compute_scale_ms``,
``comm_scale_ms``: medians of the training labels) so losses are of order one. Costs are
in the units of the measurements: ms of the meter's backend at its timed batch.

:class:`NeuroShardModel` saves ``weights.pt`` (a weights-only state dict written with
:func:`embedlab.train.checkpoint.save_checkpoint` and read with ``weights_only=True``;
``safetensors`` is not in this environment) and ``model.json`` (format, scales, device
counts and ``meta``: the command, seed, backend and settings that produced it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embedlab.errors import UserError
from embedlab.sharding.neuroshard.features import NUM_FEATURES
from embedlab.sharding.nn import mlp, read_model_folder, save_model_folder

MODEL_FORMAT = "embedlab.neuroshard-model/v1"
DIM_SCALE = 1000.0
SLEEP_SCALE_MS = 10.0


class ComputeCostNet(nn.Module):
    """Shard compute cost from its tables' features (sum-pooled encoder, then a head)."""

    def __init__(self, hidden: int = 128, emb: int = 32) -> None:
        super().__init__()
        self.table_fc = mlp([NUM_FEATURES, hidden, emb], last_relu=True)
        self.head = mlp([emb, 64, 1])
        self.register_buffer("feat_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feat_std", torch.ones(NUM_FEATURES))

    def set_normalisation(self, feats: np.ndarray) -> None:
        """z-score statistics from training features ``[N, 20]`` (std floored at 1e-6)."""
        x = torch.as_tensor(np.asarray(feats, dtype=np.float32))
        self.feat_mean.copy_(x.mean(0))
        self.feat_std.copy_(x.std(0, unbiased=False).clamp_min(1e-6))

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """``[..., 20]`` raw features → ``[..., 32]`` table vectors."""
        return self.table_fc((feats - self.feat_mean) / self.feat_std)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``feats [B, T, 20]``, ``mask [B, T]`` → predicted cost ``[B]`` (scaled units)."""
        vec = (self.encode(feats) * mask.unsqueeze(-1)).sum(-2)
        return self.head(vec).squeeze(-1)


class CommCostNet(nn.Module):
    """Per-device all-to-all time for ``num_devices`` devices."""

    def __init__(self, num_devices: int, forward: bool) -> None:
        super().__init__()
        self.num_devices = num_devices
        self.is_forward = forward
        d_in = 2 * num_devices if forward else num_devices
        self.net = mlp([d_in, 128, 64, 32, 16, num_devices])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def comm_inputs(dim_sums: np.ndarray, sleeps_ms: np.ndarray | None) -> np.ndarray:
    """The scaled network input: ``[dims / DIM_SCALE (, sleeps / SLEEP_SCALE_MS)]``."""
    x = np.asarray(dim_sums, dtype=np.float32) / DIM_SCALE
    if sleeps_ms is None:
        return x
    return np.concatenate([x, np.asarray(sleeps_ms, dtype=np.float32) / SLEEP_SCALE_MS], -1)


class NumpyMLP:
    """A ``Linear/ReLU`` stack evaluated with numpy (fast for the search's tiny batches)."""

    def __init__(self, seq: nn.Sequential) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray, bool]] = []
        mods = list(seq)
        for i, m in enumerate(mods):
            if isinstance(m, nn.Linear):
                relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
                self.layers.append(
                    (
                        m.weight.detach().numpy().T.astype(np.float64),
                        m.bias.detach().numpy().astype(np.float64),
                        relu,
                    )
                )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for w, b, relu in self.layers:
            x = x @ w + b
            if relu:
                x = np.maximum(x, 0.0)
        return x


@dataclass
class NeuroShardModel:
    """The compute network, the communication networks per device count, and ``meta``."""

    compute: ComputeCostNet = field(default_factory=ComputeCostNet)
    comm_fw: dict[int, CommCostNet] = field(default_factory=dict)
    comm_bw: dict[int, CommCostNet] = field(default_factory=dict)
    compute_scale_ms: float = 1.0
    comm_scale_ms: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def device_counts(self) -> list[int]:
        return sorted(self.comm_fw)

    def add_device_count(self, d: int) -> None:
        self.comm_fw[d] = CommCostNet(d, forward=True)
        self.comm_bw[d] = CommCostNet(d, forward=False)

    def check_devices(self, d: int) -> None:
        if d not in self.comm_fw:
            raise UserError(
                f"this NeuroShard model has communication networks for {self.device_counts} devices, "
                f"not {d}; pre-train with --device-counts including {d}"
            )

    def save(self, folder: str | Path) -> None:
        state: dict[str, Any] = {"compute": self.compute.state_dict()}
        for d in self.device_counts:
            state[f"comm_{d}_fw"] = self.comm_fw[d].state_dict()
            state[f"comm_{d}_bw"] = self.comm_bw[d].state_dict()
        save_model_folder(folder, MODEL_FORMAT, state, {"compute_scale_ms": self.compute_scale_ms,
                          "comm_scale_ms": self.comm_scale_ms, "device_counts": self.device_counts, "meta": self.meta})  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path) -> NeuroShardModel:
        info, w = read_model_folder(folder, MODEL_FORMAT, "a NeuroShard")
        p = Path(folder)
        try:
            m = cls(compute_scale_ms=float(info["compute_scale_ms"]), comm_scale_ms=float(info["comm_scale_ms"]),
                    meta=dict(info.get("meta", {})))  # fmt: skip
            m.compute.load_state_dict(w["compute"])
            for d in info["device_counts"]:
                m.add_device_count(int(d))
                m.comm_fw[int(d)].load_state_dict(w[f"comm_{d}_fw"])
                m.comm_bw[int(d)].load_state_dict(w[f"comm_{d}_bw"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise UserError(f"{p}: the NeuroShard model does not load: {str(e)[:200]}") from None
        for net in (m.compute, *m.comm_fw.values(), *m.comm_bw.values()):
            net.eval()
        return m


def load_model(folder: str | Path) -> NeuroShardModel:
    """A NeuroShard model saved by :func:`~embedlab.sharding.neuroshard.train.pretrain_neuroshard`."""
    return NeuroShardModel.load(folder)


__all__ = ["DIM_SCALE", "MODEL_FORMAT", "SLEEP_SCALE_MS", "CommCostNet", "ComputeCostNet", "NeuroShardModel",
           "NumpyMLP", "comm_inputs", "load_model"]  # fmt: skip
