"""NeuroShard's simulator: a plan's cost from the pre-trained cost models alone.

Paper/reference (``simulator.py::get_final_cost``): for each device ``r``

* ``compute_r``: the compute network's prediction for the shard on ``r`` (the tables and
  column-wise pieces placed there, sum-pooled; an empty device costs 0 -- our choice, the
  reference never evaluates an empty shard differently from a non-empty one);
* ``bw_comm_r``: the backward communication network for ``D`` devices over the per-device
  dim sums;
* ``fw_comm_r``: the forward communication network over the dim sums and the straggler
  offsets ``sleep_r = (compute_r + bw_comm_r) - min_j (compute_j + bw_comm_j)``: a device
  that reaches the forward all-to-all early waits for the slowest one;

and the plan costs ``max_r (compute_r + bw_comm_r + fw_comm_r)``.

With ``input_comm`` (ours, off in the reference) the plan cost also holds the input
all-to-all of the ids and lengths, which DMP runs before the lookups and the step-cost meter
counts (``../shared/specs/sharding-formats.md``): the ``input`` line of the communication
model recorded in the model (``meta.comm_model``) at the meter's batch
(``meta.meter.batch_size``), over each device's summed per-sample payload
(:func:`~embedlab.sharding.comm.input_payload`; every column-wise piece of a table carries
the table's ids). The pooled networks never see it, so without it the simulator does not
know that halving a table re-sends its ids, nor that piling high-pooling tables on one
device makes its input share the slowest. A plan over memory
(weights plus the task's optimizer state on some device) has
no cost (``inf`` here, ``None`` in the reference). :func:`combine_costs` is that formula on
given numbers, batched over any leading axes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel, input_payload
from embedlab.sharding.neuroshard.features import table_features, with_columns
from embedlab.sharding.neuroshard.model import NeuroShardModel, NumpyMLP, comm_inputs
from embedlab.sharding.types import Task

#: A column-wise piece of a table: (table index in the task, column offset, columns).
Piece = tuple[int, int, int]


def combine_costs(
    compute: np.ndarray, bw_comm: np.ndarray, fw_comm: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``(plan cost [...], per-device totals [..., D])`` from per-device ``compute`` and
    ``bw_comm`` ``[..., D]`` and ``fw_comm(sleeps [..., D]) -> [..., D]`` (see module doc)."""
    compute = np.asarray(compute, dtype=np.float64)
    base = compute + np.asarray(bw_comm, dtype=np.float64)
    sleeps = base - base.min(-1, keepdims=True)
    totals = base + np.asarray(fw_comm(sleeps), dtype=np.float64)
    return totals.max(-1), totals


