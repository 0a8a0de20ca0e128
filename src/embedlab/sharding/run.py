"""Run a sharding plan for real: TorchRec ``DistributedModelParallel`` under torchrun.

``embedlab shard run --task tasks.json --name T --plan plans.json --nproc D --steps N``
builds, on each of ``D`` processes, a DLRM for task ``T``'s tables, shards its
``EmbeddingBagCollection`` with the plan (:func:`~embedlab.sharding.torchrec_adapter.to_torchrec_plan`,
FBGEMM's fused kernel, the task's optimizer -- exact SGD when it names none -- fused into
the backward), and trains ``N`` steps on data
drawn per the spec (indices from each table's pooling factor and index distribution,
:func:`~embedlab.sharding.workload.draw_bags`; dense features and labels random). Each
rank times every phase of every step:

* ``input_dist_ms``: the all-to-all of the indices (TorchRec's input distribution);
* ``fwd_compute_ms``: the sharded embedding lookups on this rank;
* ``fwd_comm_ms``: the all-to-all of the pooled embeddings (output distribution);
* ``dense_ms``: the dense part, forward and backward, gradients all-reduced (data parallel);
* ``bwd_comm_ms``: the all-to-all of the pooled embeddings' gradients;
* ``bwd_compute_ms``: the lookups' backward with the fused optimizer update.

``embedding_ms = input_dist + fwd_compute + fwd_comm + bwd_comm + bwd_compute`` is the
spec's plan cost of that rank, measured. The phases are driven one by one (the sharded module's
``input_dist``/``compute``/``output_dist``, with autograd cut between the phases so each
backward runs alone); every step starts at a barrier, so a rank's communication time
includes waiting for the slowest rank, as in training. Reported per rank: the median over
the timed steps (after ``warmup`` steps).

Next to it, rank 0 measures the same plan with the :class:`~embedlab.sharding.cost.CostMeter`
(CPU backend, the run's global batch) and an alpha-beta model of the all-to-all calibrated
in the same process group just before the run (or loaded with ``--comm``): the prediction
the planners optimize. On a GPU machine the CUDA kernels are timed but the meter's CPU
prediction is not comparable, so it is left out.

The model: a bottom MLP (13 dense features → 64 → 16), the task's embedding bags, and a
top MLP (64 → 1) over the concatenation of the bottom output and every pooled embedding
(our choice: the tables of a task may have different dims, which the dot interaction
cannot take).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from embedlab.sharding.types import Plan, Task
from embedlab.sharding.workload import draw_bags

NUM_DENSE = 13
PHASES = (
    "input_dist_ms",
    "fwd_compute_ms",
    "fwd_comm_ms",
    "dense_ms",
    "bwd_comm_ms",
    "bwd_compute_ms",
)
NUM_BATCHES = 4


@dataclass(frozen=True)
class RankTimes:
    """Median phase times of one rank (ms per step)."""

    rank: int
    input_dist_ms: float
    fwd_compute_ms: float
    fwd_comm_ms: float
    dense_ms: float
    bwd_comm_ms: float
    bwd_compute_ms: float
    step_ms: float

    @property
    def embedding_ms(self) -> float:
        return (self.input_dist_ms + self.fwd_compute_ms + self.fwd_comm_ms + self.bwd_comm_ms
                + self.bwd_compute_ms)  # fmt: skip

    def to_json(self) -> dict[str, float]:
        return {**asdict(self), "embedding_ms": self.embedding_ms}


class TaskDLRM(nn.Module):
    """A DLRM over a task's tables with concatenation interaction (see the module doc)."""

    def __init__(self, task: Task, hidden: int = 64, bottom_dim: int = 16) -> None:
        super().__init__()
        from embedlab.models.dlrm import mlp
        from embedlab.sharding.torchrec_adapter import embedding_bag_collection_for_task

        self.sparse = embedding_bag_collection_for_task(task, "meta")
        self.bottom = mlp([NUM_DENSE, hidden, bottom_dim], final_activation=True)
        self.top = mlp(
            [bottom_dim + sum(t.dim for t in task.tables), hidden, 1], final_activation=False
        )
        self.names = [t.name for t in task.tables]

    def head(self, dense: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.top(torch.cat([self.bottom(dense), pooled], dim=1)).squeeze(1)


def local_batches(
    task: Task, local_batch: int, rank: int, seed: int
) -> list[tuple[Any, torch.Tensor, torch.Tensor]]:
    """``NUM_BATCHES`` (KJT, dense, labels) of ``local_batch`` samples for ``rank``, drawn per the spec."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    out = []
    for b in range(NUM_BATCHES):
        vals, lens = [], []
        for i, t in enumerate(task.tables):
            bags = draw_bags(t, local_batch, np.random.default_rng([seed, rank, b, i]))
            vals.append(bags.indices.astype(np.int64))
            lens.append(bags.lengths.astype(np.int32))
        kjt = KeyedJaggedTensor(
            keys=[t.name for t in task.tables],
            values=torch.from_numpy(np.concatenate(vals)),
            lengths=torch.from_numpy(np.concatenate(lens)),
        )
        g = torch.Generator().manual_seed(seed * 1000 + rank * 10 + b)
        dense = torch.randn(local_batch, NUM_DENSE, generator=g)
        labels = (torch.rand(local_batch, generator=g) < 0.5).float()
        out.append((kjt, dense, labels))
    return out


def _ordered(kt: Any, names: list[str]) -> torch.Tensor:
    """Pooled embeddings of a KeyedTensor as ``[B, sum dims]`` in ``names`` order."""
    if list(kt.keys()) == names:
        return kt.values()
    d = kt.to_dict()
    return torch.cat([d[n] for n in names], dim=1)


def run_plan(task: Task, plan: Plan, *, steps: int, warmup: int, batch_size: int, seed: int,
             lr: float = 0.01) -> list[RankTimes]:  # fmt: skip
    """Train ``steps`` (+ ``warmup``) steps of the task's DLRM sharded by ``plan`` in the
    current process group (every rank calls it); the ranks' median phase times, on every rank."""
    import torch.distributed as dist
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.types import ShardingEnv

    from embedlab.sharding.cost import fused_optimizer
    from embedlab.sharding.torchrec_adapter import to_torchrec_plan

    rank, world = dist.get_rank(), dist.get_world_size()
    cuda = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    local_batch = batch_size // world
    torch.manual_seed(seed)  # the same dense initialization on every rank
    model = TaskDLRM(task)
    model.bottom.to(device)
    model.top.to(device)
    sharder = EmbeddingBagCollectionSharder(
        fused_params={"optimizer": fused_optimizer(task.optimizer), "learning_rate": lr}
    )
    sharded = DistributedModelParallel(
        model.sparse,
        device=device,
        plan=to_torchrec_plan(
            plan,
            task,
            device_type=device.type,
            local_size=None if not cuda else torch.cuda.device_count(),
        ),
        sharders=[sharder],
        env=ShardingEnv.from_process_group(dist.GroupMember.WORLD),
    )
    sebc = sharded.module
    dense_params = [*model.bottom.parameters(), *model.top.parameters()]
    opt = torch.optim.SGD(dense_params, lr=lr)
    batches = [
        (k.to(device), d.to(device), y.to(device))
        for k, d, y in local_batches(task, local_batch, rank, seed)
    ]

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    samples: dict[str, list[float]] = {p: [] for p in (*PHASES, "step_ms")}
    for step in range(warmup + steps):
        kjt, dense, labels = batches[step % NUM_BATCHES]
        dist.barrier()
        t0 = sync()
        ctx = sebc.create_context()
        dist_in = sebc.input_dist(ctx, kjt).wait().wait()
        t1 = sync()
        embs = sebc.compute(ctx, dist_in)
        t2 = sync()
        leaves = [e.detach().requires_grad_(True) for e in embs]
        pooled = _ordered(sebc.output_dist(ctx, leaves).wait(), model.names)
        t3 = sync()
        pooled_leaf = pooled.detach().requires_grad_(True)
        loss = nn.functional.binary_cross_entropy_with_logits(
            model.head(dense, pooled_leaf), labels
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        flat = torch.cat([p.grad.reshape(-1) for p in dense_params])
        dist.all_reduce(flat)
        flat /= world
        i = 0
        for p in dense_params:
            p.grad.copy_(flat[i : i + p.numel()].view_as(p))
            i += p.numel()
        opt.step()
        t4 = sync()
        pooled.backward(pooled_leaf.grad)
        t5 = sync()
        pairs = [(e, leaf.grad) for e, leaf in zip(embs, leaves) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([e for e, _ in pairs], [g for _, g in pairs])
        t6 = sync()
        if step >= warmup:
            for name, a, b in zip(
                (*PHASES, "step_ms"), (t0, t1, t2, t3, t4, t5, t0), (t1, t2, t3, t4, t5, t6, t6)
            ):
                samples[name].append((b - a) * 1e3)
    mine = RankTimes(rank, *(statistics.median(samples[p]) for p in (*PHASES, "step_ms")))
    # TorchRec's sharded modules hold reference cycles: without a collection, a process that
    # runs plan after plan keeps every plan's tables (a 2 GiB task reached 13 GiB per rank)
    del sharded, sebc, model, opt, batches, dense_params, embs, leaves, pooled, pooled_leaf, ctx, dist_in
    gc.collect()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine.to_json())
    return [RankTimes(**{k: v for k, v in g.items() if k != "embedding_ms"}) for g in gathered]


__all__ = ["PHASES", "RankTimes", "TaskDLRM", "local_batches", "run_plan"]
