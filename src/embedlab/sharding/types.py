"""Tables, tasks, shards and plans: the v1 sharding formats, read and written exactly.

The JSON layouts are a contract (docs/sharding.md, "File formats"): planners read
task files (``"format": "embedlab.sharding-tasks/v1"``) and write plan files
(``"format": "embedlab.sharding-plans/v1"``). Unknown keys are ignored; a missing
required key, a wrong type or an impossible value raises :class:`~embedlab.errors.UserError`
naming the task, the table and the key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.errors import UserError
from embedlab.io import read_json, write_json

TASKS_FORMAT = "embedlab.sharding-tasks/v1"
PLANS_FORMAT = "embedlab.sharding-plans/v1"
NUM_REUSE_BINS = 17
DISTRIBUTION_KINDS = ("zipf", "uniform", "trace")
#: Embedding optimizers a task may name, and the state each keeps (spec, key ``optimizer``).
OPTIMIZERS = ("sgd", "rowwise_adagrad", "adagrad", "adam")


def state_bytes(optimizer: str | None, rows: int, columns: int) -> int:
    """Bytes of optimizer state a shard of ``rows × columns`` keeps (FBGEMM's fused kernels,
    fp32 state): ``sgd`` (or None) none; ``rowwise_adagrad`` one fp32 per row of the shard;
    ``adagrad`` one fp32 per element; ``adam`` two fp32 per element."""
    if optimizer is None or optimizer == "sgd":
        return 0
    if optimizer == "rowwise_adagrad":
        return 4 * rows
    if optimizer == "adagrad":
        return 4 * rows * columns
    if optimizer == "adam":
        return 8 * rows * columns
    raise UserError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def shard_bytes(table: Table, columns: int, optimizer: str | None = None) -> int:
    """Device memory of ``columns`` columns of ``table``: weights plus optimizer state."""
    return table.rows * columns * table.bytes_per_element + state_bytes(
        optimizer, table.rows, columns
    )


def _where(task: str | None, table: str | None, key: str) -> str:
    parts = []
    if task is not None:
        parts.append(f"task {task!r}")
    if table is not None:
        parts.append(f"table {table!r}")
    parts.append(f"key {key!r}")
    return ", ".join(parts)


def _get(
    d: dict[str, Any], key: str, typ: type | tuple[type, ...], task: str | None, table: str | None
) -> Any:
    if not isinstance(d, dict):
        raise UserError(f"{_where(task, table, key)}: expected an object")
    if key not in d:
        raise UserError(f"{_where(task, table, key)}: missing")
    v = d[key]
    ok = isinstance(v, typ) and not (
        isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))
    )
    if not ok:
        names = "/".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
        raise UserError(
            f"{_where(task, table, key)}: expected {names}, got {type(v).__name__} {v!r}"
        )
    return v


@dataclass(frozen=True)
class Table:
    """One embedding table of a task (sizes, workload and optional reuse histogram)."""

    name: str
    rows: int
    dim: int
    pooling_factor: float
    bytes_per_element: int = 4
    index_distribution: dict[str, Any] = field(
        default_factory=lambda: {"kind": "zipf", "alpha": 1.05}
    )
    reuse_bins: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, task: str | None = None) -> None:
        def bad(key: str, msg: str) -> UserError:
            return UserError(f"{_where(task, self.name, key)}: {msg}")

        if not self.name:
            raise bad("name", "must be a non-empty string")
        if self.rows < 1:
            raise bad("rows", f"must be >= 1, got {self.rows}")
        if self.dim < 1:
            raise bad("dim", f"must be >= 1, got {self.dim}")
        if not (self.pooling_factor >= 0 and math.isfinite(self.pooling_factor)):
            raise bad("pooling_factor", f"must be a finite number >= 0, got {self.pooling_factor}")
        if self.bytes_per_element not in (2, 4):
            raise bad("bytes_per_element", f"must be 2 or 4, got {self.bytes_per_element}")
        dist = self.index_distribution
        kind = dist.get("kind") if isinstance(dist, dict) else None
        if kind not in DISTRIBUTION_KINDS:
            raise bad(
                "index_distribution",
                f"kind must be one of {', '.join(DISTRIBUTION_KINDS)}, got {kind!r}",
            )
        if kind == "zipf":
            a = dist.get("alpha")
            if (
                isinstance(a, bool)
                or not isinstance(a, (int, float))
                or not (a >= 0 and math.isfinite(a))
            ):
                raise bad("index_distribution", f"zipf alpha must be a number >= 0, got {a!r}")
        if kind == "trace" and not isinstance(dist.get("path"), str):
            raise bad("index_distribution", "trace needs a string 'path'")
        if self.reuse_bins is not None:
            if len(self.reuse_bins) != NUM_REUSE_BINS:
                raise bad(
                    "reuse_bins", f"needs {NUM_REUSE_BINS} values, got {len(self.reuse_bins)}"
                )
            if any(not (b >= 0 and math.isfinite(b)) for b in self.reuse_bins):
                raise bad("reuse_bins", "values must be finite and >= 0")

    @property
    def size_bytes(self) -> int:
        """``rows × dim × bytes_per_element``."""
        return self.rows * self.dim * self.bytes_per_element

    @property
    def alpha(self) -> float:
        """The Zipf exponent of the workload (0 for uniform; NaN for traces)."""
        kind = self.index_distribution["kind"]
        return (
            float(self.index_distribution["alpha"])
            if kind == "zipf"
            else (0.0 if kind == "uniform" else math.nan)
        )

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "rows": self.rows, "dim": self.dim, "pooling_factor": self.pooling_factor,
            "bytes_per_element": self.bytes_per_element, "index_distribution": dict(self.index_distribution),
        }  # fmt: skip
        if self.reuse_bins is not None:
            d["reuse_bins"] = list(self.reuse_bins)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], task: str | None = None) -> Table:
        name = _get(d, "name", str, task, None)
        g = lambda k, t: _get(d, k, t, task, name)  # noqa: E731
        bins = d.get("reuse_bins")
        if bins is not None and (
            not isinstance(bins, list)
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bins)
        ):
            raise UserError(f"{_where(task, name, 'reuse_bins')}: expected a list of numbers")
        t = object.__new__(cls)
        for k, v in dict(
            name=name, rows=g("rows", int), dim=g("dim", int), pooling_factor=float(g("pooling_factor", (int, float))),
            bytes_per_element=g("bytes_per_element", int), index_distribution=dict(g("index_distribution", dict)),
            reuse_bins=tuple(float(b) for b in bins) if bins is not None else None,
        ).items():  # fmt: skip
            object.__setattr__(t, k, v)
        t.validate(task)
        return t


@dataclass(frozen=True)
class Task:
    """Tables to place on ``num_devices`` devices with ``device_memory_bytes`` each."""

    name: str
    num_devices: int
    device_memory_bytes: int
    batch_size: int
    tables: tuple[Table, ...]
    optimizer: str | None = None  # None: not given (plans hold no state, as for "sgd")

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> UserError:
            return UserError(f"{_where(self.name, None, key)}: {msg}")

        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise bad(
                "optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )

        if not self.name:
            raise UserError("task key 'name': must be a non-empty string")
        if self.num_devices < 1:
            raise bad("num_devices", f"must be >= 1, got {self.num_devices}")
        if self.device_memory_bytes <= 0:
            raise bad("device_memory_bytes", f"must be > 0, got {self.device_memory_bytes}")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be >= 1, got {self.batch_size}")
        if not self.tables:
            raise bad("tables", "must list at least one table")
        seen: set[str] = set()
        for t in self.tables:
            if t.name in seen:
                raise UserError(f"{_where(self.name, t.name, 'name')}: duplicate table name")
            seen.add(t.name)

    def table_bytes(self, table: Table, columns: int | None = None) -> int:
        """Memory of ``table`` (or ``columns`` of it) on a device: weights plus the state of
        the task's optimizer."""
        return shard_bytes(table, table.dim if columns is None else columns, self.optimizer)

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise UserError(f"task {self.name!r} has no table {name!r}")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "num_devices": self.num_devices, "device_memory_bytes": self.device_memory_bytes,
            "batch_size": self.batch_size, "tables": [t.to_json() for t in self.tables],
        }  # fmt: skip
        if self.optimizer is not None:
            d["optimizer"] = self.optimizer
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Task:
        name = _get(d, "name", str, None, None)
        tables = _get(d, "tables", list, name, None)
        opt = _get(d, "optimizer", str, name, None) if d.get("optimizer") is not None else None
        return cls(
            name=name,
            num_devices=_get(d, "num_devices", int, name, None),
            device_memory_bytes=_get(d, "device_memory_bytes", int, name, None),
            batch_size=_get(d, "batch_size", int, name, None),
            tables=tuple(Table.from_json(t, name) for t in tables),
            optimizer=opt,
        )


