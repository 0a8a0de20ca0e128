"""The measured hill-climb baseline."""

from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.generator import gen_tasks
from embedlab.sharding.planners import get_planner
from embedlab.sharding.search import HillClimbPlanner, HillClimbSettings


def test_hill_climb_never_gets_worse_than_its_start_and_stays_valid():
    (task,) = gen_tasks("dreamshard", 8, 2, 1, seed=3, split="test")
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1))
    hc = HillClimbPlanner(meter, HillClimbSettings(budget_s=60, seed=0, max_proposals=12))
    plan = hc.plan(task)
    plan.validate(task)
    start = meter.measure_plan(task, get_planner("size_lookup_greedy").plan(task)).total_ms
    assert plan.estimated_cost_ms <= start + 1e-12  # the same (cached) measurements
    assert hc.last_trace == sorted(hc.last_trace, reverse=True) and hc.last_trace[
        0
    ] == pytest.approx(start)
    assert (
        all(s.columns == task.table(s.table).dim for s in plan.shards)
        and plan.planner == "hill_climb"
    )
    assert meter.measurements > 2


def test_hill_climb_settings_and_registry():
    with pytest.raises(UserError, match="budget"):
        HillClimbSettings(budget_s=0)
    assert get_planner("hill_climb").name == "hill_climb"
