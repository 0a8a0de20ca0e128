"""The DLRM training loop: optimizers, schedule, evaluation, logging, checkpoints, resume.

A run folder holds ``config.json`` (the settings), ``metrics.jsonl`` (one JSON object per
logged step and per evaluation), ``checkpoint.pt`` (the latest checkpoint, replaced
atomically), ``best.pt`` (the weights of the best validation evaluation), ``vocab.npz``
(the id-to-row vocabulary when tables are sized by it) and, when the run finishes,
``metrics.json`` (flat final metrics plus the settings and wall time). The data order is a
pure function of ``(seed, epoch)``, so a run resumed from a checkpoint replays exactly the
batches an uninterrupted run would see and ends with the same final metrics. The loop is
:func:`embedlab.train.loop.run_loop`, shared with the sharded trainer
(:mod:`embedlab.train.distributed`); this module supplies its hooks (the batches, one step
of the optimizers, growth/pruning, the checkpoint). With ``tensorboard`` the run also
writes event files under ``tb/`` (emptied by a fresh run; a resumed run purges the events
after its checkpoint).

**Best on validation.** The validation split is evaluated at the end of every epoch (and
every ``eval_every`` steps when asked); :class:`~embedlab.train.selection.BestOnValid`
keeps the best evaluation, whose weights go to ``best.pt``, and stops the run after
``early_stop_patience`` evaluations without improvement. The reported valid and test
metrics are those of the best checkpoint (``best_step`` in ``metrics.json``). Without a
validation split the run says so once and reports its last step. Growth/pruning schemes
report their last (full-size) step.

**Defaults** (``benchmarks/defaults.py``; chosen on the validation splits of training
families of click logs, judged on held-out families, see ``docs/defaults.md``): tables
sized by the training vocabulary (ids seen at least ``vocab_min_count`` times; the rest
share one trained row), embeddings initialized ``U(-a, a)`` with a fixed ``a``
(``embedding_init``; the DLRM reference's ``sqrt(1/rows)`` is ``embedding_init=None``),
several epochs with best-on-validation selection and early stopping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.data.registry import CTRData, check_data_name, load_data
from embedlab.data.schema import CTRArrays, CTRSchema, iter_batches, num_batches, pooling_factors
from embedlab.errors import UserError
from embedlab.growth.schedule import GrowthSchedule
from embedlab.growth.scheme import GrowthManager, train_flops_per_sample
from embedlab.growth.structure import Structure
from embedlab.io import ensure_dir, read_json, write_json
from embedlab.models.dlrm import DLRM, KERNELS, model_config
from embedlab.optim.registry import get_optimizer, set_lr, state_bytes
from embedlab.seed import set_seed
from embedlab.train.checkpoint import (
    fbgemm_iteration,
    load_checkpoint,
    save_checkpoint,
    set_fbgemm_iteration,
)
from embedlab.train.loop import LoopHooks, LoopState, RunLog, run_loop
from embedlab.train.metrics import ctr_metrics
from embedlab.train.schedule import SCHEDULES
from embedlab.train.selection import BestOnValid, check_metric

#: ``tables`` values: a training vocabulary or hashing into fixed sizes.
TABLE_SIZINGS = ("vocab", "hash")
#: Batches of the first epoch whose embedding gradient sets CF-SGD / FA-SGD's lr (lr_rule=auto).
CALIBRATION_BATCHES = 8


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    data: str = "synth"
    data_options: dict[str, Any] = field(default_factory=dict)
    model_size: str = "kaggle"
    embedding_kernel: str = "auto"
    optimizer: str = "adam"
    lr: float | None = None
    embedding_lr: float | None = None
    schedule: str = "constant"
    warmup_steps: int = 0
    epochs: int = 10  # an upper bound: early stopping ends most runs after 3-5 (defaults.md)
    max_steps: int | None = None
    batch_size: int = 512
    eval_batch_size: int = 16384
    seed: int = 0
    checkpoint_every: int = 1000
    eval_every: int = 0
    log_every: int = 50
    tensorboard: bool = False
    threads: int | None = None
    compile_dense: bool = False
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    dense_optimizer: str | None = None  # None: the optimizer's own dense companion
    train_rows: int | None = None  # None: every training row; else the first N
    hash_rows: int | None = None  # None: tables as the data says; else ids mod N
    scheme: str = "dense"  # dense, growth-pruning or prune-only (embedlab.growth)
    scheme_options: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a finished run folder whose final weights start this run
    tables: str | None = None  # vocab or hash; None: vocab, or hash when hash_rows is given
    vocab_min_count: int = 2  # ids seen fewer times in training share the out-of-vocabulary row
    embedding_init: float | None = 0.05  # U(-a, a) bound; None: sqrt(1/rows) (DLRM reference)
    early_stop_patience: int | None = 2  # validation evaluations without improvement; None: never
    select_metric: str = "auc"  # auc (higher is better), logloss or ne

    def table_sizing(self) -> str:
        """``vocab`` or ``hash`` (``tables`` resolved)."""
        if self.tables is not None:
            return self.tables
        return "hash" if self.hash_rows is not None else "vocab"

    def validate(self) -> None:
        """Raise :class:`UserError` for impossible settings (names are checked on use)."""
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise UserError(
                    f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}"
                )
        for name in ("warmup_steps", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("train_rows", "hash_rows"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {v}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise UserError(f"max-steps must be positive, got {self.max_steps}")
        for name in ("lr", "embedding_lr"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {v}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown lr schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.embedding_kernel not in ("auto", *KERNELS):
            raise UserError(
                f"unknown embedding kernel {self.embedding_kernel!r}; valid: auto, {', '.join(KERNELS)}"
            )
        if self.threads is not None and self.threads <= 0:
            raise UserError(f"threads must be positive, got {self.threads}")
        spec = get_optimizer(self.optimizer)
        object.__setattr__(self, "optimizer_options", spec.coerce_options(self.optimizer_options))
        spec.kernel(
            self.embedding_kernel,
            self.optimizer_options,
            model_config(self.model_size).embedding_dim,
        )
        if self.dense_optimizer is not None:
            get_optimizer(self.dense_optimizer)
        model_config(self.model_size)
        check_data_name(self.data)
        self.growth_schedule()
        if self.tables is not None and self.tables not in TABLE_SIZINGS:
            raise UserError(f"unknown table sizing {self.tables!r}; valid: {', '.join(TABLE_SIZINGS)}")
        if self.tables == "vocab" and self.hash_rows is not None:
            raise UserError("--hash-rows sizes tables by hashing; it cannot go with --tables vocab")
        if self.vocab_min_count < 1:
            raise UserError(f"vocab-min-count must be >= 1, got {self.vocab_min_count}")
        if self.embedding_init is not None and not self.embedding_init > 0:
            raise UserError(f"embedding-init must be positive, got {self.embedding_init}")
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise UserError(f"early-stop-patience must be >= 1, got {self.early_stop_patience}")
        check_metric(self.select_metric)
        if self.scheme != "dense" and self.compile_dense:
            raise UserError(
                "--scheme with pruning rebuilds the MLPs; it cannot run with --compile-dense"
            )

    def growth_schedule(self) -> GrowthSchedule:
        """The MLP growth/pruning schedule of ``scheme`` and ``scheme_options``."""
        return GrowthSchedule.from_options(self.scheme, self.scheme_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def build_model(
    cfg: TrainConfig, schema: CTRSchema, frequencies: list[torch.Tensor] | None = None
) -> tuple[DLRM, list[torch.optim.Optimizer]]:
    """The DLRM and the torch optimizers the loop steps: dense, then (unfused) embeddings.

    With the fused kernel the embedding optimizer lives inside FBGEMM and is reached through
    :meth:`DLRM.fused_optimizer`. ``frequencies`` (per table) for optimizers that need them
    (FA-SGD).
    """
    spec = get_optimizer(cfg.optimizer)
    opts_kw = dict(cfg.optimizer_options)
    lr, elr = learning_rates(cfg)
    kernel = spec.kernel(cfg.embedding_kernel, opts_kw, model_config(cfg.model_size).embedding_dim)
    model = DLRM(
        schema.num_dense,
        schema.table_sizes,
        schema.sparse_names,
        model_config(cfg.model_size),
        embedding_kernel=kernel,
        embedding_optimizer=spec.fused(elr, **opts_kw)
        if kernel == "fused" and spec.fused
        else None,
        compile_dense=cfg.compile_dense,
        embedding_init_bound=cfg.embedding_init,
    )
    opts = [dense_optimizer_factory(cfg)(model.dense_parameters())]
    if kernel != "fused":
        emb = model.embedding_parameters()
        if spec.needs_frequencies:
            if frequencies is None:
                raise UserError(
                    f"optimizer {spec.name!r} needs per-row frequencies of the training data"
                )
            opts.append(spec.sparse(emb, elr, frequencies=frequencies, **opts_kw))
        elif kernel == "sparse":
            opts.append(spec.sparse(emb, elr, **opts_kw))
        else:
            opts.append(spec.dense(emb, elr))
    return model, opts


def dense_optimizer_factory(cfg: TrainConfig) -> Callable[[Any], torch.optim.Optimizer]:
    """Builds the MLPs' optimizer over given parameters (rebuilt when pruning changes them)."""
    spec = get_optimizer(cfg.dense_optimizer or cfg.optimizer)
    lr, _ = learning_rates(cfg)
    return lambda params: spec.dense(params, lr)


