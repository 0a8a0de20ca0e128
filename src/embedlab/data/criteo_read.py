"""Fast reader of Criteo TSV text (plain, ``.gz``, ``.zst``): blocks of lines to raw arrays.

**What a line becomes** (the DLRM reference's conventions, ``facebookresearch/dlrm``
``data_utils.py``, with our empty-bag choice for a missing categorical):

* ``label``: ``0`` or ``1`` (uint8);
* ``I1..I13``: decimal integers, possibly negative, possibly empty; stored as the reference's
  dense value ``log(1 + max(x, 0))`` (float32; empty is 0);
* ``C1..C26``: hexadecimal hashes (8 digits in the real data); stored as the **raw 32-bit
  id** (``int(hex, 16) mod 2**32``, uint32) plus one bit per feature in a per-row uint32
  ``missing`` mask for an empty field. Table sizing (modulo or a vocabulary) happens when
  the prepared data is loaded (:mod:`embedlab.data.prepared`), never here.

**Malformed lines** (wrong field count, a label other than 0/1, a non-integer dense field,
a non-hexadecimal categorical, a line that is not UTF-8) are skipped and counted; with
``strict`` the first one stops the read naming the file, the line and the reason. Blank
lines are ignored; ``\\r\\n`` line ends are accepted.

**How (measured, see docs/data.md).** We timed both candidate libraries on the same
500,000-line Criteo-format prefix with 2 threads on our shared 2-core machine
(``benchmarks/criteo_io.py``, part ``libs``, recorded in
``benchmarks/results/criteo_io.json``, load average about 3.7): pyarrow's CSV reader
597k-839k lines/s with every field as bytes (512k-601k with our NumPy hex conversion),
polars 395k-420k lines/s including its hex-to-integer conversion (rates on this shared
machine move with its load; the two are within a factor of two). We chose **pyarrow**, for
that speed and above all for the semantics: its parser hands rows with the wrong
number of fields to a handler (``invalid_row_handler``) so they can be counted, whereas
polars fills a short row with nulls (checked with polars 2.1), so a 39-field line is
indistinguishable from one whose last field is empty. Every field is read as raw bytes (no
conversion inside pyarrow) and converted over whole columns: 8-digit hex ids with SWAR
arithmetic on little-endian 64-bit words, integers by pyarrow's integer parser. A block is
converted this way only if *every* field passes the same checks as the exact line parser
(:func:`parse_fields`); a block with any anomaly is re-read line by line by that exact
parser, so results never depend on which path ran (tests compare the two).
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from embedlab.errors import UserError

NUM_DENSE = 13
NUM_SPARSE = 26
NUM_FIELDS = 1 + NUM_DENSE + NUM_SPARSE
#: Input suffixes the reader decompresses.
COMPRESSED = (".gz", ".zst")
#: Bytes of text per block (cut at a line end); one block is the unit of parallel work.
BLOCK_BYTES = 16 << 20


@dataclass
class ReadStats:
    """What the reader saw: rows kept and malformed lines skipped (with the first reasons)."""

    rows: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {reason}")

    def add(self, other: ReadStats) -> None:
        self.rows += other.rows
        self.skipped += other.skipped
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])

    def summary(self) -> str:
        s = f"{self.rows} rows read"
        if self.skipped:
            s += f", {self.skipped} malformed lines skipped (first: {self.examples[0]})"
        return s


@dataclass
class RawChunk:
    """Rows of one block: labels ``[n]`` uint8, dense ``[n, 13]`` float32 (transformed),
    raw ids ``[26][n]`` uint32 and the ``missing`` bit mask ``[n]`` uint32 (bit j: C{j+1})."""

    labels: np.ndarray
    dense: np.ndarray
    ids: list[np.ndarray]
    missing: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def empty() -> RawChunk:
        return RawChunk(
            np.zeros(0, np.uint8), np.zeros((0, NUM_DENSE), np.float32),
            [np.zeros(0, np.uint32) for _ in range(NUM_SPARSE)], np.zeros(0, np.uint32),
        )  # fmt: skip


def dense_transform(raw: np.ndarray) -> np.ndarray:
    """``log(1 + max(x, 0))`` as float32 (the DLRM reference's transform)."""
    return np.log1p(np.maximum(raw, 0).astype(np.float64)).astype(np.float32)


# ---------------------------------------------------------------- exact line parser


def parse_fields(line: str) -> tuple[int, list[int], list[int]]:
    """One line as ``(label, 13 raw integers (empty: 0), 26 raw 32-bit ids (empty: -1))``.

    The reference semantics every fast path must match. Raises ``ValueError`` with the
    reason when the line is malformed.
    """
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != NUM_FIELDS:
        raise ValueError(f"expected {NUM_FIELDS} tab-separated fields, got {len(fields)}")
    label = fields[0]
    if label not in ("0", "1"):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    dense = []
    for i in range(1, 1 + NUM_DENSE):
        v = fields[i]
        if v == "":
            dense.append(0)
            continue
        if not (v.isascii() and (v[1:] if v[0] == "-" else v).isdigit()):
            raise ValueError(f"I{i} is not an integer: {v!r}")
        dense.append(int(v))
    sparse = []
    for j in range(NUM_SPARSE):
        v = fields[1 + NUM_DENSE + j]
        if v == "":
            sparse.append(-1)
            continue
        if not (v.isascii() and v.isalnum() and "x" not in v and "X" not in v):
            raise ValueError(f"C{j + 1} is not hexadecimal: {v!r}")
        try:
            sparse.append(int(v, 16) % 2**32)
        except ValueError:
            raise ValueError(f"C{j + 1} is not hexadecimal: {v!r}") from None
    return int(label), dense, sparse


def _exact_block(
    block: bytes, where: str, first_line: int, strict: bool, stats: ReadStats
) -> RawChunk:
    """Parse ``block`` line by line with :func:`parse_fields` (anomalous blocks only)."""
    labels: list[int] = []
    dense: list[list[int]] = []
    ids: list[list[int]] = []
    for k, raw in enumerate(block.split(b"\n")[:-1] if block.endswith(b"\n") else block.split(b"\n")):
        lineno = first_line + k
        if raw in (b"", b"\r"):
            continue
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            raise UserError(f"{where}:{lineno}: not a text file ({e.reason})") from None
        try:
            y, d, s = parse_fields(text)
        except ValueError as e:
            if strict:
                raise UserError(f"{where}:{lineno}: {e}") from None
            stats.skip(f"{Path(where).name}:{lineno}", str(e))
            continue
        labels.append(y)
        dense.append(d)
        ids.append(s)
    n = len(labels)
    if n == 0:
        return RawChunk.empty()
    d_arr = dense_transform(_as_int_matrix(dense))
    s_arr = np.asarray(ids, dtype=np.int64).reshape(n, NUM_SPARSE)
    miss = s_arr < 0
    missing = (miss.astype(np.uint32) << np.arange(NUM_SPARSE, dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32
    )
    cols = [np.where(miss[:, j], 0, s_arr[:, j]).astype(np.uint32) for j in range(NUM_SPARSE)]
    stats.rows += n
    return RawChunk(np.asarray(labels, np.uint8), d_arr, cols, missing)


def _as_int_matrix(dense: list[list[int]]) -> np.ndarray:
    """Python ints (possibly beyond int64) as a float64 matrix for the transform."""
    try:
        return np.asarray(dense, dtype=np.int64).reshape(-1, NUM_DENSE)
    except OverflowError:
        return np.asarray([[float(v) for v in r] for r in dense], dtype=np.float64)


# ---------------------------------------------------------------- fast vectorized path

_NAMES = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{j}" for j in range(1, 27))]
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_DIGIT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789"):
    _DIGIT[_c] = _i
_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)  # nibble k of 8 -> bits 28-4k


class _Anomaly(Exception):
    """The block needs the exact line parser."""


def _column(arr) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """``(offsets [n+1] int64 from 0, data bytes)`` of a pyarrow binary array (zero copy)."""
    bufs = arr.buffers()
    n = len(arr)
    off = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    data = data[off[0] : off[-1]]
    return (off - off[0]).astype(np.int64), data


def _bytes8(b: int) -> np.uint64:
    return np.uint64(int.from_bytes(bytes([b]) * 8, "little"))


_B01, _B0F, _B30, _B70, _B76, _B80 = (_bytes8(b) for b in (1, 15, 48, 112, 118, 128))
_L16, _L32, _L64 = np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF), np.uint64(0xFFFFFFFF)