class Simulator:
    """The cost models of one task, ready for fast batched evaluation (numpy)."""

    def __init__(self, model: NeuroShardModel, task: Task, input_comm: bool = False) -> None:
        model.check_devices(task.num_devices)
        self.model = model
        self.task = task
        self.D = task.num_devices
        self.memory = task.device_memory_bytes
        self.head = NumpyMLP(model.compute.head)
        self.fw = NumpyMLP(model.comm_fw[self.D].net)
        self.bw = NumpyMLP(model.comm_bw[self.D].net)
        self.base_feats = np.stack([table_features(t) for t in task.tables])
        self._vec: dict[tuple[int, int], np.ndarray] = {}
        self.payload = np.array([input_payload(t.pooling_factor) for t in task.tables], dtype=np.float64)
        self.input_comm: CommModel | None = None
        self.batch = 0
        if input_comm:
            meta = model.meta
            batch = (meta.get("meter") or {}).get("batch_size")
            comm = CommModel.from_json(meta["comm_model"], "meta.comm_model") if "comm_model" in meta else None
            if comm is None or not comm.has_input or not batch:
                raise UserError("this NeuroShard model records no input all-to-all (meta.comm_model with an "
                                "'input' line and meta.meter.batch_size); pre-train it with a --comm "
                                "calibrated by `embedlab shard calibrate-comm`")  # fmt: skip
            self.input_comm, self.batch = comm, int(batch)

    def piece_payloads(self, pieces: list[Piece]) -> np.ndarray:
        """Input all-to-all bytes per sample of each piece (its table's ids and lengths)."""
        return self.payload[[t for t, _, _ in pieces]]

    def input_ms(self, payload: np.ndarray) -> np.ndarray:
        """Input all-to-all ms ``[...]`` of plans whose devices hold ``payload [..., D]`` bytes
        per sample (``CommModel.input_ms_batched``); 0 without ``input_comm``."""
        if self.input_comm is None:
            return np.zeros(np.shape(payload)[:-1])
        return self.input_comm.input_ms_batched(payload, self.batch)

    def piece_vectors(self, pieces: list[Piece]) -> np.ndarray:
        """Encoded ``[P, 32]`` vectors of pieces (cached per (table, columns))."""
        todo = sorted({(t, c) for t, _, c in pieces if (t, c) not in self._vec})
        if todo:
            f = np.stack([with_columns(self.base_feats[t], c) for t, c in todo])
            with torch.no_grad():
                enc = self.model.compute.encode(torch.from_numpy(f)).double().numpy()
            for k, v in zip(todo, enc):
                self._vec[k] = v
        return np.stack([self._vec[(t, c)] for t, _, c in pieces])

    def shard_compute(self, vec_sum: np.ndarray, nonempty: np.ndarray) -> np.ndarray:
        """Predicted compute ms of shards from summed vectors ``[..., 32]`` (empty → 0)."""
        out = self.head(vec_sum)[..., 0] * self.model.compute_scale_ms
        return np.where(nonempty, np.maximum(out, 0.0), 0.0)

    def comm(self, dim_sums: np.ndarray, compute: np.ndarray,
             payload: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``(plan cost [...], per-device totals [..., D])`` given per-device dim sums and
        compute, plus the input all-to-all of the per-device ``payload`` (with ``input_comm``)."""
        s = self.model.comm_scale_ms
        bw = np.maximum(self.bw(comm_inputs(dim_sums, None).astype(np.float64)) * s, 0.0)

        def fw(sleeps: np.ndarray) -> np.ndarray:
            x = comm_inputs(dim_sums, sleeps).astype(np.float64)
            return np.maximum(self.fw(x) * s, 0.0)

        cost, totals = combine_costs(compute, bw, fw)
        if payload is not None and self.input_comm is not None:
            cost = cost + self.input_ms(payload)
        return cost, totals

    def single_costs(self, pieces: list[Piece]) -> np.ndarray:
        """Predicted compute of each piece alone on a device."""
        v = self.piece_vectors(pieces)
        return self.shard_compute(v, np.ones(len(pieces), dtype=bool))

    def piece_sizes(self, pieces: list[Piece]) -> np.ndarray:
        """Device memory of each piece: weights plus the task's optimizer state
        (:meth:`Task.table_bytes`)."""
        t = self.task.tables
        return np.array([self.task.table_bytes(t[i], c) for i, _, c in pieces], dtype=np.int64)

    def cost(
        self, pieces: list[Piece], devices: list[int] | np.ndarray
    ) -> tuple[float, np.ndarray]:
        """``(plan cost, per-device totals)`` of ``pieces`` on ``devices`` (``inf`` over memory)."""
        devices = np.asarray(devices, dtype=np.int64)
        onehot = np.zeros((self.D, len(pieces)))
        onehot[devices, np.arange(len(pieces))] = 1.0
        used = onehot @ self.piece_sizes(pieces).astype(np.float64)
        vec = onehot @ self.piece_vectors(pieces)
        dims = onehot @ np.array([c for _, _, c in pieces], dtype=np.float64)
        compute = self.shard_compute(vec, onehot.sum(1) > 0)
        cost, totals = self.comm(dims, compute, onehot @ self.piece_payloads(pieces))
        if (used > self.memory).any():
            return float("inf"), totals
        return float(cost), totals


__all__ = ["Piece", "Simulator", "combine_costs"]
