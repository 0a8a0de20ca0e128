"""Embedding tables sized by the training data: a vocabulary per sparse feature.

Two ways to size a table exist in DLRM practice:

* **hashing** (:func:`embedlab.data.transforms.hash_tables`): every id taken modulo a fixed
  size (the DLRM reference's ``--max-ind-range``; Criteo Kaggle cardinalities by default).
  The size says nothing about the data: a feature with 5,000 distinct ids may get 10M rows
  (mostly never touched, but initialized, checkpointed and, for some optimizers, given
  state) or 3 rows (5,000 ids colliding);
* **a vocabulary** (this module), as TorchRec's Criteo preprocessing and the DLRM
  reference's ``--memory-map`` path build it: the ids of the *training* split that occur
  at least ``min_count`` times get rows ``1 .. V`` (sorted by id); row ``0`` is shared by
  every other id, rare training ids and ids never seen in training (valid, test, serving).
  With ``min_count >= 2`` the shared row is trained (on the rare ids), so an unseen id at
  test time gets the learned "rare id" embedding rather than an untrained random vector.

A missing value (``-1``) stays missing (an empty bag). The vocabulary is saved beside a run
(``vocab.npz``) so that new data can be mapped exactly as the training data was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays, CTRSchema
from embedlab.errors import UserError

#: The row every out-of-vocabulary id maps to.
OOV_ROW = 0


@dataclass(frozen=True)
class Vocabulary:
    """Per feature, the sorted ids that own a row (row = position + 1; row 0 is shared)."""

    ids: tuple[np.ndarray, ...]
    min_count: int

    @property
    def table_sizes(self) -> list[int]:
        return [len(v) + 1 for v in self.ids]

    def map_column(self, f: int, col: np.ndarray) -> np.ndarray:
        """Feature ``f``'s ids as rows: kept ids -> ``1..V``, others -> 0, ``-1`` stays."""
        col = np.asarray(col)
        keep = self.ids[f]
        if len(keep) == 0:
            return np.where(col >= 0, OOV_ROW, -1).astype(np.int64)
        pos = np.minimum(np.searchsorted(keep, col), len(keep) - 1)
        hit = keep[pos] == col
        return np.where(col >= 0, np.where(hit, pos + 1, OOV_ROW), -1).astype(np.int64)

    def apply(self, arrays: CTRArrays) -> CTRArrays:
        return CTRArrays(
            dense=arrays.dense,
            sparse=[self.map_column(f, c) for f, c in enumerate(arrays.sparse)],
            labels=arrays.labels,
            extra=arrays.extra,
        )

    def save(self, path: str | Path) -> None:
        from embedlab.io import atomic_open

        with atomic_open(path, "wb") as f:
            np.savez(f, min_count=np.int64(self.min_count), **{f"f{i}": v for i, v in enumerate(self.ids)})

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        with np.load(path) as z:
            n = len([k for k in z.files if k.startswith("f")])
            return cls(tuple(z[f"f{i}"] for i in range(n)), int(z["min_count"]))


def build_vocabulary(train: CTRArrays, min_count: int = 1) -> Vocabulary:
    """The ids of ``train`` occurring at least ``min_count`` times, per feature."""
    if min_count < 1:
        raise UserError(f"vocab-min-count must be >= 1, got {min_count}")
    out = []
    for col in train.sparse:
        ids = np.asarray(col).reshape(-1)
        ids = ids[ids >= 0]
        uniq, counts = np.unique(ids, return_counts=True)
        out.append(uniq[counts >= min_count].astype(np.int64))
    return Vocabulary(tuple(out), int(min_count))


def vocab_tables(data: CTRData, min_count: int = 1) -> tuple[CTRData, Vocabulary]:
    """``data`` with every table sized by its training vocabulary (see the module doc)."""
    vocab = build_vocabulary(data.train, min_count)
    return apply_vocabulary(data, vocab), vocab


def apply_vocabulary(data: CTRData, vocab: Vocabulary) -> CTRData:
    """``data``'s ids mapped by ``vocab`` (built on this or an earlier training split)."""
    if len(vocab.ids) != len(data.schema.sparse):
        raise UserError(
            f"vocabulary has {len(vocab.ids)} features, the data {len(data.schema.sparse)}"
        )
    min_count = vocab.min_count
    sparse = tuple(
        replace(f, num_embeddings=n) for f, n in zip(data.schema.sparse, vocab.table_sizes)
    )
    schema = CTRSchema(dense_names=data.schema.dense_names, sparse=sparse)
    info = {**data.info, "tables": "vocab", "vocab_min_count": min_count,
            "vocab_rows": int(sum(vocab.table_sizes))}  # fmt: skip
    return replace(data, schema=schema, train=vocab.apply(data.train), valid=vocab.apply(data.valid),
                   test=vocab.apply(data.test), info=info, hash_sizes=None)  # fmt: skip


__all__ = ["OOV_ROW", "Vocabulary", "apply_vocabulary", "build_vocabulary", "vocab_tables"]
