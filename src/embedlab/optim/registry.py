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

``cf-sgd`` and ``fa-sgd`` (:mod:`embedlab.optim.frequency`) are embedding optimizers; their
dense companion is Adagrad (lr 0.01, as ``--optimizer adagrad``: switching between the three
changes only the embedding rule) unless the trainer's ``dense_optimizer`` names another.
Their embedding learning rate follows ``lr_rule`` (:mod:`embedlab.optim.calibrate`):
``auto`` (default) divides the relative rate (``--embedding-lr``, default
:data:`FREQ_RELATIVE_LR`: 0.003 for CF-SGD, 0.03 for FA-SGD, whose fixed counts are a whole
epoch's) by the embedding gradient's scale measured on the first batches, so the default does
not depend on the loss, batch size or data; ``plain`` is the paper's rule, ``--embedding-lr``
used as it is (default 0.1). The relative rates were chosen on the validation splits of the
training families of ``benchmarks/defaults.py`` (``defaults_choose.json``): CF-SGD diverged
at 0.01-0.03 on two of three families, FA-SGD at 0.1 on one. They take options
(``--optimizer-options exponent=0.5,floor=1,unit=batch,max_lr=1,lr_rule=plain``). CF-SGD
runs fused in FBGEMM (``COUNTER_SGD`` mode) when its options are FBGEMM's (unit ``batch``,
exponent 0.5, floor 1, no maximum step); otherwise, and always for FA-SGD (it needs the
frequencies counted on the training data), on the sparse-gradient kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from embedlab.errors import UserError, unknown_name
from embedlab.models.dlrm import EmbeddingOptimizerSpec
from embedlab.optim.rowwise_adagrad import RowWiseAdagrad
from embedlab.options import coerce_options


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
    sparse: Callable[..., torch.optim.Optimizer]  # (params, lr, **options)
    fused: Callable[..., EmbeddingOptimizerSpec] | None  # (lr, **options)
    options: tuple[str, ...] = ()  # option names this optimizer takes
    fusable: Callable[[dict[str, Any]], bool] | None = None  # which options FBGEMM can run
    needs_frequencies: bool = False  # sparse(...) takes frequencies= (counted on the training data)
    units: tuple[str, ...] = ()  # valid values of the "unit" option
    #: the embedding lr when none is given: a number, or one per lr_rule ("auto"/"plain")
    default_embedding_lr: dict[str, float] | None = None

    def lr_rule(self, options: dict[str, Any]) -> str | None:
        """``auto``/``plain`` for optimizers with an lr rule (CF-SGD, FA-SGD), else ``None``."""
        if self.default_embedding_lr is None:
            return None
        return str(options.get("lr_rule", "auto"))

    def embedding_lr(self, options: dict[str, Any], dense_lr: float) -> float:
        """The embedding lr when the user gives none."""
        rule = self.lr_rule(options)
        return dense_lr if rule is None else self.default_embedding_lr[rule]  # type: ignore[index]

    def coerce_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options typed (``--optimizer-options`` gives strings) and checked: a
        :class:`UserError` for options this optimizer does not take or bad values."""
        schema = {k: OPTION_TYPES[k] for k in self.options}
        typed = coerce_options(f"optimizer {self.name!r}", options, schema)
        self.check_options(typed)
        return typed

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise :class:`UserError` for options this optimizer does not take."""
        bad = sorted(set(options) - set(self.options))
        if bad:
            valid = ", ".join(self.options) if self.options else "none"
            raise UserError(f"optimizer {self.name!r} takes no option {', '.join(bad)}; valid: {valid}")
        if "lr_rule" in options and str(options["lr_rule"]) not in LR_RULES:
            raise UserError(
                f"optimizer {self.name!r}: unknown lr_rule {options['lr_rule']!r}; valid: {', '.join(LR_RULES)}"
            )
        if "unit" in options and str(options["unit"]) not in self.units:
            raise UserError(
                f"optimizer {self.name!r}: unknown unit {options['unit']!r}; valid: {', '.join(self.units)}"
            )
        for k in ("exponent", "floor", "max_lr"):
            v = options.get(k)
            if v is not None and (
                not isinstance(v, float) or v < 0 or (k != "exponent" and v == 0)
            ):
                raise UserError(
                    f"optimizer {self.name!r}: option {k} must be a {'non-negative' if k == 'exponent' else 'positive'} number, got {v!r}"
                )

    def can_fuse(self, options: dict[str, Any] | None = None) -> bool:
        if self.fused is None:
            return False
        return self.fusable is None or self.fusable(options or {})

    def kernel(
        self, requested: str = "auto", options: dict[str, Any] | None = None, dim: int | None = None
    ) -> str:
        """Resolve ``auto`` to ``fused`` when FBGEMM can fuse this optimizer, else ``sparse``.

        FBGEMM's table-batched kernels need an embedding dim divisible by 4 (``dim``, when
        given): other dims run on the sparse kernel.
        """
        dim_ok = dim is None or dim % 4 == 0
        if requested == "auto":
            return "fused" if self.can_fuse(options) and dim_ok else "sparse"
        if requested == "fused" and not self.can_fuse(options):
            raise UserError(
                f"optimizer {self.name!r} (with these options) cannot be fused into FBGEMM's CPU "
                "kernels; use --embedding-kernel sparse (or auto)"
            )
        if requested == "fused" and not dim_ok:
            raise UserError(
                f"FBGEMM's fused kernel needs an embedding dim divisible by 4, got {dim}; "
                "use --embedding-kernel sparse (or auto)"
            )
        if requested == "dense" and self.needs_frequencies:
            raise UserError(
                f"optimizer {self.name!r} runs on the sparse kernel; use --embedding-kernel sparse (or auto)"
            )
        return requested


