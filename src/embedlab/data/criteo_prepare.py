"""``embedlab data prepare criteo``: Criteo TSV files converted once into a prepared folder.

A prepared folder holds memory-mappable ``.npy`` files, rows in input order (day files in
day order), and ``meta.json``, written last, which marks the folder as complete:

=========================  ===================  ============================================
file                       dtype, shape         content
=========================  ===================  ============================================
``labels.npy``             uint8 ``[N]``        click label
``dense.npy``              uint16 ``[N,13]``    ``max(x, 0)`` of I1..I13 (empty: 0) below
                                                65,535; 65,535 means "see the overflow"
``dense_over_index.npy``   int64 ``[K]``        flat index ``row * 13 + feature`` (sorted) of
                                                each value at or above 65,535
``dense_over_value.npy``   float32 ``[K]``      its ``log(1 + x)``
``missing.npy``            uint32 ``[N]``       bit ``j`` set: ``C{j+1}`` was empty (empty bag)
``C1.npy``..``C26.npy``    uint32 ``[N]``       raw 32-bit id of the hex field (empty: 0), or
                           uint8/uint16 ``[N]``  a code into ``C{j}.dict.npy``
``C{j}.dict.npy``          uint32 ``[V]``       code -> raw id (dictionary columns only)
``meta.json``              JSON                 rows, rows per input file, malformed lines,
                                                each column's encoding, the key
=========================  ===================  ============================================

**Lossless and compact** (format 2). The model reads ``log(1 + max(x, 0))`` of each integer
field as float32 (:func:`embedlab.data.criteo_read.dense_transform`); decoding the uint16
codes through a 65,536-entry table and patching the overflow gives exactly those float32
values, in 26 instead of 52 bytes a row. A categorical column whose distinct raw ids stay
within :data:`DICT_MAX` (65,536) is dictionary-encoded (codes in order of first appearance;
uint8 when at most 256 ids); one that exceeds it is switched to raw uint32 ids when it does
(the codes written so far are rewritten once). On Criteo Kaggle's cardinalities 18 of 26
columns stay dictionaries. Decoding ``dict[codes]`` gives exactly the raw ids.

Ids are kept raw (or as codes of raw ids), so table sizing (ids modulo a size, or a
vocabulary of the training split with a frequency threshold) is applied when the folder is
loaded (:mod:`embedlab.data.prepared`) and changing it never parses text again. The
folder's **key** is a hash of every input file's resolved path, size and mtime plus the
reader's format version; a folder whose key matches is reused as is, one whose key differs
is prepared again.

**Crash safety.** Arrays are appended under ``.partial/`` and the per-file progress (rows,
array lengths, each column's encoding and dictionary size after each input file) is saved
after every file, so a killed run resumes at the first unfinished input file. When all files
are read the arrays get their final ``.npy`` headers, move into place, and ``meta.json`` is
written atomically last.

**Several processes or nodes** (:func:`prepare_once`): only one process prepares a
folder; it holds ``.prepare.lock`` (created exclusively, so this also works on a folder
shared between nodes); the others wait for ``meta.json``. Processes with ``LOCAL_RANK``
other than 0 never prepare, they wait, so with a node-local folder each node's local
rank 0 prepares its own copy. A lock left by a dead process on this host is taken over.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.data.background import BackgroundWriter, prefetch
from embedlab.data.criteo_read import (
    NUM_DENSE,
    NUM_SPARSE,
    RawChunk,
    ReadStats,
    file_identity,
    input_files,
    iter_blocks,
    parse_block,
)
from embedlab.errors import UserError
from embedlab.io import write_json

#: Bumped whenever the prepared layout or the parsing rules change.
PREPARED_FORMAT = 2
KIND = "embedlab-criteo-prepared"
#: The arrays every folder has besides the id columns: name -> (dtype, row shape).
ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "labels": ("|u1", ()),
    "dense": ("<u2", (NUM_DENSE,)),
    "dense_over_index": ("<i8", ()),
    "dense_over_value": ("<f4", ()),
    "missing": ("<u4", ()),
}
#: Arrays with one entry per row (the overflow lists have their own lengths).
PER_ROW = ("labels", "dense", "missing")
ID_NAMES = tuple(f"C{j}" for j in range(1, NUM_SPARSE + 1))
#: Most distinct raw ids a column keeps as a dictionary (uint16 codes).
DICT_MAX = 1 << 16
_HEADER_BYTES = 128  # every .npy header padded to this length, so arrays append in place


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header of exactly :data:`_HEADER_BYTES` bytes."""
    d = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = _HEADER_BYTES - 10 - len(d) - 1
    if pad < 0:
        raise ValueError("shape too long for the fixed header")
    body = (d + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def _row_bytes(name: str) -> int:
    descr, tail = ARRAYS[name]
    return int(np.dtype(descr).itemsize * int(np.prod(tail, dtype=np.int64)))


@dataclass
class PrepareResult:
    """What :func:`prepare` did: the folder's metadata and whether it parsed anything."""

    meta: dict[str, Any]
    parsed: bool


def prepared_key(files: Sequence[Path]) -> str:
    """Hash of the inputs' identity (path, size, mtime) and the reader's format version."""
    blob = json.dumps([[file_identity(p) for p in files], PREPARED_FORMAT, KIND])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def read_meta(out: str | Path) -> dict[str, Any] | None:
    """``out/meta.json`` of a complete prepared folder, else ``None``."""
    p = Path(out) / "meta.json"
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("kind") == KIND else None


def prepare(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    strict: bool = False,
    workers: int | None = None,
    show_progress: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PrepareResult:
    """Convert Criteo TSV input (a file, a folder of day files, or a list) into ``out``.

    Reuses ``out`` when its key matches the inputs. ``workers``: blocks parsed at once
    (default: the usable cores, at most 4). ``progress`` is called with the rows read so far.
    With ``strict`` the first malformed line stops the run (nothing is left half-written
    that looks complete) and a reused folder with malformed lines is refused.
    """
    files = _files(inputs)
    key = prepared_key(files)
    out = Path(out)
    meta = read_meta(out)
    if meta is not None and meta.get("key") == key:
        _check_strict(meta, strict)
        return PrepareResult(meta, parsed=False)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create prepared folder {out}: {e.strerror or e}") from None
    work = out / ".partial"
    state = _load_state(work, key)
    if state is None:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        state = {"key": key, "done": [], "lengths": {n: 0 for n in (*ARRAYS, *ID_NAMES)},
                 "columns": [{"mode": "dict", "size": 0} for _ in ID_NAMES]}  # fmt: skip
        for name, (descr, tail) in ARRAYS.items():
            (work / f"{name}.npy").write_bytes(_npy_header(descr, (0, *tail)))
        _save_state(work, state)
    n_workers = workers or min(4, max(1, len(os.sched_getaffinity(0))))
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="row", unit_scale=True, desc="prepare criteo", dynamic_ncols=True,
                   mininterval=1.0, initial=sum(d["rows"] for d in state["done"]))  # fmt: skip
    try:
        for k, p in enumerate(files):
            if k < len(state["done"]):
                continue
            stats, columns = _prepare_file(p, work, state, strict, n_workers, bar, progress)
            state["done"].append({"path": str(p), "identity": file_identity(p), "rows": stats.rows,
                                  "skipped": stats.skipped, "examples": stats.examples})  # fmt: skip
            state["lengths"] = {n: (work / f"{n}.npy").stat().st_size for n in ARRAYS}
            state["lengths"].update({c.name: c.nbytes() for c in columns})
            state["columns"] = [c.checkpoint() for c in columns]
            _save_state(work, state)
            for c in columns:
                c.drop_stale()
    except UserError:
        if strict:  # a strict stop leaves nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    meta = _publish(out, work, files, key, state)
    _check_strict(meta, strict)
    return PrepareResult(meta, parsed=True)


def _files(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(inputs, (str, Path)):
        return input_files(inputs)
    files = [f for i in inputs for f in input_files(i)]
    if not files:
        raise UserError("no input files")
    return files


def _check_strict(meta: dict[str, Any], strict: bool) -> None:
    if strict and meta["skipped"]:
        first = next(f for f in meta["files"] if f["skipped"])
        raise UserError(f"{Path(first['path']).parent}/{first['examples'][0]}")


def _prepare_file(
    p: Path, work: Path, state: dict[str, Any], strict: bool, n_workers: int,
    bar: Any, progress: Callable[[int], None] | None,
) -> tuple[ReadStats, list[_IdColumn]]:  # fmt: skip
    """Append the rows of one input file to the arrays in ``work`` (from the last
    completed file's lengths, so a crash in the middle of a file redoes only that file)."""
    handles = {}
    for name in ARRAYS:
        f = open(work / f"{name}.npy", "r+b")
        f.truncate(state["lengths"][name] or _HEADER_BYTES)
        f.seek(0, os.SEEK_END)
        handles[name] = f
    writer = BackgroundWriter()
    columns = [_IdColumn(work, j, state["columns"][j], state["lengths"][name], writer)
               for j, name in enumerate(ID_NAMES)]  # fmt: skip
    stats = ReadStats()
    done_rows = sum(d["rows"] for d in state["done"])
    rows = done_rows
    t0, nbytes = time.perf_counter(), 0
    gc_was_on = gc.isenabled()
    gc.disable()  # the loop makes no reference cycles; collections only cost time
    try:
        with ThreadPoolExecutor(n_workers) as pool:
            pending: deque = deque()

            def drain(keep: int) -> None:
                nonlocal nbytes, rows
                while len(pending) > keep:
                    fut, size, part = pending.popleft()
                    chunk, ids = fut.result()
                    stats.add(part)
                    _append(handles, columns, chunk, ids, rows, writer)
                    rows += len(chunk)
                    nbytes += size
                    if bar is not None:
                        bar.update(len(chunk))
                        bar.set_postfix_str(f"{nbytes / 1e6 / max(time.perf_counter() - t0, 1e-9):.0f} MB/s", refresh=False)
                    if progress is not None:
                        progress(done_rows + stats.rows)

            # reading (and counting lines) runs ahead in a thread, writes in another: this
            # thread only hands out blocks and encodes, so the parsers never wait on the disk
            for first_line, block in prefetch(iter_blocks(p, direct=True), depth=2):
                part = ReadStats()
                known = {c.j: (c.keys, c.key_codes) for c in columns if c.mode == "dict"}
                fut = pool.submit(_parse_encode, block, str(p), first_line, strict, part, known)
                pending.append((fut, len(block), part))
                drain(n_workers)
            drain(0)
    finally:
        if gc_was_on:
            gc.enable()
        try:
            writer.close()
        finally:
            for f in [*handles.values(), *(c.handle for c in columns)]:
                f.flush()
                os.fsync(f.fileno())
                f.close()
    return stats, columns


def _parse_encode(block: Any, where: str, first_line: int, strict: bool, part: ReadStats,
                  known: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[RawChunk, list[Any]]:  # fmt: skip
    """A block parsed (worker thread), the columns in ``known`` (dictionary columns: their
    sorted ids and codes when the block was submitted) encoded per block as ``(distinct
    raw ids, int32 index of each row's id among them, their codes in ``known`` or
    :data:`_NEW`)``; the main thread then only has to name the ids new since then."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunk = parse_block(block, where, first_line, strict=strict, stats=part)
    ids: list[Any] = []
    for j, v in enumerate(chunk.ids):
        if j in known and len(v):
            d = pc.dictionary_encode(pa.array(v, type=pa.uint32()))
            distinct = d.dictionary.to_numpy(zero_copy_only=False)
            ids.append((distinct, d.indices.to_numpy(zero_copy_only=False), _lookup(*known[j], distinct)))
        else:
            ids.append(v)
    return chunk, ids


#: Code of an id not (yet) in a column's dictionary.
_NEW = np.uint32(0xFFFFFFFF)


def _lookup(keys: np.ndarray, key_codes: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Codes of ``distinct`` among sorted ``keys`` (:data:`_NEW` where absent)."""
    out = np.full(len(distinct), _NEW, dtype=np.uint32)
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, distinct), len(keys) - 1)
        found = keys[pos] == distinct
        out[found] = key_codes[pos[found]]
    return out


def _write(f: Any, a: np.ndarray, dtype: str, writer: BackgroundWriter | None = None) -> None:
    """``a`` as ``dtype`` appended to ``f`` (by ``writer`` when given; ``a`` is not changed
    afterwards). Little-endian machines write the arrays' memory as is (no copy)."""
    data = memoryview(np.ascontiguousarray(a, dtype=dtype)).cast("B")
    if writer is None:
        f.write(data)
    else:
        writer.write(f, data)


def _append(handles: dict[str, Any], columns: list[_IdColumn], chunk: RawChunk, ids: list[Any], rows: int,
            writer: BackgroundWriter | None = None) -> None:  # fmt: skip
    """Write one parsed block; ``rows``: rows already written (for the overflow's flat index)."""
    if not len(chunk):
        return
    _write(handles["labels"], chunk.labels, "|u1", writer)
    _write(handles["dense"], chunk.dense_codes, "<u2", writer)
    if len(chunk.over_index):
        _write(handles["dense_over_index"], chunk.over_index + np.int64(rows) * NUM_DENSE, "<i8", writer)
        _write(handles["dense_over_value"], chunk.over_value, "<f4", writer)
    _write(handles["missing"], chunk.missing, "<u4", writer)
    for col, part in zip(columns, ids):
        col.write(part)


class _IdColumn:
    """The writer of one categorical column under ``.partial/``: a dictionary of raw ids
    (uint16 codes, file ``C{j}.codes.npy``) until it holds more than :data:`DICT_MAX` ids,
    then raw uint32 ids (``C{j}.raw.npy``; the codes so far rewritten once)."""

    def __init__(self, work: Path, j: int, saved: dict[str, Any], nbytes: int,
                 writer: BackgroundWriter | None = None) -> None:  # fmt: skip
        self.work, self.j, self.name = work, j, ID_NAMES[j]
        self.writer = writer
        self.mode: str = saved["mode"]
        self.values = np.zeros(0, dtype=np.uint32)
        if self.mode == "dict" and saved["size"]:
            self.values = np.load(self._dict_path())[: saved["size"]].astype(np.uint32)
        self._index()
        path = self._path(self.mode)
        if not path.is_file():
            path.write_bytes(_npy_header(self._descr(self.mode), (0,)))
        self.handle = open(path, "r+b")
        self.handle.truncate(nbytes or _HEADER_BYTES)
        self.handle.seek(0, os.SEEK_END)
        other = self._path("raw" if self.mode == "dict" else "dict")
        other.unlink(missing_ok=True)  # left by a switch after the last saved file

    def _path(self, mode: str) -> Path:
        return self.work / f"{self.name}.{'codes' if mode == 'dict' else 'raw'}.npy"

    def _dict_path(self) -> Path:
        return self.work / f"{self.name}.dict.npy"

    @staticmethod
    def _descr(mode: str) -> str:
        return "<u2" if mode == "dict" else "<u4"

    def _index(self) -> None:
        """Sorted ids and their codes (rebuilt in full only on opening; appends insert)."""
        order = np.argsort(self.values, kind="stable")
        self.keys, self.key_codes = self.values[order], order.astype(np.uint32)

    def write(self, part: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        if self.mode == "raw":
            _write(self.handle, part if isinstance(part, np.ndarray) else part[0][part[1]], "<u4", self.writer)
            return
        if isinstance(part, np.ndarray):  # a block read by the exact parser, or empty
            if not len(part):
                return
            distinct, idx = np.unique(part, return_inverse=True)
            codes = np.full(len(distinct), _NEW, dtype=np.uint32)
        else:
            distinct, idx, codes = part
        self._name_new(distinct, codes)
        if len(self.values) > DICT_MAX:
            self._switch_to_raw()
            _write(self.handle, distinct[idx], "<u4", self.writer)
            return
        _write(self.handle, codes[idx], "<u2", self.writer)

    def _name_new(self, distinct: np.ndarray, codes: np.ndarray) -> None:
        """Fill the :data:`_NEW` entries of ``codes`` (in place): ids added since the
        worker's lookup get their codes, the others are appended to the dictionary."""
        todo = np.flatnonzero(codes == _NEW)
        if not len(todo):
            return
        codes[todo] = _lookup(self.keys, self.key_codes, distinct[todo])
        new = todo[codes[todo] == _NEW]
        if not len(new):
            return
        fresh = np.arange(len(self.values), len(self.values) + len(new), dtype=np.uint32)
        codes[new] = fresh
        self.values = np.concatenate([self.values, distinct[new]])
        order = np.argsort(distinct[new])
        at = np.searchsorted(self.keys, distinct[new][order])
        self.keys = np.insert(self.keys, at, distinct[new][order])
        self.key_codes = np.insert(self.key_codes, at, fresh[order])

    def _switch_to_raw(self) -> None:
        if self.writer is not None:
            self.writer.wait()  # every code queued so far is in the file
        self.handle.flush()
        n = (self.handle.tell() - _HEADER_BYTES) // 2
        self.handle.close()
        raw = self._path("raw")
        with open(self._path("dict"), "rb") as src, open(raw, "wb") as dst:
            dst.write(_npy_header("<u4", (0,)))
            src.seek(_HEADER_BYTES)
            for a in range(0, n, 1 << 22):
                codes = np.frombuffer(src.read(2 * min(1 << 22, n - a)), dtype="<u2")
                _write(dst, self.values[codes], "<u4")
        self.mode, self.values = "raw", np.zeros(0, dtype=np.uint32)
        self._index()
        self.handle = open(raw, "r+b")
        self.handle.seek(0, os.SEEK_END)

    def nbytes(self) -> int:
        """Bytes of the column's file (after :func:`_prepare_file` closed it)."""
        return self._path(self.mode).stat().st_size

    def checkpoint(self) -> dict[str, Any]:
        """The column's state after a completed input file (its dictionary saved first)."""
        if self.mode == "dict":
            tmp = self.work / f"{self.name}.dict.tmp.npy"
            np.save(tmp, self.values)
            os.replace(tmp, self._dict_path())
        return {"mode": self.mode, "size": len(self.values)}

    def drop_stale(self) -> None:
        """After the state is saved: the other mode's file is no longer needed."""
        self._path("raw" if self.mode == "dict" else "dict").unlink(missing_ok=True)
        if self.mode == "raw":
            self._dict_path().unlink(missing_ok=True)


def _publish(out: Path, work: Path, files: list[Path], key: str, state: dict[str, Any]) -> dict[str, Any]:
    """Final headers, arrays moved into ``out``, ``meta.json`` written last."""
    rows = sum(d["rows"] for d in state["done"])
    final: list[tuple[Path, str]] = []
    for name, (descr, tail) in ARRAYS.items():
        path = work / f"{name}.npy"
        size = path.stat().st_size
        count = rows if name in PER_ROW else (size - _HEADER_BYTES) // _row_bytes(name)
        if size != _HEADER_BYTES + count * _row_bytes(name):
            raise RuntimeError(f"{path}: {size} bytes, expected {_HEADER_BYTES + count * _row_bytes(name)}")
        _finish_header(path, descr, (count, *tail))
        final.append((path, f"{name}.npy"))
    columns: dict[str, dict[str, Any]] = {}
    for name, col in zip(ID_NAMES, state["columns"]):
        mode = col["mode"]
        path = work / f"{name}.{'codes' if mode == 'dict' else 'raw'}.npy"
        width = 4 if mode == "raw" else 2
        if path.stat().st_size != _HEADER_BYTES + rows * width:
            raise RuntimeError(f"{path}: {path.stat().st_size} bytes, expected {_HEADER_BYTES + rows * width}")
        if mode == "raw":
            _finish_header(path, "<u4", (rows,))
            columns[name] = {"encoding": "raw", "dtype": "uint32"}
        else:
            size = int(col["size"])
            if size <= 256:
                path = _narrow_to_u1(path, rows)
            else:
                _finish_header(path, "<u2", (rows,))
            columns[name] = {"encoding": "dict", "dtype": "uint8" if size <= 256 else "uint16", "size": size}
            np.save(work / f"{name}.dict.npy", np.load(work / f"{name}.dict.npy")[:size])
            final.append((work / f"{name}.dict.npy", f"{name}.dict.npy"))
        final.append((path, f"{name}.npy"))
    (out / "meta.json").unlink(missing_ok=True)
    for name in ID_NAMES:
        (out / f"{name}.dict.npy").unlink(missing_ok=True)  # of an earlier preparation
    for path, dest in final:
        os.replace(path, out / dest)
    meta = {
        "kind": KIND, "format": PREPARED_FORMAT, "key": key, "rows": rows,
        "skipped": sum(d["skipped"] for d in state["done"]),
        "files": [{"path": d["path"], "size": d["identity"][1], "mtime_ns": d["identity"][2],
                   "rows": d["rows"], "skipped": d["skipped"], "examples": d["examples"]}
                  for d in state["done"]],
        "columns": columns,
        "dense_overflow": (out / "dense_over_index.npy").stat().st_size // 8 - _HEADER_BYTES // 8,
        "prepared_by": _whoami(),
    }  # fmt: skip
    write_json(out / "meta.json", meta)
    shutil.rmtree(work, ignore_errors=True)
    return meta


def _finish_header(path: Path, descr: str, shape: tuple[int, ...]) -> None:
    with open(path, "r+b") as f:
        f.write(_npy_header(descr, shape))
        f.flush()
        os.fsync(f.fileno())


def _narrow_to_u1(path: Path, rows: int) -> Path:
    """uint16 codes (all below 256) rewritten as uint8; the new file's path."""
    dst_path = path.with_suffix(".u1.npy")
    with open(path, "rb") as src, open(dst_path, "wb") as dst:
        dst.write(_npy_header("|u1", (rows,)))
        src.seek(_HEADER_BYTES)
        for a in range(0, rows, 1 << 22):
            _write(dst, np.frombuffer(src.read(2 * min(1 << 22, rows - a)), dtype="<u2"), "|u1")
        dst.flush()
        os.fsync(dst.fileno())
    return dst_path


def _load_state(work: Path, key: str) -> dict[str, Any] | None:
    try:
        state = json.loads((work / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if state.get("key") != key or not all((work / f"{n}.npy").is_file() for n in ARRAYS):
        return None
    for name, col in zip(ID_NAMES, state.get("columns", [])):
        if col["mode"] == "dict" and col["size"] and not (work / f"{name}.dict.npy").is_file():
            return None
    return state


def _save_state(work: Path, state: dict[str, Any]) -> None:
    write_json(work / "state.json", state)


# ---------------------------------------------------------------- several processes


def _whoami() -> dict[str, Any]:
    return {"host": os.environ.get("EMBEDLAB_NODE") or socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _lock(out: Path, timeout_s: float):  # noqa: ANN202
    """Hold ``out/.prepare.lock`` (exclusive create), waiting while another process does."""
    lock = out / ".prepare.lock"
    me = _whoami()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder is not None and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                lock.unlink(missing_ok=True)  # left by a dead process on this host
                continue
            if time.monotonic() > deadline:
                raise UserError(f"{out} is being prepared by {holder} for too long; remove {lock} if that process is gone") from None
            time.sleep(0.2)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None


def prepare_once(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    strict: bool = False,
    timeout_s: float = 7 * 24 * 3600.0,
    **kw: Any,
) -> PrepareResult:
    """:func:`prepare` from one process per folder; others (and ``LOCAL_RANK`` != 0) wait.

    A process that did not prepare returns ``parsed=False`` once ``meta.json`` matches.
    """
    files = _files(inputs)
    key = prepared_key(files)
    out = Path(out)
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    deadline = time.monotonic() + timeout_s
    if local_rank != 0:
        while True:
            meta = read_meta(out)
            if meta is not None and meta.get("key") == key:
                _check_strict(meta, strict)
                return PrepareResult(meta, parsed=False)
            if time.monotonic() > deadline:
                raise UserError(f"waited too long for local rank 0 to prepare {out}")
            time.sleep(0.2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create prepared folder {out}: {e.strerror or e}") from None
    while True:
        meta = read_meta(out)
        if meta is not None and meta.get("key") == key:
            _check_strict(meta, strict)
            return PrepareResult(meta, parsed=False)
        with _lock(out, max(0.0, deadline - time.monotonic())) as held:
            if held:
                return prepare(files, out, strict=strict, **kw)
