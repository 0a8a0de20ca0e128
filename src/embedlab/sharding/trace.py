"""Recorded embedding-lookup traces: the open DLRM dataset layout, loaded, checked, replayed.

A trace file (``facebookresearch/dlrm_datasets``, ``.pt`` or ``.pt.gz``) holds a tuple or
list ``(indices, offsets, lengths)``: ``lengths`` is ``[T, B]`` (``T`` tables, ``B``
samples), ``offsets`` has ``T·B + 1`` entries, cumulative over the table-major bags
(bag ``t·B + b`` is ``indices[offsets[t·B + b] : offsets[t·B + b + 1]]``), and
``indices`` is flat. A table with ``index_distribution = {"kind": "trace", "path": p,
"table": t}`` replays the recorded bags of table ``t`` (default 0) of the file at ``p``.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.errors import UserError
from embedlab.sharding.types import Table
from embedlab.sharding.workload import REUSE_BATCH, Bags, reuse_histogram

_CACHE_MAX = 8
#: resolved path -> ((mtime_ns, size), TraceFile)
_CACHE: dict[str, tuple[tuple[int, int], TraceFile]] = {}


@dataclass(frozen=True)
class TraceFile:
    """A checked trace: flat ``indices``, ``offsets`` (``T·B + 1``), ``lengths`` ``[T, B]``."""

    indices: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    path: str

    @property
    def num_tables(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.lengths.shape[1])

    def table_indices(self, t: int, samples: int | None = None) -> np.ndarray:
        """The indices of table ``t``'s bags (of its first ``samples`` samples if given)."""
        b = self.num_samples
        n = b if samples is None else min(max(samples, 0), b)
        return self.indices[self.offsets[t * b] : self.offsets[t * b + n]]


