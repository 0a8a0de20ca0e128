"""The neighbourhood the planners' descents search, against a brute-force enumeration."""

from __future__ import annotations

import numpy as np

from embedlab.sharding.moves import neighbours


def _brute(place, sizes, memory, s, D):
    used = [sum(sz for p, sz in zip(place, sizes) if p == d) for d in range(D)]
    moves = [(t, d) for t in range(len(place)) for d in range(D)
             if d != place[t] and used[d] + sizes[t] <= memory]  # fmt: skip
    swaps = []
    for a in range(len(place)):
        for b in range(len(place)):
            if place[a] == s and place[b] != s:
                delta = sizes[b] - sizes[a]
                if used[s] + delta <= memory and used[place[b]] - delta <= memory:
                    swaps.append((a, b, place[b]))
    return moves, swaps


def test_neighbours_match_a_brute_force_enumeration_in_order():
    rng = np.random.default_rng(0)
    for _ in range(30):
        D, N = int(rng.integers(2, 5)), int(rng.integers(1, 12))
        place = rng.integers(0, D, size=N)
        sizes = rng.integers(1, 10, size=N).astype(float)
        memory = float(np.bincount(place, weights=sizes, minlength=D).max() + rng.integers(0, 6))
        s = int(place[0])
        nb = neighbours(place, sizes, memory, s, D)
        moves, swaps = _brute(place.tolist(), sizes.tolist(), memory, s, D)
        assert list(zip(nb.move_item.tolist(), nb.move_to.tolist())) == moves
        assert list(zip(nb.swap_out.tolist(), nb.swap_in.tolist(), nb.swap_to.tolist())) == swaps
        assert len(nb) == len(moves) + len(swaps)


def test_candidate_totals_equal_the_totals_of_each_changed_placement():
    import torch

    from embedlab.sharding.moves import apply_candidate, candidate_totals

    rng = np.random.default_rng(1)
    for _ in range(20):
        D, N = int(rng.integers(2, 5)), int(rng.integers(2, 10))
        place = torch.as_tensor(rng.integers(0, D, size=N))
        sizes = rng.integers(1, 10, size=N).astype(float)
        x = torch.as_tensor(rng.normal(size=(N, 3)))
        s = int(place[0])
        nb = neighbours(place.numpy(), sizes, 1e9, s, D)
        total = torch.zeros(D, 3, dtype=x.dtype).index_add_(0, place, x)
        cand = candidate_totals(total, x, place, nb, s)
        assert cand.shape == (len(nb), D, 3)
        for i in range(len(nb)):
            p = place.clone()
            apply_candidate(p, nb, i, s)
            assert torch.allclose(cand[i], torch.zeros(D, 3, dtype=x.dtype).index_add_(0, p, x))


def test_changed_totals_are_the_candidate_totals_at_the_two_changed_devices():
    import torch

    from embedlab.sharding.moves import apply_candidate, candidate_totals, changed_totals

    rng = np.random.default_rng(2)
    for _ in range(20):
        D, N = int(rng.integers(2, 6)), int(rng.integers(2, 12))
        place = torch.as_tensor(rng.integers(0, D, size=N))
        x = torch.as_tensor(rng.normal(size=(N, 4)))
        s = int(place[int(rng.integers(N))])
        nb = neighbours(place.numpy(), rng.integers(1, 10, size=N).astype(float), 1e9, s, D)
        total = torch.zeros(D, 4, dtype=x.dtype).index_add_(0, place, x)
        first, second, new1, new2 = changed_totals(total, x, place, nb, s)
        cand = candidate_totals(total, x, place, nb, s)
        ar = torch.arange(len(nb))
        assert torch.equal(new1, cand[ar, first]) and torch.equal(new2, cand[ar, second])
        for i in range(len(nb)):
            p = place.clone()
            apply_candidate(p, nb, i, s)
            changed = set(torch.nonzero(p != place).flatten().tolist())
            assert {int(place[j]) for j in changed} | {int(p[j]) for j in changed} == {int(first[i]), int(second[i])}
            others = [d for d in range(D) if d not in (int(first[i]), int(second[i]))]
            assert torch.equal(cand[i, others], total[others])


def test_heuristic_placements_are_the_greedy_heuristics_plans():
    from embedlab.sharding.generator import gen_tasks
    from embedlab.sharding.moves import START_HEURISTICS, heuristic_placements
    from embedlab.sharding.planners import get_planner

    task = gen_tasks("dreamshard", 20, 4, 1, seed=2, split="train")[0]
    got = heuristic_placements(task)
    want = []
    for name in START_HEURISTICS:
        dev = {s.table: s.device for s in get_planner(name).plan(task).shards}
        p = [dev[t.name] for t in task.tables]
        if p not in want:
            want.append(p)
    assert [g.tolist() for g in got] == want and len(got) >= 2


def test_parse_search_reads_flags_and_counts_and_names_the_planner_on_errors():
    import pytest

    from embedlab.errors import UserError
    from embedlab.sharding.moves import parse_search

    flags, counts = {"step": ("step", True)}, {"refine": "refine_steps", "best": "samples"}
    assert parse_search("step-refine20-best4", "X", flags, counts) == {"step": True, "refine_steps": 20, "samples": 4}
    assert parse_search("greedy", "X", flags, counts) == {}
    with pytest.raises(UserError, match="unknown Y search 'greedy'"):
        parse_search("greedy", "Y", flags, counts, greedy=False)
    with pytest.raises(UserError, match=r"unknown X search 'refinex' in 'step-refinex' \(refineK, bestK, step"):
        parse_search("step-refinex", "X", flags, counts)
