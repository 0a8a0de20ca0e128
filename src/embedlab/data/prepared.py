"""A prepared Criteo folder (:mod:`embedlab.data.criteo_prepare`) as training data.

**Splits** (rows in input order; day files in day order):

* ``80-10-10``: the first 80% of rows train, the next 10% validate, the last 10% test
  (by position, as ``--train FILE`` alone does);
* ``kaggle``: the DLRM reference's split of Criteo Kaggle's ``train.txt`` (45,840,617
  lines in time order, 7 days of equal size): the rows are cut into 7 days as the
  reference does (``divmod``; the first ``rows mod 7`` days get one row more), days 0-5
  train, day 6 is halved: its first half (rounded up) is **test**, its second half
  **validation** (the reference's order);
* ``terabyte``: the Terabyte set's day files ``day_0 .. day_23``: days 0-22 train, day 23 is
  halved, first half (rounded up) test, second half validation, as the reference does.
  Needs a folder prepared from 24 day files.

**Table sizing** happens when rows are read, from the raw 32-bit ids: ids modulo a size
per table (``hash``) or the training split's vocabulary with a frequency threshold
(``vocab``; per-feature id counts over the training split are computed once and kept in
``counts/`` beside the arrays, so a new threshold costs no pass over the data either).
A sizing ``mapper`` must be elementwise (each raw id mapped on its own, as both are): for a
dictionary-encoded column it is applied once to the dictionary and rows are then one
gather of their codes.

**Streaming** (:class:`BlockStream`): an epoch visits the training rows in *shuffled
blocks*: the split is cut into blocks of ``block_rows`` consecutive rows, the block order
is a permutation drawn from ``(seed, epoch)``, and ``window_blocks`` blocks at a time are
read, sized, and shuffled together; batches are cut from the windows in order. Memory
holds about two windows (one being read ahead by a background thread) whatever the
split's size. The order is a pure function of ``(seed, epoch)``, so a resumed run replays
the same batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.data.background import prefetch as read_ahead
from embedlab.data.criteo_prepare import ARRAYS, ID_NAMES, PREPARED_FORMAT, read_meta
from embedlab.data.criteo_read import DENSE_ESCAPE, DENSE_TABLE, NUM_DENSE, NUM_SPARSE
from embedlab.data.registry import CTRData
from embedlab.data.schema import Batch, CTRArrays, CTRSchema, make_batch, num_batches
from embedlab.errors import UserError, unknown_name

SPLITS = ("80-10-10", "kaggle", "terabyte")
KAGGLE_DAYS = 7
TERABYTE_DAYS = 24
ID_SPACE = 2**32
_CHUNK = 1 << 21  # rows per pass when counting or materializing a column


class IdColumn:
    """The raw uint32 ids of one categorical feature of a prepared folder, decoded on
    access (``column[idx]``, ``np.asarray(column)``), for a raw or a dictionary column."""

    ndim = 1
    dtype = np.dtype(np.uint32)

    def __init__(self, data: np.ndarray, dictionary: np.ndarray | None) -> None:
        self.data, self.dictionary = data, dictionary
        self._tables: dict[int, tuple[Any, np.ndarray]] = {}

    @property
    def shape(self) -> tuple[int]:
        return (len(self.data),)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: Any) -> np.ndarray:
        codes = self.data[idx]
        return np.asarray(codes) if self.dictionary is None else self.dictionary[codes]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def sized(self, idx: Any, mapper: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
        """Rows ``idx`` as int64 ids sized by the elementwise ``mapper`` (``None``: raw)."""
        if self.dictionary is None:
            ids = np.asarray(self.data[idx])
            return ids.astype(np.int64) if mapper is None else mapper(ids)
        if mapper is None:
            return self.dictionary.astype(np.int64)[self.data[idx]]
        kept = self._tables.get(id(mapper))
        if kept is None or kept[0] is not mapper:
            kept = (mapper, np.asarray(mapper(self.dictionary), dtype=np.int64))
            self._tables[id(mapper)] = kept
        return kept[1][self.data[idx]]


@dataclass(frozen=True)
class Prepared:
    """The memory-mapped arrays of a prepared folder (format in
    :mod:`embedlab.data.criteo_prepare`)."""

    path: Path
    meta: dict[str, Any]
    labels: np.ndarray
    dense_codes: np.ndarray
    over_index: np.ndarray
    over_value: np.ndarray
    missing: np.ndarray
    ids: tuple[IdColumn, ...]

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])

    @property
    def dense(self) -> DenseRows:
        """Every row's dense values, decoded on access (:class:`DenseRows`)."""
        return DenseRows(self, 0, self.rows)

    @staticmethod
    def open(path: str | Path) -> Prepared:
        p = Path(path)
        meta = read_meta(p)
        if meta is None:
            raise UserError(
                f"{p} is not a prepared Criteo folder (no complete meta.json); make one with "
                "`embedlab data prepare criteo --input FILE_OR_DIR --out DIR`"
            )
        if meta.get("format") != PREPARED_FORMAT:
            raise UserError(
                f"{p} was prepared in format {meta.get('format')} by an older embedlab; this one reads "
                f"format {PREPARED_FORMAT}: prepare it again with `embedlab data prepare criteo`"
            )
        mm = {n: np.load(p / f"{n}.npy", mmap_mode="r") for n in (*ARRAYS, *ID_NAMES)}
        ids = tuple(
            IdColumn(mm[n], np.load(p / f"{n}.dict.npy") if meta["columns"][n]["encoding"] == "dict" else None)
            for n in ID_NAMES
        )
        return Prepared(p, meta, mm["labels"], mm["dense"], np.asarray(mm["dense_over_index"]),
                        mm["dense_over_value"], mm["missing"], ids)  # fmt: skip

    def dense_rows(self, idx: slice | np.ndarray) -> np.ndarray:
        """float32 ``[m, 13]`` of absolute rows ``idx`` (a slice with step 1, or indices)."""
        codes = np.asarray(self.dense_codes[idx])
        out = DENSE_TABLE[codes]
        esc = np.flatnonzero(codes.reshape(-1) == DENSE_ESCAPE)
        if len(esc):
            r = esc // NUM_DENSE
            rows = (idx.start or 0) + r if isinstance(idx, slice) else np.asarray(idx)[r]
            key = rows.astype(np.int64) * NUM_DENSE + esc % NUM_DENSE
            out.reshape(-1)[esc] = self.over_value[np.searchsorted(self.over_index, key)]
        return out


