"""Views of a loaded :class:`~embedlab.data.registry.CTRData` for sweeps over data and
table sizes.

* :func:`limit_train_rows` keeps the first ``n`` training rows (valid and test unchanged).
  On planted-truth synthetic data the first ``n`` rows of a larger set are exactly the
  training rows of a smaller one, so a data-size sweep is a set of nested prefixes
  measured on one test set.
* :func:`hash_tables` caps every embedding table at ``rows`` rows by mapping each id to
  ``id mod rows`` (the hashing trick the reference DLRM applies with
  ``--max-ind-range``); missing ids (``-1``) stay missing. Tables already smaller keep
  their ids.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays, CTRSchema
from embedlab.errors import UserError


def limit_train_rows(data: CTRData, n: int) -> CTRData:
    """``data`` with only its first ``n`` training rows (an error if it has fewer)."""
    if n <= 0:
        raise UserError(f"train-rows must be positive, got {n}")
    if n > len(data.train):
        raise UserError(f"train-rows {n} exceeds the {len(data.train)} training rows of the data")
    info = {**data.info, "train_rows": n}
    return replace(data, train=data.train.take(slice(0, n)), info=info)


def _hash_ids(ids: np.ndarray, rows: int) -> np.ndarray:
    ids = np.asarray(ids)
    return np.where(ids >= 0, ids % rows, ids)


def _per_table(schema: CTRSchema, rows: int | list[int]) -> list[int]:
    caps = [rows] * len(schema.sparse) if isinstance(rows, int) else list(rows)
    if len(caps) != len(schema.sparse):
        raise UserError(f"need {len(schema.sparse)} table sizes to hash into, got {len(caps)}")
    for c in caps:
        if c <= 0:
            raise UserError(f"hash-rows must be positive, got {c}")
    return [min(f.num_embeddings, int(c)) for f, c in zip(schema.sparse, caps)]


def hash_schema(schema: CTRSchema, rows: int | list[int]) -> CTRSchema:
    """``schema`` with every table capped at ``rows`` rows (one cap, or one per table)."""
    sizes = _per_table(schema, rows)
    sparse = tuple(replace(f, num_embeddings=n) for f, n in zip(schema.sparse, sizes))
    return replace(schema, sparse=sparse)


def hash_tables(data: CTRData, rows: int | list[int]) -> CTRData:
    """``data`` with every table capped at ``rows`` rows (ids taken modulo the cap; one cap
    for all tables or one per table)."""
    sizes = _per_table(data.schema, rows)
    big = [f.num_embeddings > n for f, n in zip(data.schema.sparse, sizes)]

    def apply(a: CTRArrays) -> CTRArrays:
        sparse = [_hash_ids(s, n) if b else s for s, b, n in zip(a.sparse, big, sizes)]
        return CTRArrays(dense=a.dense, sparse=sparse, labels=a.labels, extra=a.extra)

    return replace(
        data,
        schema=hash_schema(data.schema, rows),
        train=apply(data.train),
        valid=apply(data.valid),
        test=apply(data.test),
        info={**data.info, "tables": "hash", **({"hash_rows": rows} if isinstance(rows, int) else {})},
        hash_sizes=None,
    )


__all__ = ["hash_schema", "hash_tables", "limit_train_rows"]