def _hex8(x: np.ndarray) -> np.ndarray:
    """8 ASCII hex digits per little-endian uint64 (SWAR) -> uint32; :class:`_Anomaly` if
    any byte is not ``[0-9a-fA-F]``."""
    u = np.uint64
    d = (x & _B0F) + ((x >> u(6)) & _B01) * u(9)  # digit value if the byte is a hex char
    gt9 = ((d + _B76) >> u(7)) & _B01  # per byte: d > 9
    back = d + _B30 + gt9 * u(0x27)  # the lowercase hex char of d
    if ((d + _B70) & _B80).any() or ((x | gt9 * u(0x20)) != back).any():
        raise _Anomaly
    p = ((d & _L16) << u(4)) | ((d >> u(8)) & _L16)
    q = ((p & _L32) << u(8)) | ((p >> u(16)) & _L32)
    return (((q & _L64) << u(16)) | (q >> u(32))).astype(np.uint32)


def _hex_column(off: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(raw uint32 ids, missing bool)`` of one categorical column; :class:`_Anomaly` if
    any non-empty value is not all hexadecimal digits."""
    n = len(off) - 1
    lens = np.diff(off)
    missing = lens == 0
    out = np.zeros(n, dtype=np.uint32)
    present = ~missing
    n_present = n - int(missing.sum())
    if len(data) == 8 * n_present and (lens[present] == 8).all():  # the real data's form
        v = _hex8(data.view("<u8"))
        if n_present == n:
            return v, missing
        out[present] = v
        return out, missing
    nib = _HEX[data]
    if (nib == 255).any():
        raise _Anomaly
    # any lengths: value = sum of the last 8 nibbles << 4 * (position from the end)
    vid = np.repeat(np.arange(n), lens)
    from_end = off[1:][vid] - 1 - np.arange(len(data))
    keep = from_end < 8
    w = nib[keep].astype(np.uint64) << (4 * from_end[keep]).astype(np.uint64)
    out = np.bincount(vid[keep], weights=w.astype(np.float64), minlength=n).astype(np.uint32)
    return out, missing


def _int_column(arr) -> np.ndarray:  # noqa: ANN001
    """Raw integers (empty: 0) of one dense column (pyarrow binary) as float64;
    :class:`_Anomaly` unless every non-empty value is ``-?[0-9]+`` within int64.

    pyarrow's integer parser accepts exactly that form (no ``+``, spaces, ``_`` or ``.``),
    checked against :func:`parse_fields` by the tests."""
    import pyarrow as pa

    off, data = _column(arr)
    n = len(off) - 1
    present = np.diff(off) > 0
    if not present.any():
        return np.zeros(n, dtype=np.float64)
    bufs = arr.buffers()
    validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    strings = pa.Array.from_buffers(pa.string(), n, [validity, bufs[1], bufs[2]], offset=arr.offset)
    try:
        ints = strings.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Anomaly from None
    return ints.fill_null(0).to_numpy().astype(np.float64)


def _fast_block(block: bytes) -> RawChunk:
    """Parse a block with pyarrow (fields as bytes) and NumPy; :class:`_Anomaly` if any line
    is not a plain well-formed Criteo line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        raise _Anomaly  # a lone carriage return: pyarrow would end a line there
    bad_rows = []

    def on_invalid(row) -> str:  # noqa: ANN001
        bad_rows.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(block),
            read_options=pacsv.ReadOptions(column_names=_NAMES, use_threads=False, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, newlines_in_values=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in _NAMES}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[],
            ),
        )  # fmt: skip
    except pa.ArrowInvalid:
        raise _Anomaly from None
    if bad_rows:
        raise _Anomaly
    n = table.num_rows
    if n == 0:
        return RawChunk.empty()
    cols = [c.combine_chunks() if c.num_chunks != 1 else c.chunk(0) for c in table.columns]
    off, data = _column(cols[0])
    if len(data) != n or not ((data == 48) | (data == 49)).all() or (np.diff(off) != 1).any():
        raise _Anomaly
    labels = (data - 48).astype(np.uint8)
    dense = np.empty((n, NUM_DENSE), dtype=np.float32)
    for i in range(NUM_DENSE):
        raw = _int_column(cols[1 + i])
        dense[:, i] = np.log1p(np.maximum(raw, 0.0))
    ids, missing = [], np.zeros(n, dtype=np.uint32)
    for j in range(NUM_SPARSE):
        v, miss = _hex_column(*_column(cols[1 + NUM_DENSE + j]))
        ids.append(v)
        missing |= miss.astype(np.uint32) << np.uint32(j)
    return RawChunk(labels, dense, ids, missing)


