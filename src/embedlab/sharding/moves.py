"""The neighbourhood of a table-wise placement that the planners' descents search.

One function, :func:`neighbours`, shared by DreamShard's descent on its cost network
(:func:`embedlab.sharding.dreamshard.agent.refine_placement`) and NeuroShard's descent on its
simulator (:func:`embedlab.sharding.neuroshard.search.refine`): every **move** of one item
(table or column piece) to another device with memory room, and every **swap** of an item on
the straggler device with an item elsewhere, both devices keeping within memory. Items are
enumerated in a fixed order -- moves by (item, device), swaps by (straggler item, other
item) -- so a descent's choice among equal scores is deterministic.

:func:`candidate_totals` turns per-device totals of any additive quantity (a cost network's
summed table encodings, columns, input payload) into those of every candidate at once, so a
descent scores all neighbours in one batched evaluation (:func:`changed_totals`: only the two
devices a candidate changes); :func:`heuristic_placements` gives the greedy heuristics'
placements (:func:`placement_of` a plan) as extra starts; :func:`parse_search` reads the
searches' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embedlab.sharding.types import Plan, Task


@dataclass(frozen=True)
class Neighbours:
    """Candidate changes of a placement: ``move_item[i]`` goes to ``move_to[i]``; swap ``j``
    sends ``swap_out[j]`` (on the straggler) to ``swap_to[j]``, the device of ``swap_in[j]``,
    which goes to the straggler."""

    move_item: np.ndarray
    move_to: np.ndarray
    swap_out: np.ndarray
    swap_in: np.ndarray
    swap_to: np.ndarray

    def __len__(self) -> int:
        return len(self.move_item) + len(self.swap_out)


def neighbours(place: np.ndarray, sizes: np.ndarray, memory: float, straggler: int,
               num_devices: int) -> Neighbours:  # fmt: skip
    """The moves and swaps of ``place [N]`` (device of each item) that keep every device's
    summed ``sizes`` within ``memory`` (see the module doc)."""
    place = np.asarray(place, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.float64)
    used = np.bincount(place, weights=sizes, minlength=num_devices)
    t, d = (x.reshape(-1) for x in np.meshgrid(np.arange(len(place)), np.arange(num_devices), indexing="ij"))
    ok = (d != place[t]) & (used[d] + sizes[t] <= memory)
    on, off = np.flatnonzero(place == straggler), np.flatnonzero(place != straggler)
    a, b = (x.reshape(-1) for x in np.meshgrid(on, off, indexing="ij"))
    db = place[b]
    delta = sizes[b] - sizes[a]
    fits = (used[straggler] + delta <= memory) & (used[db] - delta <= memory)
    return Neighbours(t[ok], d[ok], a[fits], b[fits], db[fits])


def parse_search(variant: str, planner: str, flags: dict[str, tuple[str, Any]], counts: dict[str, str],
                 greedy: bool = True) -> dict[str, Any]:  # fmt: skip
    """Options of a planning-time search named by tokens joined with ``-`` (the learned
    planners' ``--*-variants`` and default searches): a token of ``flags`` sets its key to its
    value; ``PREFIXn`` with ``PREFIX`` in ``counts`` sets that key to the integer ``n``; with
    ``greedy``, the name ``greedy`` alone sets nothing. Anything else is one clear error
    naming ``planner``."""
    from embedlab.errors import UserError

    opts: dict[str, Any] = {}
    if greedy and variant == "greedy":
        return opts
    for tok in variant.split("-"):
        if tok in flags:
            key, value = flags[tok]
            opts[key] = value
            continue
        for prefix, key in counts.items():
            num = tok.removeprefix(prefix)
            if tok.startswith(prefix) and num.isdigit():
                opts[key] = int(num)
                break
        else:
            known = [*(f"{p}K" for p in counts), *flags, *(["greedy"] if greedy else [])]
            raise UserError(f"unknown {planner} search {tok!r} in {variant!r} ({', '.join(known)})")
    return opts


def candidate_totals(total: Any, x: Any, place: Any, nb: Neighbours, straggler: int) -> Any:
    """Per-device totals ``[C, D, ...]`` of every candidate of ``nb`` (moves first, then
    swaps), from the current totals ``total [D, ...]`` and each item's amount ``x [N, ...]``
    (torch tensors; ``place [N]`` the current device of each item)."""
    import torch

    mt, md, a, b, db = (torch.from_numpy(v) for v in (nb.move_item, nb.move_to, nb.swap_out, nb.swap_in, nb.swap_to))
    moves, swaps = torch.arange(len(mt)), torch.arange(len(mt), len(nb))
    c = total.expand(len(nb), *total.shape).clone()
    c[moves, place[mt]] -= x[mt]
    c[moves, md] += x[mt]
    c[swaps, straggler] += x[b] - x[a]
    c[swaps, db] += x[a] - x[b]
    return c


def changed_totals(total: Any, x: Any, place: Any, nb: Neighbours, straggler: int) -> tuple[Any, Any, Any, Any]:
    """The two devices every candidate of ``nb`` changes and their new totals: ``(first [C],
    second [C], new_first [C, ...], new_second [C, ...])`` -- a move's source and target, a
    swap's straggler and the other device. The totals are those of :func:`candidate_totals`
    at those devices (the same sums), so a descent can send only the changed devices through
    a network; the other devices keep their present values."""
    import torch

    mt, md, a, b, db = (torch.from_numpy(v) for v in (nb.move_item, nb.move_to, nb.swap_out, nb.swap_in, nb.swap_to))
    s = torch.full((len(a),), straggler)
    first, second = torch.cat([place[mt], s]), torch.cat([md, db])
    new_first = torch.cat([total[place[mt]] - x[mt], total[s] + (x[b] - x[a])])
    new_second = torch.cat([total[md] + x[mt], total[db] + (x[a] - x[b])])
    return first, second, new_first, new_second


def apply_candidate(place: Any, nb: Neighbours, i: int, straggler: int) -> None:
    """Carry out candidate ``i`` of ``nb`` on ``place [N]`` in place."""
    n = len(nb.move_item)
    if i < n:
        place[int(nb.move_item[i])] = int(nb.move_to[i])
    else:
        j = i - n
        place[int(nb.swap_out[j])], place[int(nb.swap_in[j])] = int(nb.swap_to[j]), straggler


#: The heuristics whose placements :func:`heuristic_placements` offers as starts (the
#: deterministic greedy ones; random and round-robin are left out).
START_HEURISTICS = ("dim_greedy", "size_greedy", "lookup_greedy", "size_lookup_greedy")


def placement_of(task: Task, plan: Plan) -> np.ndarray:
    """The device of each table ``[T]`` (task order) in a table-wise ``plan``."""
    index = {t.name: i for i, t in enumerate(task.tables)}
    place = np.zeros(len(task.tables), dtype=np.int64)
    for s in plan.shards:
        place[index[s.table]] = s.device
    return place


def heuristic_placements(task: Task) -> list[np.ndarray]:
    """The device of each table ``[T]`` in the plans of :data:`START_HEURISTICS` that fit
    the task (distinct, in that order); a heuristic that finds no plan is skipped."""
    from embedlab.sharding.planners import Infeasible, get_planner

    out: list[np.ndarray] = []
    for name in START_HEURISTICS:
        try:
            place = placement_of(task, get_planner(name).plan(task))
        except Infeasible:
            continue
        if not any(np.array_equal(place, p) for p in out):
            out.append(place)
    return out


__all__ = ["START_HEURISTICS", "Neighbours", "apply_candidate", "candidate_totals", "heuristic_placements",
           "neighbours", "parse_search"]
