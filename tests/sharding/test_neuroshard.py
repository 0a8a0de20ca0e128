"""NeuroShard: features, pre-training data (resumable), cost models, simulator, search, planner."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel, input_payload
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.generator import gen_tasks, table_pool
from embedlab.sharding.neuroshard.data import (
    PretrainSettings,
    comm_labels,
    load_compute_samples,
    random_dim_greedy,
    sample_shard,
)
from embedlab.sharding.neuroshard.features import FEATURE_NAMES, NUM_FEATURES, table_features
from embedlab.sharding.neuroshard.model import NeuroShardModel, load_model
from embedlab.sharding.neuroshard.planner import NeuroShardPlanner
from embedlab.sharding.neuroshard.search import SearchSettings, beam_search, grid_search, refine
from embedlab.sharding.neuroshard.simulator import Simulator, combine_costs
from embedlab.sharding.neuroshard.train import pretrain_neuroshard
from embedlab.sharding.planners import Infeasible
from embedlab.sharding.types import Table, Task

COMM = CommModel(0.1, 2e-6, backend="test")


def _model(devices=(2, 4), seed=0) -> NeuroShardModel:
    """An untrained model with the nets' random weights (enough for validity checks)."""
    torch.manual_seed(seed)
    m = NeuroShardModel(compute_scale_ms=2.0, comm_scale_ms=1.0)
    m.compute.set_normalisation(np.random.default_rng(seed).random((50, NUM_FEATURES)))
    for d in devices:
        m.add_device_count(d)
    return m


def _small_pool(n=12):
    return [replace(t, rows=min(t.rows, 1500)) for t in table_pool(n)]


def _tiny_meter():
    return CostMeter(MeterSettings(batch_size=32, warmup=1, repeats=2, rounds=1), comm=COMM)


def _tiny_settings(**kw):
    base = dict(compute_samples=16, chunk=8, max_tables=3, comm_samples=120, device_counts=(2,),
                compute_epochs=10, comm_epochs=3, compute_batch=64, comm_batch=64)  # fmt: skip
    return PretrainSettings(**{**base, **kw})


def test_features_are_the_twenty_in_reference_order():
    assert NUM_FEATURES == 20 and "size" not in FEATURE_NAMES
    assert FEATURE_NAMES[:3] == ("bin_0", "bin_1", "bin_10") and FEATURE_NAMES[-3:] == (
        "dim",
        "pooling_factor",
        "row",
    )
    t = Table("a", 1000, 64, 3.0, 4)
    f, h = table_features(t), table_features(t, columns=32)
    assert f.shape == (20,) and np.isfinite(f).all()
    i = FEATURE_NAMES.index("dim")
    assert f[i] == pytest.approx(0.5) and h[i] == pytest.approx(0.25)
    assert np.array_equal(np.delete(f, i), np.delete(h, i))


def test_simulator_formula_on_hand_made_numbers():
    # base = compute + bw = [4, 2, 3]; sleeps = base - min = [2, 0, 1]
    fw = lambda s: s.max(-1, keepdims=True) - s + 0.5  # noqa: E731 - wait for the slowest
    cost, totals = combine_costs(np.array([3.0, 1.0, 2.5]), np.array([1.0, 1.0, 0.5]), fw)
    assert cost == pytest.approx(4.5)  # every device ends with the slowest, then 0.5 ms of transfer
    assert totals == pytest.approx([4.5, 4.5, 4.5])
    seen = []
    cost, totals = combine_costs(np.array([3.0, 1.0]), np.array([1.0, 2.0]),
                                 lambda s: seen.append(s.copy()) or np.array([0.25, 2.0]))  # fmt: skip
    assert seen[0] == pytest.approx([1.0, 0.0])
    assert totals == pytest.approx([4.25, 5.0]) and cost == pytest.approx(5.0)
    # batched over a leading axis
    c, _ = combine_costs(np.ones((3, 2)), np.zeros((3, 2)), lambda s: np.zeros_like(s))
    assert c.shape == (3,) and np.all(c == 1.0)