def _to_numpy(x: Any, name: str, where: str) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
    elif isinstance(x, np.ndarray):
        arr = x
    else:
        raise UserError(f"{where}: {name} must be a tensor, got {type(x).__name__}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: {name} must hold integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _read_payload(p: Path) -> Any:
    import torch

    try:
        if p.name.endswith(".gz"):
            with gzip.open(p, "rb") as f:
                data = f.read()
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        return torch.load(p, weights_only=True, map_location="cpu")
    except (OSError, EOFError, RuntimeError, ValueError, gzip.BadGzipFile) as e:
        raise UserError(f"trace {p.name} ({p}): cannot be read as a torch file: {e}") from e
    except Exception as e:  # pickle/unpickling errors of a corrupt or unsafe file
        raise UserError(f"trace {p.name} ({p}): cannot be read as a torch file: {e}") from e


def _check(payload: Any, p: Path) -> TraceFile:
    where = f"trace {p.name} ({p})"
    if not isinstance(payload, (tuple, list)) or len(payload) != 3:
        got = f"{type(payload).__name__}" + (
            f" of {len(payload)} items" if isinstance(payload, (tuple, list)) else ""
        )
        raise UserError(f"{where}: expected a tuple (indices, offsets, lengths), got {got}")
    indices = _to_numpy(payload[0], "indices", where)
    offsets = _to_numpy(payload[1], "offsets", where)
    lengths = _to_numpy(payload[2], "lengths", where)
    if indices.ndim != 1:
        raise UserError(f"{where}: indices must be 1-D, got shape {tuple(indices.shape)}")
    if offsets.ndim != 1:
        raise UserError(f"{where}: offsets must be 1-D, got shape {tuple(offsets.shape)}")
    if lengths.ndim != 2:
        raise UserError(f"{where}: lengths must be [T, B], got shape {tuple(lengths.shape)}")
    t, b = lengths.shape
    if t == 0 or b == 0:
        raise UserError(f"{where}: lengths has shape {(t, b)}; needs at least one table and sample")
    if len(offsets) != t * b + 1:
        raise UserError(
            f"{where}: offsets has {len(offsets)} entries, expected T*B+1 = {t * b + 1} "
            f"for lengths [{t}, {b}]"
        )
    if (lengths < 0).any():
        raise UserError(f"{where}: lengths has negative values")
    if offsets[0] != 0:
        raise UserError(f"{where}: offsets must start at 0, got {int(offsets[0])}")
    if offsets[-1] != len(indices):
        raise UserError(
            f"{where}: offsets end at {int(offsets[-1])} but there are {len(indices)} indices"
        )
    diff = np.diff(offsets)
    if not np.array_equal(diff, lengths.reshape(-1)):
        bad = int(np.flatnonzero(diff != lengths.reshape(-1))[0])
        raise UserError(
            f"{where}: offsets disagree with lengths at bag {bad} (table {bad // b}, sample "
            f"{bad % b}): offsets give {int(diff[bad])}, lengths {int(lengths.reshape(-1)[bad])}"
        )
    if len(indices) and int(indices.min()) < 0:
        raise UserError(f"{where}: indices has negative values (min {int(indices.min())})")
    for a in (indices, offsets, lengths):
        a.setflags(write=False)
    return TraceFile(indices=indices, offsets=offsets, lengths=lengths, path=str(p))


def load_trace(path: str | Path) -> TraceFile:
    """The checked trace at ``path`` (``.pt`` or ``.pt.gz``), cached by resolved path."""
    p = Path(path)
    try:
        resolved = p.resolve()
        st = resolved.stat()
    except OSError as e:
        raise UserError(f"trace {p.name} ({p}): cannot be read: {e.strerror or e}") from e
    if not resolved.is_file():
        raise UserError(f"trace {p.name} ({p}): not a file")
    key = str(resolved)
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    trace = _check(_read_payload(p), p)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (stamp, trace)
    return trace


def tables_from_trace(
    path: str | Path, *, dim: int = 16, bytes_per_element: int = 2, prefix: str = "t"
) -> list[Table]:
    """One :class:`Table` per table of the trace at ``path``.

    ``rows`` is ``max(max index + 1, 100)``, ``pooling_factor`` the mean bag length,
    ``reuse_bins`` the histogram of the indices of the first 65,536 samples (or all).
    """
    trace = load_trace(path)
    out = []
    for t in range(trace.num_tables):
        idx = trace.table_indices(t)
        rows = max(int(idx.max()) + 1 if len(idx) else 0, 100)
        out.append(
            Table(
                name=f"{prefix}{t}",
                rows=rows,
                dim=dim,
                pooling_factor=float(trace.lengths[t].mean()),
                bytes_per_element=bytes_per_element,
                index_distribution={"kind": "trace", "path": str(path), "table": t},
                reuse_bins=reuse_histogram(trace.table_indices(t, REUSE_BATCH)),
            )
        )
    return out


def draw_trace_bags(table: Table, batch_size: int, rng: np.random.Generator) -> Bags:
    """``batch_size`` recorded bags of the table's trace, in order.

    A random contiguous window of samples when the trace has at least ``batch_size``
    samples, otherwise samples drawn with replacement. Indices are taken modulo
    ``table.rows``.
    """
    dist = table.index_distribution
    trace = load_trace(dist["path"])
    t = dist.get("table", 0)
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < trace.num_tables:
        raise UserError(
            f"table {table.name!r}, key 'index_distribution': trace table {t!r} is not in "
            f"[0, {trace.num_tables}) for trace {Path(trace.path).name}"
        )
    if batch_size < 0:
        raise UserError(f"table {table.name!r}: batch_size must be >= 0, got {batch_size}")
    b = trace.num_samples
    if b >= batch_size:
        start = int(rng.integers(0, b - batch_size + 1))
        pos = np.arange(start, start + batch_size, dtype=np.int64)
    else:
        pos = rng.integers(0, b, size=batch_size).astype(np.int64)
    lens = trace.lengths[t, pos]
    starts = trace.offsets[t * b + pos]
    offsets = np.zeros(batch_size + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    gather = np.repeat(starts - offsets[:-1], lens) + np.arange(total, dtype=np.int64)
    indices = trace.indices[gather] % np.int64(table.rows)
    return Bags(indices.astype(np.int64, copy=False), offsets)
