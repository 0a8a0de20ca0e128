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
