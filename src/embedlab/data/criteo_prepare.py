"""``embedlab data prepare criteo``: Criteo TSV files converted once into a prepared folder.

A prepared folder holds memory-mappable ``.npy`` files, rows in input order (day files in
day order), and ``meta.json``, written last, which marks the folder as complete:

==================  =================  ==================================================
file                dtype, shape       content
==================  =================  ==================================================
``labels.npy``      uint8 ``[N]``      click label
``dense.npy``       float32 ``[N,13]`` ``log(1 + max(x, 0))`` of I1..I13 (empty: 0)
``C1.npy``..        uint32 ``[N]``     raw 32-bit id of the hex field (empty: 0)
``missing.npy``     uint32 ``[N]``     bit ``j`` set: ``C{j+1}`` was empty (an empty bag)
``meta.json``       JSON               rows, rows per input file, malformed lines, the key
==================  =================  ==================================================

Ids are kept raw, so table sizing (ids modulo a size, or a vocabulary of the training
split with a frequency threshold) is applied when the folder is loaded
(:mod:`embedlab.data.prepared`) and changing it never parses text again. The folder's
**key** is a hash of every input file's resolved path, size and mtime plus the reader's
format version; a folder whose key matches is reused as is, one whose key differs is
prepared again.

**Crash safety.** Arrays are appended under ``.partial/`` and the per-file progress
(rows and array lengths after each input file) is saved after every file, so a killed run
resumes at the first unfinished input file. When all files are read the arrays get their
final ``.npy`` headers, move into place, and ``meta.json`` is written atomically last.

**Several processes or nodes** (:func:`prepare_once`): only one process prepares a
folder; it holds ``.prepare.lock`` (created exclusively, so this also works on a folder
shared between nodes); the others wait for ``meta.json``. Processes with ``LOCAL_RANK``
other than 0 never prepare, they wait, so with a node-local folder each node's local
rank 0 prepares its own copy. A lock left by a dead process on this host is taken over.
"""

from __future__ import annotations

import contextlib
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
PREPARED_FORMAT = 1
KIND = "embedlab-criteo-prepared"
ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "labels": ("|u1", ()),
    "dense": ("<f4", (NUM_DENSE,)),
    "missing": ("<u4", ()),
    **{f"C{j}": ("<u4", ()) for j in range(1, NUM_SPARSE + 1)},
}
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
        state = {"key": key, "done": [], "lengths": {n: 0 for n in ARRAYS}}
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
            stats = _prepare_file(p, work, state, strict, n_workers, bar, progress)
            state["done"].append({"path": str(p), "identity": file_identity(p), "rows": stats.rows,
                                  "skipped": stats.skipped, "examples": stats.examples})  # fmt: skip
            state["lengths"] = {n: (work / f"{n}.npy").stat().st_size for n in ARRAYS}
            _save_state(work, state)
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
) -> ReadStats:  # fmt: skip
    """Append the rows of one input file to the arrays in ``work`` (from the last
    completed file's lengths, so a crash in the middle of a file redoes only that file)."""
    handles = {}
    for name in ARRAYS:
        f = open(work / f"{name}.npy", "r+b")
        f.truncate(state["lengths"][name] or _HEADER_BYTES)
        f.seek(0, os.SEEK_END)
        handles[name] = f
    stats = ReadStats()
    done_rows = sum(d["rows"] for d in state["done"])
    t0, nbytes = time.perf_counter(), 0
    try:
        with ThreadPoolExecutor(n_workers) as pool:
            pending: deque = deque()

            def drain(keep: int) -> None:
                nonlocal nbytes
                while len(pending) > keep:
                    fut, size, part = pending.popleft()
                    chunk = fut.result()
                    stats.add(part)
                    _append(handles, chunk)
                    nbytes += size
                    if bar is not None:
                        bar.update(len(chunk))
                        bar.set_postfix_str(f"{nbytes / 1e6 / max(time.perf_counter() - t0, 1e-9):.0f} MB/s", refresh=False)
                    if progress is not None:
                        progress(done_rows + stats.rows)

            for first_line, block in iter_blocks(p):
                part = ReadStats()
                fut = pool.submit(parse_block, block, str(p), first_line, strict=strict, stats=part)
                pending.append((fut, len(block), part))
                drain(n_workers)
            drain(0)
    finally:
        for f in handles.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
    return stats


def _append(handles: dict[str, Any], chunk: RawChunk) -> None:
    if not len(chunk):
        return
    # little-endian machines write the arrays' memory as is (no copy)
    handles["labels"].write(memoryview(np.ascontiguousarray(chunk.labels, dtype="|u1")))
    handles["dense"].write(memoryview(np.ascontiguousarray(chunk.dense, dtype="<f4")))
    handles["missing"].write(memoryview(np.ascontiguousarray(chunk.missing, dtype="<u4")))
    for j, col in enumerate(chunk.ids, start=1):
        handles[f"C{j}"].write(memoryview(np.ascontiguousarray(col, dtype="<u4")))


def _publish(out: Path, work: Path, files: list[Path], key: str, state: dict[str, Any]) -> dict[str, Any]:
    """Final headers, arrays moved into ``out``, ``meta.json`` written last."""
    rows = sum(d["rows"] for d in state["done"])
    for name, (descr, tail) in ARRAYS.items():
        path = work / f"{name}.npy"
        expect = _HEADER_BYTES + rows * _row_bytes(name)
        if path.stat().st_size != expect:
            raise RuntimeError(f"{path}: {path.stat().st_size} bytes, expected {expect}")
        with open(path, "r+b") as f:
            f.write(_npy_header(descr, (rows, *tail)))
            f.flush()
            os.fsync(f.fileno())
    (out / "meta.json").unlink(missing_ok=True)
    for name in ARRAYS:
        os.replace(work / f"{name}.npy", out / f"{name}.npy")
    meta = {
        "kind": KIND, "format": PREPARED_FORMAT, "key": key, "rows": rows,
        "skipped": sum(d["skipped"] for d in state["done"]),
        "files": [{"path": d["path"], "size": d["identity"][1], "mtime_ns": d["identity"][2],
                   "rows": d["rows"], "skipped": d["skipped"], "examples": d["examples"]}
                  for d in state["done"]],
        "prepared_by": _whoami(),
    }  # fmt: skip
    write_json(out / "meta.json", meta)
    shutil.rmtree(work, ignore_errors=True)
    return meta


def _load_state(work: Path, key: str) -> dict[str, Any] | None:
    try:
        state = json.loads((work / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if state.get("key") != key or not all((work / f"{n}.npy").is_file() for n in ARRAYS):
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
