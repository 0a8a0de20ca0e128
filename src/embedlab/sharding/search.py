"""A measured search baseline: hill-climbing over table placements with real measurements.

Learned planners (DreamShard) plan without measuring; this baseline spends a fixed budget of
real kernel measurements (:class:`~embedlab.sharding.cost.CostMeter`) per task, so the gap
between learned planning and searching is visible. Our choices:

* Start from a heuristic plan (``size_lookup_greedy`` by default) and keep the best plan
  found; only table-wise placements (every table whole on one device).
* Each proposal, alternately: **move** a table from the current straggler device (the most
  expensive one) to a random other device with room, or **swap** a straggler table with a
  table of another device, memory permitting; a proposal repeats none already measured.
* Accept a proposal if its measured cost is lower (first improvement); stop when the wall
  budget (``budget_s``, building and timing kernels included) is spent.
* The meter caches each device's shard set, so re-measuring a device costs nothing; the
  costs the search saw are optimistic for the plan it keeps (it kept the luckiest
  measurement), so benchmarks re-measure its plan afresh beside the other planners'.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from embedlab.errors import UserError
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.types import Plan, Shard, Task


@dataclass(frozen=True)
class HillClimbSettings:
    """Budget and start of the search."""

    budget_s: float = 120.0
    start: str = "size_lookup_greedy"
    seed: int = 0
    max_proposals: int | None = None  # also stop after this many (tests)

    def __post_init__(self) -> None:
        if not self.budget_s > 0:
            raise UserError(f"hill-climb budget must be positive, got {self.budget_s}")


def _plan(task: Task, devices: list[int], name: str, cost: float, seconds: float) -> Plan:
    shards = tuple(Shard(t.name, d, 0, t.dim) for t, d in zip(task.tables, devices))
    return Plan(task.name, name, shards, estimated_cost_ms=cost, planning_seconds=seconds)


class HillClimbPlanner:
    """Hill-climbing on measured plan costs (see the module doc)."""

    name = "hill_climb"

    def __init__(
        self, meter: CostMeter | None = None, settings: HillClimbSettings | None = None
    ) -> None:
        self.meter = meter if meter is not None else CostMeter(MeterSettings())
        self.settings = settings or HillClimbSettings()
        self.last_trace: list[float] = []  # best cost after each accepted proposal

    def plan(self, task: Task) -> Plan:
        from embedlab.sharding.planners import get_planner

        t0 = time.perf_counter()
        st = self.settings
        rng = random.Random(st.seed)
        start = get_planner(st.start).plan(task)
        index = {t.name: i for i, t in enumerate(task.tables)}
        devices = [0] * len(task.tables)
        for s in start.shards:
            if s.columns != task.table(s.table).dim:
                raise UserError(
                    f"hill-climb searches table-wise plans; {st.start!r} split table {s.table!r}"
                )
            devices[index[s.table]] = s.device
        sizes = [task.table_bytes(t) for t in task.tables]  # weights + optimizer state

        def used(devs: list[int]) -> list[int]:
            u = [0] * task.num_devices
            for i, d in enumerate(devs):
                u[d] += sizes[i]
            return u

        def measure(devs: list[int]) -> tuple[float, int]:
            c = self.meter.measure_plan(task, _plan(task, devs, self.name, 0.0, 0.0))
            return c.total_ms, c.straggler

        best, straggler = measure(devices)
        self.last_trace = [best]
        seen = {tuple(devices)}
        proposals = 0
        while time.perf_counter() - t0 < st.budget_s and (
            st.max_proposals is None or proposals < st.max_proposals
        ):
            proposals += 1
            cand = list(devices)
            mine = [i for i, d in enumerate(cand) if d == straggler]
            others = [d for d in range(task.num_devices) if d != straggler]
            if not mine or not others:
                break
            i = rng.choice(mine)
            u = used(cand)
            if proposals % 2:  # move
                room = [d for d in others if u[d] + sizes[i] <= task.device_memory_bytes]
                if not room:
                    continue
                cand[i] = rng.choice(room)
            else:  # swap
                j = rng.choice([k for k, d in enumerate(cand) if d != straggler] or [i])
                if j == i:
                    continue
                di, dj = cand[i], cand[j]
                if (u[dj] - sizes[j] + sizes[i] > task.device_memory_bytes
                        or u[di] - sizes[i] + sizes[j] > task.device_memory_bytes):  # fmt: skip
                    continue
                cand[i], cand[j] = dj, di
            if tuple(cand) in seen:
                continue
            seen.add(tuple(cand))
            cost, strag = measure(cand)
            if cost < best:
                devices, best, straggler = cand, cost, strag
                self.last_trace.append(best)
        plan = _plan(task, devices, self.name, best, time.perf_counter() - t0)
        plan.validate(task)
        return plan


__all__ = ["HillClimbPlanner", "HillClimbSettings"]
