from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
import torch

from embedlab.errors import UserError
from embedlab.sharding.trace import draw_trace_bags, load_trace, tables_from_trace
from embedlab.sharding.types import NUM_REUSE_BINS, Table
from embedlab.sharding.workload import draw_bags, reuse_histogram

# 2 tables, 4 samples; table-major bags
BAGS = [
    [[1, 2], [3], [], [4, 5, 6]],  # table 0: max 6 -> rows floor 100, mean len 1.5
    [[150, 7], [0], [9, 9, 9], [42]],  # table 1: max 150 -> rows 151, mean len 1.75
]


def _arrays(bags=BAGS):
    lengths = torch.tensor([[len(b) for b in row] for row in bags], dtype=torch.int64)
    flat = [i for row in bags for b in row for i in b]
    indices = torch.tensor(flat, dtype=torch.int64)
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths.flatten(), 0)
    return indices, offsets, lengths


def _save(path, payload):
    if str(path).endswith(".gz"):
        buf = io.BytesIO()
        torch.save(payload, buf)
        with gzip.open(path, "wb") as f:
            f.write(buf.getvalue())
    else:
        torch.save(payload, path)
    return path


@pytest.fixture(params=["trace.pt", "trace.pt.gz"])
def trace_path(request, tmp_path):
    return _save(tmp_path / request.param, _arrays())


def test_load_trace_layout(trace_path):
    tr = load_trace(trace_path)
    assert tr.lengths.shape == (2, 4)
    assert tr.indices.dtype == np.int64 and tr.offsets.dtype == np.int64
    assert len(tr.offsets) == 9 and tr.offsets[-1] == len(tr.indices) == 13
    assert load_trace(trace_path) is tr  # cached


def test_list_payload_and_int32(tmp_path):
    i, o, l = _arrays()
    p = _save(tmp_path / "l.pt", [i.int(), o.int(), l.int()])
    tr = load_trace(p)
    assert tr.indices.dtype == np.int64
    assert tr.lengths.tolist() == [[2, 1, 0, 3], [2, 1, 3, 1]]


def test_tables_from_trace(trace_path):
    tables = tables_from_trace(trace_path, dim=8, bytes_per_element=4, prefix="x")
    assert [t.name for t in tables] == ["x0", "x1"]
    t0, t1 = tables
    assert (t0.rows, t1.rows) == (100, 151)
    assert t0.pooling_factor == pytest.approx(1.5)
    assert t1.pooling_factor == pytest.approx(1.75)
    assert t0.dim == 8 and t0.bytes_per_element == 4
    assert t1.index_distribution == {"kind": "trace", "path": str(trace_path), "table": 1}
    assert len(t1.reuse_bins) == NUM_REUSE_BINS
    assert t1.reuse_bins == reuse_histogram(np.array([150, 7, 0, 9, 9, 9, 42]))
    # 9 is used 3 times (bin 2), the other 4 distinct rows once
    assert t1.reuse_bins[0] == pytest.approx(0.8) and t1.reuse_bins[2] == pytest.approx(0.2)
    # round-trips through the v1 JSON
    assert Table.from_json(t1.to_json()) == t1


def _bag_set(table_idx):
    return {tuple(b) for b in BAGS[table_idx]}


@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 50])
@pytest.mark.parametrize("table_idx", [0, 1])
def test_draw_trace_bags_are_recorded_bags(trace_path, batch_size, table_idx):
    table = tables_from_trace(trace_path)[table_idx]
    rng = np.random.default_rng(batch_size)
    for _ in range(5):
        bags = draw_trace_bags(table, batch_size, rng)
        assert len(bags.offsets) == batch_size + 1 and bags.offsets[0] == 0
        assert bags.offsets[-1] == len(bags.indices)
        assert bags.indices.dtype == np.int64
        drawn = [
            tuple(bags.indices[a:b].tolist()) for a, b in zip(bags.offsets[:-1], bags.offsets[1:])
        ]
        assert all(d in _bag_set(table_idx) for d in drawn)
        if batch_size <= 4:  # a contiguous window of the recorded samples, in order
            recorded = [tuple(b) for b in BAGS[table_idx]]
            assert any(recorded[s : s + batch_size] == drawn for s in range(4 - batch_size + 1))


