"""The ``neuroshard`` planner: beam search over column-wise halving on the pre-trained
simulator, then (ours, :data:`DEFAULT_SEARCH`) steepest descent on the simulated cost by
piece moves and swaps (:func:`~embedlab.sharding.neuroshard.search.refine`), with the input
all-to-all in the simulated cost (ours, :class:`~embedlab.sharding.neuroshard.simulator.Simulator`);
no measurement while planning. ``NeuroShardPlanner(model)`` alone runs the reference's search; the registered
planner (``--planner neuroshard``) applies :data:`DEFAULT_SEARCH`.

``NeuroShardPlanner(model)`` loads a model folder written by
:func:`~embedlab.sharding.neuroshard.train.pretrain_neuroshard` (``out/model``); without
one it uses :data:`DEFAULT_MODEL` shipped in the package, if present. The plan has one
shard per table-wise table and, for a table the search halved, one shard per piece
(``column_offset``/``columns``; pieces of one table may share a device). Its
``estimated_cost_ms`` is the simulator's cost, in the units of the model's measurements
(backend, timed batch); ``planning_seconds`` is the wall time of the search including
feature extraction. ``last_result`` keeps the search's details (halving steps, limit).
"""

from __future__ import annotations

import time
from pathlib import Path

from embedlab.errors import UserError
from embedlab.sharding.neuroshard.model import NeuroShardModel
from embedlab.sharding.neuroshard.search import (
    SearchResult,
    SearchSettings,
    beam_search,
    unplaced_piece,
)
from embedlab.sharding.neuroshard.simulator import Simulator
from embedlab.sharding.planners import Infeasible, memory_note
from embedlab.sharding.types import Plan, Shard, Task

DEFAULT_MODEL = Path(__file__).parent / "default_model"
#: The search of ``--planner neuroshard`` (:func:`search_settings`): the reference's beam search
#: on a simulator that also prices the input all-to-all, then up to 20 descent steps on the
#: simulated cost. Chosen on validation tasks at batch 4096
#: (``benchmarks/results/sharding_retrained_valid.json``: 10 tasks in each of 3 families, every
#: plan measured interleaved): geometric mean relative to each family's best heuristic 0.940
#: with the input all-to-all (0.9402 with the shipped model's 1,120 compute samples, 0.9405
#: with the 568 of the model before), 0.953 without it (0.953 and 0.954). The descent alone
#: was chosen before on 5 tasks per family (``sharding_search_valid.json``: 0.977 against
#: 0.995 without) and re-checked on 10 (``sharding_neuroshard_valid.json``: 0.963 against 0.965).
DEFAULT_SEARCH = "input-refine20"


class NeuroShardPlanner:
    name = "neuroshard"

    def __init__(self, model: str | Path | NeuroShardModel | None = None,
                 settings: SearchSettings | None = None, name: str | None = None) -> None:  # fmt: skip
        if name is not None:
            self.name = name
        if isinstance(model, NeuroShardModel):
            self.model = model
        else:
            folder = Path(model) if model is not None else DEFAULT_MODEL
            if model is None and not (folder / "model.json").is_file():
                raise UserError("no default NeuroShard model is shipped in this install; pre-train one with "
                                "`embedlab shard pretrain neuroshard --out DIR` and pass --model DIR/model")  # fmt: skip
            self.model = NeuroShardModel.load(folder)
        self.settings = settings or SearchSettings()
        self.last_result: SearchResult | None = None

    def plan(self, task: Task) -> Plan:
        t0 = time.perf_counter()
        sim = Simulator(self.model, task, input_comm=self.settings.input_comm)
        res = beam_search(sim, self.settings)
        self.last_result = res
        if len(res.devices) != len(res.pieces) or res.cost == float("inf"):
            halving = "on" if self.settings.column_wise else "off"
            msg = (f"task {task.name!r}: NeuroShard found no placement within {task.device_memory_bytes} bytes "
                   f"per device (column-wise halving {halving})")  # fmt: skip
            p = unplaced_piece(sim, [(i, 0, t.dim) for i, t in enumerate(task.tables)])
            if p is not None:
                t = task.tables[p]
                msg += (f"; table {t.name!r} ({task.table_bytes(t)} bytes{memory_note(task)}) found no device "
                        "with room table-wise")  # fmt: skip
            else:
                msg += "; every table fits table-wise without the dim-balance limit (unlimited_fallback is off)"
            raise Infeasible(msg)
        shards = tuple(
            Shard(task.tables[t].name, int(d), off, cols)
            for (t, off, cols), d in sorted(zip(res.pieces, res.devices.tolist()))
        )
        plan = Plan(task.name, self.name, shards, planning_seconds=time.perf_counter() - t0,
                    estimated_cost_ms=res.cost)  # fmt: skip
        plan.validate(task)
        return plan


def search_settings(variant: str) -> SearchSettings:
    """The reference's search settings, modified by tokens joined with ``-``: ``refineK``
    (K steps of descent on the simulated cost,
    :func:`~embedlab.sharding.neuroshard.search.refine`; ``refine0``: none) and ``input``
    (the simulator adds the input all-to-all, :class:`~embedlab.sharding.neuroshard.simulator.Simulator`);
    e.g. ``input-refine20``."""
    from embedlab.sharding.moves import parse_search

    opts = parse_search(variant, "NeuroShard", {"input": ("input_comm", True)}, {"refine": "refine_steps"}, greedy=False)
    return SearchSettings(refine_steps=opts.get("refine_steps", 0), input_comm=opts.get("input_comm", False))


__all__ = ["DEFAULT_MODEL", "DEFAULT_SEARCH", "NeuroShardPlanner", "search_settings"]