def prepare_data(cfg: TrainConfig, data: CTRData) -> CTRData:
    """``data`` as ``cfg`` trains on it: the first ``train_rows`` training rows, tables sized
    by the training vocabulary (:mod:`embedlab.data.vocab`; the vocabulary is kept in
    ``data.vocabulary``) or hashed to ``hash_rows`` rows, or to the source's own hashed
    sizes (:mod:`embedlab.data.transforms`). A run started ``init_from`` an earlier run
    maps its ids with that run's saved vocabulary, so the model's tables match (ids new
    since then share the out-of-vocabulary row)."""
    from embedlab.data.transforms import hash_tables, limit_train_rows
    from embedlab.data.vocab import Vocabulary, apply_vocabulary, vocab_tables

    if data.sizer is not None:  # sized lazily by the source (a streamed prepared folder)
        return data.sizer(cfg)
    if cfg.train_rows is not None:
        data = limit_train_rows(data, cfg.train_rows)
    if cfg.table_sizing() == "vocab":
        saved = Path(cfg.init_from) / "vocab.npz" if cfg.init_from is not None else None
        if saved is not None and saved.is_file():
            vocab = Vocabulary.load(saved)
            data = apply_vocabulary(data, vocab)
        else:
            data, vocab = vocab_tables(data, cfg.vocab_min_count)
        data.vocabulary = vocab
    elif cfg.hash_rows is not None:
        data = hash_tables(data, cfg.hash_rows)
    elif data.hash_sizes is not None:
        data = hash_tables(data, data.hash_sizes)
    return data


