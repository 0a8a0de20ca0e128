"""A measured portfolio: every candidate planner plans the task, the meter times their plans
side by side, and TorchRec's plan is kept unless another is clearly faster.

No paper describes this planner; it is our answer to a user's question "which plan do I
train with?". Learned planners beat TorchRec's planner on average but not on every task
(measured under DMP: docs/sharding.md), and no single planner is best everywhere. Their
plans cost little to make (under a second each), while the step-cost meter
(:class:`~embedlab.sharding.cost.CostMeter`) ranks plans of a task close to how
``DistributedModelParallel`` does. So:

1. each planner of ``candidates`` plans the task (one that finds the task infeasible or
   fails to load is skipped, and says so in :attr:`PortfolioPlanner.last_report`);
   identical plans are merged;
2. the meter times every distinct plan in one interleaved pass, at ``batch_size`` samples
   with the task's optimizer, communication from ``comm``;
3. the ``anchor`` plan (TorchRec's planner) is kept unless the cheapest predicted plan
   costs less than ``(1 - margin)`` of the anchor's. The margin guards against the meter's
   noise and its error: switching away from TorchRec's plan on a 1% predicted gain is a coin
   toss (predicted and measured costs of a task's plans agree to a Spearman of about 0.8).

Our choices, made on validation tasks (``benchmarks/sharding_default_choice.py``,
``benchmarks/results/sharding_default_choice.json``), never on the test tasks that are
reported: the candidate set and the margin (:data:`CANDIDATES`, :data:`MARGIN`).

Without ``comm`` the meter takes the communication model shipped with DreamShard's default
model (gloo on this project's training machine, 4 processes) and a warning says so: give
``--comm`` calibrated for the devices being planned (``embedlab shard calibrate-comm``).
Where the meter cannot time the task (Adam on the CPU backend) or its budget is spent, the
anchor's plan is returned with a warning. Planning time is the meter's, on a 2-core CPU:
6-25 s for 20-40 tables on 2 devices (``sharding_default_choice.json``), 25-28 s on average
for 40-50 tables on 4 (``sharding_learned.json``, at most 38.5 s).

The meter's only backend is the CPU (FBGEMM's CPU kernels): on a GPU cluster the portfolio
ranks plans by their CPU step cost, which has not been checked against GPU training.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeasurementBudgetExceeded, MeterSettings
from embedlab.sharding.types import Plan, Task

#: Planners whose plans the default portfolio compares, and the margin (chosen on validation
#: tasks: ``benchmarks/results/sharding_default_choice.json``). On 8 valid-split tasks measured
#: under DMP, this set with a margin of 0.08 was 0.936 of TorchRec's step time on average and
#: never slower; sets with the learned planners were slower on 1-3 tasks at every margin up to
#: 0.10 (on one task the meter predicted NeuroShard's plan 12% faster than TorchRec's; it
#: measured 6% slower), and smaller margins switched on predicted gains that were not there.
CANDIDATES: tuple[str, ...] = ("torchrec", "dim_greedy", "lookup_greedy", "size_lookup_greedy", "size_greedy")
#: The predicted gain over the anchor below which the anchor's plan is kept.
MARGIN = 0.08


@dataclass(frozen=True)
class PortfolioSettings:
    """What the portfolio compares and how it decides (see the module doc)."""

    candidates: tuple[str, ...] = CANDIDATES
    anchor: str = "torchrec"
    margin: float = MARGIN
    batch_size: int = 4096
    repeats: int = 15
    budget_s: float | None = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise UserError(f"portfolio margin must be in [0, 1), got {self.margin}")
        if not self.candidates:
            raise UserError("the portfolio needs at least one candidate planner")
        if "portfolio" in self.candidates or "default" in self.candidates:
            raise UserError("the portfolio cannot be its own candidate")
        from embedlab.sharding.planners import PLANNERS

        unknown = [c for c in (*self.candidates, self.anchor) if c not in PLANNERS]
        if unknown:
            raise UserError(f"unknown portfolio planner(s) {', '.join(map(repr, unknown))}; valid: {', '.join(PLANNERS)}")


def choose(predicted: dict[str, float], anchor: str | None, margin: float) -> str:
    """The candidate to keep: the cheapest predicted one, unless ``anchor`` is among them and
    the cheapest is not below ``(1 - margin)`` of the anchor's cost (pure; ties go to the
    first in ``predicted``'s order)."""
    if not predicted:
        raise ValueError("nothing to choose from")
    best = min(predicted, key=lambda k: predicted[k])
    if anchor in predicted and not predicted[best] < (1 - margin) * predicted[anchor]:
        return anchor
    return best


