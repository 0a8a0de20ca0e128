from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedlab.errors import UserError
from embedlab.sharding.planners import (
    MEASURED_PLANNERS,
    MODEL_PLANNERS,
    PLANNERS,
    Infeasible,
    get_planner,
    plan_all,
)
from embedlab.sharding.types import Table, Task


@st.composite
def feasible_tasks(draw):
    n = draw(st.integers(1, 30))
    d = draw(st.integers(1, 8))
    ts = tuple(
        Table(f"t{i}", draw(st.integers(1, 5000)), draw(st.sampled_from([4, 8, 16, 32])), draw(st.floats(0, 50)),
              draw(st.sampled_from([2, 4])))
        for i in range(n)
    )  # fmt: skip
    biggest = max(t.size_bytes for t in ts)
    total = sum(t.size_bytes for t in ts)
    # enough room that any greedy packing fits: a device can always take the largest table
    mem = max(biggest, total // d + biggest) + draw(st.integers(0, 10**6))
    return Task("task", d, mem, 128, ts)


@pytest.mark.parametrize(
    "name", sorted(set(PLANNERS) - MODEL_PLANNERS - MEASURED_PLANNERS)
)  # hill_climb: test_search
@settings(max_examples=40, deadline=None)
@given(task=feasible_tasks())
def test_every_planner_gives_valid_plans(name, task):
    (plan,) = plan_all([task], name)
    plan.validate(task)
    assert plan.planner == name and plan.planning_seconds >= 0


@pytest.mark.parametrize("name", sorted(set(PLANNERS) - MODEL_PLANNERS))
def test_infeasible_task_names_the_table(name):
    task = Task("tight", 2, 1000, 8, (Table("small", 10, 4, 1.0), Table("huge", 1000, 4, 1.0)))
    with pytest.raises(Infeasible, match="table 'huge'"):
        get_planner(name).plan(task)


def test_greedy_rule_matches_hand_computation():
    # keys (dim x pooling): a=80, b=60, c=40, d=30 -> a:0, b:1, c:1 (60<80), d:0? loads 80 vs 100 -> d:0
    ts = (
        Table("c", 10, 4, 10.0),
        Table("a", 10, 8, 10.0),
        Table("d", 10, 3, 10.0),
        Table("b", 10, 6, 10.0),
    )
    plan = get_planner("lookup_greedy").plan(Task("g", 2, 10**6, 8, ts))
    where = {s.table: s.device for s in plan.shards}
    assert where == {"a": 0, "b": 1, "c": 1, "d": 0}


def test_ties_go_to_less_memory_then_lowest_index():
    ts = (Table("x", 100, 4, 1.0), Table("y", 10, 4, 1.0), Table("z", 10, 4, 1.0))
    where = {
        s.table: s.device for s in get_planner("dim_greedy").plan(Task("t", 3, 10**6, 8, ts)).shards
    }
    assert where["x"] == 0 and where["y"] == 1 and where["z"] == 2


def test_unknown_planner():
    with pytest.raises(UserError, match="valid: .*dim_greedy.*neuroshard"):
        get_planner("clever")


def test_default_planner_resolves_to_the_measured_best():
    from embedlab.sharding.planners import (
        DEFAULT_PLANNER,
        PLANNERS,
        get_planner,
        resolve_planner_name,
    )

    assert DEFAULT_PLANNER in PLANNERS
    assert resolve_planner_name("default") == DEFAULT_PLANNER
    assert resolve_planner_name("round_robin") == "round_robin"
    assert type(get_planner("default")) is type(get_planner(DEFAULT_PLANNER))


def test_plan_distinct_merges_identical_placements_and_names_the_skipped():
    from embedlab.sharding.planners import plan_distinct
    from embedlab.sharding.types import Plan, Shard

    a = Plan("t", "x", (Shard("b", 1, 0, 4), Shard("a", 0, 0, 4)))
    b = Plan("t", "y", (Shard("a", 0, 0, 4), Shard("b", 1, 0, 4)))
    c = Plan("t", "x", (Shard("a", 1, 0, 4), Shard("b", 1, 0, 4)))
    assert a.placement() == b.placement() != c.placement()

    ts = (Table("a", 100, 8, 2.0), Table("b", 100, 8, 1.0), Table("c", 10, 4, 3.0))
    task = Task("m", 3, 10**6, 8, ts)
    names = ("dim_greedy", "lookup_greedy", "round_robin")
    plans, owner, skipped = plan_distinct(task, names)
    keys = {n: get_planner(n).plan(task).placement() for n in names}
    assert len(plans) == len(set(keys.values())) and not skipped
    for n in names:  # each planner points at the first planner with its placement
        assert keys[owner[n]] == keys[n] and names.index(owner[n]) <= names.index(n)
    tight = Task("tight", 2, 1000, 8, (Table("small", 10, 4, 1.0), Table("huge", 1000, 4, 1.0)))
    plans, owner, skipped = plan_distinct(tight, ("dim_greedy", "size_greedy"))
    assert not plans and not owner and all("table 'huge'" in why for why in skipped.values())