def learning_rates(cfg: TrainConfig) -> tuple[float, float]:
    """``(dense lr, embedding lr)`` of ``cfg`` (defaults from the optimizer registry). Under
    CF-SGD / FA-SGD's ``lr_rule=auto`` the embedding lr is the *relative* rate, divided by
    the measured gradient scale before training (:func:`embedding_lr_rule`)."""
    spec = get_optimizer(cfg.optimizer)
    lr = cfg.lr if cfg.lr is not None else spec.default_lr
    if cfg.embedding_lr is not None:
        return lr, cfg.embedding_lr
    return lr, spec.embedding_lr(cfg.optimizer_options, lr)


def make_selector(cfg: TrainConfig, has_valid: bool, say: bool = True) -> BestOnValid | None:
    """The best-on-validation hook of a run (both trainers): ``None`` without a validation
    split (said once on stderr when ``say``) or for growth/pruning schemes, which report
    their last, full-size step."""
    if not has_valid:
        if cfg.early_stop_patience is not None:
            raise UserError("--early-stop-patience needs a validation split; this data has none")
        if say:
            import sys

            print("no validation split: training to the end, test metrics from the last step",
                  file=sys.stderr)  # fmt: skip
        return None
    return BestOnValid(cfg.select_metric, cfg.early_stop_patience) if cfg.scheme == "dense" else None


def embedding_lr_rule(cfg: TrainConfig, model: DLRM, data: CTRData) -> tuple[float, float | None]:
    """``(embedding lr the optimizer steps with, measured gradient scale or None)``: under
    ``lr_rule=auto`` the relative rate divided by the embedding gradient's RMS on the first
    :data:`CALIBRATION_BATCHES` batches of epoch 0 (:mod:`embedlab.optim.calibrate`)."""
    _, elr = learning_rates(cfg)
    if get_optimizer(cfg.optimizer).lr_rule(cfg.optimizer_options) != "auto":
        return elr, None
    from itertools import islice

    from embedlab.optim.calibrate import embedding_grad_scale

    batches = islice(iter_batches(data.train, data.schema, cfg.batch_size, seed=cfg.seed, epoch=0),
                     CALIBRATION_BATCHES)  # fmt: skip
    scale = embedding_grad_scale(model, batches)
    return elr / scale, scale


