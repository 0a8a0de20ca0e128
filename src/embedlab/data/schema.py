"""The in-memory shape of CTR data and how it becomes DLRM batches.

Every CTR source (Criteo TSV, planted-truth synthetic data, MovieLens-100k) ends as
:class:`CTRArrays`: a float32 dense matrix (already transformed), one int64 id array
per sparse feature (``[N]`` for one-hot features, ``[N, L]`` for multi-hot bags, ``-1``
marks a missing value or bag padding) and float32 labels. The arrays may be NumPy
memmaps, so a split larger than memory is fine. :func:`make_batch` slices rows into
the batch triple ``(dense Tensor[B, D], KeyedJaggedTensor, labels Tensor[B])``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from embedlab.errors import UserError


@dataclass(frozen=True)
class SparseFeature:
    """One categorical feature and the size of its embedding table."""

    name: str
    num_embeddings: int
    multi_hot: bool = False

    def __post_init__(self) -> None:
        if self.num_embeddings <= 0:
            raise UserError(
                f"sparse feature {self.name!r}: table size must be positive, "
                f"got {self.num_embeddings}"
            )


@dataclass(frozen=True)
class CTRSchema:
    """Names of the dense features and the sparse features with their table sizes."""

    dense_names: tuple[str, ...]
    sparse: tuple[SparseFeature, ...]

    @property
    def num_dense(self) -> int:
        return len(self.dense_names)

    @property
    def sparse_names(self) -> list[str]:
        return [f.name for f in self.sparse]

    @property
    def table_sizes(self) -> list[int]:
        return [f.num_embeddings for f in self.sparse]


@dataclass
class CTRArrays:
    """Rows of one split: dense ``[N, D]`` float32, sparse ids per feature, labels ``[N]``."""

    dense: np.ndarray
    sparse: list[np.ndarray]
    labels: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.dense.shape[0] != n or any(s.shape[0] != n for s in self.sparse):
            raise ValueError("CTRArrays: dense, sparse and labels must have the same rows")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray | slice) -> CTRArrays:
        """Rows ``idx`` as a new :class:`CTRArrays` (a view for slices, a copy otherwise)."""
        return CTRArrays(
            dense=np.asarray(self.dense[idx]),
            sparse=[np.asarray(s[idx]) for s in self.sparse],
            labels=np.asarray(self.labels[idx]),
            extra={k: np.asarray(v[idx]) for k, v in self.extra.items()},
        )

    @staticmethod
    def concat(parts: Sequence[CTRArrays]) -> CTRArrays:
        """Stack splits row-wise (multi-hot bags are padded to the widest)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        sparse = []
        for f in range(len(parts[0].sparse)):
            cols = [p.sparse[f] for p in parts]
            if cols[0].ndim == 2:
                width = max(c.shape[1] for c in cols)
                cols = [
                    np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=-1) for c in cols
                ]
            sparse.append(np.concatenate(cols))
        keys = set.intersection(*(set(p.extra) for p in parts))
        return CTRArrays(
            dense=np.concatenate([p.dense for p in parts]),
            sparse=sparse,
            labels=np.concatenate([p.labels for p in parts]),
            extra={k: np.concatenate([p.extra[k] for p in parts]) for k in keys},
        )


class Batch(NamedTuple):
    """One DLRM batch; unpacks as ``dense, sparse, labels``."""

    dense: torch.Tensor
    sparse: object  # torchrec.sparse.jagged_tensor.KeyedJaggedTensor
    labels: torch.Tensor


def make_batch(arrays: CTRArrays, idx: np.ndarray, schema: CTRSchema) -> Batch:
    """Slice rows ``idx`` into a :class:`Batch` with a keys-major KeyedJaggedTensor."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    values, lengths = [], []
    for col in arrays.sparse:
        ids = col[idx]
        if ids.ndim == 1:
            mask = ids >= 0
            if mask.all():
                values.append(ids)
                lengths.append(np.ones(len(ids), dtype=np.int64))
                continue
            values.append(ids[mask])
            lengths.append(mask.astype(np.int64))
        else:
            mask = ids >= 0
            values.append(ids[mask])
            lengths.append(mask.sum(axis=1, dtype=np.int64))
    kjt = KeyedJaggedTensor(
        keys=schema.sparse_names,
        values=torch.from_numpy(np.concatenate(values).astype(np.int64, copy=False)),
        lengths=torch.from_numpy(np.concatenate(lengths).astype(np.int32, copy=False)),
    )
    dense = torch.from_numpy(np.array(arrays.dense[idx], dtype=np.float32))
    labels = torch.from_numpy(np.array(arrays.labels[idx], dtype=np.float32))
    return Batch(dense, kjt, labels)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The row order of one epoch: a pure function of ``(n, seed, epoch)`` for exact resume."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def iter_batches(
    arrays: CTRArrays,
    schema: CTRSchema,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    start: int = 0,
) -> Iterator[Batch]:
    """Batches of one epoch, starting at batch number ``start`` (for resume)."""
    if batch_size <= 0:
        raise UserError(f"batch size must be positive, got {batch_size}")
    order = epoch_order(len(arrays), seed, epoch, shuffle)
    n_batches = num_batches(len(arrays), batch_size, drop_last)
    for b in range(start, n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        if not shuffle:
            idx = slice(idx[0], idx[-1] + 1)  # contiguous reads from memmaps
        yield make_batch(arrays, idx, schema)


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Batches per epoch."""
    return n // batch_size if drop_last else -(-n // batch_size)


def pooling_factors(
    arrays: CTRArrays, names: list[str], max_rows: int = 100_000
) -> dict[str, float]:
    """Mean ids per sample of each sparse feature (first ``max_rows`` rows; -1 is padding)."""
    n = min(len(arrays), max_rows)
    out = {}
    for name, col in zip(names, arrays.sparse):
        ids = np.asarray(col[:n])
        present = ids >= 0
        out[name] = (
            float(present.sum(axis=1).mean() if ids.ndim == 2 else present.mean()) if n else 1.0
        )
    return out
