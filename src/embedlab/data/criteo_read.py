"""Fast reader of Criteo TSV text (plain, ``.gz``, ``.zst``): blocks of lines to raw arrays.

**What a line becomes** (the DLRM reference's conventions, ``facebookresearch/dlrm``
``data_utils.py``, with our empty-bag choice for a missing categorical):

* ``label``: ``0`` or ``1`` (uint8);
* ``I1..I13``: decimal integers, possibly negative, possibly empty; the model reads the
  reference's dense value ``log(1 + max(x, 0))`` (float32; empty is 0). A chunk keeps it
  losslessly and compactly as ``max(x, 0)`` in uint16 codes, with the few values at or above
  :data:`DENSE_ESCAPE` in an overflow list (flat index, transformed float32 value):
  :func:`dense_encode` / :func:`dense_decode`; decoding gives exactly the float32 that
  :func:`dense_transform` gives;
* ``C1..C26``: hexadecimal hashes (8 digits in the real data); stored as the **raw 32-bit
  id** (``int(hex, 16) mod 2**32``, uint32) plus one bit per feature in a per-row uint32
  ``missing`` mask for an empty field. Table sizing (modulo or a vocabulary) happens when
  the prepared data is loaded (:mod:`embedlab.data.prepared`), never here.

**Malformed lines** (wrong field count, a label other than 0/1, a non-integer dense field,
a non-hexadecimal categorical, a line that is not UTF-8) are skipped and counted; with
``strict`` the first one stops the read naming the file, the line and the reason. Blank
lines are ignored; ``\\r\\n`` line ends are accepted.

**How (measured, see docs/data.md).** We timed both candidate libraries on the same
500,000-line Criteo-format prefix with 2 threads on our 2-core machine
(``benchmarks/criteo_io.py``, part ``libs``, recorded in
``benchmarks/results/criteo_io_kaggle.json``): pyarrow's CSV reader 1.17M-2.40M lines/s with
every field as bytes (1.66M-1.70M with our NumPy hex conversion), polars 1.19M-1.27M lines/s
including its hex-to-integer conversion. We chose **pyarrow**, for that speed and above all
for the semantics: its parser hands rows with the wrong
number of fields to a handler (``invalid_row_handler``) so they can be counted, whereas
polars fills a short row with nulls (checked with polars 2.1), so a 39-field line is
indistinguishable from one whose last field is empty. Integer fields are converted by
pyarrow's CSV integer parser (empty fields as null); categorical fields are read as raw
bytes and converted over whole columns: 8-digit hex ids by a 65,536-entry lookup table of
digit pairs (one gather per two characters, which also flags any non-hex character). A block is
converted this way only if *every* field passes the same checks as the exact line parser
(:func:`parse_fields`); a block with any anomaly is re-read line by line by that exact
parser, so results never depend on which path ran (tests compare the two).
"""

from __future__ import annotations

import errno
import gzip
import mmap
import os
import sys
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
    """Rows of one block: labels ``[n]`` uint8; the dense values as :func:`dense_encode`
    gives them (``dense_codes`` ``[n, 13]`` uint16, ``over_index`` int64 flat indices into
    ``dense_codes``, ``over_value`` float32); raw ids ``[26][n]`` uint32 and the ``missing``
    bit mask ``[n]`` uint32 (bit j: C{j+1})."""

    labels: np.ndarray
    dense_codes: np.ndarray
    over_index: np.ndarray
    over_value: np.ndarray
    ids: list[np.ndarray]
    missing: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dense(self) -> np.ndarray:
        """``[n, 13]`` float32: ``log(1 + max(x, 0))`` of the integer fields."""
        return dense_decode(self.dense_codes, self.over_index, self.over_value)

    @staticmethod
    def empty() -> RawChunk:
        return RawChunk(
            np.zeros(0, np.uint8), np.zeros((0, NUM_DENSE), np.uint16), np.zeros(0, np.int64),
            np.zeros(0, np.float32), [np.zeros(0, np.uint32) for _ in range(NUM_SPARSE)], np.zeros(0, np.uint32),
        )  # fmt: skip


def dense_transform(raw: np.ndarray) -> np.ndarray:
    """``log(1 + max(x, 0))`` as float32 (the DLRM reference's transform)."""
    return np.log1p(np.maximum(raw, 0).astype(np.float64)).astype(np.float32)


