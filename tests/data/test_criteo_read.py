"""The vectorized Criteo reader: same rows as the exact line parser, malformed lines counted."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedlab.data import criteo_read as cr
from embedlab.data.criteo_read import (
    ReadStats,
    input_files,
    iter_blocks,
    parse_block,
    parse_fields,
)
from embedlab.errors import UserError

from .criteo_lines import as_ids, expected, line, random_lines


@pytest.mark.parametrize("odd", [False, True])
def test_fast_path_matches_exact_parser(odd):
    lines = random_lines(400, seed=int(odd), odd=odd)
    block = "".join(lines).encode()
    chunk = cr._fast_block(block)  # raises if the fast path refused the block
    labels, dense, ids, _ = expected(lines)
    np.testing.assert_array_equal(chunk.labels, labels)
    np.testing.assert_array_equal(chunk.dense, dense)
    np.testing.assert_array_equal(as_ids(chunk), ids)
    exact = cr._exact_block(block, "f", 1, False, ReadStats())
    np.testing.assert_array_equal(as_ids(exact), ids)
    np.testing.assert_array_equal(exact.dense, dense)


def test_known_values():
    chunk = parse_block(line(dense=["", "-5", "9"] + ["0"] * 10, cats=["", "0000ffff", "FFFFFFFF"] + ["a"] * 23).encode(), "f", 1)
    assert chunk.labels.tolist() == [1]
    np.testing.assert_allclose(chunk.dense[0, :3], [0, 0, np.log(10)], rtol=1e-6)
    assert as_ids(chunk)[0, :4].tolist() == [-1, 0xFFFF, 0xFFFFFFFF, 10]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("1\t2\t3\n", "expected 40"),
        (line(label="2"), "label must be 0 or 1"),
        (line(dense=["+5"] + ["1"] * 12), "I1 is not an integer"),
        (line(dense=[" 5"] + ["1"] * 12), "I1 is not an integer"),
        (line(dense=["5.0"] + ["1"] * 12), "I1 is not an integer"),
        (line(dense=["-"] + ["1"] * 12), "I1 is not an integer"),
        (line(dense=["1-2"] + ["1"] * 12), "I1 is not an integer"),
        (line(cats=["0x1f"] + ["1"] * 25), "C1 is not hexadecimal"),
        (line(cats=["ghijklmn"] + ["1"] * 25), "C1 is not hexadecimal"),
        (line(cats=["é"] + ["1"] * 25), "C1 is not hexadecimal"),
        ("\t" * 39 + "\n", "label must be 0 or 1"),
    ],
)
def test_malformed_lines_are_counted_with_line_numbers(bad, reason):
    block = (line() + bad + line(label="0")).encode()
    stats = ReadStats()
    chunk = parse_block(block, "dir/f.tsv", 10, stats=stats)
    assert len(chunk) == 2 and chunk.labels.tolist() == [1, 0]
    assert stats.rows == 2 and stats.skipped == 1
    assert stats.examples[0].startswith("f.tsv:11: ") and reason in stats.examples[0]
    with pytest.raises(UserError, match=rf"dir/f\.tsv:11: .*{reason}"):
        parse_block(block, "dir/f.tsv", 10, strict=True)


def test_lone_carriage_return_and_blank_lines():
    block = (line() + "\n" + "\r\n" + line().replace("\t0\t", "\t0\r\t", 1) + line()).encode()
    stats = ReadStats()
    chunk = parse_block(block, "f", 1, stats=stats)
    assert len(chunk) == 2 and stats.skipped == 1 and "f:4:" in stats.examples[0]


def test_not_utf8_is_a_user_error():
    with pytest.raises(UserError, match="not a text file"):
        parse_block(b"\xff\xfe\x00\x01" * 100 + b"\n", "b.tsv", 1)


# Fuzzing: any line is either parsed exactly as the line parser does, or counted as malformed.
_ALPHABET = st.sampled_from(list("0123456789abcdefABCDEF-+ x.\r\té\x00"))
_FIELD = st.one_of(st.text(_ALPHABET, max_size=10), st.sampled_from(["", "0", "1", "-3", "deadbeef"]))
_LINE = st.one_of(
    st.lists(_FIELD, min_size=38, max_size=42).map(lambda f: "\t".join(f)),
    st.text(_ALPHABET, max_size=60),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, min_size=1, max_size=8), st.lists(st.booleans(), min_size=8, max_size=8))
def test_fuzzed_lines_are_parsed_or_counted(raw_lines, crlf):
    good = random_lines(3, seed=7)
    lines = good + [x + ("\r\n" if c else "\n") for x, c in zip(raw_lines, crlf)]
    block = "".join(lines).encode()
    stats = ReadStats()
    chunk = parse_block(block, "f", 1, stats=stats)
    # the reference: split on "\n" only, blank lines ignored, each line parsed or malformed
    ok, bad = [], 0
    for x in "".join(lines).split("\n")[:-1]:
        if x in ("", "\r"):
            continue
        try:
            parse_fields(x)
            ok.append(x)
        except ValueError:
            bad += 1
    assert stats.rows == len(chunk) == len(ok) and stats.skipped == bad
    np.testing.assert_array_equal(as_ids(chunk), expected(ok)[2])


@pytest.mark.parametrize("block_bytes", [1000, 100])  # 100: shorter than a line
@pytest.mark.parametrize("suffix, direct", [("", False), ("", True), (".gz", False)])
def test_blocks_cut_at_line_ends_and_number_lines(tmp_path, block_bytes, suffix, direct):
    lines = random_lines(50 if not direct else 400)
    p = tmp_path / f"f.tsv{suffix}"
    text = "".join(lines)[:-1].encode()  # no final newline
    p.write_bytes(gzip.compress(text) if suffix else text)
    # taken one at a time: a direct block's buffer is reused once it is released
    blocks = [(first, bytes(b)) for first, b in iter_blocks(p, block_bytes=block_bytes, direct=direct)]
    assert len(blocks) > 5
    assert b"".join(b for _, b in blocks).decode() == "".join(lines)
    assert all(bytes(b).endswith(b"\n") for _, b in blocks)
    firsts = [first for first, _ in blocks]
    counts = [bytes(b).count(b"\n") for _, b in blocks]
    assert firsts == [1 + sum(counts[:k]) for k in range(len(blocks))]


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_input_reads_the_same(tmp_path, suffix):
    text = "".join(random_lines(200)).encode()
    p = tmp_path / f"day_0{suffix}"
    if suffix == ".gz":
        p.write_bytes(gzip.compress(text))
    else:
        import pyarrow as pa

        with pa.output_stream(str(p), compression="zstd") as f:
            f.write(text)
    got = b"".join(b for _, b in iter_blocks(p, block_bytes=4096))
    assert got == text


def test_folder_in_day_order(tmp_path):
    for name in ["day_10.gz", "day_2", "day_0.gz", ".hidden", "day_1.zst"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in input_files(tmp_path)] == ["day_0.gz", "day_1.zst", "day_2", "day_10.gz"]
    with pytest.raises(UserError, match="input not found"):
        input_files(tmp_path / "nope")


_INT = st.one_of(st.just(""), st.from_regex(r"-?[0-9]{1,15}", fullmatch=True))
_HEXF = st.one_of(st.just(""), st.from_regex(r"[0-9a-fA-F]{1,12}", fullmatch=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from("01"), st.lists(_INT, min_size=13, max_size=13),
                          st.lists(_HEXF, min_size=26, max_size=26)), min_size=1, max_size=6))  # fmt: skip
def test_fuzzed_well_formed_lines_take_the_fast_path_exactly(rows):
    lines = [line(y, d, c) for y, d, c in rows]
    chunk = cr._fast_block("".join(lines).encode())  # must not fall back
    labels, dense, ids, _ = expected(lines)
    np.testing.assert_array_equal(chunk.labels, labels)
    np.testing.assert_array_equal(chunk.dense, dense)
    np.testing.assert_array_equal(as_ids(chunk), ids)


def test_damaged_gzip_is_a_user_error(tmp_path):
    data = bytearray(gzip.compress("".join(random_lines(3000)).encode(), compresslevel=1))
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    p = tmp_path / "day_0.gz"
    p.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"day_0\.gz: cannot read"):
        list(iter_blocks(p))
    p.write_bytes(bytes(data[: len(data) // 2]))  # cut short
    with pytest.raises(UserError, match=r"day_0\.gz: cannot read"):
        list(iter_blocks(p))
