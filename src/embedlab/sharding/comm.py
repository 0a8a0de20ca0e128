"""All-to-all communication cost: an alpha-beta model per message kind, calibrated on the
collectives TorchRec itself issues.

A sharded ``EmbeddingBagCollection`` (table-wise or column-wise) exchanges three kinds of
messages per training step; each has its own ``(alpha, beta)`` because TorchRec sends them
with different collectives:

* ``input`` -- the input distribution (TorchRec's ``KJTAllToAll``: a split-size all-to-all,
  then the lengths and the ids). Every rank holds ``B / D`` samples of every feature and
  sends each shard's ids and lengths to the device that holds the shard (a column-wise
  table's ids go to every device holding one of its shards). Per sample a shard costs
  ``4 + 8 * pooling_factor`` bytes (int32 lengths, int64 ids), its ``payload``. Device
  ``d`` sends ``(B / D) * (sum of payloads not on d)`` and receives
  ``(B / D) * (D - 1) * (sum of payloads on d)``.
* ``output_fwd`` -- the pooled embeddings (``PooledEmbeddingsAllToAll``): device ``d``
  computed its shards' outputs for the global batch ``B`` and sends each peer its
  ``B / D`` samples: sent ``B * cols_d * 4 * (D - 1) / D``, received
  ``(B / D) * (sum of the other devices' cols) * 4`` (fp32 activations).
* ``output_bwd`` -- the same all-to-all's backward (the gradients go back: sent and
  received swap).

A device's transfer time is ``alpha + beta * max(sent, received)``; a collective ends when
its slowest participant ends, so its time is the max over devices.

:func:`calibrate` (or :func:`time_kinds` inside an existing process group) times these three
phases in real ``DistributedModelParallel`` training steps of a task of tiny tables (so the
lookups cost next to nothing) at several global batches, on the process group's backend
(gloo on CPU, NCCL on GPU), with :func:`embedlab.sharding.run.run_plan`: the phases are the
ones ``embedlab shard run`` reports, TorchRec's work around each collective (splits
exchange, permutes, awaitables) included. Bare ``all_to_all_single`` calls, timed before,
missed that work: a DMP run's communication phases came out 1.6x the prediction.
Repeatability (our choices, after gloo's fitted latency varied 0.09-1.95 ms between
calibrations that timed each size in one burst of 10 calls): the batches are visited in
``rounds`` interleaved rounds of ``repeats`` steps each; a size's time is the median over
rounds of the slowest rank's median step; the line is fitted by least squares on relative
error (weights ``1/t``), so the smallest messages, which fix ``alpha``, are not swamped by
the largest. The model keeps every point, and ``alpha_ms``/``beta_ms_per_byte`` are the
``output_fwd`` kind's (what models without kinds meant).
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.errors import UserError
from embedlab.io import read_json, write_json

ACTIVATION_BYTES = 4


KINDS = ("input", "output_fwd", "output_bwd")
#: Bytes per sample of a shard's input: an int32 length, plus int64 ids per pooled index.
LENGTH_BYTES, ID_BYTES = 4, 8


def input_payload(pooling_factor: float) -> float:
    """Bytes per sample one shard adds to the input all-to-all (its lengths and ids)."""
    return LENGTH_BYTES + ID_BYTES * float(pooling_factor)


@dataclass(frozen=True)
class CommModel:
    """``time = alpha + beta * bytes`` for one device's share of an all-to-all, per kind.

    ``alpha_ms``/``beta_ms_per_byte`` are the pooled forward all-to-all's (``output_fwd``);
    ``kinds`` maps each calibrated kind of :data:`KINDS` to ``[alpha_ms, beta_ms_per_byte]``.
    A model without ``output_bwd`` uses ``output_fwd``'s line for it; a model without
    ``input`` predicts no input all-to-all (:attr:`has_input` is False and costs say so).
    """

    alpha_ms: float
    beta_ms_per_byte: float
    backend: str = "model"
    settings: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, list[float]] = field(default_factory=dict)

    def line(self, kind: str) -> tuple[float, float]:
        """``(alpha_ms, beta_ms_per_byte)`` of one kind (see the class doc for fallbacks)."""
        if kind in self.kinds:
            a, b = self.kinds[kind]
            return float(a), float(b)
        if kind in ("output_fwd", "output_bwd"):
            return self.alpha_ms, self.beta_ms_per_byte
        return 0.0, 0.0

    @property
    def has_input(self) -> bool:
        return "input" in self.kinds

    def all_to_all_ms(
        self, cols_per_device: Sequence[int], batch_size: int, elem_bytes: int = ACTIVATION_BYTES
    ) -> tuple[float, float]:
        """(forward, backward) all-to-all time of a plan whose devices hold ``cols_per_device``."""
        d = len(cols_per_device)
        if d <= 1:
            return 0.0, 0.0
        total = sum(cols_per_device)
        sent = [batch_size * c * elem_bytes * (d - 1) / d for c in cols_per_device]
        recv = [batch_size / d * (total - c) * elem_bytes for c in cols_per_device]
        af, bf = self.line("output_fwd")
        ab, bb = self.line("output_bwd")
        fwd = max(af + bf * max(s, r) for s, r in zip(sent, recv))
        bwd = max(ab + bb * max(s, r) for s, r in zip(recv, sent))
        return fwd, bwd

    def input_ms(self, payload_per_device: Sequence[float], batch_size: int) -> float:
        """Input all-to-all time of a plan whose devices hold shards with these summed
        per-sample payloads (:func:`input_payload`); 0 without an ``input`` line or with
        one device."""
        return float(self.input_ms_batched(np.asarray([payload_per_device], dtype=np.float64), batch_size)[0])

    def input_ms_batched(self, payload: np.ndarray, batch_size: int) -> np.ndarray:
        """:meth:`input_ms` of many plans at once: ``payload [..., D]`` → ``[...]`` ms. Each
        device sends its local ``batch/D`` samples' ids to the others and receives theirs;
        the slowest device's larger direction sets the time."""
        payload = np.asarray(payload, dtype=np.float64)
        d = payload.shape[-1]
        if d <= 1 or not self.has_input:
            return np.zeros(payload.shape[:-1])
        a, b = self.line("input")
        local = batch_size / d
        recv = local * (payload.sum(-1, keepdims=True) - payload)
        return a + b * np.maximum(recv, local * (d - 1) * payload).max(-1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any, source: str = "the data") -> CommModel:
        """The model of a :meth:`to_json` dict; a malformed one is a :class:`UserError`
        naming ``source``."""
        try:
            kinds = {
                str(k): [float(v[0]), float(v[1])] for k, v in dict(d.get("kinds") or {}).items()
            }
            return cls(
                float(d["alpha_ms"]),
                float(d["beta_ms_per_byte"]),
                str(d.get("backend", "model")),
                dict(d.get("settings", {})),
                kinds,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(
                f"{source} is not a communication model (needs alpha_ms and beta_ms_per_byte)"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> CommModel:
        return cls.from_json(read_json(path), str(path))

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())


def fit_alpha_beta(
    sizes_bytes: Sequence[float], times_ms: Sequence[float], relative: bool = False
) -> tuple[float, float]:
    """Least-squares ``(alpha, beta)`` of ``t = alpha + beta * bytes``, both clipped at 0;
    ``relative`` weighs each point by ``1 / t`` (least squares on relative error)."""
    x = np.asarray(sizes_bytes, dtype=np.float64)
    y = np.asarray(times_ms, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two different message sizes")
    w = 1.0 / np.maximum(y, 1e-9) if relative else None
    beta, alpha = np.polyfit(x, y, 1, w=w)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Global batches of the calibration's sharded steps (with 8 tables of 16 ids per rank on 2
#: ranks: input messages of 33 KiB to 8.4 MiB, pooled ones of 8 KiB to 2 MiB per rank).
DEFAULT_SIZES = (64, 256, 1024, 4096, 16384)
CAL_TABLES_PER_RANK = 8  # features (table-wise shards) per rank in the calibration task
CAL_POOLING = 16  # ids per bag (every bag exactly this long)
CAL_DIM = 8  # columns per table
CAL_ROWS = 64  # rows per table: the lookups themselves cost next to nothing


def calibration_task(world: int, batch: int) -> tuple[Any, Any]:
    """The calibration's task and table-wise plan: ``CAL_TABLES_PER_RANK`` tiny tables per
    rank, every bag ``CAL_POOLING`` ids long (fixed, so the message sizes are exact)."""
    from embedlab.sharding.types import Plan, Shard, Table, Task

    n = world * CAL_TABLES_PER_RANK
    tables = tuple(Table(f"c{i}", CAL_ROWS, CAL_DIM, float(CAL_POOLING), 4, {"kind": "uniform"})
                   for i in range(n))  # fmt: skip
    task = Task(f"comm-calibration-b{batch}", world, 1 << 40, batch, tables)
    plan = Plan(task.name, "calibration",
                tuple(Shard(t.name, i % world, 0, CAL_DIM) for i, t in enumerate(tables)))  # fmt: skip
    return task, plan


def calibration_bytes(world: int, batch: int) -> dict[str, float]:
    """Bytes per rank of each kind in the calibration step at global ``batch`` (module doc)."""
    per_rank_payload = CAL_TABLES_PER_RANK * input_payload(CAL_POOLING)
    cols = CAL_TABLES_PER_RANK * CAL_DIM
    pooled = batch * cols * ACTIVATION_BYTES * (world - 1) / world
    return {"input": batch / world * (world - 1) * per_rank_payload, "output_fwd": pooled, "output_bwd": pooled}


def time_kinds(sizes: Sequence[int] = DEFAULT_SIZES, rounds: int = 3, repeats: int = 8,
               group: Any = None) -> dict[str, list[tuple[float, float]]]:  # fmt: skip
    """``{kind: [(bytes per rank, ms), ...]}`` from real sharded training steps in the current
    (default) process group; every rank calls it.

    For each global batch in ``sizes``, a task of tiny tables (:func:`calibration_task`) is
    sharded table-wise by ``DistributedModelParallel`` and trained with
    :func:`embedlab.sharding.run.run_plan` -- the code ``embedlab shard run`` times -- so a
    kind's time is exactly the phase a planned run shows (``input_dist_ms``,
    ``fwd_comm_ms``, ``bwd_comm_ms``), TorchRec's own work around the collectives included.
    The batches are visited in ``rounds`` interleaved rounds of ``repeats`` steps; a size's
    time is the median over rounds of the slowest rank's median step."""
    import torch.distributed as dist

    from embedlab.sharding.run import run_plan

    if group is not None and group is not dist.GroupMember.WORLD:
        raise UserError("comm calibration runs in the default process group")
    world = dist.get_world_size()
    per: dict[int, dict[str, list[float]]] = {b: {k: [] for k in KINDS} for b in sizes}
    phase = {"input": "input_dist_ms", "output_fwd": "fwd_comm_ms", "output_bwd": "bwd_comm_ms"}
    for r in range(rounds):
        order = list(sizes)[r % len(sizes):] + list(sizes)[: r % len(sizes)]  # fmt: skip
        for b in order:
            task, plan = calibration_task(world, b)
            ranks = run_plan(task, plan, steps=repeats, warmup=2, batch_size=b, seed=r)
            for k in KINDS:
                per[b][k].append(max(getattr(x, phase[k]) for x in ranks))
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    for b in sizes:
        nbytes = calibration_bytes(world, b)
        for k in KINDS:
            out[k].append((nbytes[k], statistics.median(per[b][k])))
    return out


def model_from_kinds(points: dict[str, list[tuple[float, float]]], backend: str, world_size: int,
                     sizes: Sequence[int], rounds: int, repeats: int, threads: int | None = 1) -> CommModel:  # fmt: skip
    """The per-kind model fitted (relative least squares) to :func:`time_kinds` points."""
    kinds = {k: list(fit_alpha_beta(*zip(*pts), relative=True)) for k, pts in points.items()}
    a, b = kinds.get("output_fwd", next(iter(kinds.values())))
    settings = {"world_size": world_size, "batches": list(sizes), "rounds": rounds, "repeats": repeats,
                "statistic": "median over rounds of the slowest rank's median step",
                "method": "DistributedModelParallel steps of a tiny-table task (run_plan phases)",
                "fit": "least squares on relative error",
                "points": {k: [list(p) for p in v] for k, v in points.items()},
                "threads_per_process": threads}  # fmt: skip
    return CommModel(a, b, backend=backend, settings=settings, kinds=kinds)


def _worker(rank: int, world: int, port: int, sizes: list[int], rounds: int, repeats: int,
            backend: str, out: str) -> None:  # fmt: skip
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        res = time_kinds(sizes, rounds, repeats)
        if rank == 0:
            write_json(out, res)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    from embedlab.distributed import exit_worker

    exit_worker(0)  # the result is written; skip native teardown (gloo may abort in it)


def calibrate(world_size: int = 2, sizes: Sequence[int] = DEFAULT_SIZES, rounds: int = 5,
              repeats: int = 10, backend: str = "gloo") -> CommModel:  # fmt: skip
    """Time the input and pooled all-to-alls of sharded steps among ``world_size`` local
    processes (one thread each) and fit one line per kind (:func:`time_kinds`,
    :func:`model_from_kinds`). ``sizes`` are the calibration's global batches. Runs on CPU
    with gloo (NCCL needs one GPU per process: call :func:`time_kinds` in a GPU process
    group instead)."""
    import tempfile

    import torch.multiprocessing as mp

    if world_size < 2:
        raise UserError("calibration needs at least 2 processes")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "a2a.json")
        mp.start_processes(_worker, args=(world_size, _free_port(), list(sizes), rounds, repeats, backend, out),
                           nprocs=world_size, join=True, start_method="spawn")  # fmt: skip
        pts = {k: [tuple(p) for p in v] for k, v in read_json(out).items()}
    return model_from_kinds(pts, f"{backend}-cpu", world_size, sizes, rounds, repeats)