def step_counts(cfg: TrainConfig, train_rows: int) -> tuple[int, int]:
    """``(steps per epoch, total steps)``; a split smaller than one batch is a user error."""
    per_epoch = num_batches(train_rows, cfg.batch_size)
    if per_epoch == 0:
        raise UserError(
            f"training split has {train_rows} rows, fewer than one batch of {cfg.batch_size}"
        )
    total = per_epoch * cfg.epochs
    return per_epoch, total if cfg.max_steps is None else min(total, cfg.max_steps)


def embedding_state_bytes(model: DLRM, opts: list[torch.optim.Optimizer]) -> int:
    """Bytes of the embedding optimizer's state (FBGEMM's per-row states when fused)."""
    if model.embedding_kernel == "fused":
        return sum(
            t.numel() * t.element_size()
            for m in getattr(model.sparse, "_emb_modules", [])
            for states in m._emb_module.split_optimizer_states()
            for t in states
        )
    return state_bytes(opts[1]) if len(opts) > 1 else 0


def _fused_states(model: DLRM) -> list[torch.Tensor]:
    """FBGEMM's per-row optimizer states of the fused tables (TorchRec's fused optimizer
    state dict exposes only the first two, so e.g. CF-SGD's row counter is saved from here)."""
    return [
        t
        for m in getattr(model.sparse, "_emb_modules", [])
        for states in m._emb_module.split_optimizer_states()
        for t in states
    ]


def step_on_batch(model: torch.nn.Module, opts: list[torch.optim.Optimizer], batch: Any) -> torch.Tensor:
    """One step on ``batch``: logloss of ``model(dense, sparse)``, gradients, every optimizer
    stepped (a fused embedding optimizer is stepped inside the backward). Returns the loss."""
    loss = F.binary_cross_entropy_with_logits(model(batch.dense, batch.sparse), batch.labels)
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    for o in opts:
        o.step()
    return loss


@torch.no_grad()
def predict(
    model: DLRM, arrays: CTRArrays, schema: CTRSchema, batch_size: int = 16384
) -> np.ndarray:
    """Click probabilities for every row of ``arrays`` (in order)."""
    model.eval()
    out = []
    for b in iter_batches(arrays, schema, batch_size, shuffle=False, drop_last=False):
        out.append(torch.sigmoid(model(b.dense, b.sparse)).double().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0)


def evaluate(
    model: DLRM, arrays: CTRArrays, schema: CTRSchema, batch_size: int = 16384
) -> dict[str, float]:
    """AUC, logloss, NE, accuracy of ``model`` on ``arrays``."""
    return ctr_metrics(
        np.asarray(arrays.labels, dtype=np.float64), predict(model, arrays, schema, batch_size)
    )


