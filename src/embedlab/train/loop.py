"""The one training loop both DLRM trainers run, with the hooks where they differ.

:func:`run_loop` owns what the single-process trainer (:mod:`embedlab.train.trainer`) and
the sharded one (:mod:`embedlab.train.distributed`) must do the same way for a resumed run
to equal an uninterrupted one: the step counter, the learning-rate schedule, the data order
(epoch, first batch) handed to the batch source, the running training loss, when to log,
evaluate and checkpoint, and the last checkpoint. The trainers supply :class:`LoopHooks`:
where batches come from, one optimizer step, how the loss is summed over processes, the
validation hook and how a checkpoint is written (:class:`LoopState` is what the loop itself
needs back from a checkpoint).

:class:`RunLog` writes ``metrics.jsonl`` and, when asked, TensorBoard event files under
``tb/``. A fresh run starts both empty (older event files are deleted). A resumed run
keeps the records up to its checkpoint's step and drops the later ones, which the crashed
run wrote and the resumed run writes again: the jsonl lines are filtered, and TensorBoard's
``SummaryWriter(purge_step=step + 1)`` marks the events after the checkpoint as orphaned,
so readers (TensorBoard, ``EventAccumulator``) show each step once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from embedlab.errors import UserError
from embedlab.io import atomic_open
from embedlab.train.schedule import lr_at
from embedlab.train.selection import evaluation_due


@dataclass
class LoopState:
    """The loop's counters; every checkpoint saves them and a resumed run restores them."""

    step: int = 0
    loss_sum: float = 0.0  # training loss summed since the last log record (all processes)
    loss_n: int = 0  # batches in loss_sum
    elapsed: float = 0.0  # training seconds before this process started (resumed runs)


@dataclass
class LoopHooks:
    """What the trainers do differently inside :func:`run_loop`."""

    #: ``(epoch, first batch)`` -> that epoch's batches from there on (this process's part)
    batches: Callable[[int, int], Iterable[Any]]
    #: ``(step, batch, lr)`` -> the batch's loss, after the optimizers stepped
    train_step: Callable[[int, Any, float], torch.Tensor]
    #: write a checkpoint of the run at ``state.step`` (collective when sharded)
    save: Callable[[LoopState], None]
    #: write one log record (no-op on the ranks that do not write the run folder)
    log: Callable[[dict[str, Any]], None]
    #: evaluate the validation split after ``step`` steps; ``True``: stop early. ``None``:
    #: no validation split
    validate: Callable[[int], bool] | None = None
    #: ``(loss sum, batches)`` of this process -> of all processes
    loss_total: Callable[[float, int], tuple[float, int]] = lambda s, n: (s, n)
    #: called after every step, after any checkpoint (tests simulate crashes with it)
    on_step: Callable[[int], None] | None = None


def run_loop(cfg: Any, state: LoopState, per_epoch: int, total: int, hooks: LoopHooks, *,
             base_lr: float, bar: Any, stopped: bool = False) -> float:  # fmt: skip
    """Train from ``state.step`` to ``total`` steps (or an early stop) as ``cfg`` says
    (``log_every``, ``eval_every``, ``checkpoint_every``, ``schedule``, ``warmup_steps``,
    ``batch_size``, the global batch), checkpointing every ``checkpoint_every`` steps and
    once at the end; returns the run's training seconds (earlier processes included).

    ``stopped``: the run had already stopped early before its last checkpoint.
    """
    t0 = time.perf_counter()
    t_win, n_win = t0, 0

    def checkpoint() -> None:
        hooks.save(replace(state, elapsed=state.elapsed + time.perf_counter() - t0))

    stop = stopped
    while state.step < total and not stop:
        epoch, start = divmod(state.step, per_epoch)
        for batch in hooks.batches(epoch, start):
            lr = lr_at(state.step, base_lr, total, cfg.schedule, cfg.warmup_steps)
            loss = hooks.train_step(state.step, batch, lr)
            state.step += 1
            state.loss_sum += float(loss.detach())
            state.loss_n += 1
            n_win += cfg.batch_size
            bar.update(1)
            if state.step % cfg.log_every == 0 or state.step == total:
                s, n = hooks.loss_total(state.loss_sum, state.loss_n)
                now = time.perf_counter()
                sps = n_win / max(now - t_win, 1e-9)
                t_win, n_win = now, 0
                hooks.log({"step": state.step, "epoch": epoch, "train_loss": s / n, "lr": lr,
                           "samples_per_s": sps})  # fmt: skip
                bar.set_postfix(loss=f"{s / n:.4f}", samples_s=f"{sps:,.0f}")
                state.loss_sum, state.loss_n = 0.0, 0
            if hooks.validate is not None and evaluation_due(
                state.step, per_epoch, total, cfg.eval_every
            ):
                stop = hooks.validate(state.step)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < total:
                checkpoint()
            if hooks.on_step is not None:
                hooks.on_step(state.step)
            if state.step >= total or stop:
                break
    checkpoint()
    return state.elapsed + time.perf_counter() - t0


def _step_of(line: str) -> int | None:
    """The step of a metrics.jsonl line; ``None`` for a line cut short by a crash."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class RunLog:
    """``metrics.jsonl`` (+ optional TensorBoard under ``tb/``) of a run folder.

    ``keep_until``: ``None`` for a fresh run (both start empty), else the step of the
    checkpoint a resumed run starts from (records after it are dropped, see the module doc).
    """

    def __init__(self, run: Path, tensorboard: bool, keep_until: int | None) -> None:
        self.path = run / "metrics.jsonl"
        if keep_until is not None and self.path.exists():
            kept = [
                ln
                for ln in self.path.read_text().splitlines()
                if (s := _step_of(ln)) is not None and s <= keep_until
            ]
            with atomic_open(self.path) as f:
                f.write("".join(ln + "\n" for ln in kept))
        elif keep_until is None:
            self.path.write_text("")
            shutil.rmtree(run / "tb", ignore_errors=True)  # a fresh run's curves only
        self.f = open(self.path, "a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError(
                    "--tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            purge = None if keep_until is None else keep_until + 1
            self.tb = SummaryWriter(log_dir=str(run / "tb"), purge_step=purge)

    def write(self, rec: dict[str, Any], tb_prefix: str = "") -> None:
        """Append ``rec`` (with its ``step``); its numbers go to TensorBoard as
        ``tb_prefix + key`` (the final record uses ``final_``: its valid metrics are the best
        checkpoint's, not a second evaluation at the last step)."""
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()
        if self.tb is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(tb_prefix + k, v, rec["step"])

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            self.tb.close()


__all__ = ["LoopHooks", "LoopState", "RunLog", "run_loop"]
