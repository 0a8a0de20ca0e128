"""DLRM training on several processes: tables sharded by a planner, dense part data-parallel.

``torchrun --nproc_per_node D -m embedlab train ... --planner NAME`` (or ``embedlab train
... --planner NAME --nproc D``, which launches torchrun itself) runs :func:`train_distributed`
on every process:

1. every rank loads the same data (the synthetic generator and the readers are
   deterministic) and measures each sparse feature's mean pooling factor on the training
   split (at most 100,000 rows);
2. the DLRM is built with its ``EmbeddingBagCollection`` on the meta device, the embedding
   optimizer attached with TorchRec's ``apply_optimizer_in_backward`` (the registry's fused
   optimizer: SGD, Adagrad, row-wise Adagrad or Adam), and the embedlab planner ``NAME``
   plans the tables (:class:`~embedlab.sharding.torchrec_adapter.EmbedlabPlanner`, planned
   on rank 0 and broadcast) on ``D`` devices of ``--device-memory-gb`` each;
3. ``DistributedModelParallel`` shards the tables as planned (FBGEMM's fused kernel) and
   wraps the dense part in ``DistributedDataParallel``; the dense optimizer (the registry's
   dense optimizer) steps the parameters outside the fused tables;
4. each global batch of ``--batch-size`` rows (the single-process order: a pure function of
   ``(seed, epoch)``) is split into ``D`` equal contiguous parts, one per rank;
5. evaluation (at every epoch's end, every ``eval_every`` steps and at the end) runs on all
   ranks (the sharded lookups are collective), each on its slice of the split, predictions
   gathered on rank 0, which writes the run folder (``config.json``, ``plan.json``,
   ``metrics.jsonl`` through the single-process trainer's writer, ``metrics.json``).
   ``--compile-dense`` and unfused embedding kernels are refused;
6. best-on-validation selection and early stopping are the single-process trainer's hook
   (:class:`~embedlab.train.selection.BestOnValid`): rank 0's validation metrics are
   broadcast, every rank updates the same selector, and on an improvement the sharded
   weights are saved (collectively) to ``best/`` (pointer ``best.json``); the final metrics
   come from them.

The loop itself is the single-process trainer's (:func:`embedlab.train.loop.run_loop`):
this module supplies its hooks (per-rank batches, the sharded step, the loss summed over
ranks, the collective evaluation and checkpoint).

``--init-from RUN`` starts from a finished run's final weights (:func:`init_sharded_from`:
each rank copies its shards out of the full tables), so a sharded run and a single-process
run from the same weights follow the same trajectory (the tests compare them).

Tables are sized as in the single-process trainer (a training vocabulary by default, the
same on every rank). CF-SGD's ``lr_rule=auto`` measures the gradient scale on an unsharded
copy of the model built on each rank for the purpose (the tables once more in memory, then
freed).

Checkpoints follow PyTorch's convention for sharded state, ``torch.distributed.checkpoint``
(DCP), through :class:`~embedlab.train.checkpoint.StepCheckpoints`: every
``checkpoint_every`` steps (and at the end) all ranks save the model's state dict (tables as
``ShardedTensor``), the dense and the fused optimizer's state into ``ckpt/step_{N:09d}/``
(one ``.distcp`` file per rank, DCP's ``.metadata``, and ``meta.json`` with the step, the
running loss, the elapsed time and the selector); after a barrier rank 0 replaces the
pointer ``checkpoint.json`` atomically and keeps the :data:`KEEP_CHECKPOINTS` newest
folders. A crash at any point leaves the pointer at the last complete checkpoint.
``--resume RUN_DIR`` under the same number of processes loads it (the plan is recomputed
and must equal the saved ``plan.json``) and continues with the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.data.registry import CTRData, load_data
from embedlab.data.schema import CTRArrays, CTRSchema, epoch_order, make_batch, pooling_factors
from embedlab.errors import UserError
from embedlab.io import ensure_dir, read_json, write_json
from embedlab.models.dlrm import DLRM, SHARDED, model_config
from embedlab.optim.registry import get_optimizer, set_lr
from embedlab.seed import set_seed
from embedlab.train.checkpoint import StepCheckpoints, fbgemm_iteration, set_fbgemm_iteration
from embedlab.train.loop import LoopHooks, LoopState, RunLog, run_loop
from embedlab.train.metrics import ctr_metrics
from embedlab.train.trainer import (
    TrainConfig,
    _check_best_step,
    _flat,
    learning_rates,
    make_selector,
    prepare_data,
    saved_config_matches,
    step_counts,
)

#: Complete checkpoints kept in ``ckpt/`` (the newest ones; older folders are removed).
KEEP_CHECKPOINTS = 2


def _rank_rows(order: np.ndarray, b: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    local = batch_size // world
    start = b * batch_size + rank * local
    return order[start : start + local]


def build_sharded(cfg: TrainConfig, data: CTRData, planner: str, device: torch.device,
                  device_memory_bytes: int, local_size: int) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    """``(DistributedModelParallel DLRM, dense optimizer, fused optimizer, EmbedlabPlanner)``."""
    import torch.distributed as dist
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.types import ShardingEnv
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from torchrec.optim.keyed import KeyedOptimizerWrapper
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    from embedlab.sharding.torchrec_adapter import EmbedlabPlanner

    schema = data.schema
    spec = get_optimizer(cfg.optimizer)
    if not spec.can_fuse(cfg.optimizer_options):
        from embedlab.optim.registry import OPTIMIZERS

        ok = ", ".join(n for n, o in OPTIMIZERS.items() if o.can_fuse())
        raise UserError(
            f"optimizer {cfg.optimizer!r} cannot be fused into sharded tables on this device; use one of: {ok}"
        )
    lr, elr = learning_rates(cfg)
    model = DLRM(schema.num_dense, schema.table_sizes, schema.sparse_names, model_config(cfg.model_size),
                 embedding_kernel=SHARDED, embedding_init_bound=cfg.embedding_init)  # fmt: skip
    if spec.lr_rule(cfg.optimizer_options) == "auto":
        from embedlab.train.trainer import _init_from, build_model, embedding_lr_rule

        probe, _ = build_model(cfg, schema)
        if cfg.init_from is not None:  # measured on the weights the run starts from
            _init_from(probe, Path(cfg.init_from))
        elr, _ = embedding_lr_rule(cfg, probe, data)
        del probe
    emb = spec.fused(elr, **cfg.optimizer_options)
    apply_optimizer_in_backward(emb.cls, model.sparse.parameters(), dict(emb.kwargs))
    pfs = pooling_factors(data.train, schema.sparse_names)
    planner_obj = EmbedlabPlanner(
        planner,
        dist.get_world_size(),
        device_memory_bytes=device_memory_bytes,
        batch_size=cfg.batch_size,
        pooling_factors={f"t_{k}": v for k, v in pfs.items()},
        device_type=device.type,
        local_size=local_size,
        task_name="train",
    )
    plan = planner_obj.collective_plan(model, None, dist.GroupMember.WORLD)
    dmp = DistributedModelParallel(model, device=device, plan=plan,
                                   env=ShardingEnv.from_process_group(dist.GroupMember.WORLD))  # fmt: skip
    dense = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(dmp.named_parameters())),
        lambda params: (get_optimizer(cfg.dense_optimizer) if cfg.dense_optimizer else spec).dense(
            params, lr
        ),
    )
    dmp.embedlab_embedding_lr = elr  # the lr the fused tables step with (after the lr rule)
    return dmp, dense, dmp.fused_optimizer, planner_obj


@torch.no_grad()
def predict_distributed(dmp: Any, arrays: CTRArrays, schema: CTRSchema, cfg: TrainConfig, rank: int,
                        world: int, device: torch.device) -> np.ndarray | None:  # fmt: skip
    """Click probabilities of every row of ``arrays`` (on rank 0; None elsewhere)."""
    import torch.distributed as dist

    n = len(arrays)
    local = max(cfg.eval_batch_size // world, 1)
    steps = -(-n // (local * world))
    mine: list[np.ndarray] = []
    dmp.eval()
    for s in range(steps):
        start = s * local * world + rank * local
        rows = np.arange(start, start + local)
        valid = int(np.clip(n - start, 0, local))
        rows[valid:] = 0  # padding (dropped below): every rank runs the same collectives
        b = make_batch(arrays, rows, schema)
        p = torch.sigmoid(dmp(b.dense.to(device), b.sparse.to(device))).double().cpu().numpy()
        mine.append(p[:valid])
    dmp.train()
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, mine)
    if rank != 0:
        return None
    ordered = [parts[r][s] for s in range(steps) for r in range(world)]
    return np.concatenate(ordered) if ordered else np.zeros(0)


def _evaluate(
    dmp: Any, arrays: CTRArrays, schema: CTRSchema, cfg: TrainConfig, env: Any
) -> dict[str, float] | None:
    """CTR metrics of ``arrays`` on rank 0 (None elsewhere); every rank must call it."""
    p = predict_distributed(dmp, arrays, schema, cfg, env.rank, env.world_size, env.device)
    return None if p is None else ctr_metrics(np.asarray(arrays.labels, dtype=np.float64), p)


def sharded_state(dmp: Any, dense_opt: Any, fused_opt: Any) -> dict[str, Any]:
    """The run's tensor state as DCP saves and loads it: the model's state dict (tables as
    ``ShardedTensor``, the dense part replicated), the dense optimizer's and the fused
    (FBGEMM, sharded with its tables) optimizer's state dicts."""
    return {"model": dmp.state_dict(), "dense_optim": dense_opt.state_dict(),
            "fused_optim": fused_opt.state_dict()}  # fmt: skip