def default_comm() -> CommModel:
    """The communication model shipped with DreamShard's default model."""
    from embedlab.io import read_json
    from embedlab.sharding.dreamshard.planner import DEFAULT_MODEL

    return CommModel.from_json(read_json(DEFAULT_MODEL / "model.json")["comm"], "DreamShard's default model")


@dataclass
class PortfolioPlanner:
    """Times every candidate's plan and keeps the anchor's unless another is clearly faster."""

    comm: CommModel | str | None = None
    settings: PortfolioSettings = field(default_factory=PortfolioSettings)
    meter: CostMeter | None = None
    name: str = "portfolio"
    last_report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._comm_path = self.comm if isinstance(self.comm, str) else None
        if isinstance(self.comm, str):
            self.comm = CommModel.load(self.comm)

    def _meter(self) -> CostMeter:
        if self.meter is None:
            comm = self.comm
            if comm is None:
                warnings.warn(
                    "portfolio planner: no --comm given; using the communication model shipped with "
                    "DreamShard's default model (gloo, 4 processes): calibrate yours with "
                    "'embedlab shard calibrate-comm'",
                    stacklevel=3,
                )
                comm = default_comm()
            st = self.settings
            self.meter = CostMeter(
                MeterSettings(batch_size=st.batch_size, repeats=st.repeats, seed=0),
                comm=comm, budget_s=st.budget_s,
            )  # fmt: skip
        return self.meter

    def candidate_plans(self, task: Task) -> tuple[list[Plan], dict[str, str], dict[str, str]]:
        """Every candidate's plan, identical ones merged (:func:`~embedlab.sharding.planners.plan_distinct`).
        A candidate that takes a communication model (DreamShard) gets ``comm`` when it was
        given as a file."""
        from embedlab.sharding.planners import plan_distinct

        return plan_distinct(task, self.settings.candidates, self._comm_path)

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        st = self.settings
        plans, owner, skipped = self.candidate_plans(task)
        if not plans:
            from embedlab.sharding.planners import Infeasible

            first = next(iter(skipped.values()))
            raise Infeasible(f"no candidate planner found a plan; {st.candidates[0]}: {first}")
        by_name = {p.planner: p for p in plans}
        anchor = owner.get(st.anchor)
        try:
            costs = self._meter().measure_plans(task, plans)
        except (MeasurementBudgetExceeded, UserError) as e:
            fallback = anchor or plans[0].planner
            warnings.warn(f"portfolio planner: task {task.name!r}: {e}; keeping {fallback}'s plan", stacklevel=2)
            self.last_report = {"task": task.name, "chosen": fallback, "measured": False, "reason": str(e),
                                "owner": owner, "skipped": skipped}  # fmt: skip
            p = by_name[fallback]
            return Plan(task.name, self.name, p.shards, time.perf_counter() - t0, None)
        predicted = {p.planner: c.total_ms for p, c in zip(plans, costs)}
        chosen = choose(predicted, anchor, st.margin)
        self.last_report = {
            "task": task.name, "chosen": chosen, "anchor": anchor, "measured": True,
            "predicted_ms": predicted, "owner": owner, "skipped": skipped,
        }  # fmt: skip
        p = by_name[chosen]
        return Plan(task.name, self.name, p.shards, time.perf_counter() - t0, predicted[chosen])


__all__ = ["CANDIDATES", "MARGIN", "PortfolioPlanner", "PortfolioSettings", "choose", "default_comm"]
