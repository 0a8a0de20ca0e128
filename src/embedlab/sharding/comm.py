"""All-to-all communication cost: an alpha-beta model calibrated on real collectives.

Table-wise (and column-wise) sharding exchanges pooled embeddings twice per iteration. In
the forward all-to-all, device ``d`` has computed the pooled outputs of its shards for the
whole global batch ``B`` and sends each peer that peer's ``B / D`` samples:

* sent by ``d``: ``B * cols_d * bytes * (D - 1) / D``
* received by ``d``: ``(B / D) * (sum of the other devices' cols) * bytes``

where ``cols_d`` is the number of embedding columns on ``d`` and ``bytes`` the element size of
the exchanged activations (fp32: 4). The backward all-to-all sends the gradients back (sent
and received swap). A device's transfer time is ``alpha + beta * max(sent, received)``;
an all-to-all ends when its slowest participant ends, so every device waits for the
slowest (the spec's "waiting for the slowest device").

``alpha`` (ms) and ``beta`` (ms per byte) are fitted by least squares to timings of real
``all_to_all_single`` calls among ``D`` processes (:func:`calibrate`: gloo on CPU, NCCL on
GPU), and stored as JSON together with the backend and settings they were measured with.
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


@dataclass(frozen=True)
class CommModel:
    """``time = alpha_ms + beta_ms_per_byte * bytes`` for one device's share of an all-to-all."""

    alpha_ms: float
    beta_ms_per_byte: float
    backend: str = "model"
    settings: dict[str, Any] = field(default_factory=dict)

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
        fwd = max(self.alpha_ms + self.beta_ms_per_byte * max(s, r) for s, r in zip(sent, recv))
        bwd = max(self.alpha_ms + self.beta_ms_per_byte * max(s, r) for s, r in zip(recv, sent))
        return fwd, bwd

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any, source: str = "the data") -> CommModel:
        """The model of a :meth:`to_json` dict; a malformed one is a :class:`UserError`
        naming ``source``."""
        try:
            return cls(
                float(d["alpha_ms"]),
                float(d["beta_ms_per_byte"]),
                str(d.get("backend", "model")),
                dict(d.get("settings", {})),
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


def fit_alpha_beta(sizes_bytes: Sequence[float], times_ms: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(alpha, beta)`` of ``t = alpha + beta * bytes``, both clipped at 0."""
    x = np.asarray(sizes_bytes, dtype=np.float64)
    y = np.asarray(times_ms, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two different message sizes")
    beta, alpha = np.polyfit(x, y, 1)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_all_to_all(
    sizes: Sequence[int], repeats: int = 10, group: Any = None
) -> list[tuple[float, float]]:
    """``(bytes sent to peers, ms)`` per size, timed with ``all_to_all_single`` in the current
    process group (every rank must call it; the time is the median over ``repeats`` after
    two warm-ups, then the max over ranks, since the collective ends with its slowest rank).
    ``sizes`` are the bytes each rank sends in total. Tensors live on the current device."""
    import torch
    import torch.distributed as dist

    world = dist.get_world_size(group)
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend(group) == "nccl"
        else torch.device("cpu")
    )
    res = []
    for n_bytes in sizes:
        per_peer = max(n_bytes // (4 * world), 1)
        x = torch.ones(per_peer * world, dtype=torch.float32, device=device)
        y = torch.empty_like(x)
        times = []
        for i in range(repeats + 2):
            dist.barrier(group)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.all_to_all_single(y, x, group=group)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) * 1000
            if i >= 2:
                times.append(dt)
        t = torch.tensor([statistics.median(times)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
        res.append((per_peer * world * 4 * (world - 1) / world, float(t)))
    return res


def model_from_points(points: Sequence[tuple[float, float]], backend: str, world_size: int, sizes: Sequence[int],
                      repeats: int, threads: int | None = 1) -> CommModel:  # fmt: skip
    """The alpha-beta model fitted to :func:`time_all_to_all` points, with its settings."""
    alpha, beta = fit_alpha_beta([p[0] for p in points], [p[1] for p in points])
    settings = {"world_size": world_size, "sizes": list(sizes), "repeats": repeats, "statistic": "median, max over ranks",
                "points": [list(p) for p in points], "threads_per_process": threads}  # fmt: skip
    return CommModel(alpha, beta, backend=backend, settings=settings)


def _worker(
    rank: int, world: int, port: int, sizes: list[int], repeats: int, backend: str, out: str
) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        res = time_all_to_all(sizes, repeats)
        if rank == 0:
            write_json(out, res)
    finally:
        dist.destroy_process_group()


def calibrate(world_size: int = 2, sizes: Sequence[int] = (2**14, 2**17, 2**20, 2**22, 2**24), repeats: int = 10,
              backend: str = "gloo") -> CommModel:  # fmt: skip
    """Time ``all_to_all_single`` among ``world_size`` local processes and fit alpha/beta.

    ``sizes`` are the bytes each rank sends in total; the fitted ``beta`` is per byte sent
    to peers. Runs on CPU with gloo (NCCL needs one GPU per process).
    """
    import tempfile

    import torch.multiprocessing as mp

    if world_size < 2:
        raise UserError("calibration needs at least 2 processes")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "a2a.json")
        mp.start_processes(_worker, args=(world_size, _free_port(), list(sizes), repeats, backend, out),
                           nprocs=world_size, join=True, start_method="spawn")  # fmt: skip
        pts = read_json(out)
    return model_from_points(pts, f"{backend}-cpu", world_size, sizes, repeats)