@dataclass(frozen=True)
class Shard:
    """Columns ``[column_offset, column_offset + columns)`` of one table on one device."""

    table: str
    device: int
    column_offset: int
    columns: int

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "device": self.device,
            "column_offset": self.column_offset,
            "columns": self.columns,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], task: str | None = None) -> Shard:
        table = _get(d, "table", str, task, None)
        g = lambda k: _get(d, k, int, task, table)  # noqa: E731
        return cls(table, g("device"), g("column_offset"), g("columns"))


@dataclass(frozen=True)
class Plan:
    """A placement of a task's tables (table-wise or column-wise) produced by a planner."""

    task: str
    planner: str
    shards: tuple[Shard, ...]
    planning_seconds: float = 0.0
    estimated_cost_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "planner": self.planner, "shards": [s.to_json() for s in self.shards],
            "planning_seconds": self.planning_seconds, "estimated_cost_ms": self.estimated_cost_ms,
        }  # fmt: skip

    def placement(self) -> tuple[tuple[str, int, int, int], ...]:
        """The placement alone, independent of the planner and of shard order: equal for
        plans that put the same columns on the same devices."""
        return tuple(sorted((s.table, s.device, s.column_offset, s.columns) for s in self.shards))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        task = _get(d, "task", str, None, None)
        est = d.get("estimated_cost_ms")
        if est is not None and (isinstance(est, bool) or not isinstance(est, (int, float))):
            raise UserError(f"{_where(task, None, 'estimated_cost_ms')}: expected a number or null")
        secs = d.get("planning_seconds", 0.0)
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or secs < 0:
            raise UserError(f"{_where(task, None, 'planning_seconds')}: expected a number >= 0")
        return cls(
            task=task,
            planner=_get(d, "planner", str, task, None),
            shards=tuple(Shard.from_json(s, task) for s in _get(d, "shards", list, task, None)),
            planning_seconds=float(secs),
            estimated_cost_ms=None if est is None else float(est),
        )

    def device_memory(self, task: Task) -> list[int]:
        """Bytes on each device: weights plus the task's optimizer state (spec)."""
        mem = [0] * task.num_devices
        for s in self.shards:
            t = task.table(s.table)
            if 0 <= s.device < task.num_devices:
                mem[s.device] += task.table_bytes(t, s.columns)
        return mem

    def validate(self, task: Task) -> None:
        """Raise :class:`UserError` unless every table is covered exactly once (column
        ranges exact) and every device's memory is respected."""
        if self.task != task.name:
            raise UserError(f"plan for task {self.task!r} checked against task {task.name!r}")
        cols: dict[str, list[tuple[int, int]]] = {t.name: [] for t in task.tables}
        for s in self.shards:
            if s.table not in cols:
                raise UserError(f"task {task.name!r}, table {s.table!r}: not in the task")
            if not 0 <= s.device < task.num_devices:
                raise UserError(
                    f"task {task.name!r}, table {s.table!r}, key 'device': {s.device} is not in [0, {task.num_devices})"
                )
            if s.columns < 1 or s.column_offset < 0:
                raise UserError(
                    f"task {task.name!r}, table {s.table!r}: bad column range offset {s.column_offset}, columns {s.columns}"
                )
            cols[s.table].append((s.column_offset, s.columns))
        for t in task.tables:
            pos = 0
            for off, n in sorted(cols[t.name]):
                if off != pos:
                    raise UserError(
                        f"task {task.name!r}, table {t.name!r}: columns do not cover [0, {t.dim}) exactly once (at column {pos})"
                    )
                pos = off + n
            if pos != t.dim:
                raise UserError(
                    f"task {task.name!r}, table {t.name!r}: columns do not cover [0, {t.dim}) exactly once (ends at {pos})"
                )
        for d, used in enumerate(self.device_memory(task)):
            if used > task.device_memory_bytes:
                state = "" if task.optimizer in (None, "sgd") else f" (weights and {task.optimizer} state)"
                raise UserError(
                    f"task {task.name!r}: device {d} holds {used} bytes{state}, more than {task.device_memory_bytes}"
                )


def _read(path: str | Path, fmt: str, key: str) -> list[dict[str, Any]]:
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{path}: expected format {fmt!r}, got {got!r}")
    items = doc.get(key)
    if not isinstance(items, list):
        raise UserError(f"{path}: key {key!r} must be a list")
    return items


def load_tasks(path: str | Path) -> list[Task]:
    """Tasks of a v1 task file (unique names)."""
    tasks = [Task.from_json(d) for d in _read(path, TASKS_FORMAT, "tasks")]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{path}: task {dup!r} appears twice")
    return tasks


def save_tasks(path: str | Path, tasks: Sequence[Task]) -> None:
    write_json(path, {"format": TASKS_FORMAT, "tasks": [t.to_json() for t in tasks]})


def load_plans(path: str | Path) -> list[Plan]:
    """Plans of a v1 plan file."""
    return [Plan.from_json(d) for d in _read(path, PLANS_FORMAT, "plans")]


def save_plans(path: str | Path, plans: Sequence[Plan]) -> None:
    write_json(path, {"format": PLANS_FORMAT, "plans": [p.to_json() for p in plans]})
