"""Criteo Display Advertising Challenge TSV: streaming reader and binary cache.

Layout (one example per line, tab-separated, 40 fields): ``label``, 13 integer features
``I1..I13`` and 26 categorical features ``C1..C26`` given as hexadecimal hashes (8 hex
digits in the real data). Any feature may be empty.

Preprocessing follows the DLRM reference (``facebookresearch/dlrm``, ``data_utils.py``):
missing and negative integers become 0 and the dense value is ``log(1 + max(x, 0))``; a
categorical value becomes ``int(hex, 16) % table_size``. Our choice: an empty categorical
field is an *empty bag* (no lookup) rather than id 0, so "missing" has no embedding of its
own. The default per-feature table sizes are the Kaggle cardinalities capped at
``max_ind_range`` (the reference's ``--max-ind-range``; we default to 10,000,000 as its
Terabyte configuration does).

The reader streams: :func:`iter_chunks` never holds more than one chunk of lines.
:func:`load_split` converts a file once into ``.npy`` files in a cache folder keyed by the
file's path, size, mtime and the table sizes, then memory-maps them, so epochs after the
first do not parse text again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.errors import UserError

NUM_DENSE = 13
NUM_SPARSE = 26
NUM_FIELDS = 1 + NUM_DENSE + NUM_SPARSE
DENSE_NAMES = tuple(f"I{i}" for i in range(1, NUM_DENSE + 1))
SPARSE_NAMES = tuple(f"C{i}" for i in range(1, NUM_SPARSE + 1))
#: Distinct values per categorical feature in Criteo Kaggle (DLRM reference ``ln_emb``).
KAGGLE_CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
DEFAULT_MAX_IND_RANGE = 10_000_000
#: The id space of a raw Criteo categorical field (8 hexadecimal digits).
ID_SPACE = 2**32
#: Bumped whenever the cache layout or the parsing rules change (old caches are then unused).
CACHE_FORMAT = 3


def criteo_schema(
    table_sizes: Sequence[int] | None = None, max_ind_range: int = DEFAULT_MAX_IND_RANGE
) -> CTRSchema:
    """Schema of the Criteo layout; default sizes are Kaggle's capped at ``max_ind_range``."""
    if max_ind_range <= 0:
        raise UserError(f"max_ind_range must be positive, got {max_ind_range}")
    if table_sizes is None:
        table_sizes = [min(c, max_ind_range) for c in KAGGLE_CARDINALITIES]
    if len(table_sizes) != NUM_SPARSE:
        raise UserError(f"need {NUM_SPARSE} table sizes, got {len(table_sizes)}")
    return CTRSchema(
        dense_names=DENSE_NAMES,
        sparse=tuple(SparseFeature(n, int(s)) for n, s in zip(SPARSE_NAMES, table_sizes)),
    )


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

    def summary(self) -> str:
        s = f"{self.rows} rows read"
        if self.skipped:
            s += f", {self.skipped} malformed lines skipped (first: {self.examples[0]})"
        return s


