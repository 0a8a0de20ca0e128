"""Prepared Criteo folders: contents, reuse, resume, strictness, sizing at load, splits,
several nodes, streaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedlab.data import criteo_prepare as cp
from embedlab.data import criteo_read as cr
from embedlab.data.criteo_prepare import prepare, prepare_once, read_meta
from embedlab.data.prepared import BlockStream, Prepared, modulo_mapper, split_arrays, split_ranges
from embedlab.errors import UserError

from .criteo_lines import expected, random_lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


def test_prepare_writes_raw_ids_and_reuses(tmp_path):
    lines = random_lines(300, odd=True)
    src = write(tmp_path / "train.txt", lines + ["broken\n"])
    res = prepare(src, tmp_path / "p", workers=2)
    assert res.parsed and res.meta["rows"] == 300 and res.meta["skipped"] == 1
    assert "train.txt:301" in res.meta["files"][0]["examples"][0]
    prep = Prepared.open(tmp_path / "p")
    labels, dense, ids, miss = expected(lines)
    np.testing.assert_array_equal(prep.labels, labels)
    np.testing.assert_array_equal(prep.dense, dense)
    raw = np.stack(prep.ids, axis=1)
    assert raw.dtype == np.uint32
    np.testing.assert_array_equal(raw[~miss], ids[~miss])
    bits = (prep.missing[:, None] >> np.arange(26, dtype=np.uint32)) & 1
    np.testing.assert_array_equal(bits.astype(bool), miss)
    assert not (tmp_path / "p" / ".partial").exists() and not (tmp_path / "p" / ".prepare.lock").exists()
    # same files: reused without parsing; a changed file (mtime/size): prepared again
    assert prepare(src, tmp_path / "p").parsed is False
    write(src, lines[:100])
    again = prepare(src, tmp_path / "p")
    assert again.parsed and again.meta["rows"] == 100 and again.meta["key"] != res.meta["key"]


def test_folder_of_days_gz_in_order_and_resume_after_crash(tmp_path, monkeypatch):
    import gzip

    days = tmp_path / "days"
    days.mkdir()
    parts = [random_lines(50 + 10 * d, seed=d) for d in range(3)]
    for d, ls in enumerate(parts):
        (days / f"day_{d}.gz").write_bytes(gzip.compress("".join(ls).encode()))
    real = cp._prepare_file
    calls = []

    def crash_on_day2(p, *a, **k):  # noqa: ANN001, ANN002, ANN003
        calls.append(p.name)
        if p.name == "day_2.gz" and len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed during the third file
        return real(p, *a, **k)

    monkeypatch.setattr(cp, "_prepare_file", crash_on_day2)
    with pytest.raises(KeyboardInterrupt):
        prepare(days, tmp_path / "p")
    assert read_meta(tmp_path / "p") is None  # nothing looks complete
    res = prepare(days, tmp_path / "p")
    assert calls == ["day_0.gz", "day_1.gz", "day_2.gz", "day_2.gz"]  # resumed at day 2
    assert [f["rows"] for f in res.meta["files"]] == [50, 60, 70]
    prep = Prepared.open(tmp_path / "p")
    np.testing.assert_array_equal(prep.dense, expected([x for ls in parts for x in ls])[1])


def test_strict_stops_with_file_line_and_leaves_nothing(tmp_path):
    src = write(tmp_path / "f.tsv", random_lines(5) + ["1\tbad\n"] + random_lines(5))
    with pytest.raises(UserError, match=r"f\.tsv:6: expected 40 tab-separated fields, got 2"):
        prepare(src, tmp_path / "p", strict=True)
    assert read_meta(tmp_path / "p") is None and not (tmp_path / "p" / ".partial").exists()
    prepare(src, tmp_path / "p")  # lenient: prepared, the line counted
    with pytest.raises(UserError, match=r"f\.tsv:6: expected 40"):
        prepare(src, tmp_path / "p", strict=True)  # refused from the folder too


def test_table_sizes_change_without_parsing(tmp_path, monkeypatch):
    lines = random_lines(200)
    prepare(write(tmp_path / "f.tsv", lines), tmp_path / "p")
    monkeypatch.setattr(cr, "parse_block", lambda *a, **k: pytest.fail("parsed again"))
    prep = Prepared.open(tmp_path / "p")
    ids = expected(lines)[2]
    for size in (7, 1000):
        arr = split_arrays(prep, 0, prep.rows, [modulo_mapper(size)] * 26)
        want = np.where(ids >= 0, ids % size, -1)
        np.testing.assert_array_equal(np.stack([np.asarray(c) for c in arr.sparse], axis=1), want)
        np.testing.assert_array_equal(arr.sparse[3][np.array([5, 2])], want[[5, 2], 3])


class _Fake:
    def __init__(self, rows, files=None):  # noqa: ANN001
        self.rows = rows
        self.meta = {"rows": rows, "files": files or [{"rows": rows}]}


def test_kaggle_split_is_the_reference_split():
    r = split_ranges(_Fake(45_840_617), "kaggle")  # type: ignore[arg-type]
    # 7 days of 6,548,659 rows, the first 4 one row more; day 6 halved, test first (rounded up)
    assert r["train"] == (0, 4 * 6_548_660 + 2 * 6_548_659)
    assert r["test"] == (39_291_958, 39_291_958 + 3_274_330)
    assert r["valid"] == (39_291_958 + 3_274_330, 45_840_617)


def test_terabyte_split_is_day_23_halved():
    files = [{"rows": 100 + d} for d in range(24)]
    r = split_ranges(_Fake(sum(f["rows"] for f in files), files), "terabyte")  # type: ignore[arg-type]
    train_end = sum(100 + d for d in range(23))
    assert r["train"] == (0, train_end) and r["test"] == (train_end, train_end + 62)
    assert r["valid"] == (train_end + 62, train_end + 123)
    with pytest.raises(UserError, match="24 day files"):
        split_ranges(_Fake(1000), "terabyte")  # type: ignore[arg-type]
    assert split_ranges(_Fake(1000), "80-10-10") == {"train": (0, 800), "valid": (800, 900), "test": (900, 1000)}


_NODE = """
import json, os, sys
from embedlab.data.criteo_prepare import prepare_once
import embedlab.data.criteo_prepare as cp
real = cp._prepare_file
def slow(*a, **k):
    import time; time.sleep(1.0)  # both nodes are inside prepare_once at once
    return real(*a, **k)
