"""The model being trained online and the three things strategies do with it: train on
rows (optionally weighted), predict and measure the mean gradient of a period, each at the
model's own parameters or at any other parameters of the same shapes (FGD serves, scores
and meta-trains on parameters it does not train).

The model is the project's DLRM (:class:`embedlab.models.dlrm.DLRM`) on the ``dense``
embedding kernel: embedding tables get dense gradients like every other parameter, so a
period's update or gradient is one tensor per parameter. Tables are small in the online
setting (hundreds to thousands of rows, ``DriftConfig.cap``), which keeps this cheap.

Optimizers (all over every parameter, one learning rate): ``adagrad`` (default; the usual
choice for recommendation embeddings), ``sgd`` and ``adam``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.data.schema import CTRArrays, CTRSchema, epoch_order, make_batch
from embedlab.errors import UserError, unknown_name
from embedlab.models.dlrm import DLRM, model_config

OPTIMIZERS = ("adagrad", "sgd", "adam")
EVAL_BATCH = 4096


def make_optimizer(
    params: Sequence[torch.nn.Parameter], name: str, lr: float
) -> torch.optim.Optimizer:
    if lr <= 0:
        raise UserError(f"learning rate must be positive, got {lr}")
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise unknown_name("optimizer", name, OPTIMIZERS)


@dataclass
class TrainStats:
    """Rows that went through a forward and backward pass, and optimizer steps."""

    rows: int = 0
    steps: int = 0

    def __iadd__(self, other: TrainStats) -> TrainStats:
        self.rows += other.rows
        self.steps += other.steps
        return self


class Learner:
    """A DLRM and its optimizer; ``reset`` starts both afresh (same init for the same seed)."""

    def __init__(
        self,
        schema: CTRSchema,
        *,
        model_size: str = "tiny",
        optimizer: str = "adagrad",
        lr: float = 0.05,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if batch_size <= 0:
            raise UserError(f"batch size must be positive, got {batch_size}")
        if optimizer not in OPTIMIZERS:
            raise unknown_name("optimizer", optimizer, OPTIMIZERS)
        self.schema = schema
        self.model_size = model_size
        self.optimizer_name = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.reset(seed)

    def reset(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = DLRM(
            self.schema.num_dense, self.schema.table_sizes, self.schema.sparse_names,
            model_config(self.model_size), embedding_kernel="dense",
        )  # fmt: skip
        self.optimizer = make_optimizer(list(self.model.parameters()), self.optimizer_name, self.lr)

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def param_kinds(self) -> list[str]:
        """``"embedding"`` or ``"dense"`` for each of :attr:`params`."""
        emb = {id(p) for p in self.model.sparse.parameters()}
        return ["embedding" if id(p) in emb else "dense" for p in self.model.parameters()]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.params)

    # -- training -----------------------------------------------------------------------
    def train(
        self,
        arrays: CTRArrays,
        epochs: int,
        *,
        seed: int,
        weights: np.ndarray | None = None,
    ) -> TrainStats:
        """``epochs`` shuffled passes (order a pure function of ``(seed, epoch)``);
        ``weights``: per-row loss weights (the batch loss is their weighted mean)."""
        stats = TrainStats()
        n = len(arrays)
        if n == 0 or epochs <= 0:
            return stats
        bs = min(self.batch_size, n)
        self.model.train()
        for epoch in range(epochs):
            order = epoch_order(n, seed, epoch)
            for b in range(n // bs):
                idx = np.sort(order[b * bs : (b + 1) * bs])
                dense, sparse, labels = make_batch(arrays, idx, self.schema)
                logits = self.model(dense, sparse)
                if weights is None:
                    loss = F.binary_cross_entropy_with_logits(logits, labels)
                else:
                    w = torch.from_numpy(np.asarray(weights[idx], dtype=np.float32))
                    loss = (
                        F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * w
                    ).sum() / w.sum()
                self.optimizer.zero_grad(set_to_none=False)
                loss.backward()
                self.optimizer.step()
                stats.rows += len(idx)
                stats.steps += 1
        return stats

    @contextmanager
    def swapped(self, params: Sequence[torch.Tensor] | None) -> Iterator[None]:
        """Temporarily set the parameters to ``params`` (``None``: leave them)."""
        if params is None:
            yield
            return
        current = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, v in zip(self.params, params, strict=True):
                p.copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, current, strict=True):
                    p.copy_(v)

    @torch.no_grad()
    def predict(
        self, arrays: CTRArrays, params: Sequence[torch.Tensor] | None = None
    ) -> np.ndarray:
        """Click probabilities of every row (at ``params`` if given)."""
        with self.swapped(params):
            return self._predict(arrays)

    def _predict(self, arrays: CTRArrays) -> np.ndarray:
        self.model.eval()
        out = []
        for s in range(0, len(arrays), EVAL_BATCH):
            idx = np.arange(s, min(s + EVAL_BATCH, len(arrays)))
            dense, sparse, _ = make_batch(arrays, idx, self.schema)
            out.append(torch.sigmoid(self.model(dense, sparse)).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def period_gradient(
        self,
        arrays: CTRArrays,
        *,
        max_rows: int | None = None,
        seed: int = 0,
        params: Sequence[torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], int]:
        """The gradient of the mean log loss over ``arrays`` (or a random ``max_rows`` of
        them) at the current parameters, or at ``params`` (one tensor per parameter);
        nothing is updated. Returns it and the rows used."""
        if params is not None:
            with self.swapped(params):
                return self.period_gradient(arrays, max_rows=max_rows, seed=seed)
        n = len(arrays)
        rows = np.arange(n)
        if max_rows is not None and max_rows < n:
            rows = np.sort(np.random.default_rng([seed, 11]).choice(n, max_rows, replace=False))
        params = self.params
        self.model.train()
        for p in params:
            p.grad = None
        for s in range(0, len(rows), EVAL_BATCH):
            idx = rows[s : s + EVAL_BATCH]
            dense, sparse, labels = make_batch(arrays, idx, self.schema)
            logits = self.model(dense, sparse)
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(rows)
            loss.backward()
        grads = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params
        ]
        for p in params:
            p.grad = None
        return grads, len(rows)

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer = make_optimizer(self.params, self.optimizer_name, self.lr)
        self.optimizer.load_state_dict(state["optimizer"])
