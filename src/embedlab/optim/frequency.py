"""Frequency-aware SGD for embedding tables: FA-SGD (frequencies given) and CF-SGD (counted online).

Li et al., "Frequency-aware SGD for Efficient Embedding Learning with Provable Benefits",
ICLR 2022 (arXiv 2110.04844). What the paper states (abstract and introduction): adaptive
optimizers win on embeddings mostly through a *token-dependent* learning rate; SGD with a
learning rate set per token (embedding row) from its frequency, FA-SGD, provably speeds up
learning under imbalanced token distributions; CF-SGD estimates the frequencies online with
counters; both "improve or match" adaptive optimizers with far less optimizer state. Its
exact rule and constants are not public here; this module implements the reconstruction of
``shared/reference/recsys-training.md`` (our choices, each exposed as an option):

* **Step of row k** (pure function :func:`row_learning_rate`)::

      lr_k = min(lr / max(n_k, floor) ** exponent, max_lr)
      w_k <- w_k - lr_k * g_k

  with ``exponent`` 0.5 by default (a row updated ``n`` times gets a ``1/sqrt(n)`` step, as
  Adagrad's accumulator implies for gradients of similar size), ``floor`` 1 (the counter
  never divides by less), ``max_lr`` unbounded by default. ``g_k`` is row k's gradient
  summed over the batch (what ``EmbeddingBag`` produces).
* **FA-SGD** (:class:`FASGD`): ``n_k`` is the row's frequency given up front, by default the
  number of times the row occurs in one pass over the training data (see
  :func:`count_ids`), fixed during training.
* **CF-SGD** (:class:`CFSGD`): ``n_k`` is a per-row counter in the optimizer state, updated
  before each step from the batch, so ``n_k`` is the count *so far* (including this batch).
  Counting unit (``unit``):

  - ``"batch"`` (default): +1 for every batch in which the row has a gradient -- needs
    nothing but the gradient, so the optimizer is a drop-in; the unit of FBGEMM's fused
    ``COUNTER_SGD`` mode, which the fused and sharded paths use
    (:func:`fbgemm_counter_sgd_params`);
  - ``"occurrence"``: +1 per occurrence of the id in the batch (all bags);
  - ``"sample"``: +1 per sample (bag) containing the id at least once.

  The last two need the batch's ids: call :meth:`CFSGD.observe` with the parameter and its
  ``indices``/``offsets`` before :meth:`~torch.optim.Optimizer.step`.

State: one int32 counter per row (CF-SGD) or one float per row (FA-SGD's frequencies),
against one float per row for row-wise Adagrad and ``dim`` (Adagrad) or ``2 dim`` (Adam)
floats per row for element-wise methods. Sparse gradients (``nn.EmbeddingBag(sparse=True)``,
TorchRec's unfused collection with sparse bags) are coalesced and applied with ``index_add_``
to the touched rows only; dense gradients are accepted (a row counts as touched when its
gradient row is not all zero).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

UNITS = ("batch", "occurrence", "sample")


def row_learning_rate(lr: float, counts: torch.Tensor, exponent: float = 0.5, floor: float = 1.0,
                      max_lr: float | None = None) -> torch.Tensor:  # fmt: skip
    """``min(lr / max(counts, floor) ** exponent, max_lr)`` per row (float32 tensor)."""
    c = counts.to(torch.float32).clamp_min(floor)
    out = c.rsqrt().mul_(lr) if exponent == 0.5 else c.pow(-exponent).mul_(lr)
    if max_lr is not None:
        out = out.clamp_max(max_lr)
    return out


def _touched(grad: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, values [n, dim]) of a sparse or dense embedding gradient. A sparse gradient is
    not coalesced: a row may appear several times, each entry scaled alike and summed by
    ``index_add_`` (the same result as coalescing first, without the sort)."""
    if grad.is_sparse:
        idx = grad._indices()[0]
        return idx, grad._values().reshape(idx.shape[0], -1)
    g = grad.reshape(rows, -1)
    idx = torch.nonzero(g.abs().sum(dim=1) > 0).flatten()
    return idx, g[idx]