def saved_config_matches(run: str | Path, cfg: TrainConfig) -> bool:
    """Whether ``run/config.json`` holds ``cfg`` (settings added since are taken at their defaults)."""
    p = Path(run) / "config.json"
    if not p.is_file():
        return False
    saved = TrainConfig.from_dict(read_json(p)).to_dict()
    return json.loads(json.dumps(saved)) == json.loads(json.dumps(cfg.to_dict()))


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    data: CTRData | None = None,
    resume: bool = False,
    show_progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a DLRM as ``cfg`` says, writing the run folder ``out``; returns final metrics.

    With ``resume`` the run continues from ``out/checkpoint.pt`` (the settings must match
    ``out/config.json``). ``on_step`` is called after every optimizer step (tests use it to
    simulate a crash).
    """
    cfg.validate()
    run = ensure_dir(out)
    if resume:
        if not saved_config_matches(run, cfg):
            raise UserError(
                f"{run}/config.json differs from the requested settings; resume with the saved ones"
            )
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if data is None:
        data = load_data(cfg.data, **cfg.data_options)
    data = prepare_data(cfg, data)
    schema = data.schema
    set_seed(cfg.seed)
    frequencies = None
    if get_optimizer(cfg.optimizer).needs_frequencies:
        from embedlab.optim.frequency import count_ids

        unit = str(cfg.optimizer_options.get("unit", "occurrence"))
        frequencies = count_ids(data.train.sparse, schema.table_sizes, unit=unit)
    model, opts = build_model(cfg, schema, frequencies)
    has_valid = len(data.valid) > 0
    selector = make_selector(cfg, has_valid, say=show_progress)
    observe = getattr(opts[1], "observe", None) if len(opts) > 1 else None
    emb_params = model.embedding_parameters() if observe is not None else []
    fused = model.fused_optimizer()
    base_lr, _ = learning_rates(cfg)
    per_epoch, total = step_counts(cfg, len(data.train))
    pools = list(pooling_factors(data.train, schema.sparse_names).values())
    dim = model_config(cfg.model_size).embedding_dim
    growth = GrowthManager(cfg.growth_schedule(), model, total, dense_optimizer_factory(cfg),
                           lambda m: train_flops_per_sample(m, len(schema.sparse), dim, pools), seed=cfg.seed)  # fmt: skip

    state = LoopState()
    if resume:
        ck = load_checkpoint(run / "checkpoint.pt")
        if ck.get("config") != json.dumps(cfg.to_dict(), sort_keys=True):
            raise UserError(f"{run}/checkpoint.pt belongs to other settings than {run}/config.json")
        if ck.get("growth") is not None:  # the MLP widths the run had reached
            growth.restore_structure(ck["growth"])
            opts[0] = dense_optimizer_factory(cfg)(model.dense_parameters())
        model.load_state_dict(ck["model"])
        for o, st in zip(opts, ck["optims"]):
            o.load_state_dict(st)
        if fused is not None:
            fused.load_state_dict(ck["fused_optim"])
            for t, saved in zip(_fused_states(model), ck.get("fused_states") or []):
                t.copy_(saved)
            set_fbgemm_iteration(model, ck.get("fbgemm_iter"))
        state = LoopState(int(ck["step"]), float(ck["loss_sum"]), int(ck["loss_n"]), float(ck["elapsed"]))
        if ck.get("growth") is not None:
            growth.load_progress(ck["growth"])
        base_elr = float(ck.get("embedding_lr", learning_rates(cfg)[1]))
        grad_scale = ck.get("embedding_grad_scale")
        if selector is not None and ck.get("selection") is not None:
            selector.load_state_dict(ck["selection"])
    else:
        if cfg.init_from is not None:
            _init_from(model, Path(cfg.init_from))
        base_elr, grad_scale = embedding_lr_rule(cfg, model, data)
    if data.vocabulary is not None:
        data.vocabulary.save(run / "vocab.npz")
    if not resume:
        # A fresh start: nothing of an earlier run in this folder may be resumed or read.
        (run / "metrics.json").unlink(missing_ok=True)
        (run / "checkpoint.pt").unlink(missing_ok=True)
        (run / "best.pt").unlink(missing_ok=True)
        write_json(run / "config.json", cfg.to_dict())
    log = RunLog(run, cfg.tensorboard, state.step if resume else None)

    def save(st: LoopState) -> None:
        save_checkpoint(run / "checkpoint.pt", {
            "step": st.step, "elapsed": st.elapsed,
            "config": json.dumps(cfg.to_dict(), sort_keys=True),
            "loss_sum": st.loss_sum, "loss_n": st.loss_n,
            "model": model.state_dict(), "optims": [o.state_dict() for o in opts],
            "growth": growth.state_dict(st.step),
            "fused_optim": fused.state_dict() if fused is not None else None,
            "fused_states": [t.clone() for t in _fused_states(model)] if fused is not None else None,
            "fbgemm_iter": fbgemm_iteration(model),
            "embedding_lr": base_elr, "embedding_grad_scale": grad_scale,
            "selection": selector.state_dict() if selector is not None else None,
        })  # fmt: skip

    def validate_now(step: int) -> bool:
        """Evaluate the validation split, keep the best weights; True: stop early."""
        m = evaluate(model, data.valid, schema, cfg.eval_batch_size)
        log.write({"step": step, "epoch": step / per_epoch, **{f"valid_{k}": v for k, v in m.items()}})
        if selector is None:
            return False
        if selector.update(step, step / per_epoch, m):
            save_checkpoint(run / "best.pt", {"step": step, "model": model.state_dict()})
        if selector.should_stop():
            selector.stopped_step = step
            return True
        return False

    def batches(epoch: int, start: int) -> Any:
        return data.train_batches(cfg.batch_size, seed=cfg.seed, epoch=epoch, start=start)

    def train_step(step: int, batch: Any, lr: float) -> torch.Tensor:
        elr = lr * base_elr / base_lr
        opts[0], event = growth.before_step(step, opts[0])
        if event is not None:
            log.write(event)
        set_lr(opts[0], lr)
        if fused is not None:
            set_lr(fused, elr)
            fused.step()  # pushes the learning rate into the FBGEMM kernel
        else:
            set_lr(opts[1], elr)
        if observe is not None:  # CF-SGD counting per occurrence or per sample
            per_key = batch.sparse.to_dict()
            for name, w in zip(schema.sparse_names, emb_params):
                observe(w, per_key[name].values(), per_key[name].offsets())
        loss = step_on_batch(model, opts, batch)
        growth.after_step(len(batch.labels))
        return loss

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=state.step,
        disable=not show_progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    hooks = LoopHooks(batches=batches, train_step=train_step, save=save, log=log.write,
                      validate=validate_now if has_valid else None, on_step=on_step)  # fmt: skip
    model.train()
    try:
        wall = run_loop(cfg, state, per_epoch, total, hooks, base_lr=base_lr, bar=bar,
                        stopped=selector is not None and selector.stopped_step is not None)  # fmt: skip
        step = state.step
        bar.close()
        if selector is not None and selector.best_step is not None and selector.best_step != step:
            best = load_checkpoint(run / "best.pt")
            _check_best_step(run / "best.pt", int(best["step"]), selector.best_step)
            model.load_state_dict(best["model"])
        final: dict[str, Any] = {}
        for split in ("valid", "test"):
            for k, v in evaluate(model, data.split(split), schema, cfg.eval_batch_size).items():
                final[f"{split}_{k}"] = v
        log.write({"step": step, **final}, tb_prefix="final_")
    finally:
        bar.close()
        log.close()
    final.update({
        "scheme": cfg.scheme, "train_flops": growth.train_flops, "phases": growth.finish(step),
        "steps": step, "train_samples": step * cfg.batch_size, "wall_time_s": wall,
        "train_samples_per_s": step * cfg.batch_size / max(wall, 1e-9),
        "data_name": data.name, **_flat(data.info, "data_"),
        **{f"params_{k}": v for k, v in model.parameter_counts().items()},
        "optimizer_state_bytes_embedding": embedding_state_bytes(model, opts),
        "optimizer_state_bytes_dense": state_bytes(opts[0]), "embedding_kernel": model.embedding_kernel,
        "epochs_run": step / per_epoch, "embedding_lr_effective": base_elr,
        "embedding_grad_scale": grad_scale, "tables": cfg.table_sizing(),
        **(selector.summary() if selector is not None else {"best_step": None}),
        **{f"cfg_{k}": v for k, v in cfg.to_dict().items() if not isinstance(v, dict)},
    })  # fmt: skip
    write_json(run / "metrics.json", final)
    return final


def _check_best_step(path: Path, saved: int, selected: int) -> None:
    """The best weights on disk must be those of the selected evaluation (a resumed run
    whose replayed evaluation chose differently would otherwise report other weights)."""
    if saved != selected:
        raise UserError(
            f"{path} holds the weights of step {saved}, but the best validation evaluation "
            f"is step {selected}; start the run afresh"
        )


def init_weights(run: Path) -> dict[str, torch.Tensor]:
    """The final weights of the finished run ``run`` (the model's state dict, full tensors),
    which start a run ``init_from`` it (recurring training: one more day of data); only a
    finished, full-size run qualifies."""
    ck_path = run / "checkpoint.pt"
    if not (run / "metrics.json").is_file() or not ck_path.is_file():
        raise UserError(
            f"--init-from {run}: not a finished run (needs metrics.json and checkpoint.pt)"
        )
    ck = load_checkpoint(ck_path)
    g = ck.get("growth")
    if g is not None and Structure.from_state_dict(g["structure"]).sparse:
        raise UserError(
            f"--init-from {run}: that run ended pruned; only full-size models can start another run"
        )
    return ck["model"]


def _init_from(model: DLRM, run: Path) -> None:
    """Start from the final weights of the finished run ``run``; the optimizers start fresh."""
    weights = init_weights(run)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(
            f"--init-from {run}: its model does not match this one ({str(e).splitlines()[0]})"
        ) from None


def _flat(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Flatten one level of nesting into ``prefix + key`` (scalars only)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float, str, bool)):
            out[f"{prefix}{k}"] = v
    return out


def resume_run(run_dir: str | Path, **kw: Any) -> dict[str, Any]:
    """Continue the killed run in ``run_dir`` with its saved settings."""
    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is not a run folder (no config.json)")
    if not (run / "checkpoint.pt").is_file():
        raise UserError(f"{run} has no checkpoint.pt to resume from")
    cfg = TrainConfig.from_dict(read_json(run / "config.json"))
    return train(cfg, run, resume=True, **kw)
