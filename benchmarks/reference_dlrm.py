"""A plain-PyTorch DLRM: the reference our TorchRec DLRM is measured against.

Written here, in the benchmarks, on purpose: it is the baseline practitioners would write
themselves (one ``nn.EmbeddingBag(mode="sum", sparse=True)`` per feature, the same MLPs,
dot interaction and initialization as the reference ``facebookresearch/dlrm``), not a
library component. It consumes the same batches as ``embedlab.models.DLRM``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from embedlab.models.dlrm import DLRMConfig, dot_interaction, mlp


class PlainDLRM(nn.Module):
    """DLRM with ``nn.EmbeddingBag(sparse=True)`` tables; ``forward`` returns logits."""

    def __init__(
        self, num_dense: int, table_sizes: Sequence[int], config: DLRMConfig | None = None
    ) -> None:
        super().__init__()
        cfg = config or DLRMConfig()
        d = cfg.embedding_dim
        self.dim = d
        self.bottom = mlp([num_dense, *cfg.bottom_mlp, d], final_activation=True)
        f = len(table_sizes)
        self.top = mlp([d + (f + 1) * f // 2, *cfg.top_mlp, 1], final_activation=False)
        self.tables = nn.ModuleList()
        for n in table_sizes:
            e = nn.EmbeddingBag(n, d, mode="sum", sparse=True)
            with torch.no_grad():
                e.weight.uniform_(-math.sqrt(1.0 / n), math.sqrt(1.0 / n))
            self.tables.append(e)

    def forward(self, dense: torch.Tensor, kjt) -> torch.Tensor:  # noqa: ANN001
        x = self.bottom(dense)
        b = x.shape[0]
        lengths = kjt.lengths().view(len(self.tables), b)
        values = kjt.values()
        embs, start = [], 0
        for t, table in enumerate(self.tables):
            ln = lengths[t]
            n = int(ln.sum())
            offsets = torch.zeros(b, dtype=torch.long)
            offsets[1:] = torch.cumsum(ln[:-1], 0)
            embs.append(table(values[start : start + n], offsets))
            start += n
        return self.top(dot_interaction(x, torch.stack(embs, dim=1))).squeeze(1)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list(self.tables.parameters())

    def dense_parameters(self) -> list[nn.Parameter]:
        return [*self.bottom.parameters(), *self.top.parameters()]


def make_optimizers(
    model: PlainDLRM, name: str, lr: float, embedding_lr: float | None = None
) -> list[torch.optim.Optimizer]:
    """The reference's optimizers: ``sgd`` (SGD on everything) or ``adam`` (Adam + SparseAdam)."""
    elr = embedding_lr if embedding_lr is not None else lr
    if name == "sgd":
        return [
            torch.optim.SGD(model.dense_parameters(), lr=lr),
            torch.optim.SGD(model.embedding_parameters(), lr=elr),
        ]
    if name == "adam":
        return [
            torch.optim.Adam(model.dense_parameters(), lr=lr),
            torch.optim.SparseAdam(model.embedding_parameters(), lr=elr),
        ]
    if name == "adagrad":
        return [
            torch.optim.Adagrad(model.dense_parameters(), lr=lr),
            torch.optim.Adagrad(model.embedding_parameters(), lr=elr),
        ]
    raise ValueError(f"unknown reference optimizer {name!r}")