def test_simulator_cost_is_the_formula_over_model_parts():
    m = _model()
    task = gen_tasks("neuroshard", 12, 4, 1, seed=3)[0]
    sim = Simulator(m, task)
    pieces = [(i, 0, t.dim) for i, t in enumerate(task.tables)]
    devs = np.arange(len(pieces)) % 4
    cost, totals = sim.cost(pieces, devs)
    assert np.isfinite(cost) and cost == pytest.approx(totals.max())
    # the grid search's batched cost of a placement equals the simulator's cost of it
    c, d, lim = grid_search(sim, pieces)
    assert c == pytest.approx(sim.cost(pieces, d)[0], rel=1e-9)
    assert 1.0 <= lim <= 1.5


def test_data_sampling_and_comm_labels():
    pool = _small_pool()
    st = PretrainSettings(max_tables=15, shard_memory_bytes=2_000_000)
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = sample_shard(pool, st, rng)
        assert 1 <= len(s) <= 15 and all(d in st.dims for _, d in s)
        assert sum(pool[i].rows * d * 4 for i, d in s) <= st.shard_memory_bytes
    sums = random_dim_greedy(np.array([4, 8, 16, 128]), 3, np.random.default_rng(1))
    assert sums.sum() == 156 and len(sums) == 3
    sleeps = np.array([0.0, 5.0, 2.0])
    fw, bw = comm_labels(COMM, np.array([100.0, 50.0, 10.0]), sleeps, 256)
    f0, b0 = COMM.all_to_all_ms([100, 50, 10], 256)
    assert fw + sleeps == pytest.approx(
        np.full(3, 5.0 + f0)
    )  # all end when the straggler's transfer ends
    assert bw == pytest.approx(np.full(3, b0))


def test_plans_are_valid_on_neuroshard_tasks():
    planner = NeuroShardPlanner(_model(), SearchSettings(rounds=3))
    for task in gen_tasks("neuroshard", 20, 4, 3, seed=1):
        plan = planner.plan(task)
        plan.validate(task)  # every table covered exactly once, memory respected
        assert max(plan.device_memory(task)) <= task.device_memory_bytes
        assert {s.table for s in plan.shards} == {t.name for t in task.tables}
        assert plan.planner == "neuroshard" and plan.planning_seconds > 0
        assert plan.estimated_cost_ms is not None and np.isfinite(plan.estimated_cost_ms)


def test_refinement_lowers_the_simulated_cost_within_memory():
    model = _model(seed=3)
    improved = 0
    for task in gen_tasks("neuroshard", 20, 4, 4, seed=2):
        sim = Simulator(model, task)
        base = beam_search(sim, SearchSettings(rounds=2))
        devs, cost = refine(sim, base.pieces, base.devices, 30)
        assert cost <= base.cost + 1e-9 and cost == pytest.approx(sim.cost(base.pieces, devs)[0])
        used = np.zeros(task.num_devices)
        np.add.at(used, devs, sim.piece_sizes(base.pieces))
        assert (used <= task.device_memory_bytes).all()
        improved += cost < base.cost
        # the planner's setting runs the same descent after the search, deterministically
        res = beam_search(sim, SearchSettings(rounds=2, refine_steps=30))
        assert res.cost == pytest.approx(cost) and np.array_equal(res.devices, devs)
        plan = NeuroShardPlanner(model, SearchSettings(rounds=2, refine_steps=30)).plan(task)
        plan.validate(task)
    assert improved  # greedy placements of random networks leave moves that help
    with pytest.raises(UserError):
        SearchSettings(refine_steps=-1)


def test_search_settings_variants_and_the_registered_default():
    from embedlab.sharding.neuroshard.planner import DEFAULT_SEARCH, search_settings
    from embedlab.sharding.planners import get_planner

    assert search_settings("refine20") == SearchSettings(refine_steps=20)
    assert search_settings("refine0") == SearchSettings()
    assert search_settings("input-refine20") == SearchSettings(refine_steps=20, input_comm=True)
    assert search_settings("input") == SearchSettings(input_comm=True)
    for bad in ("refine", "refinex", "beam3", "input-refine", "inputs-refine20"):
        with pytest.raises(UserError, match="unknown NeuroShard search"):
            search_settings(bad)
    assert get_planner("neuroshard").settings == search_settings(DEFAULT_SEARCH)
    assert NeuroShardPlanner(_model(), name="neuroshard-x").name == "neuroshard-x"


def _with_input_comm(model, comm=CommModel(0.1, 2e-6, kinds={"input": [0.3, 4e-6]}), batch=512):
    model.meta.update(comm_model=comm.to_json(), meter={"batch_size": batch})
    return model


