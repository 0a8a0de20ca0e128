from __future__ import annotations

import numpy as np
import pytest

from embedlab.data.registry import CTRData
from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.data.vocab import OOV_ROW, Vocabulary, build_vocabulary, vocab_tables
from embedlab.errors import UserError


def arrays(col, bag=None) -> CTRArrays:
    n = len(col)
    sparse = [np.asarray(col, dtype=np.int64)]
    if bag is not None:
        sparse.append(np.asarray(bag, dtype=np.int64))
    return CTRArrays(dense=np.zeros((n, 1), np.float32), sparse=sparse, labels=np.zeros(n, np.float32))


def test_threshold_keeps_frequent_ids_and_maps_the_rest_to_the_shared_row():
    train = arrays([7, 7, 3, 9, 9, 9, -1, 2**32 - 1, 2**32 - 1])
    v = build_vocabulary(train, min_count=2)
    assert v.ids[0].tolist() == [7, 9, 2**32 - 1]
    assert v.table_sizes == [4]
    mapped = v.map_column(0, np.array([7, 3, 9, -1, 123456, 2**32 - 1]))
    # kept ids get rows 1..V in id order; rare (3) and unseen (123456) ids share row 0
    assert mapped.tolist() == [1, OOV_ROW, 2, -1, OOV_ROW, 3]


def test_min_count_one_gives_every_training_id_a_row():
    v = build_vocabulary(arrays([5, 1, 5, 8]), min_count=1)
    assert v.ids[0].tolist() == [1, 5, 8]
    assert v.map_column(0, np.array([1, 5, 8, 2])).tolist() == [1, 2, 3, 0]


def test_multi_hot_bags_keep_padding():
    train = arrays([1, 1, 1], bag=[[4, 5, -1], [4, -1, -1], [6, 4, -1]])
    v = build_vocabulary(train, min_count=2)
    assert v.ids[1].tolist() == [4]
    assert v.map_column(1, np.array([[4, 5, -1], [6, -1, -1]])).tolist() == [[1, 0, -1], [0, -1, -1]]


def test_vocab_tables_sizes_the_schema_and_maps_every_split(tmp_path):
    schema = CTRSchema(("d",), (SparseFeature("a", 2**32),))
    data = CTRData("x", schema, arrays([10, 10, 20, 20, 30]), arrays([10, 40]), arrays([30, 20]))
    out, v = vocab_tables(data, min_count=2)
    assert out.schema.table_sizes == [3]
    assert out.train.sparse[0].tolist() == [1, 1, 2, 2, 0]
    assert out.valid.sparse[0].tolist() == [1, 0]
    assert out.test.sparse[0].tolist() == [0, 2]
    assert max(int(out.split(s).sparse[0].max()) for s in ("train", "valid", "test")) < 3
    v.save(tmp_path / "vocab.npz")
    back = Vocabulary.load(tmp_path / "vocab.npz")
    assert back.min_count == 2 and [a.tolist() for a in back.ids] == [a.tolist() for a in v.ids]


def test_bad_threshold_is_a_user_error():
    with pytest.raises(UserError, match="vocab-min-count"):
        build_vocabulary(arrays([1]), min_count=0)
