"""Analytic FLOP counts of a DLRM per sample (the compute axis of a scaling law).

The scaling-law paper measures compute in training FLOPs (PF-days); its counting rules are
not public. Ours, per sample, one floating-point multiply or add = 1 FLOP:

* **Linear layer** ``in -> out``: ``2 * in * out`` (multiply-adds) ``+ out`` (bias).
  Activations are not counted.
* **Embedding bag** with pooling factor ``p`` (mean ids per sample) and dimension ``d``:
  ``p * d`` adds (sum pooling).
* **Dot interaction** over ``F`` tables plus the bottom output: ``(F+1)F/2`` dot products of
  length ``d``, ``2d - 1`` FLOPs each (the strict lower triangle; our kernel computes the
  full Gram matrix with one ``bmm``, which the count ignores: it counts the model, not
  the kernel).
* **Training** = forward + backward. The dense part's backward costs twice its forward
  (gradients for the inputs and for the weights), so ``3x`` forward; the embeddings'
  backward scatters the pooled gradient back to each looked-up row (``p * d``), so ``2x``;
  optimizer updates are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from embedlab.models.dlrm import DLRMConfig


def linear_flops(widths: Sequence[int]) -> int:
    """Forward FLOPs of a Linear stack over ``widths`` (input first), per sample."""
    return sum(2 * a * b + b for a, b in zip(widths[:-1], widths[1:]))


def interaction_flops(num_tables: int, dim: int) -> int:
    """Forward FLOPs of the strict-lower-triangle dot interaction, per sample."""
    pairs = (num_tables + 1) * num_tables // 2
    return pairs * (2 * dim - 1)


@dataclass(frozen=True)
class DLRMFlops:
    """Forward FLOPs per sample by part; training FLOPs per sample."""

    bottom_mlp: int
    embeddings: float
    interaction: int
    top_mlp: int

    @property
    def dense_forward(self) -> int:
        return self.bottom_mlp + self.interaction + self.top_mlp

    @property
    def forward(self) -> float:
        return self.dense_forward + self.embeddings

    @property
    def train(self) -> float:
        return 3 * self.dense_forward + 2 * self.embeddings

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "forward": self.forward, "train": self.train}


def dlrm_flops(
    config: DLRMConfig, num_dense: int, num_tables: int, pooling: Sequence[float] | float = 1.0
) -> DLRMFlops:
    """FLOPs per sample of a DLRM as :class:`~embedlab.models.dlrm.DLRM` builds it.

    ``pooling``: mean ids per sample of each table (one number for all, or one per table;
    :func:`embedlab.data.schema.pooling_factors` measures it).
    """
    d = config.embedding_dim
    pools = (
        [float(pooling)] * num_tables
        if isinstance(pooling, (int, float))
        else [float(p) for p in pooling]
    )
    if len(pools) != num_tables:
        raise ValueError(f"{len(pools)} pooling factors for {num_tables} tables")
    bottom = linear_flops([max(num_dense, 1), *config.bottom_mlp, d])
    top = linear_flops([d + (num_tables + 1) * num_tables // 2, *config.top_mlp, 1])
    return DLRMFlops(
        bottom_mlp=bottom,
        embeddings=sum(p * d for p in pools),
        interaction=interaction_flops(num_tables, d),
        top_mlp=top,
    )


__all__ = ["DLRMFlops", "dlrm_flops", "interaction_flops", "linear_flops"]
