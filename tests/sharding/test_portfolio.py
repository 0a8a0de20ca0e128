"""The measured portfolio planner (``--planner default``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from embedlab.errors import UserError
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.generator import gen_tasks
from embedlab.sharding.planners import DEFAULT_PLANNER, Infeasible, get_planner
from embedlab.sharding.portfolio import (
    PortfolioPlanner,
    PortfolioSettings,
    choose,
    default_comm,
)
from embedlab.sharding.types import Table, Task


def test_choose_keeps_the_anchor_unless_clearly_beaten():
    pred = {"torchrec": 100.0, "a": 99.0, "b": 101.0}
    assert choose(pred, "torchrec", 0.02) == "torchrec"  # 1% gain < 2% margin
    assert choose(pred, "torchrec", 0.0) == "a"
    assert choose({"torchrec": 100.0, "a": 97.0}, "torchrec", 0.02) == "a"
    assert choose({"torchrec": 100.0, "a": 98.0}, "torchrec", 0.02) == "torchrec"  # not strictly below
    assert choose({"a": 3.0, "b": 2.0}, None, 0.5) == "b"  # no anchor: the cheapest
    assert choose({"a": 2.0, "b": 2.0}, None, 0.0) == "a"  # ties: first
    assert choose({"torchrec": 1.0, "a": 5.0}, "torchrec", 0.0) == "torchrec"
    with pytest.raises(ValueError):
        choose({}, None, 0.0)


def test_settings_are_checked():
    with pytest.raises(UserError, match="margin"):
        PortfolioSettings(margin=1.0)
    with pytest.raises(UserError, match="own candidate"):
        PortfolioSettings(candidates=("torchrec", "portfolio"))
    with pytest.raises(UserError, match="at least one"):
        PortfolioSettings(candidates=())
    with pytest.raises(UserError, match="unknown portfolio planner.*'clever'.*valid: .*dim_greedy"):
        PortfolioSettings(candidates=("torchrec", "clever"))
    with pytest.raises(UserError, match="'nobody'"):
        PortfolioSettings(anchor="nobody")


@dataclass
class _Cost:
    total_ms: float


class _ScriptedMeter:
    """Costs by placement, so the choice logic is tested without timing anything."""

    def __init__(self, cost_of) -> None:
        self.cost_of = cost_of
        self.calls: list[int] = []

    def measure_plans(self, task, plans):
        self.calls.append(len(plans))
        return [_Cost(self.cost_of(p)) for p in plans]


def _task() -> Task:
    (task,) = gen_tasks("dreamshard", 8, 2, 1, seed=3, split="test")
    return task


def test_identical_plans_are_timed_once_and_the_choice_follows_the_rule():
    task = _task()
    cands = ("dim_greedy", "round_robin", "lookup_greedy", "size_lookup_greedy")
    keys = {n: get_planner(n).plan(task).placement() for n in cands}
    distinct = len(set(keys.values()))
    cheap = keys["round_robin"]
    assert cheap != keys["dim_greedy"]
    meter = _ScriptedMeter(lambda p: 90.0 if p.placement() == cheap else 100.0)
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=cands, anchor="dim_greedy", margin=0.05),
                               meter=meter)  # fmt: skip
    plan = planner.plan(task)
    plan.validate(task)
    assert meter.calls == [distinct]
    assert plan.placement() == cheap and plan.planner == "portfolio" and plan.estimated_cost_ms == 90.0
    assert planner.last_report["chosen"] == planner.last_report["owner"]["round_robin"]
    # a 10% gain is not enough for a 20% margin: the anchor's plan is kept
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=cands, anchor="dim_greedy", margin=0.2),
                               meter=_ScriptedMeter(lambda p: 90.0 if p.placement() == cheap else 100.0))  # fmt: skip
    assert planner.plan(task).placement() == keys["dim_greedy"]


def test_real_meter_plans_a_valid_task_and_reports_every_candidate():
    task = _task()
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1), comm=default_comm())
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=("dim_greedy", "random", "size_greedy"),
                                                          anchor="dim_greedy", margin=0.0), meter=meter)  # fmt: skip
    plan = planner.plan(task)
    plan.validate(task)
    rep = planner.last_report
    assert rep["measured"] and set(rep["owner"]) == {"dim_greedy", "random", "size_greedy"}
    assert plan.estimated_cost_ms == min(rep["predicted_ms"].values())
    assert plan.planning_seconds > 0


def test_a_task_the_meter_cannot_time_keeps_the_anchor_with_a_warning():
    task = Task("adam", 2, 10**9, 128, (Table("a", 100, 8, 2.0), Table("b", 50, 8, 1.0), Table("c", 70, 4, 3.0)),
                optimizer="adam")  # fmt: skip
    meter = CostMeter(MeterSettings(batch_size=32, warmup=0, repeats=1, rounds=1))
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=("size_greedy", "round_robin"),
                                                          anchor="round_robin"), meter=meter)  # fmt: skip
    with pytest.warns(UserWarning, match="keeping round_robin"):
        plan = planner.plan(task)
    assert plan.placement() == get_planner("round_robin").plan(task).placement()
    assert plan.estimated_cost_ms is None and not planner.last_report["measured"]


def test_infeasible_candidates_are_skipped_and_all_infeasible_is_one_error():
    task = Task("tight", 2, 1000, 8, (Table("small", 10, 4, 1.0), Table("huge", 1000, 4, 1.0)))
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=("dim_greedy", "size_greedy")),
                               meter=_ScriptedMeter(lambda p: 1.0))  # fmt: skip
    with pytest.raises(Infeasible, match="table 'huge'"):
        planner.plan(task)


def test_without_comm_the_shipped_model_is_used_and_said(monkeypatch):
    planner = PortfolioPlanner(settings=PortfolioSettings(candidates=("dim_greedy",), batch_size=32, repeats=1))
    with pytest.warns(UserWarning, match="no --comm"):
        meter = planner._meter()
    assert meter.comm == default_comm() and meter.settings.batch_size == 32


def test_default_planner_is_the_portfolio_and_takes_comm(tmp_path):
    assert DEFAULT_PLANNER == "portfolio"
    path = tmp_path / "comm.json"
    default_comm().save(path)
    planner = get_planner("default", comm=str(path))
    assert isinstance(planner, PortfolioPlanner) and planner.comm == default_comm()