cp._prepare_file = slow
r = prepare_once(sys.argv[1], sys.argv[2])
print(json.dumps({"parsed": r.parsed, "rows": r.meta["rows"], "by": r.meta["prepared_by"]["host"]}))
"""


def _nodes(tmp_path, src, outs, local_ranks=(0, 0)):  # noqa: ANN001, ANN202
    procs = []
    for node, (out, lr) in enumerate(zip(outs, local_ranks)):
        env = {**os.environ, "EMBEDLAB_NODE": f"node{node}", "LOCAL_RANK": str(lr),
               "PYTHONPATH": os.pathsep.join(sys.path)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", _NODE, str(src), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    res = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        res.append(json.loads(out.strip().splitlines()[-1]))
    return res


def test_two_nodes_share_one_prepared_folder(tmp_path):
    src = write(tmp_path / "f.tsv", random_lines(100))
    a, b = _nodes(tmp_path, src, [tmp_path / "shared", tmp_path / "shared"])
    assert sorted([a["parsed"], b["parsed"]]) == [False, True]  # exactly one node prepared
    assert a["rows"] == b["rows"] == 100 and a["by"] == b["by"]


def test_two_nodes_with_local_folders_each_prepare_once(tmp_path):
    src = write(tmp_path / "f.tsv", random_lines(100))
    a, b = _nodes(tmp_path, src, [tmp_path / "n0", tmp_path / "n1"])
    assert a["parsed"] and b["parsed"] and {a["by"], b["by"]} == {"node0", "node1"}
    # a second local rank on node 0 waits and reads node 0's folder
    (c,) = _nodes(tmp_path, src, [tmp_path / "n0"], local_ranks=(1,))
    assert c["parsed"] is False and c["by"] == "node0"


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    src = write(tmp_path / "f.tsv", random_lines(20))
    out = tmp_path / "p"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".prepare.lock").write_text(json.dumps({"host": cp._whoami()["host"], "pid": dead.pid}))
    t = time.monotonic()
    assert prepare_once(src, out).parsed and time.monotonic() - t < 30


def test_stream_covers_each_row_once_and_resumes_exactly(tmp_path):
    lines = random_lines(1000)
    prepare(write(tmp_path / "f.tsv", lines), tmp_path / "p")
    prep = Prepared.open(tmp_path / "p")
    from embedlab.data.criteo import criteo_schema

    schema = criteo_schema([2**32] * 26)
    # a row's identity: its dense vector (distinct per row here)
    stream = BlockStream(prep, 100, 900, [None] * 26, block_rows=64, window_blocks=3)
    batches = list(stream.batches(schema, 50, seed=1, epoch=2, prefetch=True))
    assert len(batches) == 16
    seen = np.concatenate([b.dense.numpy() for b in batches])
    want = np.asarray(prep.dense[100:900])
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert key(seen) == key(want)  # every row of the range exactly once
    assert not np.array_equal(seen, want)  # shuffled
    tail = list(stream.batches(schema, 50, seed=1, epoch=2, start=9, prefetch=False))
    assert len(tail) == 7
    for x, y in zip(tail, batches[9:]):
        np.testing.assert_array_equal(x.dense.numpy(), y.dense.numpy())
        np.testing.assert_array_equal(x.sparse.values().numpy(), y.sparse.values().numpy())
    other = np.concatenate([b.dense.numpy() for b in stream.batches(schema, 50, seed=1, epoch=3)])
    assert not np.array_equal(other, seen)  # another epoch, another order


def _pooled_lines(n: int, seed: int, start: int = 0) -> list[str]:
    """Lines whose columns have known cardinalities: C1 from 5 ids, C2 from 300, C3 a new id
    every row (from ``start``), C4 from 40 with empties; dense values beyond 65,534 in I1."""
    from .criteo_lines import line

    rng = np.random.default_rng(seed)
    out = []
    for r in range(n):
        cats = [f"{v:08x}" for v in rng.integers(0, 2**32, 26)]
        cats[0] = f"{int(rng.integers(5)) * 977:08x}"
        cats[1] = f"{int(rng.integers(300)) * 7919 + 1:08x}"
        cats[2] = f"{start + r:08x}"
        k = int(rng.integers(41))
        cats[3] = "" if k == 40 else f"{k:08x}"  # includes raw id 0 (present) and empties
        dense = [str(int(x)) for x in rng.integers(-2, 200_000, 13)]
        out.append(line(str(int(rng.integers(2))), dense, cats))
    return out


def test_columns_are_dictionaries_until_they_outgrow_them_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(cp, "DICT_MAX", 400)
    days = tmp_path / "days"
    days.mkdir()
    parts = [_pooled_lines(300, seed=d, start=300 * d) for d in range(3)]
    for d, ls in enumerate(parts):
        write(days / f"day_{d}", ls)
    lines = [x for ls in parts for x in ls]
    labels, dense, ids, miss = expected(lines)
    # a clean run: C3 passes 400 ids during day 1 and is switched to raw ids there
    clean = prepare(days, tmp_path / "clean")
    cols = clean.meta["columns"]
    distinct = [len(np.unique(np.where(miss[:, j], 0, ids[:, j]))) for j in range(26)]  # empty: raw 0
    assert distinct[:2] == [5, 284] and distinct[3] == 40
    assert cols["C1"] == {"encoding": "dict", "dtype": "uint8", "size": 5}
    assert cols["C2"] == {"encoding": "dict", "dtype": "uint16", "size": 284}
    assert cols["C3"] == {"encoding": "raw", "dtype": "uint32"} and cols["C5"]["encoding"] == "raw"
    assert cols["C4"] == {"encoding": "dict", "dtype": "uint8", "size": 40}  # empties share raw id 0's code
    assert np.load(tmp_path / "clean" / "C1.npy", mmap_mode="r").dtype == np.uint8
    assert not (tmp_path / "clean" / "C3.dict.npy").exists()
    assert clean.meta["dense_overflow"] == int((dense >= np.float32(np.log1p(65535))).sum())
    # killed in day 1 right after C3 was switched: resumed from day 1's start
    real = cp._IdColumn._switch_to_raw
    calls = []

    def switch_then_die(self):  # noqa: ANN001
        real(self)
        calls.append(self.name)
        if self.name == "C3" and calls.count("C3") == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cp._IdColumn, "_switch_to_raw", switch_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare(days, tmp_path / "p")
    state = json.loads((tmp_path / "p" / ".partial" / "state.json").read_text())
    assert len(state["done"]) == 1 and state["columns"][2] == {"mode": "dict", "size": 300}
    res = prepare(days, tmp_path / "p")
    assert res.meta["columns"] == cols and calls.count("C3") == 2
    for folder in ("clean", "p"):
        prep = Prepared.open(tmp_path / folder)
        raw = np.stack([np.asarray(c) for c in prep.ids], axis=1).astype(np.int64)
        np.testing.assert_array_equal(np.where(miss, -1, raw), ids)
        np.testing.assert_array_equal(prep.labels, labels)
        np.testing.assert_array_equal(np.asarray(prep.dense), dense)


def test_rows_read_in_any_order_decode_exactly(tmp_path):
    lines = _pooled_lines(500, seed=4)
    prepare(write(tmp_path / "f.tsv", lines), tmp_path / "p")
    prep = Prepared.open(tmp_path / "p")
    _, dense, ids, miss = expected(lines)
    assert prep.meta["dense_overflow"] > 100
    arr = split_arrays(prep, 100, 400, [modulo_mapper(97)] * 26)
    idx = np.random.default_rng(0).integers(0, 300, 1000)  # shuffled, with repeats
    np.testing.assert_array_equal(arr.dense[idx], dense[100:400][idx])
    np.testing.assert_array_equal(arr.dense[-5:], dense[395:400])
    np.testing.assert_array_equal(arr.dense[7], dense[107])
    for j in (0, 2, 3):  # uint8 dictionary, raw, dictionary with empties
        want = np.where(miss[100:400, j], -1, ids[100:400, j] % 97)
        np.testing.assert_array_equal(arr.sparse[j][idx], want[idx])
        np.testing.assert_array_equal(arr.sparse[j][::3], want[::3])


def test_training_counts_per_column_encoding(tmp_path, monkeypatch):
    from embedlab.data.prepared import train_counts

    monkeypatch.setattr(cp, "DICT_MAX", 400)
    lines = _pooled_lines(600, seed=5)
    prepare(write(tmp_path / "f.tsv", lines), tmp_path / "p")
    prep = Prepared.open(tmp_path / "p")
    ids = expected(lines)[2]
    counts = train_counts(prep, 50, 550)
    for j in range(26):
        col = ids[50:550, j]
        u, c = np.unique(col[col >= 0], return_counts=True)
        np.testing.assert_array_equal(counts[j][0], u)
        np.testing.assert_array_equal(counts[j][1], c)


def test_a_folder_of_an_older_format_is_refused_in_one_line(tmp_path):
    prepare(write(tmp_path / "f.tsv", random_lines(20)), tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    (tmp_path / "p" / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(UserError, match="format 1 by an older embedlab.*prepare it again"):
        Prepared.open(tmp_path / "p")
