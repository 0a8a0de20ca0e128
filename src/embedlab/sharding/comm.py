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

:func:`calibrate` (or :func:`time_kinds` inside an existing process group) times the real
TorchRec modules at several message sizes, on the process group's backend (gloo on CPU,
NCCL on GPU). Repeatability (our choices, after gloo's fitted latency varied 0.09-1.95 ms
between calibrations that timed each size in one burst of 10 calls): every size of every
kind is timed in ``rounds`` interleaved bursts of ``repeats`` calls, each call started at
a barrier; a size's time is the median over bursts of each burst's fastest call, then the
max over ranks; the line is fitted by least squares on relative error (weights ``1/t``), so
the smallest messages, which fix ``alpha``, are not swamped by the largest. The model keeps
every point, and ``alpha_ms``/``beta_ms_per_byte`` are the ``output_fwd`` kind's (what
models without kinds meant).
"""

from __future__ import annotations

import os
import socket
import statistics
import time
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
        d = len(payload_per_device)
        if d <= 1 or not self.has_input:
            return 0.0
        a, b = self.line("input")
        total = sum(payload_per_device)
        local = batch_size / d
        return max(
            a + b * max(local * (total - p), local * (d - 1) * p) for p in payload_per_device
        )

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


#: Message sizes calibrated by default: bytes each rank sends to its peers (16 KiB to 8 MiB,
#: the range of DLRM tasks of 20-50 tables at batch 4096; gloo on this machine turned
#: superlinear at 16 MiB: 80 ms where the line through the smaller sizes gives 30 ms).
DEFAULT_SIZES = (2**14, 2**16, 2**18, 2**20, 2**22, 2**23)
POOLED_COLS = 64  # columns per rank of the calibration's pooled all-to-all
CAL_POOLING = 16  # ids per bag in the calibration's input all-to-all


class _Probe:
    """One (kind, size) of a calibration: a real TorchRec collective, ready to call."""

    def __init__(self, kind: str, n_bytes: int, group: Any, device: Any) -> None:
        import torch
        import torch.distributed as dist

        world, rank = dist.get_world_size(group), dist.get_rank(group)
        self.kind, self.device = kind, device
        if kind == "input":
            from torchrec.distributed.dist_data import KJTAllToAll
            from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

            # one feature per rank, CAL_POOLING ids per bag; sent to peers: (W-1) * b * payload
            b = max(int(n_bytes / ((world - 1) * input_payload(CAL_POOLING))), 1)
            self.bytes = (world - 1) * b * input_payload(CAL_POOLING)
            lengths = torch.full((world * b,), CAL_POOLING, dtype=torch.int32, device=device)
            values = torch.arange(world * b * CAL_POOLING, dtype=torch.int64, device=device)
            self.kjt = KeyedJaggedTensor(keys=[f"f{r}" for r in range(world)], values=values,
                                         lengths=lengths)  # fmt: skip
            self.a2a = KJTAllToAll(group, [1] * world)
        else:
            from torchrec.distributed.dist_data import PooledEmbeddingsAllToAll

            # global batch B of POOLED_COLS columns; sent to peers B * cols * 4 * (W-1) / W
            local = max(int(n_bytes / (POOLED_COLS * ACTIVATION_BYTES * (world - 1))), 1)
            self.bytes = local * world * POOLED_COLS * ACTIVATION_BYTES * (world - 1) / world
            g = torch.Generator().manual_seed(rank)
            x = torch.randn(local * world, POOLED_COLS, generator=g)
            self.x = x.to(device).requires_grad_(True)
            self.grad = torch.randn(local, POOLED_COLS * world, generator=g).to(device)
            self.a2a = PooledEmbeddingsAllToAll(group, [POOLED_COLS] * world, device=device)

    def __call__(self, sync: Any) -> float:
        """One timed call (ms), started after the caller's barrier."""
        if self.kind == "input":
            t0 = sync()
            self.a2a(self.kjt).wait().wait()
            return (sync() - t0) * 1e3
        out = self.a2a(self.x).wait()
        if self.kind == "output_fwd":
            t0 = sync()
            out = self.a2a(self.x).wait()
            t1 = sync()
            out.backward(self.grad)
            return (t1 - t0) * 1e3
        t0 = sync()
        out.backward(self.grad)
        return (sync() - t0) * 1e3


def time_kinds(sizes: Sequence[int] = DEFAULT_SIZES, rounds: int = 5, repeats: int = 4,
               kinds: Sequence[str] = KINDS, group: Any = None) -> dict[str, list[tuple[float, float]]]:  # fmt: skip
    """``{kind: [(bytes sent to peers, ms), ...]}`` timed with TorchRec's collectives in the
    current process group (every rank calls it). See the module doc for the statistic:
    interleaved bursts, the median over bursts of each burst's fastest call, the max over
    ranks. Tensors live on the current device (CUDA under NCCL)."""
    import torch
    import torch.distributed as dist

    group = group if group is not None else dist.GroupMember.WORLD
    cuda = dist.get_backend(group) == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    probes = [_Probe(k, n, group, device) for k in kinds for n in sizes]
    for p in probes:  # warm-up: two calls of each
        for _ in range(2):
            dist.barrier(group)
            p(sync)
    best: list[list[float]] = [[] for _ in probes]
    for r in range(rounds):
        order = probes[r % len(probes):] + probes[: r % len(probes)]  # fmt: skip
        for p in order:
            times = []
            for _ in range(repeats):
                dist.barrier(group)
                times.append(p(sync))
            best[probes.index(p)].append(min(times))
    med = torch.tensor([statistics.median(b) for b in best], dtype=torch.float64)
    med = med.to(device)
    dist.all_reduce(med, op=dist.ReduceOp.MAX, group=group)
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for p, t in zip(probes, med.tolist()):
        out[p.kind].append((float(p.bytes), float(t)))
    return out


def model_from_kinds(points: dict[str, list[tuple[float, float]]], backend: str, world_size: int,
                     sizes: Sequence[int], rounds: int, repeats: int, threads: int | None = 1) -> CommModel:  # fmt: skip
    """The per-kind model fitted (relative least squares) to :func:`time_kinds` points."""
    kinds = {k: list(fit_alpha_beta(*zip(*pts), relative=True)) for k, pts in points.items()}
    a, b = kinds.get("output_fwd", next(iter(kinds.values())))
    settings = {"world_size": world_size, "sizes": list(sizes), "rounds": rounds, "repeats": repeats,
                "statistic": "median over rounds of the round's fastest call, max over ranks",
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
    finally:
        dist.destroy_process_group()


def calibrate(world_size: int = 2, sizes: Sequence[int] = DEFAULT_SIZES, rounds: int = 5,
              repeats: int = 4, backend: str = "gloo") -> CommModel:  # fmt: skip
    """Time TorchRec's input and pooled all-to-alls among ``world_size`` local processes
    (one thread each) and fit one line per kind (:func:`time_kinds`, :func:`model_from_kinds`).

    ``sizes`` are the bytes each rank sends to its peers. Runs on CPU with gloo (NCCL needs
    one GPU per process: call :func:`time_kinds` in a GPU process group instead).
    """
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