def test_draw_trace_bags_full_window_is_the_trace(trace_path):
    table = tables_from_trace(trace_path)[1]
    bags = draw_trace_bags(table, 4, np.random.default_rng(0))
    assert bags.lengths.tolist() == [2, 1, 3, 1]
    assert bags.indices.tolist() == [150, 7, 0, 9, 9, 9, 42]


def test_draw_trace_bags_modulo_rows_and_default_table(trace_path):
    t = Table("small", rows=10, dim=4, pooling_factor=1.0,
              index_distribution={"kind": "trace", "path": str(trace_path)})  # fmt: skip
    bags = draw_trace_bags(t, 4, np.random.default_rng(0))  # table 0 by default
    assert bags.indices.tolist() == [1, 2, 3, 4, 5, 6]
    t = Table("small", rows=10, dim=4, pooling_factor=1.0,
              index_distribution={"kind": "trace", "path": str(trace_path), "table": 1})  # fmt: skip
    bags = draw_trace_bags(t, 4, np.random.default_rng(0))
    assert bags.indices.tolist() == [0, 7, 0, 9, 9, 9, 2]
    assert (bags.indices < 10).all()


def test_draw_trace_bags_bad_table(trace_path):
    t = Table("t", rows=200, dim=4, pooling_factor=1.0,
              index_distribution={"kind": "trace", "path": str(trace_path), "table": 5})  # fmt: skip
    with pytest.raises(UserError, match="trace table 5"):
        draw_trace_bags(t, 2, np.random.default_rng(0))


def test_draw_bags_end_to_end(trace_path):
    tables = tables_from_trace(trace_path)
    rng = np.random.default_rng(7)
    for t in tables:
        bags = draw_bags(t, 1000, rng)
        assert len(bags.offsets) == 1001
        assert (bags.indices >= 0).all() and (bags.indices < t.rows).all()
        assert bags.lengths.mean() == pytest.approx(t.pooling_factor, rel=0.2)


def test_draw_trace_bags_is_deterministic(trace_path):
    t = tables_from_trace(trace_path)[1]
    a = draw_trace_bags(t, 9, np.random.default_rng(3))
    b = draw_trace_bags(t, 9, np.random.default_rng(3))
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.offsets, b.offsets)


def _corrupt_cases():
    i, o, l = _arrays()
    o_bad_last = o.clone()
    o_bad_last[-1] += 1
    o_bad_mid = o.clone()
    o_bad_mid[3] += 1
    o_bad_first = o + 1
    return {
        "not-a-tuple": ({"indices": i}, "expected a tuple"),
        "two-items": ((i, o), "expected a tuple"),
        "lengths-1d": ((i, o, l.flatten()), "lengths must be"),
        "indices-2d": ((i.reshape(13, 1), o, l), "indices must be 1-D"),
        "offsets-count": ((i, o[:-1], l), "expected T\\*B\\+1"),
        "offsets-end": ((i, o_bad_last, l), "offsets end at"),
        "offsets-mid": ((i, o_bad_mid, l), "disagree with lengths"),
        "offsets-start": ((i, o_bad_first, l), "start at 0"),
        "float-indices": ((i.double(), o, l), "integers"),
        "negative-index": ((i - 5, o, l), "negative"),
        "empty": ((i[:0], o[:1], l[:, :0]), "at least one"),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
@pytest.mark.parametrize("suffix", [".pt", ".pt.gz"])
def test_corrupt_layout_raises_user_error(tmp_path, case, suffix):
    payload, msg = _corrupt_cases()[case]
    p = _save(tmp_path / f"bad-{case}{suffix}", payload)
    with pytest.raises(UserError, match=msg) as e:
        load_trace(p)
    assert p.name in str(e.value)


def test_unreadable_files_raise_user_error(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(UserError, match="missing.pt"):
        load_trace(missing)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="junk.pt"):
        load_trace(junk)
    badgz = tmp_path / "bad.pt.gz"
    badgz.write_bytes(b"not gzip")
    with pytest.raises(UserError, match="bad.pt.gz"):
        load_trace(badgz)
    with pytest.raises(UserError, match="not a file"):
        load_trace(tmp_path)


def test_cache_reloads_changed_file(tmp_path):
    p = _save(tmp_path / "c.pt", _arrays())
    assert load_trace(p).lengths.shape == (2, 4)
    _save(p, _arrays([[[1], [2, 3]]]))
    assert load_trace(p).lengths.shape == (1, 2)