#: ``lr_rule`` values of CF-SGD / FA-SGD (see the module doc).
LR_RULES = ("auto", "plain")
#: The type of every optimizer option (``--optimizer-options`` values are coerced to it).
OPTION_TYPES: dict[str, type] = {
    "exponent": float, "floor": float, "max_lr": float, "unit": str, "lr_rule": str,
}  # fmt: skip
#: Default relative embedding lr of CF-SGD / FA-SGD under ``lr_rule=auto`` (chosen on the
#: training families' validation splits, ``benchmarks/defaults.py``).
FREQ_RELATIVE_LR = {"cf-sgd": 0.003, "fa-sgd": 0.03}
#: The paper-rule default (``lr_rule=plain``): the DLRM reference's SGD rate.
FREQ_PLAIN_LR = 0.1


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


def _freq_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("exponent", "floor", "max_lr"):
        if options.get(k) is not None:
            out[k] = float(options[k])
    return out


def _cf_fusable(options: dict[str, Any]) -> bool:
    return (
        str(options.get("unit", "batch")) == "batch"
        and float(options.get("exponent", 0.5)) == 0.5
        and float(options.get("floor", 1.0)) == 1.0
        and options.get("max_lr") is None
    )


def _cf_sparse(p: Iterable[torch.nn.Parameter], lr: float, **options: Any) -> torch.optim.Optimizer:
    from embedlab.optim.frequency import CFSGD

    return CFSGD(p, lr=lr, unit=str(options.get("unit", "batch")), **_freq_kwargs(options))


def _cf_fused(lr: float, **options: Any) -> EmbeddingOptimizerSpec:
    from embedlab.optim.frequency import fbgemm_counter_sgd_params

    params = fbgemm_counter_sgd_params(lr)
    params.pop("optimizer")
    params.pop("learning_rate")
    return EmbeddingOptimizerSpec(_rowwise_cls(), {"lr": lr, **params})


def _fa_sparse(
    p: Iterable[torch.nn.Parameter], lr: float, *, frequencies: Any, **options: Any
) -> torch.optim.Optimizer:
    from embedlab.optim.frequency import FASGD

    return FASGD(p, frequencies, lr=lr, **_freq_kwargs(options))


OPTIMIZERS["cf-sgd"] = OptimizerSpec(
    "cf-sgd", 0.01, lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8), _cf_sparse, _cf_fused,
    options=("exponent", "floor", "max_lr", "unit", "lr_rule"), fusable=_cf_fusable,
    units=("batch", "occurrence", "sample"),
    default_embedding_lr={"auto": FREQ_RELATIVE_LR["cf-sgd"], "plain": FREQ_PLAIN_LR},
)  # fmt: skip
OPTIMIZERS["fa-sgd"] = OptimizerSpec(
    "fa-sgd", 0.01, lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-8), _fa_sparse, None,
    options=("exponent", "floor", "max_lr", "unit", "lr_rule"), needs_frequencies=True,
    units=("occurrence", "sample"),
    default_embedding_lr={"auto": FREQ_RELATIVE_LR["fa-sgd"], "plain": FREQ_PLAIN_LR},
)  # fmt: skip


def state_bytes(optimizer: Any) -> int:
    """Bytes of tensors in an optimizer's state (``optimizer.state``)."""
    total = 0
    for st in getattr(optimizer, "state", {}).values():
        if isinstance(st, dict):
            for t in st.values():
                if isinstance(t, torch.Tensor) and not t.is_meta:
                    total += t.numel() * t.element_size()
    return total


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