def _absolute(start: int, stop: int, idx: Any) -> slice | np.ndarray:
    """Relative rows ``idx`` (int, slice or indices) of ``start:stop`` as absolute rows."""
    n = stop - start
    if isinstance(idx, slice):
        a, b, step = idx.indices(n)
        return slice(start + a, start + max(a, b), 1) if step == 1 else np.arange(start + a, start + b, step)
    idx = np.asarray(idx)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    idx = idx.astype(np.int64, copy=False)
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    return np.where(idx < 0, idx + n, idx) + start


class DenseRows(np.lib.mixins.NDArrayOperatorsMixin):
    """The dense values of a row range of a prepared folder, decoded on access: float32
    ``[n, 13]``; indexing with an int, a slice or indices reads only those rows."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, prepared: Prepared, start: int, stop: int) -> None:
        self.prepared, self.start, self.stop = prepared, start, stop

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stop - self.start, NUM_DENSE)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, tuple):
            return self[idx[0]][(slice(None), *idx[1:])]
        if isinstance(idx, (int, np.integer)):
            return self[np.asarray([idx])][0]
        return self.prepared.dense_rows(_absolute(self.start, self.stop, idx))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        conv = [np.asarray(x) if isinstance(x, DenseRows) else x for x in inputs]
        return getattr(ufunc, method)(*conv, **kwargs)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        n = len(self)
        out = np.empty((n, NUM_DENSE), dtype=np.float32)
        for a in range(0, n, _CHUNK):
            out[a : a + _CHUNK] = self[a : min(n, a + _CHUNK)]
        return out if dtype is None else out.astype(dtype)


def split_ranges(prepared: Prepared, split: str) -> dict[str, tuple[int, int]]:
    """``{"train"|"valid"|"test": (start, stop)}`` row ranges of ``split`` (module doc)."""
    n = prepared.rows
    if split == "80-10-10":
        n_test = int(round(n * 0.1))
        n_valid = int(round(n * 0.1))
        a, b = n - n_valid - n_test, n - n_test
        if a <= 0 or n_valid <= 0 or n_test <= 0:
            raise UserError(f"too few rows ({n}) to split into train/valid/test")
        return {"train": (0, a), "valid": (a, b), "test": (b, n)}
    if split == "kaggle":
        per, extra = divmod(n, KAGGLE_DAYS)
        sizes = [per + (1 if d < extra else 0) for d in range(KAGGLE_DAYS)]
        last0 = sum(sizes[:-1])
    elif split == "terabyte":
        files = prepared.meta["files"]
        if len(files) != TERABYTE_DAYS:
            raise UserError(f"--split terabyte needs a folder prepared from {TERABYTE_DAYS} day files "
                            f"(day_0 .. day_23), this one has {len(files)} input files")  # fmt: skip
        last0 = sum(f["rows"] for f in files[:-1])
    else:
        raise unknown_name("split", split, SPLITS)
    n_last = n - last0
    n_test = -(-n_last // 2)
    if last0 <= 0 or n_test <= 0 or n_last - n_test <= 0:
        raise UserError(f"too few rows ({n}) for the {split} split")
    return {"train": (0, last0), "test": (last0, last0 + n_test), "valid": (last0 + n_test, n)}


class RawColumn(np.lib.mixins.NDArrayOperatorsMixin):
    """One categorical feature of a row range, read on access: raw ids (``mapper=None``,
    as int64) or ids sized by ``mapper``; a missing value is ``-1``. Behaves as a 1-D int64
    array for slicing and fancy indexing (only those rows are read), ``np.asarray`` and
    ufuncs/operators; any other array attribute (``.max()``, ``.astype``...) is taken from
    the whole column read into memory."""

    ndim = 1
    dtype = np.dtype(np.int64)

    def __init__(self, prepared: Prepared, feature: int, start: int, stop: int,
                 mapper: Callable[[np.ndarray], np.ndarray] | None = None) -> None:  # fmt: skip
        self.prepared, self.feature, self.start, self.stop = prepared, feature, start, stop
        self.mapper = mapper

    @property
    def shape(self) -> tuple[int]:
        return (self.stop - self.start,)

    def __len__(self) -> int:
        return self.stop - self.start

    def with_mapper(self, mapper: Callable[[np.ndarray], np.ndarray] | None) -> RawColumn:
        return RawColumn(self.prepared, self.feature, self.start, self.stop, mapper)

    def rows(self, idx: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """``(raw uint32 ids, missing bool)`` of rows ``idx`` (relative to the range)."""
        rows = _absolute(self.start, self.stop, idx)
        return self.prepared.ids[self.feature][rows], _missing(self.prepared, rows, self.feature)

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self[np.asarray([idx])][0]
        rows = _absolute(self.start, self.stop, idx)
        out = self.prepared.ids[self.feature].sized(rows, self.mapper)
        out[_missing(self.prepared, rows, self.feature)] = -1
        return out

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        conv = [np.asarray(x) if isinstance(x, RawColumn) else x for x in inputs]
        return getattr(ufunc, method)(*conv, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("prepared", "feature", "start", "stop", "mapper"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        n = len(self)
        out = np.empty(n, dtype=np.int64)
        for a in range(0, n, _CHUNK):
            out[a : a + _CHUNK] = self[slice(a, min(n, a + _CHUNK))]
        return out if dtype is None else out.astype(dtype)


def _missing(prepared: Prepared, rows: slice | np.ndarray, feature: int) -> np.ndarray:
    return ((np.asarray(prepared.missing[rows]) >> np.uint32(feature)) & np.uint32(1)).astype(bool)


def split_arrays(prepared: Prepared, start: int, stop: int,
                 mappers: list[Callable[[np.ndarray], np.ndarray] | None] | None = None) -> CTRArrays:  # fmt: skip
    """Rows ``start:stop`` as :class:`CTRArrays` (memmap views; ids read on access)."""
    mappers = mappers or [None] * NUM_SPARSE
    return CTRArrays(
        dense=DenseRows(prepared, start, stop),  # type: ignore[arg-type]
        sparse=[RawColumn(prepared, j, start, stop, mappers[j]) for j in range(NUM_SPARSE)],  # type: ignore[misc]
        labels=prepared.labels[start:stop],
    )


# ---------------------------------------------------------------- table sizing


def train_counts(prepared: Prepared, start: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per feature, ``(sorted distinct raw ids, counts)`` over rows ``start:stop``, computed
    in bounded memory and kept in ``counts/`` beside the arrays (next time: read back)."""
    folder = prepared.path / "counts" / f"{prepared.meta['key']}-{start}-{stop}"
    done = folder / "done.json"
    if done.is_file():
        out = []
        for j in range(NUM_SPARSE):
            with np.load(folder / f"C{j + 1}.npz") as z:
                out.append((z["ids"], z["counts"]))
        return out
    out = [_counts(prepared, j, start, stop) for j in range(NUM_SPARSE)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for j, (u, c) in enumerate(out):
            np.savez(folder / f"C{j + 1}.npz", ids=u, counts=c)
        done.write_text(json.dumps({"rows": stop - start}))
    except OSError:
        pass  # a read-only folder: counts are recomputed next time
    return out


def _counts(prepared: Prepared, j: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted distinct raw ids, counts)`` of feature ``j`` over rows ``start:stop``
    (missing rows not counted), in passes of bounded memory."""
    col = prepared.ids[j]
    step = 4 * _CHUNK
    if col.dictionary is not None:  # count codes, then name them
        cnt = np.zeros(len(col.dictionary), dtype=np.int64)
        for a in range(start, stop, step):
            rows = slice(a, min(stop, a + step))
            cnt += np.bincount(np.asarray(col.data[rows])[~_missing(prepared, rows, j)], minlength=len(cnt))
        seen = np.flatnonzero(cnt)
        order = np.argsort(col.dictionary[seen])
        return col.dictionary[seen][order], cnt[seen][order]
    uniq = np.zeros(0, dtype=np.uint32)
    cnt = np.zeros(0, dtype=np.int64)
    for a in range(start, stop, step):
        rows = slice(a, min(stop, a + step))
        u, c = np.unique(col[rows][~_missing(prepared, rows, j)], return_counts=True)
        uniq, inv = np.unique(np.concatenate([uniq, u]), return_inverse=True)
        cnt = np.bincount(inv, weights=np.concatenate([cnt, c]), minlength=len(uniq)).astype(np.int64)
    return uniq, cnt


def _vocab_rows(vocab: Any, f: int, ids: np.ndarray) -> np.ndarray:
    return vocab.map_column(f, ids.astype(np.int64))


def modulo_mapper(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """Raw uint32 ids modulo ``size`` as int64 (computed in uint32, the cheaper width)."""
    if size >= ID_SPACE:
        return lambda ids: ids.astype(np.int64)
    m = np.uint32(size)
    return lambda ids: (np.asarray(ids, dtype=np.uint32) % m).astype(np.int64)


def sized_source(data: CTRData, prepared: Prepared, ranges: dict[str, tuple[int, int]],
                 block_rows: int, window_blocks: int) -> Callable[[Any], CTRData]:  # fmt: skip
    """The trainer's table-sizing step for a streamed prepared folder (``CTRData.sizer``):
    applies ``train_rows``, then a vocabulary (``tables=vocab``; a saved one with
    ``init_from``) or ids modulo ``hash_rows`` / the source's hashed sizes, all lazily."""

    def sizer(cfg: Any) -> CTRData:
        from embedlab.data.vocab import Vocabulary

        rng = dict(ranges)
        info = dict(data.info)
        if cfg.train_rows is not None:
            a, b = rng["train"]
            if cfg.train_rows > b - a:
                raise UserError(f"train-rows {cfg.train_rows} exceeds the {b - a} training rows of the data")
            rng["train"] = (a, a + cfg.train_rows)
            info["train_rows"] = cfg.train_rows
        vocab = None
        if cfg.table_sizing() == "vocab":
            saved = Path(cfg.init_from) / "vocab.npz" if cfg.init_from is not None else None
            if saved is not None and saved.is_file():
                vocab = Vocabulary.load(saved)
            else:
                counts = train_counts(prepared, *rng["train"])
                vocab = Vocabulary(tuple(u[c >= cfg.vocab_min_count].astype(np.int64) for u, c in counts),
                                   int(cfg.vocab_min_count))  # fmt: skip
            mappers = [partial(_vocab_rows, vocab, f) for f in range(NUM_SPARSE)]
            sizes = vocab.table_sizes
            info.update({"tables": "vocab", "vocab_min_count": vocab.min_count, "vocab_rows": int(sum(sizes))})
        else:
            caps = cfg.hash_rows if cfg.hash_rows is not None else data.hash_sizes
            caps = [caps] * NUM_SPARSE if isinstance(caps, int) else list(caps)
            sizes = [min(ID_SPACE, int(c)) for c in caps]
            mappers = [modulo_mapper(s) for s in sizes]
            info.update({"tables": "hash", **({"hash_rows": cfg.hash_rows} if cfg.hash_rows else {})})
        schema = CTRSchema(
            dense_names=data.schema.dense_names,
            sparse=tuple(replace(f, num_embeddings=int(s)) for f, s in zip(data.schema.sparse, sizes)),
        )
        splits = {k: split_arrays(prepared, a, b, mappers) for k, (a, b) in rng.items()}
        stream = BlockStream(prepared, *rng["train"], mappers, block_rows=block_rows, window_blocks=window_blocks)
        return replace(data, schema=schema, train=splits["train"], valid=splits["valid"], test=splits["test"],
                       info=info, hash_sizes=None, vocabulary=vocab, sizer=None, stream=stream)  # fmt: skip

    return sizer


# ---------------------------------------------------------------- streaming


class BlockStream:
    """Training batches of a row range in shuffled blocks (module doc), bounded memory."""

    def __init__(self, prepared: Prepared, start: int, stop: int,
                 mappers: list[Callable[[np.ndarray], np.ndarray] | None], *,
                 block_rows: int = 1 << 16, window_blocks: int = 8) -> None:  # fmt: skip
        if block_rows <= 0 or window_blocks <= 0:
            raise UserError("block rows and window blocks must be positive")
        self.prepared, self.start, self.stop = prepared, start, stop
        self.mappers = mappers
        self.block_rows, self.window_blocks = block_rows, window_blocks

    def __len__(self) -> int:
        return self.stop - self.start

    def _windows(self, seed: int, epoch: int) -> list[np.ndarray]:
        n = len(self)
        n_blocks = -(-n // self.block_rows)
        order = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        w = self.window_blocks
        return [order[i : i + w] for i in range(0, n_blocks, w)]

    def _block_rows(self, blocks: np.ndarray) -> list[tuple[int, int]]:
        return [(self.start + int(b) * self.block_rows, min(self.stop, self.start + (int(b) + 1) * self.block_rows))
                for b in blocks]  # fmt: skip

    def read_window(self, blocks: np.ndarray, seed: int, epoch: int, k: int) -> CTRArrays:
        """The rows of ``blocks`` read, sized and shuffled (window ``k`` of the epoch)."""
        spans = self._block_rows(blocks)
        rows = np.concatenate([np.arange(s, e) for s, e in spans])
        rows = rows[np.random.default_rng([seed, epoch, k, 0xB10C]).permutation(len(rows))]
        p = self.prepared
        missing = np.asarray(p.missing[rows])
        sparse = []
        for j in range(NUM_SPARSE):
            ids = p.ids[j].sized(rows, self.mappers[j])
            ids[(missing & np.uint32(1 << j)) != 0] = -1
            sparse.append(ids)
        return CTRArrays(dense=p.dense_rows(rows), sparse=sparse, labels=np.asarray(p.labels[rows]).astype(np.float32))

    def batches(self, schema: CTRSchema, batch_size: int, *, seed: int = 0, epoch: int = 0,
                start: int = 0, prefetch: bool = True) -> Iterator[Batch]:  # fmt: skip
        """Batches of one epoch from batch number ``start`` (drop_last, as the in-memory path)."""
        if batch_size <= 0:
            raise UserError(f"batch size must be positive, got {batch_size}")
        total = num_batches(len(self), batch_size)
        windows = self._windows(seed, epoch)
        sizes = [sum(e - s for s, e in self._block_rows(w)) for w in windows]
        # skip whole windows before the first wanted row
        skip_rows = start * batch_size
        k0 = 0
        while k0 < len(windows) and skip_rows >= sizes[k0]:
            skip_rows -= sizes[k0]
            k0 += 1
        windows_iter = (self.read_window(windows[k], seed, epoch, k) for k in range(k0, len(windows)))
        if prefetch:  # the next window is read in a thread while this one trains
            windows_iter = read_ahead(windows_iter, depth=1)

        b = start
        carry: CTRArrays | None = None
        for arrays in windows_iter:
            if skip_rows:
                arrays = arrays.take(slice(skip_rows, len(arrays)))
                skip_rows = 0
            if carry is not None and len(carry):
                arrays = CTRArrays.concat([carry, arrays])
            n_full = len(arrays) // batch_size
            for i in range(n_full):
                if b >= total:
                    return
                yield make_batch(arrays, slice(i * batch_size, (i + 1) * batch_size), schema)  # type: ignore[arg-type]
                b += 1
            carry = arrays.take(slice(n_full * batch_size, len(arrays)))
