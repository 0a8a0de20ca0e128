from __future__ import annotations

import itertools

import pytest

from embedlab.errors import UserError
from embedlab.sharding.cost import CostMeter, DeviceCost, MeterSettings, balanced_estimate_from
from embedlab.sharding.types import Plan, Shard, Table, Task

FAST = MeterSettings(batch_size=256, warmup=1, repeats=3, seed=7)


def _task(num_devices: int = 2) -> Task:
    tables = (
        Table("a", 2000, 16, 4.0),
        Table("b", 1000, 8, 2.0, 2),  # fp16 weights
        Table("c", 3000, 16, 4.0, index_distribution={"kind": "uniform"}),
        Table("d", 2000, 16, 4.0),  # same spec as "a"
    )
    return Task("tiny", num_devices, 10**9, 4096, tables)


@pytest.fixture(scope="module")
def meter() -> CostMeter:
    return CostMeter(FAST)


def test_costs_positive(meter: CostMeter) -> None:
    task = _task()
    c = meter.measure_device(task, [Shard("a", 0, 0, 16), Shard("b", 0, 0, 8)])
    assert c.fwd_ms > 0 and c.bwd_ms > 0
    assert c.n == FAST.repeats
    assert c.cv >= 0
    for name, sc in meter.single_table_costs(task).items():
        assert sc.fwd_ms > 0 and sc.bwd_ms > 0, name


def test_empty_device_is_zero(meter: CostMeter) -> None:
    assert meter.measure_device(_task(), []) == DeviceCost(0.0, 0.0, 0.0, 0)


def test_cache_hit_does_not_retime() -> None:
    m = CostMeter(FAST)
    task = _task()
    first = m.measure_device(task, [Shard("a", 0, 0, 16), Shard("c", 0, 0, 8)])
    builds = m.builds
    assert builds == 1
    # same multiset in another order, on another device, with "d" standing in for "a"
    again = m.measure_device(task, [Shard("c", 1, 8, 8), Shard("d", 1, 0, 16)])
    assert again is first
    assert m.builds == builds
    # a mixed-precision device builds one kernel per precision
    m.measure_device(task, [Shard("a", 0, 0, 16), Shard("b", 0, 0, 8)])
    assert m.builds == builds + 2
    # other settings: a different key, timed again
    m2 = CostMeter(MeterSettings(batch_size=128, warmup=0, repeats=2))
    m2.measure_device(task, [Shard("a", 0, 0, 16)])
    assert m2.builds == 1


def test_plan_cost_is_max_over_devices(meter: CostMeter) -> None:
    task = _task(num_devices=3)
    plan = Plan(
        "tiny",
        "manual",
        (
            Shard("a", 0, 0, 16),
            Shard("b", 1, 0, 8),
            Shard("c", 1, 0, 8),
            Shard("c", 0, 8, 8),
            Shard("d", 0, 0, 16),
        ),
    )
    pc = meter.measure_plan(task, plan)
    assert len(pc.devices) == 3
    assert pc.backend == "cpu" and pc.settings == FAST and pc.batch_size == 256
    assert pc.task_batch_size == 4096
    totals = [d.total_ms for d in pc.devices]
    assert pc.total_ms == max(totals)
    assert pc.straggler == totals.index(max(totals))
    for d in pc.devices:
        assert d.fwd_comm_ms == 0.0 and d.bwd_comm_ms == 0.0
        assert d.total_ms == d.fwd_ms + d.bwd_ms
    # the empty device 2 costs nothing; the others match measure_device (cached)
    assert pc.devices[2].total_ms == 0.0 and pc.devices[2].n == 0
    dev0 = meter.measure_device(task, [s for s in plan.shards if s.device == 0])
    assert pc.devices[0].fwd_ms == dev0.fwd_ms and pc.devices[0].bwd_ms == dev0.bwd_ms
    assert pc.to_json()["straggler"] == pc.straggler


def test_measure_plan_validates(meter: CostMeter) -> None:
    task = _task()
    bad = Plan("tiny", "manual", (Shard("a", 0, 0, 8),))
    with pytest.raises(UserError):
        meter.measure_plan(task, bad)


def test_balanced_estimate_is_below_any_additive_table_wise_plan(meter: CostMeter, monkeypatch) -> None:
    """Below every plan *if costs added up*; measured plans may fall below it (not a bound)."""
    task = _task(num_devices=2)
    names = [t.name for t in task.tables]
    # known single-table costs stand in for measurements: 3, 2, 2, 1, ... ms
    hand = {n: float(c) for n, c in zip(names, [3, 2, 2, 1, 1, 1, 1, 1][: len(names)])}

    class _Cost:
        def __init__(self, ms: float) -> None:
            self.total_ms = ms

    monkeypatch.setattr(meter, "single_table_costs", lambda t: {n: _Cost(v) for n, v in hand.items()})
    expected = max(max(hand.values()), sum(hand.values()) / 2)
    assert meter.balanced_estimate(task) == pytest.approx(expected)
    best = min(
        max(sum(hand[n] for n, d in zip(names, assign) if d == k) for k in range(2))
        for assign in itertools.product(range(2), repeat=len(names))
    )
    assert expected <= best  # for additive costs it is the best plan's cost or below


def test_balanced_estimate_from() -> None:
    assert balanced_estimate_from([], 4) == 0.0
    assert balanced_estimate_from([1.0, 1.0, 1.0, 1.0], 2) == 2.0
    assert balanced_estimate_from([5.0, 1.0, 1.0], 2) == 5.0