def parse_line(line: str, sizes: Sequence[int]) -> tuple[float, list[int], list[int]]:
    """Parse one line into ``(label, 13 raw ints, 26 hashed ids or -1)``.

    Raises ``ValueError`` with the reason when the line is malformed.
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
    for j, size in enumerate(sizes):
        v = fields[1 + NUM_DENSE + j]
        if v == "":
            sparse.append(-1)
            continue
        if not (v.isascii() and v.isalnum() and "x" not in v and "X" not in v):
            raise ValueError(f"C{j + 1} is not hexadecimal: {v!r}")
        try:
            sparse.append(int(v, 16) % size)
        except ValueError:
            raise ValueError(f"C{j + 1} is not hexadecimal: {v!r}") from None
    return float(label), dense, sparse


def dense_transform(raw: np.ndarray) -> np.ndarray:
    """``log(1 + max(x, 0))`` as float32 (the DLRM reference's transform)."""
    return np.log1p(np.maximum(raw, 0).astype(np.float64)).astype(np.float32)


def iter_chunks(
    path: str | Path,
    schema: CTRSchema,
    *,
    chunk_rows: int = 65536,
    strict: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[CTRArrays]:
    """Stream a Criteo TSV as :class:`CTRArrays` chunks of at most ``chunk_rows`` rows.

    Malformed lines are skipped and counted in ``stats``; with ``strict`` the first one
    raises :class:`UserError` naming the file, the line number and the reason.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    stats = stats if stats is not None else ReadStats()
    sizes = schema.table_sizes
    labels: list[float] = []
    dense: list[list[int]] = []
    sparse: list[list[int]] = []

    def flush() -> CTRArrays:
        d = dense_transform(np.asarray(dense, dtype=np.int64).reshape(-1, NUM_DENSE))
        s = np.asarray(sparse, dtype=np.int64).reshape(-1, NUM_SPARSE)
        out = CTRArrays(
            dense=d,
            sparse=[np.ascontiguousarray(s[:, j]) for j in range(NUM_SPARSE)],
            labels=np.asarray(labels, dtype=np.float32),
        )
        labels.clear(), dense.clear(), sparse.clear()
        return out

    try:
        with open(p, encoding="utf-8", errors="strict", newline="\n") as f:
            for lineno, line in enumerate(f, start=1):
                if line in ("\n", "\r\n", ""):
                    continue
                try:
                    y, d, s = parse_line(line, sizes)
                except ValueError as e:
                    if strict:
                        raise UserError(f"{p}:{lineno}: {e}") from None
                    stats.skip(f"{p.name}:{lineno}", str(e))
                    continue
                labels.append(y)
                dense.append(d)
                sparse.append(s)
                stats.rows += 1
                if len(labels) >= chunk_rows:
                    yield flush()
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not a text file ({e.reason})") from None
    if labels:
        yield flush()


def _cache_key(path: Path, schema: CTRSchema) -> str:
    st = path.stat()
    blob = json.dumps(
        [str(path.resolve()), st.st_size, st.st_mtime_ns, schema.table_sizes, CACHE_FORMAT]
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def default_cache_root() -> Path:
    """``$EMBEDLAB_CACHE`` or ``~/.cache/embedlab``."""
    return Path(os.environ.get("EMBEDLAB_CACHE", Path.home() / ".cache" / "embedlab"))


def load_split(
    path: str | Path,
    schema: CTRSchema,
    *,
    strict: bool = False,
    cache_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[CTRArrays, ReadStats]:
    """A Criteo TSV as memory-mapped :class:`CTRArrays`, converting it once into a cache.

    The conversion streams chunk by chunk into ``.npy`` files written under a temporary
    name and renamed when complete, so a killed conversion never leaves a cache that looks
    finished. ``progress`` is called with the number of rows after each chunk.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    final = root / "criteo" / f"{p.stem}-{_cache_key(p, schema)}"
    if not (final / "meta.json").is_file():
        _convert(p, schema, final, strict=strict, progress=progress)
    meta = json.loads((final / "meta.json").read_text())
    stats = ReadStats(rows=meta["rows"], skipped=meta["skipped"], examples=meta["examples"])
    if strict and stats.skipped:  # converted earlier without --strict: same verdict as a fresh read
        raise UserError(f"{p.parent}/{stats.examples[0]}")
    n = meta["rows"]
    if n == 0:
        raise UserError(f"{p}: no valid rows")
    mm = lambda name: np.load(final / f"{name}.npy", mmap_mode="r")  # noqa: E731
    arrays = CTRArrays(
        dense=mm("dense"),
        sparse=_columns(mm("sparse")),
        labels=mm("labels"),
    )
    return arrays, stats


def _columns(sparse: np.ndarray) -> list[np.ndarray]:
    # sparse is stored feature-major ([26, N]) so each column is a contiguous memmap view.
    return [sparse[j] for j in range(sparse.shape[0])]


def _convert(
    p: Path,
    schema: CTRSchema,
    final: Path,
    *,
    strict: bool,
    progress: Callable[[int], None] | None,
) -> None:
    """Stream ``p`` into ``final`` (``dense.npy``, ``sparse.npy`` [26, N], ``labels.npy``).

    Memory stays bounded by one chunk: rows go to raw ``.bin`` files first, then into the
    ``.npy`` files through memory maps, chunk by chunk. Everything happens in a temporary
    sibling folder that is removed on any failure and renamed into place when complete.
    """
    _remove_stale_tmp(final)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"cannot create cache folder {tmp.parent}: {e.strerror}") from None
    try:
        stats = ReadStats()
        names = ["dense", "labels", *(f"s{j}" for j in range(NUM_SPARSE))]
        files = {name: open(tmp / f"{name}.bin", "wb") for name in names}
        try:
            for chunk in iter_chunks(p, schema, strict=strict, stats=stats):
                files["dense"].write(chunk.dense.tobytes())
                files["labels"].write(chunk.labels.tobytes())
                for j, col in enumerate(chunk.sparse):
                    files[f"s{j}"].write(col.astype(np.int64).tobytes())
                if progress is not None:
                    progress(stats.rows)
        finally:
            for f in files.values():
                f.close()
        n = stats.rows
        _bin_to_npy(tmp / "dense.bin", tmp / "dense.npy", np.float32, (n, NUM_DENSE))
        _bin_to_npy(tmp / "labels.bin", tmp / "labels.npy", np.float32, (n,))
        out = np.lib.format.open_memmap(
            tmp / "sparse.npy", mode="w+", dtype=np.int64, shape=(NUM_SPARSE, n)
        )
        for j in range(NUM_SPARSE):
            src = tmp / f"s{j}.bin"
            if n:
                col = np.memmap(src, dtype=np.int64, mode="r", shape=(n,))
                for a in range(0, n, _COPY_ROWS):
                    out[j, a : a + _COPY_ROWS] = col[a : a + _COPY_ROWS]
                del col
            src.unlink()
        out.flush()
        del out
        meta = {"rows": n, "skipped": stats.skipped, "examples": stats.examples,
                "source": str(p), "table_sizes": schema.table_sizes}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_COPY_ROWS = 1 << 20


def _bin_to_npy(src: Path, dst: Path, dtype: type, shape: tuple[int, ...]) -> None:
    """Copy a raw binary array into a ``.npy`` file in bounded-memory slices."""
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=dtype, shape=shape)
    if shape[0]:
        raw = np.memmap(src, dtype=dtype, mode="r", shape=shape)
        for a in range(0, shape[0], _COPY_ROWS):
            out[a : a + _COPY_ROWS] = raw[a : a + _COPY_ROWS]
        del raw
    out.flush()
    del out
    src.unlink()


def _remove_stale_tmp(final: Path) -> None:
    """Delete temporary conversion folders left by processes that no longer run."""
    for old in final.parent.glob(final.name + ".tmp*"):
        pid = old.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
