"""Criteo Display Advertising Challenge TSV: the layout, the line parser, streaming and
a cache for ``--train FILE``.

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

Reading is done by :mod:`embedlab.data.criteo_read` (vectorized, plain/``.gz``/``.zst``);
:func:`iter_chunks` streams a file in bounded memory. :func:`load_split` prepares a file
once (:mod:`embedlab.data.criteo_prepare`: raw 32-bit ids, memory-mapped) into a cache
folder keyed by the file's path, size and mtime and the reader's format, and sizes the ids
when they are read, so other table sizes reuse the same cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from embedlab.data.criteo_read import (
    NUM_DENSE,
    NUM_FIELDS,
    NUM_SPARSE,
    RawChunk,
    ReadStats,
    dense_transform,
    iter_blocks,
    parse_block,
    parse_fields,
)
from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.errors import UserError

__all__ = [
    "CACHE_FORMAT", "DEFAULT_MAX_IND_RANGE", "DENSE_NAMES", "ID_SPACE", "KAGGLE_CARDINALITIES",
    "NUM_DENSE", "NUM_FIELDS", "NUM_SPARSE", "SPARSE_NAMES", "ReadStats", "criteo_schema",
    "default_cache_root", "dense_transform", "iter_chunks", "load_split", "parse_line",
]  # fmt: skip

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
CACHE_FORMAT = 4


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


def parse_line(line: str, sizes: Sequence[int]) -> tuple[float, list[int], list[int]]:
    """Parse one line into ``(label, 13 raw ints, 26 hashed ids or -1)``.

    Raises ``ValueError`` with the reason when the line is malformed.
    """
    y, dense, raw = parse_fields(line)
    return float(y), dense, [-1 if v < 0 else v % size for v, size in zip(raw, sizes)]


def _to_arrays(chunk: RawChunk, sizes: Sequence[int]) -> CTRArrays:
    sparse = []
    for j, (col, size) in enumerate(zip(chunk.ids, sizes)):
        ids = col.astype(np.int64)
        if size < ID_SPACE:
            ids %= size
        ids[(chunk.missing >> np.uint32(j)) & np.uint32(1) == 1] = -1
        sparse.append(ids)
    return CTRArrays(dense=chunk.dense, sparse=sparse, labels=chunk.labels.astype(np.float32))


def iter_chunks(
    path: str | Path,
    schema: CTRSchema,
    *,
    chunk_rows: int = 65536,
    strict: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[CTRArrays]:
    """Stream a Criteo TSV (plain, ``.gz`` or ``.zst``) as :class:`CTRArrays` chunks of at
    most ``chunk_rows`` rows, ids taken modulo the schema's table sizes.

    Malformed lines are skipped and counted in ``stats``; with ``strict`` the first one
    raises :class:`UserError` naming the file, the line number and the reason.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    stats = stats if stats is not None else ReadStats()
    sizes = schema.table_sizes
    pending: list[CTRArrays] = []
    held = 0
    for first_line, block in iter_blocks(p, block_bytes=max(1 << 16, min(1 << 24, chunk_rows * 256))):
        part = _to_arrays(parse_block(block, str(p), first_line, strict=strict, stats=stats), sizes)
        if not len(part):
            continue
        pending.append(part)
        held += len(part)
        while held >= chunk_rows:
            allp = CTRArrays.concat(pending) if len(pending) > 1 else pending[0]
            yield allp.take(slice(0, chunk_rows))
            rest = allp.take(slice(chunk_rows, len(allp)))
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield CTRArrays.concat(pending) if len(pending) > 1 else pending[0]


def default_cache_root() -> Path:
    """``$EMBEDLAB_CACHE`` or ``~/.cache/embedlab``."""
    import os

    return Path(os.environ.get("EMBEDLAB_CACHE", Path.home() / ".cache" / "embedlab"))


def cache_folder(path: str | Path, cache_root: str | Path | None = None) -> Path:
    """Where :func:`load_split` keeps the prepared form of ``path`` (keyed by its identity)."""
    from embedlab.data.criteo_prepare import prepared_key

    p = Path(path)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    return root / "criteo" / f"{p.name.split('.')[0]}-{prepared_key([p])}"


def load_split(
    path: str | Path,
    schema: CTRSchema,
    *,
    strict: bool = False,
    cache_root: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[CTRArrays, ReadStats]:
    """A Criteo TSV as :class:`CTRArrays` read from a prepared cache folder (made once).

    The ids are the raw 32-bit values, taken modulo the schema's table sizes when read, so
    one cache serves every table size. Several processes (or nodes sharing the cache)
    prepare it once (:func:`~embedlab.data.criteo_prepare.prepare_once`). A strict read of
    a file whose cache recorded malformed lines is refused with the first one.
    """
    from embedlab.data.criteo_prepare import prepare_once
    from embedlab.data.prepared import Prepared, modulo_mapper, split_arrays

    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {p}")
    final = cache_folder(p, cache_root)
    try:
        res = prepare_once(p, final, strict=strict, progress=progress)
    except UserError:
        with contextlib.suppress(OSError):
            final.rmdir()  # a strict stop leaves an empty folder; a killed run keeps its progress
        raise
    meta = res.meta
    stats = ReadStats(rows=meta["rows"], skipped=meta["skipped"], examples=list(meta["files"][0]["examples"]))
    if meta["rows"] == 0:
        raise UserError(f"{p}: no valid rows")
    prepared = Prepared.open(final)
    mappers = [modulo_mapper(s) if s < ID_SPACE else None for s in schema.table_sizes]
    return split_arrays(prepared, 0, prepared.rows, mappers), stats
