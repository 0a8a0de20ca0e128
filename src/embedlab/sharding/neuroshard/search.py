"""NeuroShard's search on the simulator: greedy grid search (table-wise) inside a beam
search over column-wise halving (``neurosharder.py`` of the reference).

**Greedy grid search** (paper/reference): for each dim-balance limit ``s`` in
``1.00, 1.05, ..., 1.50`` (11 values), place the pieces in descending order of their
predicted single-piece compute cost; each goes to the device whose *current* shard has the
smallest predicted compute cost (the non-additive cost of everything placed there so far;
ties to the device with fewer bytes, then the lowest index), among the devices where it
fits in memory and keeps the device's dim sum ``<= s * (total dims / D)``; after a
placement the device's cost is re-predicted for its new shard. The placement with the
lowest simulator cost over the grid wins. Our choices: the 11 greedy runs are evaluated
together (numpy, batched over ``s``), and if no ``s`` of the grid gives a feasible
placement we also try without the dim limit (``s = inf``; the reference then reports no
plan for that candidate).

**Beam search** (paper/reference): width ``k = 3``, at most ``max_length = 10`` rounds. A
state is a list of pieces; a step halves one piece (its first half keeps its index, the
second is appended: ``dim/2`` columns each, same rows and workload). Candidates of a state
are the top-10 pieces by size ∪ the top-10 by predicted compute cost (all pieces when
there are at most 10); a piece is halved only if ``dim/2`` is a multiple of 4. Each
candidate is scored by the full grid search; the ``k`` best candidates of a round form the
next beam; the best plan seen anywhere (the table-wise start included) is returned. Our
choice: a state already scored (the same multiset of pieces reached by halving in another
order) is not scored again.

**Refinement** (ours, off unless ``refine_steps > 0``; :func:`refine`): the greedy places
each piece once and never revisits it. After the beam search, up to ``refine_steps`` steps
of steepest descent on the simulator's plan cost: each step scores, in one batch, every
move of one piece to another device with memory room and every swap of a piece on the
straggler device (largest simulated total) with a piece elsewhere (memory permitting), and
takes the best if it lowers the simulated cost by more than ``1e-4`` relative. The
dim-balance limit of the grid does not apply here: the simulator's communication networks
price the dim sums themselves. Still no measurement: it trusts the simulator's ranking of
nearby plans, and is chosen on validation tasks (``neuroshard.planner``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedlab.errors import UserError
from embedlab.sharding.moves import neighbours
from embedlab.sharding.neuroshard.simulator import Piece, Simulator


@dataclass(frozen=True)
class SearchSettings:
    """The reference's defaults; ``column_wise=False`` gives the table-wise grid search only."""

    balance_start: float = 1.0
    balance_end: float = 1.5
    grid_steps: int = 11
    beam_width: int = 3
    rounds: int = 10
    candidates: int = 10
    column_wise: bool = True
    unlimited_fallback: bool = True
    refine_steps: int = 0  # ours: descent on the simulated cost after the search (module doc)
    input_comm: bool = False  # ours: the simulator adds the input all-to-all (simulator doc)

    def __post_init__(self) -> None:
        if (self.grid_steps < 1 or self.beam_width < 1 or self.rounds < 0 or self.candidates < 1
                or self.refine_steps < 0):  # fmt: skip
            raise UserError(f"bad NeuroShard search settings: {self}")
        if not (0 < self.balance_start <= self.balance_end):
            raise UserError(
                f"dim-balance limits must satisfy 0 < start <= end, got {self.balance_start}..{self.balance_end}"
            )

    def limits(self) -> np.ndarray:
        if self.grid_steps == 1:
            return np.array([self.balance_start])
        return np.linspace(self.balance_start, self.balance_end, self.grid_steps)


@dataclass
class SearchResult:
    pieces: list[Piece]
    devices: np.ndarray  # [P] device of each piece (empty if infeasible)
    cost: float  # simulator cost (inf: no feasible plan)
    steps: list[int]  # indices of the pieces halved, in order
    balance: float  # the dim-balance limit of the greedy placement chosen (before any refinement)
    evaluated: int  # grid searches run