#: Dense code meaning "at or above this value; see the overflow list". Codes below it are
#: ``max(x, 0)`` exactly.
DENSE_ESCAPE = 65535
#: float32 transform of every code below the escape (decoding is one gather).
DENSE_TABLE = dense_transform(np.arange(DENSE_ESCAPE + 1, dtype=np.float64))


def dense_encode(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw integers ``[n, 13]`` (int64 or float64; empty already 0) as ``(codes uint16
    [n, 13], overflow flat indices int64, overflow values float32)``: ``max(x, 0)`` where it
    is below :data:`DENSE_ESCAPE`, else the escape code and the transformed value aside."""
    codes = np.clip(raw, 0, DENSE_ESCAPE).astype(np.uint16)
    return codes, *_overflow(codes, raw)


def _overflow(codes: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.flatnonzero(codes == DENSE_ESCAPE)
    return flat.astype(np.int64), dense_transform(raw.reshape(-1)[flat]) if len(flat) else np.zeros(0, np.float32)


def dense_decode(codes: np.ndarray, over_index: np.ndarray, over_value: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dense_encode`: float32 ``[n, 13]``, the transformed values."""
    out = DENSE_TABLE[codes]
    if len(over_index):
        out.reshape(-1)[over_index] = over_value
    return out


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
    block: bytes | memoryview, where: str, first_line: int, strict: bool, stats: ReadStats
) -> RawChunk:
    """Parse ``block`` line by line with :func:`parse_fields` (anomalous blocks only)."""
    block = _bytes(block)
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
    codes, over_index, over_value = dense_encode(_as_int_matrix(dense))
    s_arr = np.asarray(ids, dtype=np.int64).reshape(n, NUM_SPARSE)
    miss = s_arr < 0
    missing = (miss.astype(np.uint32) << np.arange(NUM_SPARSE, dtype=np.uint32)).sum(
        axis=1, dtype=np.uint32
    )
    cols = [np.where(miss[:, j], 0, s_arr[:, j]).astype(np.uint32) for j in range(NUM_SPARSE)]
    stats.rows += n
    return RawChunk(np.asarray(labels, np.uint8), codes, over_index, over_value, cols, missing)


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


def _pair_table() -> np.ndarray:
    """uint16 value of every two-byte pair read as a little-endian uint16: the byte value of
    two hex digits (first character high), or 256 if either is not ``[0-9a-fA-F]``."""
    val = np.full(256, -1, dtype=np.int32)
    ok = _HEX != 255
    val[ok] = _HEX[ok]
    pair = np.arange(1 << 16)
    hi, lo = val[pair & 255], val[pair >> 8]
    return np.where((hi >= 0) & (lo >= 0), hi * 16 + lo, 256).astype(np.uint16)


_PAIRS = _pair_table()


def _hex8(data: np.ndarray) -> np.ndarray:
    """Contiguous 8-character hex values (uint8 bytes, length a multiple of 8) -> uint32;
    :class:`_Anomaly` if any byte is not ``[0-9a-fA-F]``."""
    v = np.take(_PAIRS, data.view("<u2"))
    if len(v) and v.max() > 255:
        raise _Anomaly
    return v.astype(np.uint8).view(">u4").astype(np.uint32)


def _hex_column(arr) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """``(raw uint32 ids, missing bool)`` of one categorical column (pyarrow binary);
    :class:`_Anomaly` if any non-empty value is not all hexadecimal digits."""
    bufs = arr.buffers()
    n = len(arr)
    off = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    data = data[off[0] : off[-1]]
    lens = np.diff(off)
    missing = lens == 0
    n_present = n - int(np.count_nonzero(missing))
    # the real data's form: every present value has 8 digits (sum 8 per value, none longer)
    if len(data) == 8 * n_present and (n_present == 0 or int(lens.max()) == 8):
        v = _hex8(data)
        if n_present == n:
            return v, missing
        out = np.zeros(n, dtype=np.uint32)
        out[~missing] = v
        return out, missing
    nib = _HEX[data]
    if (nib == 255).any():
        raise _Anomaly
    # any lengths: value = sum of the last 8 nibbles << 4 * (position from the end)
    off = (off - off[0]).astype(np.int64)
    vid = np.repeat(np.arange(n), lens)
    from_end = off[1:][vid] - 1 - np.arange(len(data))
    keep = from_end < 8
    w = nib[keep].astype(np.uint64) << (4 * from_end[keep]).astype(np.uint64)
    out = np.bincount(vid[keep], weights=w.astype(np.float64), minlength=n).astype(np.uint32)
    return out, missing


