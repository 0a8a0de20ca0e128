"""AutoShard's planning-time search: the step score, the descent, the starts, the options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedlab.errors import UserError
from embedlab.sharding.autoshard.agent import (
    AutoShardModel,
    _totals,
    placement_score,
    refine_placement,
    search_placement,
    task_tensors,
)
from embedlab.sharding.autoshard.planner import AutoShardPlanner, search_options
from embedlab.sharding.comm import CommModel, input_payload
from embedlab.sharding.generator import gen_tasks
from embedlab.sharding.moves import heuristic_placements, neighbours

COMM = CommModel(alpha_ms=0.4, beta_ms_per_byte=1e-6, backend="gloo",
                 kinds={"input": [0.2, 3e-6], "output_fwd": [0.4, 1e-6], "output_bwd": [0.1, 2e-6]})  # fmt: skip


def _model(seed=0):
    torch.manual_seed(seed)
    return AutoShardModel(scale_ms=1.5, meta={"meter": {"batch_size": 512}})


def _score(model, tt, place, comm):
    with torch.no_grad():
        totals = _totals(model.net.t_fc(tt.feats), tt, torch.as_tensor(place))
        return float(placement_score(model, *totals, comm))


def test_step_score_is_the_largest_compute_plus_the_comm_models_all_to_alls():
    model = _model()
    task = gen_tasks("neuroshard", 12, 4, 1, seed=3, split="train")[0]
    tt = task_tensors(task)
    place = torch.tensor([i % 4 for i in range(12)])
    with torch.no_grad():
        compute = _score(model, tt, place, None)
        dev = [[t for t, d in zip(task.tables, place.tolist()) if d == k] for k in range(4)]
        enc = model.net.t_fc(tt.feats)
        by_hand = max(float(model.net.shard_cost(enc[place == k].sum(0)).clamp_min(0)) for k in range(4))
        assert compute == pytest.approx(by_hand, rel=1e-6)
        step = _score(model, tt, place, COMM)
    cols = [sum(t.dim for t in ts) for ts in dev]
    pay = [sum(input_payload(t.pooling_factor) for t in ts) for ts in dev]
    comm_ms = sum(COMM.all_to_all_ms(cols, 512)) + COMM.input_ms(pay, 512)
    assert step == pytest.approx(compute + comm_ms / 1.5, rel=1e-5)


@pytest.mark.parametrize("comm", [None, COMM])
def test_descent_ends_in_a_local_minimum_within_memory(comm):
    model = _model(1)
    task = gen_tasks("neuroshard", 16, 3, 1, seed=4, split="train")[0]
    tt = task_tensors(task)
    start = torch.tensor([0] * 16)  # everything on one device: far from balanced
    start_score = _score(model, tt, start, comm)
    place, best = refine_placement(model, tt, start, steps=500, comm=comm)
    assert best == pytest.approx(_score(model, tt, place, comm), rel=1e-5)
    assert best < start_score
    used = np.bincount(place.numpy(), weights=tt.sizes.numpy(), minlength=3)
    assert used.max() <= tt.memory
    # no single move or swap with the final straggler lowers the score further
    with torch.no_grad():
        vec, count, _, _ = _totals(model.net.t_fc(tt.feats), tt, place)
        straggler = int((model.net.shard_cost(vec).clamp_min(0) * (count > 0)).argmax())
    nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, 3)
    for i in range(len(nb)):
        p = place.clone()
        from embedlab.sharding.moves import apply_candidate

        apply_candidate(p, nb, i, straggler)
        assert _score(model, tt, p, comm) >= best - 1e-4 * abs(best) - 1e-6


def test_search_keeps_the_lowest_score_of_all_starts_and_is_seeded():
    model = _model(2)
    task = gen_tasks("dreamshard", 20, 4, 1, seed=5, split="train")[0]
    tt = task_tensors(task)
    heur = heuristic_placements(task)
    assert heur and all(len(h) == 20 for h in heur)
    greedy, g_score, _ = search_placement(model, tt, comm=COMM)
    place, score, ok = search_placement(model, tt, refine_steps=30, starts=4, seed=7, comm=COMM, extra_starts=heur)
    assert ok and score == pytest.approx(_score(model, tt, place, COMM), rel=1e-5)
    assert score <= g_score + 1e-9
    for h in heur:  # every heuristic start was descended from: never worse than it
        assert score <= _score(model, tt, h, COMM) + 1e-6
    again, score2, _ = search_placement(model, tt, refine_steps=30, starts=4, seed=7, comm=COMM, extra_starts=heur)
    assert torch.equal(place, again) and score == score2


def test_planner_options_estimate_and_registry(tmp_path):
    from embedlab.sharding.planners import COMM_PLANNERS, get_planner

    _model(3).save(tmp_path / "m")
    task = gen_tasks("neuroshard", 20, 4, 1, seed=6, split="test")[0]
    paper = AutoShardPlanner(tmp_path / "m")
    assert paper.predicts == "compute"
    searched = AutoShardPlanner(tmp_path / "m", comm=COMM, name="autoshard-x", **search_options("step-heur-refine20"))
    assert searched.predicts == "step" and searched.name == "autoshard-x"
    a, b = paper.plan(task), searched.plan(task)
    a.validate(task)
    b.validate(task)
    model = searched.model
    tt = task_tensors(task)
    place_b = [dict((s.table, s.device) for s in b.shards)[t.name] for t in task.tables]
    assert b.estimated_cost_ms == pytest.approx(_score(model, tt, place_b, COMM) * 1.5, rel=1e-5)
    place_a = [dict((s.table, s.device) for s in a.shards)[t.name] for t in task.tables]
    assert a.estimated_cost_ms == pytest.approx(_score(model, tt, place_a, None) * 1.5, rel=1e-5)
    assert _score(model, tt, place_b, COMM) <= _score(model, tt, place_a, COMM) + 1e-6
    assert "autoshard" in COMM_PLANNERS
    path = tmp_path / "comm.json"
    COMM.save(path)
    assert get_planner("autoshard", str(tmp_path / "m"), str(path)).comm == COMM
    fallback = AutoShardPlanner(tmp_path / "m", **search_options("step-refine2"))
    with pytest.warns(UserWarning, match="no --comm given"):
        fallback.plan(task)
    from embedlab.sharding.portfolio import default_comm

    assert fallback.comm == default_comm()


def test_search_options_parse_and_refuse():
    assert search_options("greedy") == {"samples": 0, "refine_steps": 0}
    assert search_options("step-heur-refine20") == {"samples": 0, "refine_steps": 20, "step": True, "heuristics": True}
    assert search_options("best4-starts8-refine5") == {"samples": 4, "refine_steps": 5, "starts": 8}
    for bad in ("refine", "fast", "step-refinex"):
        with pytest.raises(UserError, match="unknown AutoShard search"):
            search_options(bad)
    with pytest.raises(UserError, match="need refineK"):
        search_options("heur")
    with pytest.raises(UserError, match="need refine_steps"):
        AutoShardPlanner(None, starts=2)


@pytest.mark.parametrize("comm", [None, COMM])
def test_batched_candidate_scores_equal_the_score_of_each_changed_placement(comm):
    from embedlab.sharding.autoshard.agent import candidate_scores
    from embedlab.sharding.moves import apply_candidate

    model = _model(4)
    task = gen_tasks("neuroshard", 14, 4, 1, seed=8, split="train")[0]
    tt = task_tensors(task)
    place = torch.tensor([(3 * i) % 4 if i % 5 else 0 for i in range(14)])
    with torch.no_grad():
        for straggler in range(4):
            nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, 4)
            got = candidate_scores(model, tt, model.net.t_fc(tt.feats), place, nb, straggler, comm)
            for i in range(len(nb)):
                p = place.clone()
                apply_candidate(p, nb, i, straggler)
                assert float(got[i]) == pytest.approx(_score(model, tt, p, comm), rel=1e-5, abs=1e-6)
