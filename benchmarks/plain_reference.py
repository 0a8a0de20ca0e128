"""The plain-PyTorch DLRM a practitioner writes in 60 lines: the reference for the defaults.

Tables are ``nn.EmbeddingBag(sparse=True)`` sized to each field's training vocabulary (ids
unseen in training share row 0, which no training id updates), PyTorch's default N(0, 1)
init, dim 16; bottom MLP ``in-256-64-16``, dot interaction, top MLP ``in-256-128-1`` (PyTorch
default Linear init); SparseAdam for the tables and Adam for the MLPs, both lr 5e-3; batch
1024. It trains ``epochs`` epochs, evaluates validation and test after each, and reports the
test metrics of the best *validation* epoch ("best epoch") and of every epoch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedlab.data.registry import CTRData
from embedlab.data.schema import iter_batches
from embedlab.data.vocab import vocab_tables
from embedlab.models.dlrm import dot_interaction
from embedlab.train.metrics import ctr_metrics


class Reference(nn.Module):
    def __init__(self, num_dense: int, sizes: list[int], dim: int = 16) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.EmbeddingBag(n, dim, mode="sum", sparse=True) for n in sizes)
        self.bottom = nn.Sequential(nn.Linear(max(num_dense, 1), 256), nn.ReLU(), nn.Linear(256, 64),
                                    nn.ReLU(), nn.Linear(64, dim), nn.ReLU())  # fmt: skip
        f = len(sizes)
        self.top = nn.Sequential(nn.Linear(dim + f * (f + 1) // 2, 256), nn.ReLU(), nn.Linear(256, 128),
                                 nn.ReLU(), nn.Linear(128, 1))  # fmt: skip

    def forward(self, dense: torch.Tensor, kjt) -> torch.Tensor:  # noqa: ANN001
        if dense.shape[1] == 0:
            dense = dense.new_zeros(dense.shape[0], 1)
        x = self.bottom(dense)
        per = kjt.to_dict()
        embs = [t(jt.values(), jt.offsets()[:-1].long()) for t, jt in zip(self.tables, per.values())]
        return self.top(dot_interaction(x, torch.stack(embs, dim=1))).squeeze(1)


@torch.no_grad()
def _scores(model: Reference, arrays, schema) -> dict[str, float]:  # noqa: ANN001
    model.eval()
    p = [torch.sigmoid(model(b.dense, b.sparse)).double().numpy()
         for b in iter_batches(arrays, schema, 16384, shuffle=False, drop_last=False)]  # fmt: skip
    model.train()
    return ctr_metrics(np.asarray(arrays.labels, dtype=np.float64), np.concatenate(p))


def run_reference(data: CTRData, seed: int, epochs: int = 5, lr: float = 5e-3,
                  batch_size: int = 1024) -> dict:  # fmt: skip
    """Train as the module doc says on ``data`` (raw ids); per-epoch and best-epoch metrics."""
    torch.manual_seed(seed)
    data, _ = vocab_tables(data, min_count=1)
    model = Reference(data.schema.num_dense, data.schema.table_sizes)
    opts = [torch.optim.Adam([*model.bottom.parameters(), *model.top.parameters()], lr=lr),
            torch.optim.SparseAdam(list(model.tables.parameters()), lr=lr)]  # fmt: skip
    per_epoch = []
    for epoch in range(epochs):
        for b in iter_batches(data.train, data.schema, batch_size, seed=seed, epoch=epoch):
            loss = F.binary_cross_entropy_with_logits(model(b.dense, b.sparse), b.labels)
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o in opts:
                o.step()
        per_epoch.append({"valid": _scores(model, data.valid, data.schema),
                          "test": _scores(model, data.test, data.schema)})  # fmt: skip
    best = max(range(epochs), key=lambda e: per_epoch[e]["valid"]["auc"])
    return {"best_epoch": best + 1, "valid_auc": per_epoch[best]["valid"]["auc"],
            "test_auc": per_epoch[best]["test"]["auc"], "test_ne": per_epoch[best]["test"]["ne"],
            "epoch_test_auc": [e["test"]["auc"] for e in per_epoch],
            "epoch_valid_auc": [e["valid"]["auc"] for e in per_epoch]}  # fmt: skip