def _fast_block(block: bytes | memoryview) -> RawChunk:
    """Parse a block with pyarrow and NumPy; :class:`_Anomaly` if any line is not a plain
    well-formed Criteo line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw = memoryview(block)
    if _has(raw, b"\r") and _bytes(raw).count(b"\r") != _bytes(raw).count(b"\r\n"):
        raise _Anomaly  # a lone carriage return: pyarrow would end a line there
    if _has(raw, b" "):
        raise _Anomaly  # pyarrow's integer conversion trims spaces, the exact parser refuses them
    bad_rows = []

    def on_invalid(row) -> str:  # noqa: ANN001
        bad_rows.append(row)
        return "skip"

    types = {n: pa.binary() for n in _NAMES}
    types.update({n: pa.int64() for n in _NAMES[1 : 1 + NUM_DENSE]})
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(raw)),
            read_options=pacsv.ReadOptions(column_names=_NAMES, use_threads=False, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, newlines_in_values=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
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
    codes = np.empty((n, NUM_DENSE), dtype=np.uint16)
    over_index, over_value = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for i in range(NUM_DENSE):
        x = cols[1 + i].fill_null(0).to_numpy()
        codes[:, i] = np.clip(x, 0, DENSE_ESCAPE)
        if (codes[:, i] == DENSE_ESCAPE).any():  # rare: gather the overflow of the whole block
            raw = np.stack([c.fill_null(0).to_numpy() for c in cols[1 : 1 + NUM_DENSE]], axis=1)
            codes, over_index, over_value = dense_encode(raw)
            break
    ids, missing = [], np.zeros(n, dtype=np.uint32)
    for j in range(NUM_SPARSE):
        v, miss = _hex_column(cols[1 + NUM_DENSE + j])
        ids.append(v)
        missing |= miss.astype(np.uint32) << np.uint32(j)
    return RawChunk(labels, codes, over_index, over_value, ids, missing)


def _bytes(block: bytes | memoryview) -> bytes:
    return block if isinstance(block, bytes) else bytes(block)


def _has(block: memoryview, byte: bytes) -> bool:
    """Whether ``block`` contains ``byte`` (memchr speed, no copy)."""
    obj = block.obj
    if isinstance(obj, (bytes, bytearray, mmap.mmap)) and block.contiguous:
        start = _start_in(block, obj)
        return obj.find(byte, start, start + block.nbytes) >= 0
    return byte in _bytes(block)


def _start_in(view: memoryview, obj: bytes | bytearray) -> int:
    """Offset of ``view``'s first byte inside ``obj`` (a slice of a view of ``obj``)."""
    if not view.nbytes:
        return 0
    base = np.frombuffer(obj, dtype=np.uint8)
    sub = np.frombuffer(view, dtype=np.uint8)
    return int(sub.__array_interface__["data"][0] - base.__array_interface__["data"][0])


