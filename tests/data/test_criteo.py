from __future__ import annotations

import numpy as np
import pytest

from embedlab.data.criteo import (
    NUM_SPARSE,
    ReadStats,
    criteo_schema,
    dense_transform,
    iter_chunks,
    load_split,
    parse_line,
)
from embedlab.data.schema import make_batch
from embedlab.errors import UserError

from .criteo_lines import line

SIZES = [1000] * NUM_SPARSE


def test_parse_line_values_and_hashing():
    y, d, s = parse_line(
        line(dense=["", "-5"] + ["3"] * 11, cats=["", "0000ffff"] + ["a"] * 24), SIZES
    )
    assert y == 1.0
    assert d[:3] == [0, -5, 3]
    assert s[0] == -1  # empty categorical -> empty bag
    assert s[1] == 0xFFFF % 1000
    assert s[2] == 10


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("1\t2\t3\n", "expected 40"),
        (line(label="2"), "label must be 0 or 1"),
        (line(dense=["x"] + ["1"] * 12), "I1 is not an integer"),
        (line(cats=["zz"] + ["1"] * 25), "C1 is not hexadecimal"),
    ],
)
def test_parse_line_rejects_malformed(bad, reason):
    with pytest.raises(ValueError, match=reason):
        parse_line(bad, SIZES)


def test_dense_transform_clamps_negative():
    out = dense_transform(np.array([[-3, 0, 1, 9]]))
    np.testing.assert_allclose(out, [[0, 0, np.log(2), np.log(10)]], rtol=1e-6)
    assert out.dtype == np.float32


def _write(tmp_path, lines):
    p = tmp_path / "f.tsv"
    p.write_text("".join(lines))
    return p


def test_stream_skips_and_counts_malformed(tmp_path):
    p = _write(tmp_path, [line(), "garbage\n", line(label="0"), line(label="7"), line()])
    stats = ReadStats()
    chunks = list(iter_chunks(p, criteo_schema(SIZES), chunk_rows=2, stats=stats))
    assert [len(c) for c in chunks] == [2, 1]
    assert stats.rows == 3 and stats.skipped == 2
    assert "f.tsv:2" in stats.examples[0] and "f.tsv:4" in stats.examples[1]


def test_strict_names_file_line_and_reason(tmp_path):
    p = _write(tmp_path, [line(), line(), "1\tbad\n"])
    with pytest.raises(UserError, match=r"f\.tsv:3: expected 40"):
        list(iter_chunks(p, criteo_schema(SIZES), strict=True))


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        list(iter_chunks(tmp_path / "nope.tsv", criteo_schema(SIZES)))


def test_binary_file_is_user_error(tmp_path):
    p = tmp_path / "b.tsv"
    p.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(UserError, match="not a text file"):
        list(iter_chunks(p, criteo_schema(SIZES)))


def test_load_split_caches_and_matches_stream(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        line(
            label=str(rng.integers(2)),
            dense=[str(v) for v in rng.integers(-2, 50, 13)],
            cats=[f"{v:08x}" if v % 5 else "" for v in rng.integers(0, 2**32, 26)],
        )
        for _ in range(300)
    ]
    p = _write(tmp_path, lines + ["broken\n"])
    schema = criteo_schema(SIZES)
    arr, stats = load_split(p, schema, cache_root=tmp_path / "cache")
    assert len(arr) == 300 and stats.skipped == 1
    streamed = next(iter_chunks(p, schema, chunk_rows=10_000))
    np.testing.assert_array_equal(arr.dense, streamed.dense)
    np.testing.assert_array_equal(np.stack(arr.sparse), np.stack(streamed.sparse))
    cached = list((tmp_path / "cache" / "criteo").iterdir())
    assert len(cached) == 1 and (cached[0] / "meta.json").is_file()
    arr2, stats2 = load_split(p, schema, cache_root=tmp_path / "cache")  # from the cache
    assert stats2.skipped == 1
    np.testing.assert_array_equal(arr2.labels, arr.labels)