def load_sharded_state(store: StepCheckpoints, dmp: Any, dense_opt: Any, fused_opt: Any) -> dict[str, Any]:
    """Collective: load the pointer's checkpoint of ``store`` into the model and both
    optimizers (TorchRec's in-place way: initialize the lazy optimizer state, fill the
    state dicts with DCP, load them back); the checkpoint's ``meta.json``."""
    if not dense_opt.state:
        dense_opt.init_state()  # a zero-gradient step creates the (lazy) state to load into
    state = sharded_state(dmp, dense_opt, fused_opt)
    meta = store.load(state)
    dmp.load_state_dict(state["model"])
    dense_opt.load_state_dict(state["dense_optim"])
    fused_opt.load_state_dict(state["fused_optim"])
    return meta


def init_sharded_from(dmp: Any, run: Path) -> None:
    """Start the sharded model from the final weights of the finished single-process run
    ``run`` (its ``checkpoint.pt``, full tensors; a sharded run has none and is refused):
    every rank copies the rows and columns of its own shards, the replicated dense part
    whole. The optimizers start fresh, as in the single-process trainer."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    from embedlab.train.trainer import init_weights

    weights = init_weights(run)
    state = dmp.state_dict()
    for k, v in state.items():
        src = weights.get(k)
        if src is None or tuple(src.shape) != tuple(v.size()):
            got = "missing" if src is None else f"shape {tuple(src.shape)}"
            raise UserError(
                f"--init-from {run}: its model does not match this one ({k}: {got}, "
                f"expected {tuple(v.size())})"
            )
        with torch.no_grad():
            if isinstance(v, ShardedTensor):
                for sh in v.local_shards():
                    (r0, c0), (nr, nc) = sh.metadata.shard_offsets, sh.metadata.shard_sizes
                    sh.tensor.copy_(src[r0 : r0 + nr, c0 : c0 + nc])
            else:
                v.copy_(src)
    dmp.load_state_dict(state)


def train_distributed(cfg: TrainConfig, out: str | Path, *, planner: str, device_memory_gb: float = 16.0,
                      resume: bool = False, show_progress: bool = True,
                      threads: int | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Train as the module doc says (call on every rank under torchrun); final metrics on rank 0."""
    import torch.distributed as dist

    from embedlab.distributed import init_distributed

    cfg.validate()
    if cfg.compile_dense:
        raise UserError("--compile-dense is not supported with --planner (sharded training)")
    if cfg.scheme != "dense":
        raise UserError("--scheme (growth/pruning) runs single-process; drop --planner")
    if model_config(cfg.model_size).embedding_dim % 4:
        raise UserError(
            "sharded training uses FBGEMM's fused kernel, which needs an embedding dim divisible by 4"
        )
    if cfg.embedding_kernel not in ("auto", "fused"):
        raise UserError(
            "sharded training uses FBGEMM's fused kernel; drop --embedding-kernel or set it to fused"
        )
    env = init_distributed(threads or cfg.threads)
    rank, world, device = env.rank, env.world_size, env.device
    if cfg.batch_size % world:
        raise UserError(
            f"--batch-size {cfg.batch_size} does not split evenly over {world} processes"
        )
    run = Path(out)
    if env.is_main:
        ensure_dir(run)
    dist.barrier()
    saved = {
        **cfg.to_dict(),
        "planner": planner,
        "nproc": world,
        "device_memory_gb": device_memory_gb,
    }
    if resume and not (
        saved_config_matches(run, cfg) and read_json(run / "config.json").get("nproc") == world
    ):
        raise UserError(f"{run}/config.json differs from the requested settings or process count")
    # rank 0 loads first: it converts the data files into the shared cache once, the other
    # ranks then read that cache (concurrent conversions of the same file would race)
    data = load_data(cfg.data, **cfg.data_options) if env.is_main else None
    dist.barrier()
    if data is None:
        data = load_data(cfg.data, **cfg.data_options)
    data = prepare_data(cfg, data)
    set_seed(cfg.seed)
    dmp, dense_opt, fused_opt, planner_obj = build_sharded(
        cfg, data, planner, device, int(device_memory_gb * 2**30), env.local_world_size
    )
    plan_json = planner_obj.last_plan.to_json() if planner_obj.last_plan is not None else None
    base_lr, _ = learning_rates(cfg)
    base_elr = float(dmp.embedlab_embedding_lr)
    per_epoch, total = step_counts(cfg, len(data.train))
    has_valid = len(data.valid) > 0
    selector = make_selector(cfg, has_valid, say=show_progress and env.is_main)
    store = StepCheckpoints(run, "ckpt", "checkpoint.json", KEEP_CHECKPOINTS)
    best_store = StepCheckpoints(run, "best", "best.json", keep=1)

    state = LoopState()
    if resume:
        if store.latest() is None:
            raise UserError(f"{run} has no complete checkpoint (checkpoint.json) to resume")
        saved_shards = read_json(run / "plan.json").get("shards")
        if plan_json is not None and json.loads(json.dumps(plan_json["shards"])) != saved_shards:
            raise UserError(
                f"the planner's plan differs from {run}/plan.json; resume needs the same plan"
            )
        meta = load_sharded_state(store, dmp, dense_opt, fused_opt)
        set_fbgemm_iteration(dmp, meta.get("fbgemm_iter"))
        state = LoopState(int(meta["step"]), float(meta["loss_sum"]) if env.is_main else 0.0,
                          int(meta["loss_n"]) if env.is_main else 0, float(meta["elapsed"]))  # fmt: skip
        if selector is not None and meta.get("selection") is not None:
            selector.load_state_dict(meta["selection"])
    else:
        if cfg.init_from is not None:
            init_sharded_from(dmp, Path(cfg.init_from))
    if not resume and env.is_main:
        store.clear()
        best_store.clear()
        for p in run.glob("checkpoint.rank*.pt"):  # an older embedlab's per-rank files
            p.unlink()
        if data.vocabulary is not None:
            data.vocabulary.save(run / "vocab.npz")
        (run / "metrics.json").unlink(missing_ok=True)
        write_json(run / "config.json", saved)
        if plan_json is not None:
            write_json(run / "plan.json", plan_json)
    dist.barrier()

    def loss_total(s: float, n: int) -> tuple[float, int]:
        t = torch.tensor([s, n], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t[0]), int(t[1])

    def save(st: LoopState) -> None:
        # the running loss of every rank, kept once (rank 0 resumes with it, the others at 0)
        loss_sum, loss_n = loss_total(st.loss_sum, st.loss_n)
        store.save(st.step, sharded_state(dmp, dense_opt, fused_opt), {
            "elapsed": st.elapsed, "loss_sum": loss_sum, "loss_n": loss_n,
            "fbgemm_iter": fbgemm_iteration(dmp),
            "selection": selector.state_dict() if selector is not None else None,
        })  # fmt: skip

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=state.step, disable=not (show_progress and env.is_main), unit="step",
               dynamic_ncols=True, mininterval=1.0)  # fmt: skip
    log = RunLog(run, cfg.tensorboard, state.step if resume else None) if env.is_main else None

    def write(rec: dict[str, Any]) -> None:
        if log is not None:
            log.write(rec)

    def validate_now(step: int) -> bool:
        """Collective: evaluate, keep the best shards on every rank; True: stop early."""
        m = _evaluate(dmp, data.valid, data.schema, cfg, env)
        if m is not None:
            write({"step": step, "epoch": step / per_epoch, **{f"valid_{k}": v for k, v in m.items()}})
        box = [m]
        dist.broadcast_object_list(box, src=0)
        if selector is None:
            return False
        if selector.update(step, step / per_epoch, box[0]):
            best_store.save(step, {"model": dmp.state_dict()}, {})
        if selector.should_stop():
            selector.stopped_step = step
            return True
        return False

    def batches(epoch: int, start: int) -> Any:
        order = epoch_order(len(data.train), cfg.seed, epoch)
        for b in range(start, per_epoch):
            yield make_batch(data.train, _rank_rows(order, b, cfg.batch_size, rank, world), data.schema)

    def train_step(step: int, batch: Any, lr: float) -> torch.Tensor:
        set_lr(dense_opt, lr)
        if cfg.schedule != "constant" or cfg.warmup_steps:
            set_lr(fused_opt, lr * base_elr / base_lr)
            fused_opt.step()  # pushes the learning rate into the FBGEMM kernels
        logits = dmp(batch.dense.to(device), batch.sparse.to(device))
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels.to(device))
        dense_opt.zero_grad(set_to_none=True)
        loss.backward()
        dense_opt.step()
        return loss

    hooks = LoopHooks(batches=batches, train_step=train_step, save=save, log=write,
                      validate=validate_now if has_valid else None, loss_total=loss_total)  # fmt: skip
    dmp.train()
    try:
        wall = run_loop(cfg, state, per_epoch, total, hooks, base_lr=base_lr, bar=bar,
                        stopped=selector is not None and selector.stopped_step is not None)  # fmt: skip
        step = state.step
        bar.close()
        if selector is not None and selector.best_step is not None and selector.best_step != step:
            best = {"model": dmp.state_dict()}
            saved = best_store.load(best)
            _check_best_step(run / "best.json", int(saved["step"]), selector.best_step)
            dmp.load_state_dict(best["model"])
        final: dict[str, Any] = {}
        for split in ("valid", "test"):
            m = _evaluate(dmp, data.split(split), data.schema, cfg, env)
            final.update({f"{split}_{k}": v for k, v in (m or {}).items()})
        if log is not None:
            log.write({"step": step, **final}, tb_prefix="final_")
    finally:
        bar.close()
        if log is not None:
            log.close()
    if not env.is_main:
        dist.barrier()  # leave together: a rank tearing gloo down early can abort its peer
        return None
    counts = dmp.module.parameter_counts() if hasattr(dmp.module, "parameter_counts") else {}
    final.update({
        "steps": step, "train_samples": step * cfg.batch_size, "wall_time_s": wall,
        "train_samples_per_s": step * cfg.batch_size / max(wall, 1e-9), "nproc": world,
        "backend": env.backend, "planner": planner, "data_name": data.name, **_flat(data.info, "data_"),
        "epochs_run": step / per_epoch, "embedding_lr_effective": base_elr, "tables": cfg.table_sizing(),
        **(selector.summary() if selector is not None else {"best_step": None}),
        **{f"params_{k}": v for k, v in counts.items()},
        **{f"cfg_{k}": v for k, v in cfg.to_dict().items() if not isinstance(v, dict)},
    })  # fmt: skip
    write_json(run / "metrics.json", final)
    dist.barrier()
    return final


__all__ = [
    "KEEP_CHECKPOINTS",
    "build_sharded",
    "init_sharded_from",
    "load_sharded_state",
    "sharded_state",
    "pooling_factors",
    "predict_distributed",
    "train_distributed",
]
