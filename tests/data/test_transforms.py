"""Training-set prefixes and table hashing for scaling sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.data.transforms import hash_tables, limit_train_rows
from embedlab.errors import UserError


def _data(n: int = 10) -> CTRData:
    schema = CTRSchema(
        ("d",), (SparseFeature("a", 100), SparseFeature("b", 5), SparseFeature("m", 50, True))
    )

    def arrays(off: int) -> CTRArrays:
        rows = np.arange(n) + off
        return CTRArrays(
            dense=rows[:, None].astype(np.float32),
            sparse=[rows % 100, rows % 5, np.stack([rows % 50, -np.ones(n, dtype=np.int64)], 1)],
            labels=(rows % 2).astype(np.float32),
        )

    return CTRData("t", schema, arrays(0), arrays(40), arrays(80), {"x": 1})


def test_limit_train_rows_keeps_a_prefix_and_the_other_splits():
    d = _data()
    v = limit_train_rows(d, 4)
    assert len(v.train) == 4 and np.array_equal(v.train.dense[:, 0], [0, 1, 2, 3])
    assert v.valid is d.valid and v.test is d.test and v.info["train_rows"] == 4
    with pytest.raises(UserError, match="exceeds"):
        limit_train_rows(d, 11)
    with pytest.raises(UserError, match="positive"):
        limit_train_rows(d, 0)


def test_hash_tables_caps_rows_and_keeps_missing_ids():
    d = _data()
    h = hash_tables(d, 7)
    assert h.schema.table_sizes == [7, 5, 7]
    for split in ("train", "valid", "test"):
        a, b = d.split(split), h.split(split)
        assert np.array_equal(b.sparse[0], a.sparse[0] % 7)
        assert np.array_equal(b.sparse[1], a.sparse[1])  # already small: untouched
        assert np.array_equal(b.sparse[2][:, 0], a.sparse[2][:, 0] % 7)
        assert np.all(b.sparse[2][:, 1] == -1)  # padding stays padding
        assert max(int(s.max()) for s in b.sparse) < 7
    with pytest.raises(UserError):
        hash_tables(d, 0)