def _greedy_batch(sim: Simulator, pieces: list[Piece], limits: np.ndarray,
                  stuck: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The greedy placement for every limit at once: ``(devices [S, P], ok [S], cost [S])``;
    ``stuck [S]`` (filled with -1 by the caller), if given, receives the first piece each
    limit's greedy found no device for."""
    S, D, P = len(limits), sim.D, len(pieces)
    vec = sim.piece_vectors(pieces)
    sizes = sim.piece_sizes(pieces)
    cols = np.array([c for _, _, c in pieces], dtype=np.float64)
    single = sim.shard_compute(vec, np.ones(P, dtype=bool))
    order = np.argsort(-single, kind="stable")
    cap = limits[:, None] * (cols.sum() / D)  # [S, 1]
    dev_vec = np.zeros((S, D, vec.shape[1]))
    dev_cost = np.zeros((S, D))
    dev_used = np.zeros((S, D), dtype=np.int64)
    dev_dims = np.zeros((S, D))
    dev_pay = np.zeros((S, D))
    pay = sim.piece_payloads(pieces)
    devices = np.full((S, P), -1, dtype=np.int64)
    ok = np.ones(S, dtype=bool)
    rows = np.arange(S)
    room = sim.memory - sizes  # a piece fits where used <= room
    cap = cap + 1e-9 - cols[None, :]  # [S, P]: a piece keeps the limit where dims <= cap
    big = np.iinfo(np.int64).max
    (w1, b1, _), (w2, b2, _) = sim.head.layers
    scale = sim.model.compute_scale_ms
    for p in order:
        fits = (dev_used <= room[p]) & (dev_dims <= cap[:, p : p + 1])
        if stuck is not None:
            stuck[(stuck < 0) & ~fits.any(1)] = p
        ok &= fits.any(1)
        masked = np.where(fits, dev_cost, np.inf)
        tie = masked <= masked.min(1, keepdims=True)
        tie &= fits
        r = np.where(tie, dev_used, big).argmin(1)
        devices[:, p] = r
        v = dev_vec[rows, r] + vec[p]
        dev_vec[rows, r] = v
        dev_used[rows, r] += sizes[p]
        dev_dims[rows, r] += cols[p]
        dev_pay[rows, r] += pay[p]
        dev_cost[rows, r] = np.maximum((np.maximum(v @ w1 + b1, 0.0) @ w2 + b2)[:, 0] * scale, 0.0)
    compute = np.where(dev_dims > 0, dev_cost, 0.0)
    cost, _ = sim.comm(dev_dims, compute, dev_pay)
    cost = np.where(ok, cost, np.inf)
    return devices, ok, cost


def grid_search(sim: Simulator, pieces: list[Piece], settings: SearchSettings = SearchSettings()) -> tuple[float, np.ndarray, float]:  # fmt: skip
    """``(cost, devices [P], limit)`` of the best greedy placement over the limit grid."""
    limits = settings.limits()
    devices, ok, cost = _greedy_batch(sim, pieces, limits)
    if not ok.any() and settings.unlimited_fallback:
        limits = np.array([np.inf])
        devices, ok, cost = _greedy_batch(sim, pieces, limits)
    if not ok.any():
        return float("inf"), np.zeros(0, dtype=np.int64), float("nan")
    i = int(np.argmin(cost))
    return float(cost[i]), devices[i], float(limits[i])


def unplaced_piece(sim: Simulator, pieces: list[Piece]) -> int | None:
    """The first piece (index into ``pieces``) that the greedy without a dim limit found no
    device with memory room for; None when it placed them all."""
    stuck = np.full(1, -1, dtype=np.int64)
    _greedy_batch(sim, pieces, np.array([np.inf]), stuck)
    return None if stuck[0] < 0 else int(stuck[0])


def _halvable(cols: int) -> bool:
    return cols % 2 == 0 and (cols // 2) % 4 == 0


def beam_search(sim: Simulator, settings: SearchSettings = SearchSettings()) -> SearchResult:
    """The best plan of table-wise grid search and (if ``column_wise``) beam search over
    halving, then (if ``refine_steps``) :func:`refine` of its placement."""
    pieces0: list[Piece] = [(i, 0, t.dim) for i, t in enumerate(sim.task.tables)]
    cost, devs, lim = grid_search(sim, pieces0, settings)
    best = SearchResult(pieces0, devs, cost, [], lim, 1)
    if settings.column_wise:
        best = _halving_search(sim, settings, best)
    if settings.refine_steps and len(best.devices) == len(best.pieces) and best.cost < float("inf"):
        best.devices, best.cost = refine(sim, best.pieces, best.devices, settings.refine_steps)
    return best


def _halving_search(sim: Simulator, settings: SearchSettings, best: SearchResult) -> SearchResult:
    """The beam search over halving from the table-wise result ``best`` (module doc)."""
    pieces0, cost = best.pieces, best.cost
    beam: list[tuple[list[int], list[Piece], float]] = [([], pieces0, cost)]
    seen = {tuple(sorted(pieces0))}
    for _ in range(settings.rounds):
        found: list[tuple[list[int], list[Piece], float]] = []
        for steps, pieces, _c in beam:
            n = settings.candidates
            if n >= len(pieces):
                cand = list(range(len(pieces)))
            else:
                sizes = sim.piece_sizes(pieces)
                single = sim.single_costs(pieces)
                top_size = np.argsort(-sizes, kind="stable")[:n]
                top_cost = np.argsort(-single, kind="stable")[:n]
                cand = sorted(set(top_size.tolist()) | set(top_cost.tolist()))
            for j in cand:
                t, off, cols = pieces[j]
                if not _halvable(cols):
                    continue
                half = cols // 2
                new = list(pieces)
                new[j] = (t, off, half)
                new.append((t, off + half, half))
                key = tuple(sorted(new))
                if key in seen:
                    continue
                seen.add(key)
                c, d, lim = grid_search(sim, new, settings)
                best.evaluated += 1
                found.append((steps + [j], new, c))
                if c < best.cost:
                    best = SearchResult(new, d, c, steps + [j], lim, best.evaluated)
        if not found:
            break
        beam = sorted(found, key=lambda x: x[2])[: settings.beam_width]
    return best


def refine(sim: Simulator, pieces: list[Piece], devices: np.ndarray,
           steps: int) -> tuple[np.ndarray, float]:  # fmt: skip
    """Steepest descent on the simulated plan cost by single-piece moves and swaps with the
    straggler device (module doc); memory limits are kept. Returns ``(devices [P], cost)``."""
    place = np.asarray(devices, dtype=np.int64).copy()
    P, D = len(pieces), sim.D
    vec = sim.piece_vectors(pieces)
    sizes = sim.piece_sizes(pieces).astype(np.float64)
    cols = np.array([c for _, _, c in pieces], dtype=np.float64)
    pay = sim.piece_payloads(pieces)
    best, totals = sim.cost(pieces, place)
    for _ in range(steps):
        onehot = np.zeros((D, P))
        onehot[place, np.arange(P)] = 1.0
        dvec, dims, count, dpay = onehot @ vec, onehot @ cols, onehot.sum(1), onehot @ pay
        s = int(np.argmax(totals))
        nb = neighbours(place, sizes, sim.memory, s, D)
        mt, md, a, b, db = nb.move_item, nb.move_to, nb.swap_out, nb.swap_in, nb.swap_to
        n_moves, C = len(mt), len(nb)
        if C == 0:
            break
        cv = np.broadcast_to(dvec, (C, D, vec.shape[1])).copy()
        cd = np.broadcast_to(dims, (C, D)).copy()
        cn = np.broadcast_to(count, (C, D)).copy()
        cp = np.broadcast_to(dpay, (C, D)).copy()
        r = np.arange(n_moves)  # each candidate row changes two distinct devices
        for arr, x in ((cv, vec), (cd, cols), (cn, np.ones(P)), (cp, pay)):
            arr[r, place[mt]] -= x[mt]
            arr[r, md] += x[mt]
        r = np.arange(n_moves, C)
        for arr, x in ((cv, vec), (cd, cols), (cp, pay)):
            arr[r, s] += x[b] - x[a]
            arr[r, db] += x[a] - x[b]
        compute = sim.shard_compute(cv, cn > 0.5)
        cost, _ = sim.comm(cd, compute, cp)
        i = int(np.argmin(cost))
        if not cost[i] < best - 1e-4 * abs(best):
            break
        if i < n_moves:
            place[mt[i]] = md[i]
        else:
            j = i - n_moves
            place[a[j]], place[b[j]] = db[j], s
        best, totals = sim.cost(pieces, place)
    return place, float(best)


__all__ = ["SearchResult", "SearchSettings", "beam_search", "grid_search", "refine", "unplaced_piece"]
