"""The embedding gradient's scale, measured on the first batches (CF-SGD / FA-SGD ``lr_rule=auto``).

Plain frequency-aware SGD steps row ``k`` by ``lr / sqrt(n_k) * g_k``: the step carries the
gradient's *scale*, which depends on the loss, the batch size (the mean loss divides by it),
the model and the data. Adagrad's step ``lr * g / sqrt(sum g^2)`` does not: for a row whose
gradients keep a typical size ``G`` it is ``lr / sqrt(n_k)`` in units of ``g / G``. So with

    lr_plain = lr_rel / G,    G = RMS of a touched row's gradient entries at the start,

CF-SGD takes Adagrad's steps on rows with steady gradients while keeping one counter per row
(our rule, not the paper's; the paper's plain rule stays available as ``lr_rule=plain``).
:func:`embedding_grad_scale` measures ``G`` at the initial parameters on the first batches of
the run (no parameter moves: the pooled embeddings are detached, so FBGEMM's fused backward,
which would update the tables, never runs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from embedlab.data.schema import Batch


def row_gradients(pooled_grad: torch.Tensor, sparse: object, dim: int) -> list[torch.Tensor]:
    """Per feature, the gradient of every row present in the batch (sum pooling: a row's
    gradient is the sum of its bags' pooled gradients). ``pooled_grad``: ``[B, F * dim]``."""
    b = pooled_grad.shape[0]
    g = pooled_grad.view(b, -1, dim)
    out = []
    for f, jt in enumerate(sparse.to_dict().values()):  # type: ignore[attr-defined]
        ids = jt.values().long()
        if ids.numel() == 0:
            continue
        bag = torch.repeat_interleave(torch.arange(b), jt.lengths().long())
        uniq, inv = torch.unique(ids, return_inverse=True)
        out.append(torch.zeros(len(uniq), dim, dtype=g.dtype).index_add_(0, inv, g[bag, f]))
    return out


def embedding_grad_scale(model: torch.nn.Module, batches: Iterable[Batch]) -> float:
    """RMS over touched rows and coordinates of the per-row embedding gradient of the mean
    logistic loss, at ``model``'s current parameters, over ``batches``. Moves nothing."""
    sq, n = 0.0, 0
    dim = model.config.embedding_dim  # type: ignore[attr-defined]
    for batch in batches:
        with torch.no_grad():
            pooled = model.pooled_embeddings(batch.sparse)  # type: ignore[attr-defined]
        pooled = pooled.detach().requires_grad_(True)
        dense = batch.dense
        if model.num_dense == 0:  # type: ignore[attr-defined]
            dense = dense.new_zeros(dense.shape[0], 1)
        logits = model._dense_forward(dense, pooled)  # type: ignore[attr-defined]
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels)
        (grad,) = torch.autograd.grad(loss, [pooled])
        for rows in row_gradients(grad, batch.sparse, dim):
            sq += float(rows.double().pow(2).sum())
            n += rows.numel()
    if n == 0 or sq == 0.0:
        raise ValueError("no embedding gradient in the calibration batches")
    return math.sqrt(sq / n)


__all__ = ["embedding_grad_scale", "row_gradients"]
