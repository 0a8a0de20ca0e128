"""Baseline planners behind one Protocol, registered by name.

Greedy planners follow the reference repositories' rule (DreamShard / AutoShard /
NeuroShard baselines): tables sorted in descending order of ``(key, memory in bytes)``,
equal ones in task order (what the reference's stable ``sorted(..., reverse=True)``
gives); each table goes to the device with the smallest running total
of the key among the devices with memory room; ties go to the device with less memory
used, then to the lowest index. Unlike the reference code, which silently overflows the
last device, a table that fits nowhere makes the task infeasible: :class:`Infeasible`
names the table.

Memory is what the table occupies on a device: its weights plus the state of the task's
embedding optimizer (:meth:`Task.table_bytes`; weights alone for ``sgd`` and for tasks
without an optimizer). Keys such as ``size_greedy``'s stay the weights' size.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from embedlab.errors import UserError, unknown_name
from embedlab.sharding.types import Plan, Shard, Table, Task


class Infeasible(UserError):
    """No device has memory room for a table."""


class Planner(Protocol):
    """Places a task's tables: ``plan(task) -> Plan``."""

    name: str

    def plan(self, task: Task) -> Plan: ...


def memory_note(task: Task) -> str:
    """`` with its <optimizer> state`` when the task's optimizer keeps state, else ``""``."""
    return "" if task.optimizer in (None, "sgd") else f" with its {task.optimizer} state"


def infeasible(task: Task, table: Table, used: Sequence[int], by: str | None = None) -> Infeasible:
    """The one-line :class:`Infeasible` for ``table``, which fits on no device once each
    holds ``used`` bytes (``by``: the planner that gave up, named in the message)."""
    free = [task.device_memory_bytes - int(u) for u in used]
    who = f" for {by}" if by else ""
    return Infeasible(
        f"task {task.name!r} is infeasible{who}: table {table.name!r} ({task.table_bytes(table)} bytes{memory_note(task)}) "
        f"fits on no device (free: {min(free)} to {max(free)} bytes of {task.device_memory_bytes})"
    )


def unplaced_table(
    task: Task, order: Sequence[int], devices: Sequence[int]
) -> tuple[Table, list[int]] | None:
    """Replay a table-wise placement (table ``order[k]`` to ``devices[order[k]]``, in that
    order) and return the first table that had no device with room, with the bytes each
    device held then; None when every table fit. Learned planners that place tables one at
    a time use it to name the table that made a task infeasible."""
    used = [0] * task.num_devices
    for i in order:
        t = task.tables[int(i)]
        need = task.table_bytes(t)
        if all(u + need > task.device_memory_bytes for u in used):
            return t, used
        used[int(devices[int(i)])] += need
    return None


def placement_infeasible(
    task: Task, order: Sequence[int], devices: Sequence[int], by: str
) -> Infeasible:
    """The one-line :class:`Infeasible` of planner ``by`` whose table-by-table placement
    ``devices`` (task order, placed in ``order``) ran out of room: it names the first table
    that fit nowhere (:func:`unplaced_table`)."""
    hit = unplaced_table(task, order, devices)
    if hit is None:  # the placement fits after all; say what the planner said
        return Infeasible(f"task {task.name!r}: {by} found no placement within "
                          f"{task.device_memory_bytes} bytes per device")  # fmt: skip
    return infeasible(task, *hit, by=by)


def _table_wise(task: Task, planner: str, devices: list[int], t0: float) -> Plan:
    shards = tuple(Shard(t.name, d, 0, t.dim) for t, d in zip(task.tables, devices))
    return Plan(task.name, planner, shards, planning_seconds=time.perf_counter() - t0)


class GreedyPlanner:
    """Greedy balance of a per-table key (see the module docstring)."""

    def __init__(self, name: str, key: Callable[[Table], float]) -> None:
        self.name = name
        self.key = key

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        # descending key, then descending size; equal tables keep task order, as a stable
        # ``sorted(..., reverse=True)`` over (key, size) does in the reference code
        order = sorted(
            range(len(task.tables)),
            key=lambda i: (-self.key(task.tables[i]), -task.table_bytes(task.tables[i]), i),
        )
        load = [0.0] * task.num_devices
        used = [0] * task.num_devices
        devices = [0] * len(task.tables)
        for i in order:
            t = task.tables[i]
            need = task.table_bytes(t)
            fits = [
                d for d in range(task.num_devices) if used[d] + need <= task.device_memory_bytes
            ]
            if not fits:
                raise infeasible(task, t, used)
            d = min(fits, key=lambda d: (load[d], used[d], d))
            devices[i] = d
            load[d] += self.key(t)
            used[d] += need
        return _table_wise(task, self.name, devices, t0)