def test_input_all_to_all_in_the_simulator_is_the_comm_models():
    comm = CommModel(0.1, 2e-6, kinds={"input": [0.3, 4e-6]})
    model = _with_input_comm(_model(seed=4), comm, 512)
    task = gen_tasks("neuroshard", 16, 4, 1, seed=5)[0]
    plain, sim = Simulator(model, task), Simulator(model, task, input_comm=True)
    rng = np.random.default_rng(0)
    pay = rng.uniform(0, 500, (7, 4))
    want = [comm.input_ms(list(p), 512) for p in pay]
    assert sim.input_ms(pay) == pytest.approx(want, rel=1e-9)
    assert plain.input_ms(pay) == pytest.approx(np.zeros(7))
    # a plan's cost: the reference's plus the input all-to-all of its devices' payloads; a halved
    # table's two pieces both carry its ids
    pieces = [(i, 0, t.dim) for i, t in enumerate(task.tables)]
    j = next(i for i, t in enumerate(task.tables) if t.dim >= 8)
    half = task.tables[j].dim // 2
    pieces[j] = (j, 0, half)
    pieces.append((j, half, half))
    devs = np.arange(len(pieces)) % 4
    payload = np.zeros(4)
    for (t, _, _), d in zip(pieces, devs):
        payload[d] += input_payload(task.tables[t].pooling_factor)
    got = sim.cost(pieces, devs)[0] - plain.cost(pieces, devs)[0]
    assert got == pytest.approx(comm.input_ms(list(payload), 512), rel=1e-9)
    # the batched greedy and the descent price it the same way
    c, d, _ = grid_search(sim, pieces)
    assert c == pytest.approx(sim.cost(pieces, d)[0], rel=1e-9)
    devs2, cost = refine(sim, pieces, d, 30)
    assert cost <= c + 1e-9 and cost == pytest.approx(sim.cost(pieces, devs2)[0], rel=1e-9)
    plan = NeuroShardPlanner(model, SearchSettings(rounds=2, refine_steps=10, input_comm=True)).plan(task)
    plan.validate(task)
    assert plan.estimated_cost_ms == pytest.approx(Simulator(model, task, True).cost(
        [(task.tables.index(task.table(s.table)), s.column_offset, s.columns) for s in plan.shards],
        [s.device for s in plan.shards])[0], rel=1e-9)  # fmt: skip
    with pytest.raises(UserError, match="no input all-to-all"):
        Simulator(_model(), task, input_comm=True)


def _tight_task():
    big = Table("big", 1000, 64, 5.0, 4)  # 256,000 bytes: fits on no device whole
    small = tuple(Table(f"s{i}", 500, 8, 2.0, 4) for i in range(4))  # 16,000 bytes each
    return Task("tight", 2, 200_000, 1024, (big, *small))  # one halving always fits


def test_beam_search_splits_a_table_that_cannot_fit_whole():
    task = _tight_task()
    model = _model()
    with pytest.raises(Infeasible):
        NeuroShardPlanner(model, SearchSettings(column_wise=False)).plan(task)
    planner = NeuroShardPlanner(model)
    plan = planner.plan(task)
    plan.validate(task)
    big = sorted((s.column_offset, s.columns, s.device) for s in plan.shards if s.table == "big")
    assert len(big) >= 2 and sum(c for _, c, _ in big) == 64
    assert len({d for _, _, d in big}) == 2  # the halves had to go to different devices
    assert planner.last_result.steps and planner.last_result.pieces[0][2] < 64
    # the table-wise start is infeasible; beam search still scores the column-wise candidates
    res = beam_search(Simulator(model, task), SearchSettings(rounds=1))
    assert np.isfinite(res.cost) and res.steps == [0]


def test_save_load_round_trip(tmp_path):
    m = _model(devices=(2, 4, 8))
    m.meta = {"command": "test", "seed": 0, "backend": "cpu"}
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "weights.pt").is_file()
    m2 = load_model(tmp_path / "m")
    assert m2.device_counts == [2, 4, 8] and m2.meta == m.meta
    assert m2.compute_scale_ms == m.compute_scale_ms and m2.comm_scale_ms == m.comm_scale_ms
    task = gen_tasks("neuroshard", 15, 4, 1, seed=2)[0]
    p1, p2 = NeuroShardPlanner(m).plan(task), NeuroShardPlanner(tmp_path / "m").plan(task)
    assert p1.shards == p2.shards and p1.estimated_cost_ms == pytest.approx(p2.estimated_cost_ms)
    # weights are loaded weights-only (no pickled objects)
    w = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    assert set(w) >= {"compute", "comm_2_fw", "comm_8_bw"}


