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
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from queue import Queue
from typing import Any

import numpy as np

from embedlab.data.criteo_prepare import ARRAYS, read_meta
from embedlab.data.criteo_read import NUM_SPARSE
from embedlab.data.registry import CTRData
from embedlab.data.schema import Batch, CTRArrays, CTRSchema, make_batch, num_batches
from embedlab.errors import UserError, unknown_name

SPLITS = ("80-10-10", "kaggle", "terabyte")
KAGGLE_DAYS = 7
TERABYTE_DAYS = 24
ID_SPACE = 2**32
_CHUNK = 1 << 21  # rows per pass when counting or materializing a column


@dataclass(frozen=True)
class Prepared:
    """The memory-mapped arrays of a prepared folder."""

    path: Path
    meta: dict[str, Any]
    labels: np.ndarray
    dense: np.ndarray
    missing: np.ndarray
    ids: tuple[np.ndarray, ...]

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])

    @staticmethod
    def open(path: str | Path) -> Prepared:
        p = Path(path)
        meta = read_meta(p)
        if meta is None:
            raise UserError(
                f"{p} is not a prepared Criteo folder (no complete meta.json); make one with "
                "`embedlab data prepare criteo --input FILE_OR_DIR --out DIR`"
            )
        mm = {n: np.load(p / f"{n}.npy", mmap_mode="r") for n in ARRAYS}
        return Prepared(p, meta, mm["labels"], mm["dense"], mm["missing"],
                        tuple(mm[f"C{j}"] for j in range(1, NUM_SPARSE + 1)))  # fmt: skip


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
        ids = self.prepared.ids[self.feature][self.start : self.stop][idx]
        miss = (self.prepared.missing[self.start : self.stop][idx] >> np.uint32(self.feature)) & np.uint32(1)
        return np.asarray(ids), np.asarray(miss, dtype=bool)

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self[np.asarray([idx])][0]
        ids, miss = self.rows(idx)
        return finish_ids(ids, miss, self.mapper)

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


def finish_ids(ids: np.ndarray, missing: np.ndarray, mapper: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    """Raw uint32 ids as int64 rows (sized by ``mapper``, which returns a new int64 array),
    ``-1`` where missing."""
    out = ids.astype(np.int64) if mapper is None else mapper(ids)
    out[missing] = -1
    return out


def split_arrays(prepared: Prepared, start: int, stop: int,
                 mappers: list[Callable[[np.ndarray], np.ndarray] | None] | None = None) -> CTRArrays:  # fmt: skip
    """Rows ``start:stop`` as :class:`CTRArrays` (memmap views; ids read on access)."""
    mappers = mappers or [None] * NUM_SPARSE
    return CTRArrays(
        dense=prepared.dense[start:stop],
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
    out = []
    for j in range(NUM_SPARSE):
        col = RawColumn(prepared, j, start, stop)
        uniq = np.zeros(0, dtype=np.uint32)
        cnt = np.zeros(0, dtype=np.int64)
        for a in range(start, stop, 4 * _CHUNK):
            ids, miss = col.rows(slice(a - start, min(stop, a + 4 * _CHUNK) - start))
            u, c = np.unique(ids[~miss], return_counts=True)
            allu = np.concatenate([uniq, u])
            allc = np.concatenate([cnt, c])
            uniq, inv = np.unique(allu, return_inverse=True)
            cnt = np.bincount(inv, weights=allc, minlength=len(uniq)).astype(np.int64)
        out.append((uniq, cnt))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for j, (u, c) in enumerate(out):
            np.savez(folder / f"C{j + 1}.npz", ids=u, counts=c)
        done.write_text(json.dumps({"rows": stop - start}))
    except OSError:
        pass  # a read-only folder: counts are recomputed next time
    return out


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
        lo, hi = int(rows.min()), int(rows.max()) + 1
        rel = rows - lo  # gather from a view of the window's extent (pages near each other)
        p = self.prepared
        missing = np.asarray(p.missing[lo:hi])[rel]
        sparse = []
        for j in range(NUM_SPARSE):
            miss = (missing & np.uint32(1 << j)) != 0
            sparse.append(finish_ids(np.asarray(p.ids[j][lo:hi])[rel], miss, self.mappers[j]))
        return CTRArrays(dense=np.asarray(p.dense[lo:hi])[rel].astype(np.float32, copy=False), sparse=sparse,
                         labels=np.asarray(p.labels[lo:hi])[rel].astype(np.float32))  # fmt: skip

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
        queue: Queue = Queue(maxsize=1)
        stop_flag = threading.Event()

        def producer() -> None:
            try:
                for k in range(k0, len(windows)):
                    if stop_flag.is_set():
                        return
                    queue.put(self.read_window(windows[k], seed, epoch, k))
            except BaseException as e:  # re-raised in the consumer
                queue.put(e)
                return
            queue.put(None)

        def windows_iter() -> Iterator[CTRArrays]:
            if not prefetch:
                for k in range(k0, len(windows)):
                    yield self.read_window(windows[k], seed, epoch, k)
                return
            t = threading.Thread(target=producer, daemon=True)
            t.start()
            try:
                while (item := queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                stop_flag.set()
                while not queue.empty():
                    queue.get_nowait()

        b = start
        carry: CTRArrays | None = None
        for arrays in windows_iter():
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