def id_counts(
    indices: torch.Tensor, rows: int, unit: str, offsets: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-row counts of one batch's ids in ``unit`` (``occurrence`` or ``sample``)."""
    indices = indices.reshape(-1).long()
    if unit == "occurrence":
        return torch.bincount(indices, minlength=rows)
    if unit == "sample":
        if offsets is None:  # one id per sample: samples and occurrences coincide
            return torch.bincount(indices, minlength=rows)
        lengths = offsets[1:] - offsets[:-1]
        bag = torch.repeat_interleave(
            torch.arange(len(lengths), device=indices.device), lengths.long()
        )
        pairs = torch.unique(bag * rows + indices)
        return torch.bincount(pairs % rows, minlength=rows)
    raise ValueError(f"unit must be 'occurrence' or 'sample' here, got {unit!r}")


class _FrequencySGD(torch.optim.Optimizer):
    """Shared step: ``w_k -= lr_k * g_k`` over touched rows, ``lr_k`` from ``_counts``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, exponent: float, floor: float,
                 max_lr: float | None) -> None:  # fmt: skip
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not exponent >= 0:
            raise ValueError(f"exponent must be >= 0, got {exponent}")
        if not floor > 0:
            raise ValueError(f"floor must be positive, got {floor}")
        if max_lr is not None and not max_lr > 0:
            raise ValueError(f"max_lr must be positive, got {max_lr}")
        super().__init__(params, {"lr": lr, "exponent": exponent, "floor": floor, "max_lr": max_lr})

    def _counts(self, p: torch.Tensor, rows: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.dim() != 2:
                    raise ValueError(
                        "frequency-aware SGD updates embedding tables (2-D parameters) only"
                    )
                rows, vals = _touched(p.grad, p.shape[0])
                counts = self._counts(p, rows, self.state[p])
                scale = row_learning_rate(
                    group["lr"], counts, group["exponent"], group["floor"], group["max_lr"]
                )
                p.index_add_(0, rows, vals * (-scale.to(vals.dtype)).unsqueeze(1))
        return loss

    def state_bytes(self) -> int:
        """Bytes of optimizer state (counters or frequencies)."""
        return sum(t.numel() * t.element_size() for st in self.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor))  # fmt: skip


class CFSGD(_FrequencySGD):
    """Counter-based frequency-aware SGD (see the module doc): ``lr / sqrt(count so far)`` per row.

    ``unit="batch"`` counts from the gradients alone; ``"occurrence"``/``"sample"`` need
    :meth:`observe` before each step (a step without it raises, rather than counting
    silently in another unit).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.1, exponent: float = 0.5,
                 floor: float = 1.0, max_lr: float | None = None, unit: str = "batch") -> None:  # fmt: skip
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
        self.unit = unit
        super().__init__(params, lr, exponent, floor, max_lr)
        self._pending: dict[torch.Tensor, torch.Tensor] = {}

    def _counter(self, p: torch.Tensor) -> torch.Tensor:
        st = self.state[p]
        if "count" not in st:
            st["count"] = torch.zeros(p.shape[0], dtype=torch.int32, device=p.device)
        return st["count"]

    def observe(
        self, param: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> None:
        """Record one batch's ids of ``param``'s table (for ``occurrence``/``sample`` units)."""
        if self.unit == "batch":
            return
        c = id_counts(indices, param.shape[0], self.unit, offsets)
        prev = self._pending.get(param)
        self._pending[param] = c if prev is None else prev + c

    def _counts(self, p: torch.Tensor, rows: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        count = self._counter(p)
        if self.unit == "batch":
            # +1 per row present; repeated rows write the same value (no accumulation)
            count.index_put_((rows,), count[rows] + 1)
        else:
            c = self._pending.pop(p, None)
            if c is None:
                raise RuntimeError(
                    f"CFSGD(unit={self.unit!r}) needs observe(param, indices) before step()"
                )
            count += c.to(device=count.device, dtype=count.dtype)
        return count[rows]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for st in (
            self.state.values()
        ):  # counters stay integers (the base class casts to the param dtype)
            if "count" in st:
                st["count"] = st["count"].round().to(torch.int32)


class FASGD(_FrequencySGD):
    """Frequency-aware SGD with given per-row frequencies (see the module doc).

    ``frequencies``: one 1-D tensor per parameter (same order as ``params``), e.g. from
    :func:`count_ids` over the training data; rows never seen get ``floor``.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], frequencies: Sequence[torch.Tensor | np.ndarray],
                 lr: float = 0.1, exponent: float = 0.5, floor: float = 1.0, max_lr: float | None = None) -> None:  # fmt: skip
        params = list(params)
        super().__init__(params, lr, exponent, floor, max_lr)
        flat = [p for g in self.param_groups for p in g["params"]]
        if len(frequencies) != len(flat):
            raise ValueError(
                f"need one frequency vector per parameter: {len(flat)} parameters, {len(frequencies)} vectors"
            )
        for p, f in zip(flat, frequencies):
            f = torch.as_tensor(f, dtype=torch.float32, device=p.device).reshape(-1)
            if f.numel() != p.shape[0]:
                raise ValueError(
                    f"frequency vector of {f.numel()} rows for a table of {p.shape[0]} rows"
                )
            self.state[p]["frequency"] = f

    def _counts(self, p: torch.Tensor, rows: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        return state["frequency"][rows]


def count_ids(
    columns: Sequence[np.ndarray], table_sizes: Sequence[int], unit: str = "occurrence"
) -> list[torch.Tensor]:
    """Per-row frequencies of each sparse feature over a dataset (one pass).

    ``columns[f]``: feature ``f``'s ids, 1-D (one id per sample) or 2-D (a padded bag per
    sample, ``-1`` = none). ``occurrence`` counts every id, ``sample`` each id once per sample;
    ``batch`` is not defined over a dataset (it depends on the batch size) and is refused.
    """
    if unit not in ("occurrence", "sample"):
        raise ValueError(
            f"frequencies over a dataset are counted per 'occurrence' or 'sample', not {unit!r}"
        )
    out = []
    for col, n in zip(columns, table_sizes):
        ids = np.asarray(col)
        if ids.ndim == 2 and unit == "sample":
            ids = (
                np.concatenate([np.unique(r[r >= 0]) for r in ids])
                if len(ids)
                else np.zeros(0, np.int64)
            )
        ids = ids.reshape(-1)
        ids = ids[ids >= 0]
        out.append(
            torch.from_numpy(np.bincount(ids.astype(np.int64), minlength=n)[:n].astype(np.float32))
        )
    return out


def fbgemm_counter_sgd_params(lr: float, exponent: float = 0.5) -> dict[str, Any]:
    """TorchRec fused parameters that make FBGEMM's kernel run CF-SGD (unit ``batch``).

    FBGEMM's ``EXACT_ROWWISE_ADAGRAD`` with ``weight_decay_mode=COUNTER`` and a
    ``CounterBasedRegularizationDefinition(learning_rate_mode=COUNTER_SGD)`` steps row k by
    ``lr * g_k / sqrt(c_k)``, ``c_k`` the number of batches in which row k appeared,
    keeping three fp32 values per row (the row-wise accumulator, the previous iteration and
    the counter; 12 bytes per row against CF-SGD's 4). Checked step by step against
    :class:`CFSGD` (``unit="batch"``) in the tests: equal to float rounding, and its row
    counter equals ours. Only ``exponent == 0.5`` exists there.
    """
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        CounterBasedRegularizationDefinition,
        CounterWeightDecayMode,
        LearningRateMode,
        WeightDecayMode,
    )

    if exponent != 0.5:
        raise ValueError("FBGEMM's COUNTER_SGD mode has the exponent 0.5 only")
    return {
        "optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD,
        "learning_rate": lr,
        "weight_decay_mode": WeightDecayMode.COUNTER,
        "counter_based_regularization": CounterBasedRegularizationDefinition(
            counter_weight_decay_mode=CounterWeightDecayMode.NONE,
            learning_rate_mode=LearningRateMode.COUNTER_SGD,
            counter_halflife=-1,
            adjustment_iter=-1,
            adjustment_ub=1.0,
        ),
    }


__all__ = [
    "CFSGD",
    "FASGD",
    "UNITS",
    "count_ids",
    "fbgemm_counter_sgd_params",
    "id_counts",
    "row_learning_rate",
]