def test_batches_have_kjt_with_empty_bags(tmp_path):
    cats = ["", "00000001"] + ["00000002"] * 24
    p = _write(tmp_path, [line(cats=cats), line()])
    schema = criteo_schema(SIZES)
    arr = next(iter_chunks(p, schema))
    dense, kjt, labels = make_batch(arr, np.arange(2), schema)
    assert dense.shape == (2, 13) and labels.shape == (2,)
    assert kjt.keys() == schema.sparse_names
    lengths = kjt.lengths().view(26, 2)
    assert lengths[0].tolist() == [0, 1]
    assert lengths[1:].min() == 1


def test_default_table_sizes_are_capped():
    schema = criteo_schema(max_ind_range=1000)
    assert max(schema.table_sizes) == 1000 and min(schema.table_sizes) == 3
    with pytest.raises(UserError):
        criteo_schema(table_sizes=[5] * 3)


@pytest.mark.parametrize("bad", ["+5", " 5", "1_0", "--5", "5.0"])
def test_integer_fields_are_strict(bad):
    with pytest.raises(ValueError, match="I1 is not an integer"):
        parse_line(line(dense=[bad] + ["1"] * 12), SIZES)


@pytest.mark.parametrize("bad", ["0x1f", "-ff", "f_f", " ff"])
def test_hex_fields_are_strict(bad):
    with pytest.raises(ValueError, match="C1 is not hexadecimal"):
        parse_line(line(cats=[bad] + ["1"] * 25), SIZES)


def test_whitespace_only_line_is_counted(tmp_path):
    p = _write(tmp_path, [line(), "\t" * 39 + "\n", line()])
    stats = ReadStats()
    list(iter_chunks(p, criteo_schema(SIZES), stats=stats))
    assert stats.rows == 2 and stats.skipped == 1


def test_strict_applies_to_cached_file_and_failed_conversion_leaves_nothing(tmp_path):
    p = _write(tmp_path, ["label\tI1\n", line(), line()])
    schema = criteo_schema(SIZES)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"f\.tsv:1"):
        load_split(p, schema, strict=True, cache_root=cache)
    assert list((cache / "criteo").iterdir()) == []  # the temporary folder was removed
    arr, stats = load_split(p, schema, cache_root=cache)  # lenient: header skipped and counted
    assert len(arr) == 2 and stats.skipped == 1
    with pytest.raises(UserError, match=r"f\.tsv:1"):  # strict still refuses, from the cache
        load_split(p, schema, strict=True, cache_root=cache)


def test_gzip_file_reads_like_the_plain_one(tmp_path):
    import gzip

    lines = [line(label=str(i % 2), cats=[f"{(i * 31 + j) * 2654435761 % 2**32:08x}" for j in range(26)]) for i in range(50)]
    plain = _write(tmp_path, lines)
    gz = tmp_path / "f.tsv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    schema = criteo_schema(SIZES)
    a, _ = load_split(plain, schema, cache_root=tmp_path / "c")
    b, stats = load_split(gz, schema, cache_root=tmp_path / "c")
    assert stats.rows == 50 and stats.skipped == 0
    np.testing.assert_array_equal(np.stack(b.sparse), np.stack(a.sparse))
    np.testing.assert_array_equal(b.dense, a.dense)


def test_other_table_sizes_reuse_the_cache_without_parsing(tmp_path, monkeypatch):
    import embedlab.data.criteo as criteo

    rng = np.random.default_rng(3)
    lines = [line(cats=[f"{v:08x}" for v in rng.integers(0, 2**32, 26)]) for _ in range(40)]
    p = _write(tmp_path, lines)
    load_split(p, criteo_schema(SIZES), cache_root=tmp_path / "c")
    fail = lambda *a, **k: pytest.fail("parsed the text again")  # noqa: E731
    monkeypatch.setattr(criteo, "parse_line", fail)  # the line parser of the previous reader
    try:
        import embedlab.data.criteo_read as cr

        monkeypatch.setattr(cr, "parse_block", fail)
    except ImportError:  # the previous reader (this test is checked against it)
        pass
    arr, _ = load_split(p, criteo_schema([97] * NUM_SPARSE), cache_root=tmp_path / "c")
    want = [[int(f.split("\t")[14 + j], 16) % 97 for j in range(26)] for f in lines]
    np.testing.assert_array_equal(np.stack(arr.sparse, axis=1), want)
    assert len(list((tmp_path / "c" / "criteo").iterdir())) == 1
