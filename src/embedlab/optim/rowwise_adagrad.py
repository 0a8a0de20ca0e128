"""Row-wise Adagrad for sparse embedding gradients.

The same rule as FBGEMM's ``EXACT_ROWWISE_ADAGRAD`` (and the DLRM reference's
``rwsadagrad``): one accumulator per embedding row, ``G_k += mean(g_k ** 2)`` over the
embedding dimension, ``w_k -= lr * g_k / (sqrt(G_k) + eps)``, touching only the rows
present in the batch. Used with TorchRec's unfused ``EmbeddingBagCollection`` when its
bags produce sparse gradients (``embedding_kernel="sparse"``); dense gradients are accepted
too (every row then counts as touched).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class RowWiseAdagrad(torch.optim.Optimizer):
    """Row-wise Adagrad over 2-D parameters with sparse (or dense) gradients."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.01, eps: float = 1e-8
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:
                    state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
                acc = state["sum"]
                g = p.grad
                if g.is_sparse:
                    g = g.coalesce()
                    rows, vals = g.indices()[0], g.values()
                else:
                    rows, vals = torch.arange(p.shape[0], device=p.device), g
                vals = vals.reshape(len(rows), -1)
                acc.index_add_(0, rows, vals.pow(2).mean(dim=1))
                scale = lr / (acc[rows].sqrt() + eps)
                p.view(p.shape[0], -1).index_add_(0, rows, -vals * scale.unsqueeze(1))
        return loss