def test_settings_validated() -> None:
    with pytest.raises(UserError, match="backend"):
        MeterSettings(backend="tpu")
    with pytest.raises(UserError, match="statistic"):
        MeterSettings(statistic="mean")
    with pytest.raises(UserError, match="repeats"):
        MeterSettings(repeats=0)


def test_median_statistic() -> None:
    m = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=3, statistic="median"))
    c = m.measure_device(_task(), [Shard("a", 0, 0, 16)])
    assert c.fwd_ms > 0 and c.bwd_ms > 0 and c.n == 3


def test_round_sizes_sum_to_repeats() -> None:
    assert MeterSettings(repeats=15, rounds=5).round_sizes() == [3, 3, 3, 3, 3]
    assert MeterSettings(repeats=7, rounds=3).round_sizes() == [3, 2, 2]
    assert MeterSettings(repeats=2, rounds=5).round_sizes() == [1, 1]
    with pytest.raises(UserError, match="rounds"):
        MeterSettings(rounds=0)


def test_summarize_statistics_on_known_samples() -> None:
    import numpy as np

    from embedlab.sharding.cost import summarize

    # three rounds of two iterations; round 1 hit by a slow burst
    fwd = np.array([1.0, 1.2, 5.0, 6.0, 1.1, 1.0])
    bwd = np.array([2.0, 2.2, 9.0, 9.0, 2.1, 2.4])
    rounds = np.array([0, 0, 1, 1, 2, 2])
    c = summarize(fwd, bwd, rounds, "round_min_median")
    # per-round minima: fwd 1.0, 5.0, 1.0 -> median 1.0; bwd 2.0, 9.0, 2.1 -> median 2.1
    assert c.fwd_ms == pytest.approx(1.0) and c.bwd_ms == pytest.approx(2.1)
    assert c.by_statistic["min"] == pytest.approx(3.0)
    assert c.by_statistic["median"] == pytest.approx(1.15 + 2.3)
    assert c.by_statistic["round_min_median"] == pytest.approx(3.1)
    assert summarize(fwd, bwd, rounds, "median").total_ms == pytest.approx(3.45)
    assert c.n == 6 and c.cv > 0.5


def test_measure_plans_interleaves_and_matches_single_plan_costs() -> None:
    task = _task(num_devices=2)
    p1 = Plan("tiny", "x", (Shard("a", 0, 0, 16), Shard("b", 0, 0, 8), Shard("c", 1, 0, 16), Shard("d", 1, 0, 16)))  # fmt: skip
    p2 = Plan("tiny", "y", (Shard("a", 0, 0, 16), Shard("c", 0, 0, 16), Shard("d", 0, 0, 16), Shard("b", 1, 0, 8)))  # fmt: skip
    m = CostMeter(MeterSettings(batch_size=128, warmup=1, repeats=4, rounds=2))
    c1, c2 = m.measure_plans(task, [p1, p2])
    assert m.measurements == 4  # four distinct shard sets, one pass
    assert (c1.planner, c2.planner) == ("x", "y")
    again = m.measure_plan(task, p1)  # all cached: identical numbers, nothing re-timed
    assert again.total_ms == c1.total_ms and m.measurements == 4
    for c in (c1, c2):
        assert set(c.total_by_statistic) == {"min", "median", "round_min_median"}
        assert c.total_by_statistic["min"] <= c.total_by_statistic["median"] + 1e-9
        assert c.total_by_statistic["round_min_median"] == pytest.approx(c.total_ms)
        assert all(d.n == 4 for d in c.devices)


def test_max_live_bytes_splits_passes_but_measures_everything() -> None:
    task = _task(num_devices=2)
    m = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2), max_live_bytes=1)
    costs = m.single_table_costs(task)
    assert set(costs) == {"a", "b", "c", "d"}
    assert m.measurements == 3  # "a" and "d" share a spec


def test_budget_exceeded_is_a_clear_error() -> None:
    from embedlab.sharding.cost import MeasurementBudgetExceeded

    task = _task(num_devices=2)
    m = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2), budget_s=0.0)
    with pytest.raises(MeasurementBudgetExceeded, match="budget of 0 s spent"):
        m.measure_device(task, [Shard("a", 0, 0, 16)])
    m.budget_s = 1e9
    m.measure_device(task, [Shard("a", 0, 0, 16)])
    m.budget_s = 0.0  # spent now; cached results are still served
    assert m.measure_device(task, [Shard("d", 1, 0, 16)]).total_ms > 0
    with pytest.raises(MeasurementBudgetExceeded):
        m.measure_device(task, [Shard("c", 0, 0, 16)])


def test_kernel_fuses_the_tasks_optimizer_and_the_cache_keeps_them_apart(monkeypatch) -> None:
    import embedlab.sharding.cost as cost

    seen = []
    real = cost.fused_optimizer
    monkeypatch.setattr(cost, "fused_optimizer", lambda o: seen.append(o) or real(o))
    from dataclasses import replace

    m = CostMeter(FAST)
    base = _task()
    shards = [Shard("a", 0, 0, 16)]
    m.measure_device(base, shards)
    for opt in ("rowwise_adagrad", "adagrad"):
        c = m.measure_device(replace(base, optimizer=opt), shards)
        assert c.fwd_ms > 0 and c.bwd_ms > 0
    assert seen == ["sgd", "rowwise_adagrad", "adagrad"]
    assert m.builds == 3  # one kernel per optimizer: not served from another's cache
    with pytest.raises(UserError, match="no fused 'adam'"):  # FBGEMM's CPU kernel has none
        m.measure_device(replace(base, optimizer="adam"), shards)
    assert real(None).name == "EXACT_SGD" and real("adam").name == "ADAM"
