"""NeuroShard's pre-training data: measured shard compute costs and modelled all-to-all times.

**Compute** (paper/reference ``compute_bench.py``): tables are *augmented* over dims -- every
pool table at every dim of :attr:`PretrainSettings.dims` (``{4, 8, 16, 32, 64, 128}``, the
reference's set; 856 × 6 = 5,136 configurations for the default pool), fp32. A random shard
is 1..``max_tables`` (15) configurations drawn with replacement, total at most
``shard_memory_bytes`` (4 GiB); its label is the forward + backward time of the fused kernel
on one device. Ours: measured with :class:`~embedlab.sharding.cost.CostMeter` (FBGEMM's CPU
TBE, interleaved timing of ``chunk`` shards per pass, the meter's statistic) instead of the
reference's median of 10 GPU runs; forward and backward are kept separately.

Shards are measured in chunks; each chunk's shards come from an RNG seeded by
``(seed, chunk index)``, and each measured chunk is appended to ``compute_data.jsonl`` at
once, so a killed run resumes at the next chunk with the same data it would have drawn.
A measurement budget (seconds of measuring, summed over runs of the same folder) stops
the collection between chunks.

**Communication** (paper/reference ``comm_bench.py``): ``T ~ U[10, 60)`` dims from the same
set, assigned by ``random_dim_greedy`` (with probability ``p ~ U(0, 1)`` a dim goes to a
random device, else to the device with the smallest dim sum); per-device straggler offsets
``sleep_r ~ U[0, diff)``, ``diff ~ U[1, max_offset_ms)``. The reference times a real
all-to-all after each device sleeps ``sleep_r`` and records the per-device forward time
(sleep subtracted) and the backward time. Our choice: the labels come from the calibrated
alpha-beta model (:class:`~embedlab.sharding.comm.CommModel`, fitted on real gloo
``all_to_all_single`` timings) that the :class:`CostMeter` itself uses, evaluated at the
meter's timed batch -- a device that arrives ``max_j sleep_j - sleep_r`` early waits that
long, then the transfer takes the model's forward time; the backward all-to-all starts
synchronised and takes the model's backward time. So the communication networks learn the
same communication the benchmark charges, with the paper's inputs and straggler
semantics; timing gloo among D processes per sample is far too slow on this machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.errors import UserError
from embedlab.sharding.comm import CommModel
from embedlab.sharding.cost import CostMeter, MeasurementBudgetExceeded
from embedlab.sharding.generator import GIB
from embedlab.sharding.types import Shard, Table, Task

DIMS = (4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class PretrainSettings:
    """What to collect and how to train (reference defaults where it has them)."""

    dims: tuple[int, ...] = DIMS
    compute_samples: int = 2000  # measured shards (the reference collects open-ended)
    max_tables: int = 15
    shard_memory_bytes: int = 4 * GIB
    chunk: int = 8  # shards measured interleaved per pass (and per resume unit)
    comm_samples: int = 20_000  # per device count
    device_counts: tuple[int, ...] = (2, 4, 8)
    comm_tables: tuple[int, int] = (10, 60)
    max_offset_ms: float = 20.0
    compute_epochs: int = 1000
    comm_epochs: int = 100
    compute_batch: int = (
        64  # ours: the reference's 512 leaves a few hundred samples one step per epoch
    )
    comm_batch: int = 512
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.dims or any(d < 1 for d in self.dims):
            raise UserError(f"dims must be positive, got {self.dims}")
        for k in ("compute_samples", "max_tables", "shard_memory_bytes", "chunk", "comm_samples",
                  "compute_epochs", "comm_epochs", "compute_batch", "comm_batch"):  # fmt: skip
            if getattr(self, k) < 1:
                raise UserError(f"pre-training setting {k!r} must be >= 1, got {getattr(self, k)}")
        if not self.device_counts or any(d < 2 for d in self.device_counts):
            raise UserError(f"device counts must be >= 2, got {self.device_counts}")
        lo, hi = self.comm_tables
        if not 1 <= lo < hi:
            raise UserError(f"comm_tables must be 1 <= lo < hi, got {self.comm_tables}")
        if not self.max_offset_ms > 1.0 or not self.lr > 0:
            raise UserError("max_offset_ms must be > 1 and lr > 0")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def collection_json(self) -> dict[str, Any]:
        """The settings that decide which shards are drawn (a resumed run must keep them;
        targets and training settings may change)."""
        keep = ("dims", "max_tables", "shard_memory_bytes", "chunk", "seed")
        return {k: v for k, v in self.to_json().items() if k in keep}


@dataclass(frozen=True)
class ComputeSample:
    """One measured shard: ``(pool index, dim)`` per table, forward and backward ms."""

    configs: tuple[tuple[int, int], ...]
    fwd_ms: float
    bwd_ms: float
    chunk: int

    @property
    def total_ms(self) -> float:
        return self.fwd_ms + self.bwd_ms


def augmented_table(pool: list[Table], index: int, dim: int) -> Table:
    """Pool table ``index`` at ``dim``, fp32 (the reference's augmentation)."""
    return replace(
        pool[index], dim=int(dim), bytes_per_element=4, reuse_bins=pool[index].reuse_bins
    )


def sample_shard(pool: list[Table], settings: PretrainSettings, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:  # fmt: skip
    """1..max_tables augmented configurations with replacement, total <= the memory limit."""
    n = int(rng.integers(1, settings.max_tables + 1))
    out: list[tuple[int, int]] = []
    total = 0
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        i, d = int(rng.integers(len(pool))), int(rng.choice(settings.dims))
        size = pool[i].rows * d * 4
        if total + size <= settings.shard_memory_bytes:
            out.append((i, d))
            total += size
    if not out:
        raise UserError(
            f"no pool table fits a {settings.shard_memory_bytes}-byte shard at dims {settings.dims}"
        )
    return tuple(out)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSONL file; a torn last line (a killed writer) is dropped and truncated."""
    if not path.is_file():
        return []
    good, pos = [], 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                good.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            pos += len(raw)
    if pos != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(pos)
    return good


def load_compute_samples(path: str | Path) -> list[ComputeSample]:
    return [
        ComputeSample(
            tuple((int(a), int(b)) for a, b in d["configs"]),
            float(d["fwd_ms"]),
            float(d["bwd_ms"]),
            int(d["chunk"]),
        )  # fmt: skip
        for d in _read_jsonl(Path(path))
    ]


def collect_compute_data(path: str | Path, pool: list[Table], meter: CostMeter, settings: PretrainSettings,
                         measure_budget_s: float | None = None, show_progress: bool = True,
                         progress: Callable[[int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure random shards into the JSONL file ``path`` until ``compute_samples`` are there
    or the budget (seconds of measuring over all runs on this file) is spent; resumes."""
    from tqdm.auto import tqdm

    path = Path(path)
    lines = _read_jsonl(path)
    done_chunks = {int(d["chunk"]) for d in lines}
    spent = sum(float(d.get("seconds", 0.0)) for d in lines)
    n = len(lines)
    chunk = max(done_chunks) + 1 if done_chunks else 0
    stopped = "target"
    bar = tqdm(total=settings.compute_samples, initial=min(n, settings.compute_samples),
               disable=not show_progress, unit="shard", desc="neuroshard compute data")  # fmt: skip
    try:
        while n < settings.compute_samples:
            if measure_budget_s is not None and spent >= measure_budget_s:
                stopped = "budget"
                break
            rng = np.random.default_rng([settings.seed, 7, chunk])
            k = min(settings.chunk, settings.compute_samples - n)
            shards = [sample_shard(pool, settings, rng) for _ in range(k)]
            tables: list[Table] = []
            sets: list[list[Shard]] = []
            for s, configs in enumerate(shards):
                cur = []
                for m, (i, d) in enumerate(configs):
                    t = replace(augmented_table(pool, i, d), name=f"c{s}_{m}")
                    tables.append(t)
                    cur.append(Shard(t.name, 0, 0, t.dim))
                sets.append(cur)
            mem = max(sum(t.size_bytes for t in tables), 1)
            task = Task(f"neuroshard-pretrain-{chunk}", 1, mem, 65_536, tuple(tables))
            t0 = time.perf_counter()
            try:
                costs = meter.measure_devices(task, sets)
            except MeasurementBudgetExceeded:
                stopped = "meter budget"
                break
            sec = time.perf_counter() - t0
            spent += sec
            with open(path, "a", encoding="utf-8") as f:
                for configs, c in zip(shards, costs):
                    f.write(json.dumps({"chunk": chunk, "configs": [list(x) for x in configs], "fwd_ms": c.fwd_ms,
                                        "bwd_ms": c.bwd_ms, "seconds": sec / len(shards)}) + "\n")  # fmt: skip
                f.flush()
            n += len(shards)
            chunk += 1
            bar.update(len(shards))
            bar.set_postfix(spent_s=f"{spent:.0f}")
            if progress is not None:
                progress(n)
    finally:
        bar.close()
    return {"samples": n, "measure_s": spent, "stopped": stopped, "chunks": chunk}


def random_dim_greedy(dims: np.ndarray, num_devices: int, rng: np.random.Generator) -> np.ndarray:
    """Per-device dim sums: each dim to a random device with probability ``p ~ U(0, 1)``,
    else to the device with the smallest dim sum (the reference's ``random_dim_greedy``)."""
    p = rng.random()
    sums = np.zeros(num_devices)
    for d in dims:
        r = int(rng.integers(num_devices)) if rng.random() < p else int(np.argmin(sums))
        sums[r] += d
    return sums


def comm_labels(comm: CommModel, dim_sums: np.ndarray, sleeps: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-device (forward, backward) all-to-all ms: forward waits for the latest arrival."""
    fw_t, bw_t = comm.all_to_all_ms([int(x) for x in dim_sums], batch_size)
    fw = sleeps.max() - sleeps + fw_t
    return fw, np.full(len(dim_sums), bw_t)


def comm_data(num_devices: int, comm: CommModel, batch_size: int, settings: PretrainSettings) -> dict[str, np.ndarray]:  # fmt: skip
    """``comm_samples`` random dim distributions with straggler offsets for ``num_devices``."""
    rng = np.random.default_rng([settings.seed, 11, num_devices])
    n, D = settings.comm_samples, num_devices
    dims = np.zeros((n, D))
    sleeps = np.zeros((n, D))
    fw = np.zeros((n, D))
    bw = np.zeros((n, D))
    lo, hi = settings.comm_tables
    for k in range(n):
        T = int(rng.integers(lo, hi))
        dims[k] = random_dim_greedy(rng.choice(settings.dims, T), D, rng)
        diff = rng.uniform(1.0, settings.max_offset_ms)
        sleeps[k] = rng.uniform(0.0, diff, D)
        fw[k], bw[k] = comm_labels(comm, dims[k], sleeps[k], batch_size)
    return {"dims": dims, "sleeps": sleeps, "fw": fw, "bw": bw}


__all__ = ["DIMS", "ComputeSample", "PretrainSettings", "augmented_table", "collect_compute_data", "comm_data",
           "comm_labels", "load_compute_samples", "random_dim_greedy", "sample_shard"]  # fmt: skip