def parse_block(
    block: bytes, where: str, first_line: int, *, strict: bool = False, stats: ReadStats | None = None
) -> RawChunk:
    """Rows of ``block`` (whole lines; ``first_line``: its first line's number in ``where``).

    Vectorized when every line is well formed, else the exact line parser (same result).
    """
    stats = stats if stats is not None else ReadStats()
    try:
        chunk = _fast_block(block)
    except _Anomaly:
        return _exact_block(block, where, first_line, strict, stats)
    stats.rows += len(chunk)
    return chunk


# ---------------------------------------------------------------- files and blocks


def open_text(path: str | Path) -> IO[bytes]:
    """``path`` as a binary stream, decompressed for ``.gz`` and ``.zst``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if p.suffix == ".zst":
        import pyarrow as pa

        return pa.input_stream(str(p), compression="zstd", buffer_size=1 << 22)  # type: ignore[return-value]
    return open(p, "rb", buffering=1 << 22)


def iter_blocks(path: str | Path, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(number of the block's first line, bytes of whole lines)`` over a file; the last
    line may lack its newline. Memory: about two blocks."""
    line = 1
    rest = b""
    try:
        with open_text(path) as f:
            while True:
                buf = f.read(block_bytes)
                if not buf:
                    break
                buf = rest + buf if rest else buf
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    rest = buf
                    continue
                block, rest = buf[:cut], buf[cut:]
                yield line, block
                line += block.count(b"\n")
    except (OSError, EOFError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UserError(f"{path}: cannot read ({e})") from None
    if rest:
        yield line, rest + b"\n"


def input_files(path: str | Path) -> list[Path]:
    """One file, or a folder's Criteo files in day order (``day_0``, ``day_1``, ... by the
    number in the name; other names alphabetically). Hidden files are ignored."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise UserError(f"input not found: {p}")
    files = [q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")]
    if not files:
        raise UserError(f"{p}: no input files")

    def key(q: Path) -> tuple[int, str]:
        stem = q.name.split(".")[0]
        num = stem.rsplit("_", 1)[-1]
        return (int(num), q.name) if num.isdigit() else (1 << 30, q.name)

    return sorted(files, key=key)


def file_identity(p: Path) -> list[object]:
    """What identifies an input file for the cache: resolved path, size, mtime (ns)."""
    st = os.stat(p)
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]