def parse_block(
    block: bytes | memoryview, where: str, first_line: int, *, strict: bool = False, stats: ReadStats | None = None
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
        try:  # ISA-L's inflate, in a thread beside the parser
            from isal import igzip_threaded
        except ImportError:
            return gzip.open(p, "rb")  # type: ignore[return-value]
        return igzip_threaded.open(p, "rb", threads=1)  # type: ignore[return-value]
    if p.suffix == ".zst":
        import pyarrow as pa

        return pa.input_stream(str(p), compression="zstd", buffer_size=1 << 22)  # type: ignore[return-value]
    return open(p, "rb", buffering=1 << 22)


def iter_blocks(path: str | Path, block_bytes: int = BLOCK_BYTES, *, direct: bool = False) -> Iterator[tuple[int, memoryview]]:
    """``(number of the block's first line, whole lines)`` over a file; the last line may lack
    its newline. A block is a read-only view of a buffer; plain files are read at the
    previous block's end, so nothing is copied. Memory: about one block per block held.

    ``direct`` (plain files): read with ``O_DIRECT`` into reused page-aligned buffers,
    bypassing the kernel's page cache: a one-pass read of a file larger than the cache then
    costs no page-cache upkeep (``benchmarks/criteo_read_modes.py``: 11 GB read cold with
    0.5-0.6 s of system time, against 7.4-18.9 s through the page cache). Where the file
    system refuses ``O_DIRECT`` the ordinary reads are used."""
    p = Path(path)
    line = 1
    try:
        if p.suffix not in COMPRESSED:
            if not p.is_file():
                raise UserError(f"file not found: {p}")
            for view in _direct_blocks(p, block_bytes) if direct else _plain_blocks(p, block_bytes):
                yield line, view
                line += _newlines(view)
            return
        rest = b""
        with open_text(p) as f:
            while True:
                buf = f.read(block_bytes)
                if not buf:
                    break
                buf = rest + buf if rest else buf
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    rest = buf
                    continue
                view, rest = memoryview(buf)[:cut], buf[cut:]
                yield line, view
                line += _newlines(view)
    except _read_errors() as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UserError(f"{path}: cannot read ({e})") from None
    if rest:
        yield line, memoryview(rest + b"\n")


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged input raises (ISA-L's own error is not an ``OSError``)."""
    try:
        from isal.isal_zlib import IsalError
    except ImportError:
        return (OSError, EOFError, ValueError)
    return (OSError, EOFError, ValueError, IsalError)


def _plain_blocks(p: Path, block_bytes: int, pos: int = 0) -> Iterator[memoryview]:
    """Views of whole lines of ``p`` from byte ``pos``, read with ordinary reads."""
    with open(p, "rb", buffering=0) as f:
        while True:
            _read_ahead(f.fileno(), pos + block_bytes, 2 * block_bytes)
            f.seek(pos)
            buf = f.read(block_bytes)
            if not buf:
                return
            while (cut := buf.rfind(b"\n") + 1) == 0 and (more := f.read(block_bytes)):
                buf += more  # a line longer than a block
            if cut == 0:  # the last line, without its newline
                yield memoryview(buf + b"\n")
                return
            yield memoryview(buf)[:cut]
            pos += cut


#: O_DIRECT alignment of offsets, lengths and buffers (covers 512- and 4096-byte sectors).
_ALIGN = 4096


class _BufferPool:
    """Page-aligned anonymous buffers, reused once no view of them is alive (CPython's
    reference count: the pool's list and the caller's name are the only references)."""

    def __init__(self, size: int, keep: int = 8) -> None:
        self.size, self.keep = size, keep
        self.buffers: list[mmap.mmap] = []

    def get(self) -> mmap.mmap:
        for buf in self.buffers:
            if sys.getrefcount(buf) <= 3:  # the list, `buf`, getrefcount's argument
                return buf
        buf = mmap.mmap(-1, self.size)
        if len(self.buffers) < self.keep:
            self.buffers.append(buf)
        return buf


def _direct_blocks(p: Path, block_bytes: int) -> Iterator[memoryview]:
    """Views of whole lines of ``p`` read with ``O_DIRECT`` (see :func:`iter_blocks`); a
    line longer than a block, or a file system without ``O_DIRECT``, falls back to
    :func:`_plain_blocks` from that point."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_DIRECT"))  # noqa: B009 (absent off Linux)
    except (AttributeError, OSError):
        yield from _plain_blocks(p, block_bytes)
        return
    span = -(-block_bytes // _ALIGN) * _ALIGN + _ALIGN
    pool = _BufferPool(span)
    pos = 0
    try:
        while True:
            start = pos - pos % _ALIGN
            buf = pool.get()
            try:
                n = os.preadv(fd, [buf], start)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                yield from _plain_blocks(p, block_bytes, pos)  # alignment refused: read as usual
                return
            first = pos - start
            if n <= first:
                return
            cut = buf.rfind(b"\n", first, n) + 1
            if cut == 0:  # a line longer than a block, or the last line without a newline
                yield from _plain_blocks(p, block_bytes, pos)
                return
            yield memoryview(buf)[first:cut]
            pos = start + cut
    finally:
        os.close(fd)


def _read_ahead(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start reading the next blocks now (asynchronously), so a cold file
    is read while this block is parsed."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass


def _newlines(view: memoryview) -> int:
    return int(np.count_nonzero(np.frombuffer(view, dtype=np.uint8) == 10))


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