class RandomPlanner:
    """Each table to a uniformly random device with room (seeded by the task name)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        h = int(hashlib.sha1(task.name.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng([self.seed, h])
        used = [0] * task.num_devices
        devices = []
        for t in task.tables:
            need = task.table_bytes(t)
            fits = [
                d for d in range(task.num_devices) if used[d] + need <= task.device_memory_bytes
            ]
            if not fits:
                raise infeasible(task, t, used)
            d = int(rng.choice(fits))
            used[d] += need
            devices.append(d)
        return _table_wise(task, self.name, devices, t0)


class RoundRobinPlanner:
    """Table ``i`` to device ``i mod D``, moving on to the next device with room."""

    name = "round_robin"

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        used = [0] * task.num_devices
        devices = []
        for i, t in enumerate(task.tables):
            need = task.table_bytes(t)
            for k in range(task.num_devices):
                d = (i + k) % task.num_devices
                if used[d] + need <= task.device_memory_bytes:
                    break
            else:
                raise infeasible(task, t, used)
            used[d] += need
            devices.append(d)
        return _table_wise(task, self.name, devices, t0)


PLANNERS: dict[str, Callable[..., Planner]] = {
    "random": RandomPlanner,
    "round_robin": RoundRobinPlanner,
    "dim_greedy": lambda: GreedyPlanner("dim_greedy", lambda t: float(t.dim)),
    "size_greedy": lambda: GreedyPlanner("size_greedy", lambda t: float(t.size_bytes)),
    "lookup_greedy": lambda: GreedyPlanner("lookup_greedy", lambda t: t.dim * t.pooling_factor),
    "size_lookup_greedy": lambda: GreedyPlanner(
        "size_lookup_greedy", lambda t: t.dim * t.pooling_factor * math.log10(max(t.rows, 1))
    ),
}


def register_planner(name: str, factory: Callable[..., Planner]) -> None:
    """Make a planner available by name (learned planners register theirs)."""
    PLANNERS[name] = factory


#: The heuristic baselines (no model, no measurement), the reference set of every benchmark.
HEURISTICS = (
    "random",
    "round_robin",
    "dim_greedy",
    "size_greedy",
    "lookup_greedy",
    "size_lookup_greedy",
)
#: Planners that take a trained model (``model=`` folder); the others take no options.
MODEL_PLANNERS = {"dreamshard", "autoshard", "neuroshard"}
#: Planners that time real kernels while planning (seconds to minutes per task).
MEASURED_PLANNERS = {"hill_climb", "portfolio"}


#: What ``--planner default`` means: the measured portfolio (:mod:`embedlab.sharding.portfolio`),
#: which keeps TorchRec's plan unless the meter finds a candidate's clearly faster. Chosen over
#: the single planners on validation tasks trained under DMP
#: (``benchmarks/sharding_default_choice.py``, ``benchmarks/results/sharding_default_choice.json``);
#: test figures: docs/sharding.md.
DEFAULT_PLANNER = "portfolio"


def resolve_planner_name(name: str) -> str:
    """``default`` -> :data:`DEFAULT_PLANNER`; any other name unchanged."""
    return DEFAULT_PLANNER if name == "default" else name


def get_planner(name: str, model: str | None = None, comm: str | None = None) -> Planner:
    """A fresh planner called ``name`` (``default``: :data:`DEFAULT_PLANNER`; the error lists
    the valid names); ``model`` is the folder of a learned planner's trained model (None: its
    default); ``comm`` a communication model file for the planners of :data:`COMM_PLANNERS`."""
    name = resolve_planner_name(name)
    if name not in PLANNERS:
        raise unknown_name("planner", name, list(PLANNERS))
    kw: dict[str, str] = {}
    if model is not None:
        if name not in MODEL_PLANNERS:
            raise UserError(f"planner {name!r} takes no --model")
        kw["model"] = model
    if comm is not None:
        if name not in COMM_PLANNERS:
            raise UserError(f"planner {name!r} takes no --comm")
        kw["comm"] = comm
    return PLANNERS[name](**kw)


def plan_distinct(
    task: Task, names: Sequence[str], comm: str | None = None
) -> tuple[list[Plan], dict[str, str], dict[str, str]]:
    """Every named planner's plan of ``task``, identical placements merged: (distinct plans,
    each named for the first planner that made it; planner -> that name; planner -> the
    one-line reason it made none). ``comm``: a communication model file for the planners of
    :data:`COMM_PLANNERS`."""
    distinct: dict[tuple, Plan] = {}
    owner: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            p = get_planner(name, comm=comm if name in COMM_PLANNERS else None).plan(task)
            p.validate(task)
        except UserError as e:  # infeasible for this planner, or its model does not load
            skipped[name] = str(e)
            continue
        key = p.placement()
        distinct.setdefault(key, Plan(task.name, name, p.shards, p.planning_seconds))
        owner[name] = distinct[key].planner
    return list(distinct.values()), owner, skipped


def plan_all(
    tasks: list[Task], name: str, model: str | None = None, comm: str | None = None
) -> list[Plan]:
    """One plan per task, each validated against its task."""
    name = resolve_planner_name(name)
    planner = get_planner(name, model, comm)
    plans = []
    for task in tasks:
        p = planner.plan(task)
        p.validate(task)
        plans.append(replace(p, planner=name))
    return plans


# TorchRec's planner (table-wise); imported on first use so that importing this module
# never imports TorchRec.
PLANNERS["torchrec"] = lambda: __import__(
    "embedlab.sharding.torchrec_adapter", fromlist=["TorchRecPlanner"]
).TorchRecPlanner()


# DreamShard (learned; imports its networks on first use).
def _dreamshard(model: str | None = None, comm: str | None = None) -> Planner:
    from embedlab.sharding.comm import CommModel
    from embedlab.sharding.dreamshard.planner import DreamShardPlanner, default_search

    opts = default_search(analytic=True)
    opts.pop("cost", None)  # set below, once the model shows whether it has a comm model
    planner = DreamShardPlanner(model, comm=CommModel.load(comm) if comm is not None else None, **opts)  # type: ignore[arg-type]
    planner.cost_form = str(default_search(planner.model.comm is not None).get("cost", "overall"))
    return planner


PLANNERS["dreamshard"] = _dreamshard
#: Planners that take a communication model (``--comm``) at planning time.
COMM_PLANNERS = {"dreamshard"}


# AutoShard and NeuroShard (learned; each ships a small default model).
def _autoshard(model: str | None = None, comm: str | None = None) -> Planner:
    from embedlab.sharding.autoshard.planner import DEFAULT_SEARCH, AutoShardPlanner, search_options
    from embedlab.sharding.comm import CommModel

    return AutoShardPlanner(model, comm=CommModel.load(comm) if comm is not None else None,
                            **search_options(DEFAULT_SEARCH))  # type: ignore[arg-type]


PLANNERS["autoshard"] = _autoshard
COMM_PLANNERS.add("autoshard")


def _neuroshard(model: str | None = None) -> Planner:
    from embedlab.sharding.neuroshard.planner import (
        DEFAULT_SEARCH,
        NeuroShardPlanner,
        search_settings,
    )

    return NeuroShardPlanner(model, search_settings(DEFAULT_SEARCH))


PLANNERS["neuroshard"] = _neuroshard


# A measured search baseline (times real kernels for 120 s per task on this machine).
PLANNERS["hill_climb"] = lambda: __import__(
    "embedlab.sharding.search", fromlist=["HillClimbPlanner"]
).HillClimbPlanner()


# The measured portfolio: the candidates' plans timed side by side, TorchRec's kept unless
# another is clearly faster (embedlab.sharding.portfolio).
PLANNERS["portfolio"] = lambda comm=None: __import__(
    "embedlab.sharding.portfolio", fromlist=["PortfolioPlanner"]
).PortfolioPlanner(comm=comm)
COMM_PLANNERS.add("portfolio")
