"""Optimizers by name, for dense parameters and for TorchRec's fused embedding kernels.

Each name maps to a pair: the torch optimizer for the dense (MLP) parameters and the
optimizer that FBGEMM fuses into the embedding backward pass (TorchRec translates
``torch.optim.SGD`` → ``EXACT_SGD``, ``Adagrad`` → ``EXACT_ADAGRAD``,
``torchrec.optim.RowWiseAdagrad`` → ``EXACT_ROWWISE_ADAGRAD``, ``Adam`` → ``ADAM``; the
fused Adam updates only the rows present in a batch, i.e. it is a "lazy"/sparse Adam).
The default learning rates are the usual ones (SGD 0.1 as the DLRM reference, Adagrad
0.01) except Adam's: 3e-3, not 1e-3, chosen on the *validation* split of the planted-truth
learning curve (``benchmarks/quality.py``): for one epoch of the Kaggle-size DLRM, 3e-3
gave +0.005 valid AUC at 500k and 1M training rows (4 seeds each) and -0.003 at 2M
(1 seed); learning-rate decay (cosine, warm-up/decay) was worse at every size.
Row-wise Adagrad is an embedding-only idea (one accumulator per row); its dense companion
is element-wise Adagrad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from embedlab.errors import UserError, unknown_name
from embedlab.models.dlrm import EmbeddingOptimizerSpec
from embedlab.optim.rowwise_adagrad import RowWiseAdagrad


@dataclass(frozen=True)
class OptimizerSpec:
    """A named optimizer.

    ``dense`` builds the torch optimizer of the MLP parameters; ``sparse`` the one for
    embedding weights with sparse gradients (unfused kernel); ``fused`` the optimizer that
    FBGEMM fuses into the embedding backward, or ``None`` when FBGEMM's CPU kernels lack it
    (FBGEMM 1.8 on CPU supports only exact SGD, Adagrad and row-wise Adagrad; Adam is
    GPU-only).
    """

    name: str
    default_lr: float
    dense: Callable[[Iterable[torch.nn.Parameter], float], torch.optim.Optimizer]
    sparse: Callable[[Iterable[torch.nn.Parameter], float], torch.optim.Optimizer]
    fused: Callable[[float], EmbeddingOptimizerSpec] | None

    def kernel(self, requested: str = "auto") -> str:
        """Resolve ``auto`` to ``fused`` when FBGEMM can fuse this optimizer, else ``sparse``."""
        if requested == "auto":
            return "fused" if self.fused is not None else "sparse"
        if requested == "fused" and self.fused is None:
            raise UserError(
                f"optimizer {self.name!r} cannot be fused into FBGEMM's CPU kernels; "
                "use --embedding-kernel sparse (or auto)"
            )
        return requested


def _rowwise_cls() -> type[torch.optim.Optimizer]:
    from torchrec.optim import RowWiseAdagrad as TorchRecRowWiseAdagrad

    return TorchRecRowWiseAdagrad


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(
        "sgd", 0.1,
        lambda p, lr: torch.optim.SGD(p, lr=lr),
        lambda p, lr: torch.optim.SGD(p, lr=lr),
        lambda lr: EmbeddingOptimizerSpec(torch.optim.SGD, {"lr": lr}),
    ),
    "adagrad": OptimizerSpec(
        "adagrad", 0.01,
        lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8),
        lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8),
        lambda lr: EmbeddingOptimizerSpec(torch.optim.Adagrad, {"lr": lr, "eps": 1e-8}),
    ),
    "rowwise_adagrad": OptimizerSpec(
        "rowwise_adagrad", 0.01,
        lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8),
        lambda p, lr: RowWiseAdagrad(p, lr=lr, eps=1e-8),
        lambda lr: EmbeddingOptimizerSpec(_rowwise_cls(), {"lr": lr, "eps": 1e-8}),
    ),
    "adam": OptimizerSpec(
        "adam", 3e-3,
        lambda p, lr: torch.optim.Adam(p, lr=lr),
        lambda p, lr: torch.optim.SparseAdam(list(p), lr=lr),
        None,
    ),
}  # fmt: skip


def get_optimizer(name: str) -> OptimizerSpec:
    """The :class:`OptimizerSpec` called ``name`` (the error lists the valid names)."""
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, list(OPTIMIZERS))
    return OPTIMIZERS[name]


def register_optimizer(spec: OptimizerSpec) -> OptimizerSpec:
    """Add an optimizer to the registry (later capabilities register theirs)."""
    OPTIMIZERS[spec.name] = spec
    return spec


def set_lr(optimizer: Any, lr: float) -> None:
    """Set every param group's learning rate (works for torch and TorchRec optimizers)."""
    for g in optimizer.param_groups:
        g["lr"] = lr
