from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel, calibrate, fit_alpha_beta
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.types import Plan, Shard, Table, Task


def test_fit_recovers_a_line():
    a, b = fit_alpha_beta([0, 1000, 5000], [0.5, 0.5 + 2e-3, 0.5 + 1e-2])
    assert a == pytest.approx(0.5) and b == pytest.approx(2e-6)
    with pytest.raises(ValueError):
        fit_alpha_beta([10, 10], [1, 2])


def test_all_to_all_volumes_by_hand():
    m = CommModel(alpha_ms=1.0, beta_ms_per_byte=1e-3)
    # 2 devices with 16 and 48 columns, batch 100, fp32: device 1 sends 100*48*4/2 = 9600 bytes
    fwd, bwd = m.all_to_all_ms([16, 48], 100)
    assert fwd == pytest.approx(1.0 + 9.6) and bwd == pytest.approx(1.0 + 9.6)
    assert m.all_to_all_ms([64], 100) == (0.0, 0.0)


def test_round_trip_and_bad_file(tmp_path):
    m = CommModel(0.2, 1e-6, "gloo-cpu", {"world_size": 2})
    m.save(tmp_path / "c.json")
    assert CommModel.load(tmp_path / "c.json") == m
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a communication model"):
        CommModel.load(tmp_path / "bad.json")


def test_meter_adds_communication_and_the_wait_for_the_slowest_device():
    task = Task("c", 2, 10**8, 64, (Table("a", 500, 8, 2.0), Table("b", 50_000, 64, 9.0)))
    plan = Plan("c", "x", (Shard("a", 0, 0, 8), Shard("b", 1, 0, 64)))
    comm = CommModel(1.0, 0.0, kinds={"input": [0.5, 0.0], "output_bwd": [2.0, 0.0]})
    meter = CostMeter(MeterSettings(batch_size=64, repeats=2, warmup=1), comm=comm)
    cost = meter.measure_plan(task, plan)
    max_fwd = max(d.fwd_ms for d in cost.devices)
    max_bwd = max(d.bwd_ms for d in cost.devices)
    for d in cost.devices:
        assert d.input_comm_ms == 0.5 and d.bwd_comm_ms == 2.0
        assert d.fwd_comm_ms == pytest.approx(1.0 + max_fwd - d.fwd_ms)
    assert cost.input_counted
    assert cost.total_ms == pytest.approx(0.5 + max_fwd + 1.0 + 2.0 + max_bwd)
    assert cost.total_by_statistic[meter.settings.statistic] == pytest.approx(cost.total_ms)
    # without an input line the input all-to-all is left out, and the cost says so
    old = CostMeter(meter.settings, comm=CommModel(1.0, 0.0))
    assert not old.measure_plan(task, plan).input_counted


def test_input_all_to_all_volumes_by_hand():
    m = CommModel(0.0, 0.0, kinds={"input": [1.0, 1e-3]})
    # 2 devices, batch 100: device 0 holds payload 20 B/sample, device 1 holds 100 B/sample.
    # device 1 receives 50 * 1 * 100 = 5000 bytes; device 0 sends 50 * 100 = 5000 bytes too.
    assert m.input_ms([20.0, 100.0], 100) == pytest.approx(1.0 + 5.0)
    assert m.input_ms([120.0], 100) == 0.0
    assert CommModel(1.0, 1e-3).input_ms([20.0, 100.0], 100) == 0.0


def test_calibrate_with_two_gloo_processes_fits_every_kind():
    m = calibrate(2, sizes=(64, 512), rounds=2, repeats=2)
    assert m.backend == "gloo-cpu" and set(m.kinds) == {"input", "output_fwd", "output_bwd"}
    assert (m.alpha_ms, m.beta_ms_per_byte) == tuple(m.kinds["output_fwd"])
    for kind, pts in m.settings["points"].items():
        assert len(pts) == 2 and all(t > 0 for _, t in pts), kind
        # each kind's line is the relative fit of its own points, bytes growing with the batch
        assert pts[0][0] < pts[1][0], kind
        assert m.kinds[kind] == list(fit_alpha_beta(*zip(*pts), relative=True)), kind
    assert CommModel.from_json(m.to_json()) == m


def test_comm_lower_bound_is_below_every_plans_comm() -> None:
    import itertools

    from embedlab.sharding.types import Table, Task

    tables = tuple(Table(f"t{i}", 100, dim, 1.0) for i, dim in enumerate((4, 8, 16, 32, 64)))
    task = Task("c", 3, 10**9, 1024, tables)
    meter = CostMeter(MeterSettings(batch_size=256), comm=CommModel(0.5, 1e-6))
    lb = meter.comm_lower_bound(task)
    assert lb > 0
    seen = []
    for devs in itertools.product(range(3), repeat=len(tables)):
        cols = [sum(t.dim for t, d in zip(tables, devs) if d == k) for k in range(3)]
        seen.append(sum(meter.comm.all_to_all_ms(cols, 256)))
    assert lb <= min(seen) + 1e-12
    assert CostMeter(MeterSettings()).comm_lower_bound(task) == 0.0