def test_pretraining_resumes_with_a_tiny_budget(tmp_path):
    pool, run = _small_pool(), tmp_path / "run"
    m1 = pretrain_neuroshard(run, meter=_tiny_meter(), settings=_tiny_settings(), pool=pool,
                             measure_budget_s=1e-9, show_progress=False, meta={"command": "test"})  # fmt: skip
    first = load_compute_samples(run / "compute_data.jsonl")
    assert len(first) == 8  # one chunk, then the budget stopped collection
    log = json.loads((run / "log.json").read_text())
    assert log["collection"]["stopped"] == "budget" and log["compute"]["held_out"] is False
    assert m1.meta["command"] == "test" and m1.meta["backend"] == "cpu" and m1.meta["seed"] == 0
    with pytest.raises(UserError):  # data there: refuse to start over silently
        pretrain_neuroshard(
            run, meter=_tiny_meter(), settings=_tiny_settings(), pool=pool, show_progress=False
        )
    with pytest.raises(UserError):  # resume with other settings
        pretrain_neuroshard(run, meter=_tiny_meter(), settings=_tiny_settings(max_tables=4), resume=True,
                            show_progress=False)  # fmt: skip
    # a torn last line (killed writer) is dropped on resume
    with open(run / "compute_data.jsonl", "a") as f:
        f.write('{"chunk": 1, "conf')
    m2 = pretrain_neuroshard(
        run, meter=_tiny_meter(), settings=_tiny_settings(), resume=True, show_progress=False
    )
    both = load_compute_samples(run / "compute_data.jsonl")
    assert len(both) == 16 and both[:8] == first and {s.chunk for s in both} == {0, 1}
    assert all(s.total_ms > 0 for s in both)
    loaded = load_model(run / "model")
    assert loaded.device_counts == [2] and loaded.meta["compute_samples"] == 16
    assert np.isfinite(loaded.meta["compute_test_mape"])
    task = Task(
        "t", 2, 10**9, 256, tuple(replace(pool[i], dim=16, bytes_per_element=4) for i in range(6))
    )
    NeuroShardPlanner(run / "model").plan(task).validate(task)
    assert m2.compute_scale_ms > 0


def test_user_errors(tmp_path):
    with pytest.raises(UserError):
        PretrainSettings(chunk=0)
    with pytest.raises(UserError):
        PretrainSettings(device_counts=(1,))
    with pytest.raises(UserError):
        SearchSettings(balance_start=1.5, balance_end=1.0)
    with pytest.raises(UserError):
        load_model(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text('{"format": "other"}')
    (tmp_path / "bad" / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        load_model(tmp_path / "bad")
    with pytest.raises(UserError):  # no communication networks for 3 devices
        NeuroShardPlanner(_model(devices=(2, 4))).plan(gen_tasks("neuroshard", 10, 3, 1)[0])
    with pytest.raises(UserError):
        pretrain_neuroshard(tmp_path / "r", meter=_tiny_meter(), settings=_tiny_settings(), pool=_small_pool(),
                            measure_budget_s=-1, show_progress=False)  # fmt: skip
    with pytest.raises(UserError):  # the budget allows too few samples to train on
        pretrain_neuroshard(tmp_path / "r2", meter=_tiny_meter(), settings=_tiny_settings(), pool=_small_pool(),
                            measure_budget_s=0.0, show_progress=False)  # fmt: skip


def test_default_model_plans_when_shipped():
    from embedlab.sharding.neuroshard.planner import DEFAULT_MODEL

    if not (DEFAULT_MODEL / "model.json").is_file():
        pytest.skip("no default NeuroShard model in this install")
    planner = NeuroShardPlanner()
    assert {"command", "seed", "backend"} <= set(planner.model.meta)
    task = gen_tasks("neuroshard", 12, 4, 1, seed=7)[0]
    plan = planner.plan(task)
    plan.validate(task)
    assert plan.estimated_cost_ms > 0
