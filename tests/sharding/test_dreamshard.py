"""DreamShard: features, networks, the estimated MDP, training with resume, the planner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeterSettings
from embedlab.sharding.dreamshard.agent import (
    DreamShardModel,
    EstimatedMDP,
    reinforce_loss,
    rollout,
    search_placement,
    task_tensors,
)
from embedlab.sharding.dreamshard.features import NUM_FEATURES, table_features, task_features
from embedlab.sharding.dreamshard.model import cost_loss
from embedlab.sharding.dreamshard.train import (
    CostSample,
    TrainSettings,
    batch_tensors,
    cost_mape,
    train_dreamshard,
)
from embedlab.sharding.planners import get_planner
from embedlab.sharding.types import Table, Task


def _task(n=8, d=3, seed=0, memory=10**9, name="t"):
    rng = np.random.default_rng(seed)
    tables = tuple(
        Table(f"{name}{i}", int(rng.integers(200, 3000)), 8, float(rng.uniform(1, 6)), 2)
        for i in range(n)
    )
    return Task(name, d, memory, 256, tables)


def test_features_are_global_and_deterministic():
    t = _task()
    f = task_features(t)
    assert f.shape == (8, NUM_FEATURES) and np.isfinite(f).all()
    assert np.array_equal(f, task_features(t))
    # a table's features do not depend on the other tables of its task
    assert np.array_equal(
        table_features(t.tables[0]), task_features(Task("x", 2, 10**9, 1, t.tables[:1]))[0]
    )


def test_features_drawn_on_threads_match_the_callers_thread(monkeypatch):
    from embedlab.sharding.dreamshard import features

    t = _task(n=24, seed=5, name="par")
    pools = []

    class Pool(features.ThreadPoolExecutor):
        def __init__(self, workers):
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(features, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(features, "_BINS", {})
    monkeypatch.setattr(features, "_PARALLEL_MIN", 10**9)
    serial = task_features(t)
    assert pools == []
    monkeypatch.setattr(features, "_BINS", {})
    monkeypatch.setattr(features, "_PARALLEL_MIN", 2)
    monkeypatch.setattr(features.os, "cpu_count", lambda: 4)
    assert np.array_equal(serial, task_features(t))
    assert pools == [4]
    task_features(t)  # every spec drawn already: no pool
    assert pools == [4]


def test_cost_net_learns_a_max_of_sums():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(200):
        feats = [
            rng.random((int(rng.integers(1, 5)), NUM_FEATURES)).astype(np.float32) for _ in range(3)
        ]
        parts = np.array([[f[:, 0].sum(), f[:, 1].sum(), 0.1] for f in feats], dtype=np.float32)
        samples.append(CostSample(feats, parts, float(parts.sum(1).max())))
    model = DreamShardModel(scale_ms=1.0)
    before = cost_mape(model, samples)
    opt = torch.optim.Adam(model.cost.parameters(), lr=3e-3)
    for _ in range(400):
        idx = rng.choice(200, 32, replace=False)
        loss = cost_loss(model.cost, *batch_tensors([samples[i] for i in idx], 1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = cost_mape(model, samples)
    assert after < before and after < 0.15


def test_rollouts_respect_memory_and_greedy_is_deterministic():
    t = _task(n=10, d=3, memory=3 * 3000 * 8 * 2)  # tight: about 3 big tables per device
    tt = task_tensors(t)
    model = DreamShardModel()
    r = rollout(model, tt, episodes=6, generator=torch.Generator().manual_seed(1), grad=True)
    sizes = np.array([x.size_bytes for x in t.tables])
    fits = [
        bool((np.bincount(r.placement[e].numpy(), weights=sizes, minlength=3) <= t.device_memory_bytes).all())
        for e in range(6)
    ]
    # the mask keeps every episode within memory on this task, and `feasible` says so
    assert all(fits) and r.feasible.tolist() == fits
    reinforce_loss(r).backward()
    g1 = rollout(model, tt, greedy=True).placement
    assert torch.equal(g1, rollout(model, tt, greedy=True).placement)


def test_estimated_mdp_steps():
    t = _task(n=4, d=2)
    env = EstimatedMDP(DreamShardModel(), t)
    obs, info = env.reset()
    assert obs.shape == (2, 4) and info["legal"].all()
    done, reward = False, 0.0
    while not done:
        obs, reward, done, _, info = env.step(0)
    assert obs[0].sum() == 4 and isinstance(reward, float)


def test_training_resume_and_planner(tmp_path):
    tasks = [_task(n=6, d=2, seed=s, name=f"k{s}") for s in range(3)]
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1))
    st = TrainSettings(
        iterations=2, rollout_tasks=2, cost_steps=5, cost_batch=4, rl_batches=2, rl_episodes=3
    )
    model = train_dreamshard(
        tasks, tmp_path / "run", meter, st, show_progress=False, meta={"seed": 0}
    )
    assert (tmp_path / "run" / "model" / "weights.pt").is_file()
    assert model.meta["iterations"] == 2 and model.meta["samples"] >= 2 and model.scale_ms > 0
    again = train_dreamshard(tasks, tmp_path / "run", meter, st, resume=True, show_progress=False)
    assert (
        again.meta["iterations"] == 2
    )  # nothing left to do: the finished run is loaded, not redone
    with pytest.raises(UserError, match="other settings"):
        train_dreamshard(
            tasks,
            tmp_path / "run",
            meter,
            TrainSettings(iterations=3),
            resume=True,
            show_progress=False,
        )
    planner = get_planner("dreamshard", model=str(tmp_path / "run" / "model"))
    test_task = _task(n=12, d=3, seed=9, name="unseen")  # other table count and device count
    plan = planner.plan(test_task)
    plan.validate(test_task)
    assert plan.estimated_cost_ms is not None and plan.estimated_cost_ms > 0
    with pytest.raises(UserError, match="takes no --model"):
        get_planner("size_greedy", model="x")
    with pytest.raises(UserError, match="not a DreamShard model folder"):
        get_planner("dreamshard", model=str(tmp_path))


def test_default_model_ships_and_plans_unseen_tasks():
    from embedlab.sharding.dreamshard.planner import DEFAULT_MODEL
    from embedlab.sharding.generator import gen_tasks

    assert (DEFAULT_MODEL / "model.json").is_file() and (DEFAULT_MODEL / "weights.pt").is_file()
    planner = get_planner("dreamshard")
    assert planner.model.meta["backend"] == "cpu" and "command" in planner.model.meta
    for task in gen_tasks("dreamshard", 30, 3, 2, seed=5, split="test"):
        plan = planner.plan(task)
        plan.validate(task)
        assert plan.planner == "dreamshard" and plan.estimated_cost_ms > 0


def test_gymnasium_env_passes_the_checker_and_plays_episodes():
    import gymnasium as gym  # a dev dependency: CI must have it
    from gymnasium.utils.env_checker import check_env

    from embedlab.sharding.dreamshard.gym_env import make_env

    tasks = [_task(n=4, d=2, seed=1, name="a"), _task(n=6, d=2, seed=2, name="b")]
    env = make_env(DreamShardModel(), tasks)
    assert isinstance(env, gym.Env)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs["placement"].shape == (2, 6) and info["action_mask"].tolist() == [1, 1]
    total, done, steps = 0.0, False, 0
    while not done:
        obs, reward, done, trunc, info = env.step(int(np.argmax(info["action_mask"])))
        total += reward
        steps += 1
    assert steps == len(next(t for t in tasks if t.name == info["task"]).tables)
    assert (
        np.isfinite(total) and total != 0 and obs["placement"].sum() == steps
    )  # minus the predicted cost
    with pytest.raises(Exception, match="same number of devices"):
        make_env(DreamShardModel(), [_task(n=4, d=2), _task(n=4, d=3)])


def _moves_and_memory_ok(t, place):
    sizes = np.array([x.size_bytes for x in t.tables])
    used = np.bincount(place.numpy(), weights=sizes, minlength=t.num_devices)
    return (used <= t.device_memory_bytes).all()


@pytest.mark.parametrize("analytic,form", [(False, "overall"), (True, "overall"), (True, "composed")])
def test_predicted_costs_match_the_rollout_and_refinement_reaches_a_local_minimum(analytic, form):
    from embedlab.sharding.dreamshard.agent import predicted_costs, refine_placement

    torch.manual_seed(3)
    t = _task(n=12, d=3, memory=5 * 3000 * 8 * 2)
    t = Task(t.name, t.num_devices, t.device_memory_bytes, t.batch_size,
             tuple(Table(x.name, x.rows, 4 + 4 * (i % 5), x.pooling_factor, 2) for i, x in enumerate(t.tables)))  # fmt: skip
    tt = task_tensors(t)
    model = DreamShardModel()
    if analytic:  # communication large enough to move the optimum
        model.comm = CommModel(0.01, 1e-3, kinds={"input": [0.02, 2e-3]})  # input moves it too
        model.comm_batch = 64
    r = rollout(model, tt, greedy=True, form=form)
    start = r.placement[0]
    assert float(predicted_costs(model, tt, start[None], form=form)[0]) == pytest.approx(
        float(r.predicted[0]), rel=1e-5
    )
    place, pred = refine_placement(model, tt, start, steps=200, form=form)
    assert pred <= float(r.predicted[0]) + 1e-6
    assert pred == pytest.approx(float(predicted_costs(model, tt, place[None], form=form)[0]), rel=1e-5)
    assert _moves_and_memory_ok(t, place)
    # no single legal move improves the prediction by more than the tolerance
    sizes = tt.sizes.numpy()
    for i in range(12):
        for d in range(3):
            if d == int(place[i]):
                continue
            p = place.clone()
            p[i] = d
            used = np.bincount(p.numpy(), weights=sizes, minlength=3)
            if (used <= tt.memory).all():
                assert (
                    float(predicted_costs(model, tt, p[None], form=form)[0]) >= pred - 1e-4 * abs(pred) - 1e-7
                )


def test_planner_search_options_never_predict_worse_than_greedy(tmp_path):
    from embedlab.sharding.dreamshard.planner import DreamShardPlanner

    torch.manual_seed(0)
    model = DreamShardModel()
    model.save(tmp_path / "m")
    t = _task(n=15, d=4)
    greedy = DreamShardPlanner(tmp_path / "m").plan(t)
    best = DreamShardPlanner(tmp_path / "m", samples=32, seed=1, name="ds-best").plan(t)
    both = DreamShardPlanner(tmp_path / "m", samples=32, refine_steps=50, seed=1).plan(t)
    for p in (greedy, best, both):
        p.validate(t)
    assert best.planner == "ds-best"
    assert best.estimated_cost_ms <= greedy.estimated_cost_ms + 1e-9
    assert both.estimated_cost_ms <= best.estimated_cost_ms + 1e-9
    again = DreamShardPlanner(tmp_path / "m", samples=32, refine_steps=50, seed=1).plan(t)
    assert again.shards == both.shards
    with pytest.raises(UserError, match=">= 0"):
        DreamShardPlanner(tmp_path / "m", samples=-1)


def test_batched_all_to_all_equals_the_comm_model():
    from embedlab.sharding.dreamshard.agent import all_to_all_total_ms

    comm = CommModel(0.3, 2e-6)
    rng = np.random.default_rng(0)
    for d in (1, 2, 4, 8):
        cols = rng.integers(0, 400, size=(5, d))
        got = all_to_all_total_ms(comm, torch.tensor(cols, dtype=torch.float32), 512)
        want = [sum(comm.all_to_all_ms(list(c), 512)) for c in cols.tolist()]
        assert got.shape == (5,)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_batched_input_all_to_all_equals_the_comm_model():
    from embedlab.sharding.dreamshard.agent import input_total_ms

    comm = CommModel(0.3, 2e-6, kinds={"input": [0.5, 3e-6]})
    rng = np.random.default_rng(1)
    for d in (1, 2, 4, 8):
        pay = rng.uniform(0, 400, size=(5, d))
        got = input_total_ms(comm, torch.tensor(pay, dtype=torch.float32), 512)
        np.testing.assert_allclose(got.numpy(), [comm.input_ms(list(p), 512) for p in pay], rtol=1e-5)
    assert input_total_ms(CommModel(0.3, 2e-6), torch.ones(2, 4), 512).abs().sum() == 0  # no input line


def test_composed_cost_is_the_dmp_step_over_the_device_heads(tmp_path):
    from embedlab.sharding.dreamshard.agent import (
        all_to_all_total_ms,
        input_total_ms,
        predicted_costs,
    )
    from embedlab.sharding.dreamshard.planner import DreamShardPlanner

    torch.manual_seed(2)
    comm = CommModel(0.3, 2e-6, kinds={"input": [0.5, 3e-6]})
    model = DreamShardModel(scale_ms=4.0, comm=comm, comm_batch=256)
    t = _task(n=10, d=3, seed=4)
    tt = task_tensors(t)
    place = torch.tensor([i % 3 for i in range(10)])
    mask = torch.zeros(3, 10)
    mask[place, torch.arange(10)] = 1.0
    parts = model.cost.parts(mask @ model.cost.table_fc(tt.feats)).detach()
    want = (parts[:, 0].max() + parts[:, 1].max() + all_to_all_total_ms(comm, mask @ tt.cols, 256) / 4.0
            + input_total_ms(comm, mask @ tt.payload, 256) / 4.0)  # fmt: skip
    got = predicted_costs(model, tt, place[None], form="composed")[0]
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert float(got) != pytest.approx(float(predicted_costs(model, tt, place[None])[0]), rel=1e-3)
    model.save(tmp_path / "m")
    from embedlab.sharding.dreamshard import agent

    a = DreamShardPlanner(tmp_path / "m", refine_steps=30, cost="composed").plan(t)
    descents = []
    real = agent.refine_placement

    def spy(*args, **kw):
        out = real(*args, **kw)
        descents.append(out[1])
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent, "refine_placement", spy)
        b = DreamShardPlanner(tmp_path / "m", refine_steps=30, cost="composed", starts=8, seed=3).plan(t)
    a.validate(t)
    b.validate(t)
    assert len(descents) == 9  # the greedy placement and 8 samples, each refined
    assert b.estimated_cost_ms == pytest.approx(min(descents) * model.scale_ms, rel=1e-6)
    assert a.estimated_cost_ms == pytest.approx(descents[0] * model.scale_ms, rel=1e-6)
    from embedlab.sharding.moves import heuristic_placements

    heur = heuristic_placements(t)
    starts = []

    def spy_starts(m, tt_, start, *args, **kw):
        starts.append(start.tolist())
        return real(m, tt_, start, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent, "refine_placement", spy_starts)
        c = DreamShardPlanner(tmp_path / "m", refine_steps=30, cost="composed", heuristics=True).plan(t)
    c.validate(t)
    assert starts[1:] == [h.tolist() for h in heur]  # the greedy placement, then each heuristic's
    for h in heur:  # descending from a heuristic's placement never ends above its prediction
        assert c.estimated_cost_ms <= float(predicted_costs(model, tt, torch.as_tensor(h)[None], form="composed")[0]) * 4.0 + 1e-6
    with pytest.raises(UserError, match="refine"):
        DreamShardPlanner(tmp_path / "m", starts=8)
    with pytest.raises(UserError, match="refine"):
        DreamShardPlanner(tmp_path / "m", heuristics=True)
    with pytest.raises(UserError, match="cost form"):
        DreamShardPlanner(tmp_path / "m", cost="sum")
    DreamShardModel().save(tmp_path / "learned")
    with pytest.raises(UserError, match="analytic"):
        DreamShardPlanner(tmp_path / "learned", cost="composed")


def test_composed_candidates_equal_the_cost_of_each_changed_placement():
    from embedlab.sharding.dreamshard.agent import composed_candidates, predicted_costs
    from embedlab.sharding.moves import apply_candidate, neighbours

    torch.manual_seed(5)
    comm = CommModel(0.3, 2e-6, kinds={"input": [0.5, 3e-6]})
    model = DreamShardModel(scale_ms=4.0, comm=comm, comm_batch=256)
    for d, n, seed in ((2, 7, 0), (4, 12, 1), (5, 9, 2)):
        t = _task(n=n, d=d, seed=seed)
        tt = task_tensors(t)
        place = torch.as_tensor(np.random.default_rng(seed).integers(0, d - 1, size=n))  # device d-1 empty
        with torch.no_grad():
            enc = model.cost.table_fc(tt.feats)
            vec = torch.zeros(d, enc.shape[1]).index_add_(0, place, enc)
            cols = torch.zeros(d).index_add_(0, place, tt.cols)
            pay = torch.zeros(d).index_add_(0, place, tt.payload)
            straggler = int(place[0])
            nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, d)
            got = composed_candidates(model, enc, tt, place, nb, straggler, (vec, cols, pay, model.cost.parts(vec)))
            placements = []
            for i in range(len(nb)):
                p = place.clone()
                apply_candidate(p, nb, i, straggler)
                placements.append(p)
            want = predicted_costs(model, tt, torch.stack(placements), form="composed")
        assert got.shape == (len(nb),)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_analytic_comm_training_targets_model_round_trip_and_override(tmp_path):
    from embedlab.sharding.dreamshard.agent import predicted_costs
    from embedlab.sharding.dreamshard.planner import DreamShardPlanner
    from embedlab.sharding.dreamshard.train import sample_columns

    tasks = [_task(n=6, d=2, seed=s, name=f"a{s}") for s in range(3)]
    comm = CommModel(0.2, 1e-5)
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1), comm=comm)
    st = TrainSettings(
        iterations=1, rollout_tasks=2, cost_steps=3, cost_batch=4, rl_batches=1, rl_episodes=2
    )
    model = train_dreamshard(tasks, tmp_path / "run", meter, st, show_progress=False)
    assert model.comm == comm and model.comm_batch == 64
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    s = CostSample.from_state(ck["samples"][0])
    want = sum(comm.all_to_all_ms(sample_columns(s), 64))
    assert s.comm_ms == pytest.approx(want, rel=1e-6) and s.comm_ms > 0
    *_, overall, _ = batch_tensors([s], 2.0, minus_comm=True)
    assert float(overall[0]) == pytest.approx((s.overall - s.comm_ms) / 2.0, rel=1e-6)
    # an older checkpoint (no "comm" entry): forward and backward all-to-all are equal
    old = {k: v for k, v in ck["samples"][0].items() if k != "comm"}
    assert CostSample.from_state(old).comm_ms == pytest.approx(s.comm_ms, rel=1e-5)
    loaded = DreamShardModel.load(tmp_path / "run" / "model")
    assert loaded.comm == comm and loaded.comm_batch == 64
    # a planning-time comm model changes the prediction by exactly the difference in all-to-all time
    t = _task(n=6, d=4)
    tt = task_tensors(t)
    place = torch.tensor([[0, 1, 2, 3, 0, 1]])
    slow = CommModel(1.0, 1e-4)
    cols = [sum(x.dim for x, p in zip(t.tables, place[0].tolist()) if p == d) for d in range(4)]
    diff = (sum(slow.all_to_all_ms(cols, 64)) - sum(comm.all_to_all_ms(cols, 64))) / loaded.scale_ms
    got = float(predicted_costs(loaded, tt, place, slow)[0] - predicted_costs(loaded, tt, place)[0])
    assert got == pytest.approx(diff, rel=1e-4)
    plan = DreamShardPlanner(tmp_path / "run" / "model", comm=slow).plan(t)
    plan.validate(t)
    # a model that learned communication takes no communication model
    DreamShardModel().save(tmp_path / "learned")
    with pytest.raises(UserError, match="learned communication"):
        DreamShardPlanner(tmp_path / "learned", comm=slow)
    with pytest.raises(UserError, match="comm_mode"):
        train_dreamshard(
            tasks, tmp_path / "bad", meter, TrainSettings(comm_mode="guess"), show_progress=False
        )


def test_learned_mode_checkpoints_keep_their_settings_key():
    import json
    from dataclasses import asdict

    from embedlab.sharding.dreamshard.train import _settings_key

    new = ("comm_mode", "search_plans", "search", "final_cost_steps", "final_plans")  # options added after such checkpoints
    old = {k: v for k, v in asdict(TrainSettings(comm_mode="learned")).items() if k not in new}
    assert _settings_key(TrainSettings(comm_mode="learned")) == json.dumps(old, sort_keys=True)
    assert _settings_key(TrainSettings()) != _settings_key(TrainSettings(comm_mode="learned"))
    assert _settings_key(TrainSettings(search_plans=2)) != _settings_key(TrainSettings())
    assert _settings_key(TrainSettings(search_plans=2)) != _settings_key(TrainSettings(search_plans=2, search="refine5"))


@pytest.mark.parametrize("comm", [None, CommModel(0.2, 1e-5)])
def test_training_measures_the_searched_plans(tmp_path, monkeypatch, comm):
    import embedlab.sharding.dreamshard.train as tr

    calls = []

    def spy(model, tt, **kw):
        out = search_placement(model, tt, **kw)
        calls.append((kw, out[0].tolist()))
        return out

    monkeypatch.setattr(tr, "search_placement", spy)
    tasks = [_task(n=6, d=2, seed=s, name=f"s{s}") for s in range(3)]
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1), comm=comm)
    st = TrainSettings(iterations=3, rollout_tasks=2, cost_steps=3, cost_batch=4, rl_batches=1, rl_episodes=2,
                       search_plans=1)  # fmt: skip
    train_dreamshard(tasks, tmp_path / "run", meter, st, show_progress=False)
    # iteration 0 has untrained networks: no search; then one searched plan per iteration
    assert len(calls) == 2
    from embedlab.sharding.dreamshard.planner import DEFAULT_SEARCH, search_options

    starts = search_options(DEFAULT_SEARCH)["starts"]
    assert all(kw["form"] == ("composed" if comm else "overall") and kw["starts"] == starts for kw, _ in calls)
    assert [kw["seed"] for kw, _ in calls] == [1, 2]
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert len(ck["samples"]) == 3 * 2 + 2  # two rollout plans and one searched plan per iteration
    # the searched plan is what was measured: its per-device tables are the search's placement
    s = CostSample.from_state(ck["samples"][3])  # iteration 1: its first rollout plan, then the searched one
    want = [sum(1 for d in calls[0][1] if d == dev) for dev in range(2)]
    assert [len(f) for f in s.device_feats] == want
    with pytest.raises(UserError, match="composed cost needs a communication model"):
        train_dreamshard(tasks, tmp_path / "x", CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1)),
                         TrainSettings(iterations=1, search_plans=1, search="composed-refine2"), show_progress=False)  # fmt: skip


def test_plan_comm_option_only_for_comm_planners():
    with pytest.raises(UserError, match="takes no --comm"):
        get_planner("size_greedy", comm="x.json")


def test_search_options_parse_and_refuse_unknown_tokens():
    from embedlab.errors import UserError
    from embedlab.sharding.dreamshard.planner import search_options

    assert search_options("best16") == {"samples": 16, "refine_steps": 0}
    assert search_options("best4-refine20") == {"samples": 4, "refine_steps": 20}
    assert search_options("greedy") == {"samples": 0, "refine_steps": 0}
    assert search_options("composed-starts8-refine20") == {"samples": 0, "refine_steps": 20,
                                                           "cost": "composed", "starts": 8}  # fmt: skip
    for bad in ("greedy-best4", "bestx", "refine", "beam", "startsx", "starts8"):
        with pytest.raises(UserError, match="DreamShard search"):
            search_options(bad)


def test_registered_dreamshard_uses_the_chosen_search():
    from embedlab.sharding.dreamshard.planner import DEFAULT_SEARCH, search_options
    from embedlab.sharding.planners import get_planner

    p = get_planner("dreamshard")
    opts = {"samples": 0, "refine_steps": 0, "cost": "overall", "starts": 0} | search_options(DEFAULT_SEARCH)
    assert {"samples": p.samples, "refine_steps": p.refine_steps, "cost": p.cost_form, "starts": p.starts} == opts


def test_final_cost_fit_on_a_finished_run_fits_the_cost_network_only(tmp_path):
    from embedlab.sharding.dreamshard.train import _settings_key, batch_tensors

    tasks = [_task(n=6, d=2, seed=s, name=f"f{s}") for s in range(3)]
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1))
    st = TrainSettings(iterations=2, rollout_tasks=2, cost_steps=3, cost_batch=4, rl_batches=1, rl_episodes=2)
    model = train_dreamshard(tasks, tmp_path / "run", meter, st, show_progress=False)
    assert "final_cost_fit" not in model.meta
    samples = [CostSample.from_state(s) for s in torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["samples"]]

    def loss(m):
        with torch.no_grad():
            return float(cost_loss(m.cost, *batch_tensors(samples, m.scale_ms)))

    fin = TrainSettings(**{**st.__dict__, "final_cost_steps": 60})
    assert _settings_key(fin) == _settings_key(st)  # a finished run may add the final fit on resume
    fitted = train_dreamshard(tasks, tmp_path / "run", meter, fin, resume=True, show_progress=False,
                              meta={"command": "embedlab shard train dreamshard --final-cost-steps 60 --resume"})  # fmt: skip
    assert loss(fitted) < 0.5 * loss(model)
    for a, b in zip(fitted.policy.state_dict().values(), model.policy.state_dict().values()):
        assert torch.equal(a, b)  # the policy is left as it is
    info = fitted.meta["final_cost_fit"]
    assert info["steps"] == 60 and info["samples"] == len(samples) and "--final-cost-steps" in info["command"]
    assert info["train_mape_after"] < info["train_mape_before"]
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["final_steps"] == 60 and len(ck["samples"]) == len(samples)  # nothing new was measured
    again = train_dreamshard(tasks, tmp_path / "run", meter, fin, resume=True, show_progress=False)
    for a, b in zip(again.cost.state_dict().values(), fitted.cost.state_dict().values()):
        assert torch.equal(a, b)  # done once: a second resume loads the fitted network
    with pytest.warns(UserWarning, match="already had a final fit of 60 steps"):
        train_dreamshard(tasks, tmp_path / "run", meter, TrainSettings(**{**st.__dict__, "final_cost_steps": 90}),
                         resume=True, show_progress=False)  # fmt: skip
    with pytest.raises(UserError, match="final_cost_steps and final_plans must be >= 0"):
        train_dreamshard(tasks, tmp_path / "x", meter, TrainSettings(final_cost_steps=-1), show_progress=False)
    with pytest.raises(UserError, match="set final_cost_steps too"):
        train_dreamshard(tasks, tmp_path / "x", meter, TrainSettings(final_plans=4), show_progress=False)


def test_perturbed_placements_start_at_heuristics_and_keep_memory():
    from embedlab.sharding.dreamshard.train import perturbed_placements
    from embedlab.sharding.moves import heuristic_placements

    t = _task(n=12, d=3, seed=3, name="pp")
    starts = heuristic_placements(t)
    got = perturbed_placements(t, 9, np.random.default_rng(0))
    assert len(got) == 9 and all(p.shape == (12,) for p in got)
    assert any(not np.array_equal(p, starts[k % len(starts)]) for k, p in enumerate(got))
    assert all(np.array_equal(a, b) for a, b in zip(got, perturbed_placements(t, 9, np.random.default_rng(0))))
    # tight memory: room for 5 tables' weights and optimizer state per device, never exceeded
    same = tuple(Table(f"e{i}", 1000, 8, 2.0 + i % 3, 2) for i in range(12))  # equal sizes
    # memory for 5 tables with Adam's state (table_bytes counts it); on weights alone 25 would fit
    adam = Task("x", 1, 10**9, 1, same, optimizer="adam")
    assert adam.table_bytes(same[0]) > Task("x", 1, 10**9, 1, same).table_bytes(same[0])
    tight = Task("tight", 3, 5 * adam.table_bytes(same[0]), 256, same, optimizer="adam")
    for p in perturbed_placements(tight, 20, np.random.default_rng(1)):
        used = np.bincount(p, weights=[tight.table_bytes(x) for x in tight.tables], minlength=3)
        assert (used <= tight.device_memory_bytes).all()
        assert np.bincount(p, minlength=3).max() <= 5
    big = Task("big", 2, 1, 256, t.tables)  # nothing fits: no start, no plan
    assert perturbed_placements(big, 3, np.random.default_rng(0)) == []


def test_final_plans_are_measured_once_fitted_on_and_resume_where_killed(tmp_path, monkeypatch):
    import embedlab.sharding.dreamshard.train as tr

    tasks = [_task(n=6, d=2, seed=s, name=f"g{s}") for s in range(3)]
    meter = CostMeter(MeterSettings(batch_size=64, warmup=0, repeats=2, rounds=1))
    st = TrainSettings(iterations=1, rollout_tasks=2, cost_steps=3, cost_batch=4, rl_batches=1, rl_episodes=2)
    train_dreamshard(tasks, tmp_path / "run", meter, st, show_progress=False)
    import shutil

    shutil.copytree(tmp_path / "run", tmp_path / "killed")
    fin = TrainSettings(**{**st.__dict__, "final_cost_steps": 20, "final_plans": 10})
    fitted = train_dreamshard(tasks, tmp_path / "run", meter, fin, resume=True, show_progress=False)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert len(ck["final_samples"]) == 10 and len(ck["samples"]) == 2  # the loop's plans stay apart
    info = fitted.meta["final_cost_fit"]
    assert info["plans"] == 10 and info["samples"] == 2 and info["plans_mape_after"] < info["plans_mape_before"]
    # a run killed after its first visit measures the same plans on resume
    real, calls = tr._save, []

    def dying(*a):
        real(*a)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(tr, "_save", dying)
    with pytest.raises(KeyboardInterrupt):
        train_dreamshard(tasks, tmp_path / "killed", meter, fin, resume=True, show_progress=False)
    monkeypatch.setattr(tr, "_save", real)
    assert len(torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["final_samples"]) == tr.FINAL_PLANS_PER_TASK
    import shutil as sh

    sh.copytree(tmp_path / "killed", tmp_path / "leftover")
    measured = []
    orig = CostMeter.measure_plans
    monkeypatch.setattr(CostMeter, "measure_plans", lambda self, task, plans: measured.extend(plans) or orig(self, task, plans))
    train_dreamshard(tasks, tmp_path / "killed", meter, fin, resume=True, show_progress=False)
    assert len(measured) == 10 - tr.FINAL_PLANS_PER_TASK  # the saved plans are not measured again
    # resumed without --final-plans: the saved plans are not fitted on, and none is recorded
    fit0 = train_dreamshard(tasks, tmp_path / "leftover", meter, TrainSettings(**{**st.__dict__, "final_cost_steps": 20}),
                            resume=True, show_progress=False).meta["final_cost_fit"]  # fmt: skip
    assert "plans" not in fit0 and len(measured) == 10 - tr.FINAL_PLANS_PER_TASK
    ck2 = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert [[f.shape[0] for f in s["feats"]] for s in ck2["final_samples"]] == \
        [[f.shape[0] for f in s["feats"]] for s in ck["final_samples"]]
    assert all(torch.equal(a["feats"][0], b["feats"][0]) for a, b in zip(ck2["final_samples"], ck["final_samples"]))
    with pytest.warns(UserWarning, match="10 perturbed plans; it is kept"):
        train_dreamshard(tasks, tmp_path / "run", meter, TrainSettings(**{**fin.__dict__, "final_plans": 12}),
                         resume=True, show_progress=False)  # fmt: skip
