"""The growth-and-pruning scheme as the trainer runs it: transitions, FLOPs, phase times.

:class:`GrowthManager` owns the model's MLP structure during a run. Before every optimizer
step the trainer calls :meth:`GrowthManager.before_step`, which prunes or regrows when the
schedule changes phase, rebuilds the dense optimizer with its state carried over, and
returns it. It counts training FLOPs per step from the model's *current* widths
(:mod:`embedlab.scaling.flops` rules) and the wall time of each phase, and checkpoints all of
it (the structure too, so a run killed mid-phase resumes at the same widths).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from embedlab.growth.schedule import GrowthSchedule
from embedlab.growth.structure import (
    Structure,
    apply_structure,
    full_structure,
    grow,
    mlp_widths,
    shrink,
)
from embedlab.growth.structure import transplant_state as _transplant
from embedlab.scaling.flops import DLRMFlops, interaction_flops, linear_flops

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def train_flops_per_sample(
    model: nn.Module, num_tables: int, dim: int, pooling: Sequence[float]
) -> float:
    """Training FLOPs per sample of a DLRM at its current MLP widths (3x forward for the
    dense part, 2x for the embedding lookups; see :mod:`embedlab.scaling.flops`)."""
    return DLRMFlops(
        bottom_mlp=linear_flops(mlp_widths(model, "bottom")),
        embeddings=dim * float(sum(pooling)),
        interaction=interaction_flops(num_tables, dim),
        top_mlp=linear_flops(mlp_widths(model, "top")),
    ).train


class GrowthManager:
    """Runs a :class:`GrowthSchedule` over ``total`` steps on ``model``."""

    def __init__(self, schedule: GrowthSchedule, model: nn.Module, total: int, make_optimizer: OptimizerFactory,
                 flops: Callable[[nn.Module], float], seed: int = 0) -> None:  # fmt: skip
        self.schedule = schedule
        self.model = model
        # sparse or dense for every step, computed once (the loop asks at every step)
        self._sparse = [False] * total
        for ph in schedule.phases(total):
            self._sparse[ph.start : ph.end] = [ph.sparse] * (ph.end - ph.start)
        self.make_optimizer = make_optimizer
        self.flops = flops
        self.structure: Structure = full_structure(model, schedule.mlps)
        self.generator = torch.Generator().manual_seed(seed)
        self.train_flops = 0.0
        self.phase_wall: list[dict[str, Any]] = []
        self._flops_now = flops(model)
        self._phase_t0 = time.perf_counter()
        self._phase_start = 0

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self, step: int) -> dict[str, Any]:
        wall = self.phase_wall + [self._open_phase(step)]
        return {"structure": self.structure.state_dict(), "train_flops": self.train_flops, "phase_wall": wall,
                "generator": self.generator.get_state()}  # fmt: skip

    def restore_structure(self, state: dict[str, Any]) -> None:
        """Before loading a checkpoint's model state: rebuild the saved widths."""
        self.structure = Structure.from_state_dict(state["structure"])
        if self.structure.sparse:
            apply_structure(self.model, self.structure)
        self._flops_now = self.flops(self.model)

    def load_progress(self, state: dict[str, Any]) -> None:
        """After loading: FLOPs so far, finished phases' wall time, the random stream."""
        self.train_flops = float(state["train_flops"])
        wall = list(state["phase_wall"])
        last = wall.pop() if wall else None
        self.phase_wall = wall
        if last is not None:  # the phase in progress continues; keep its time so far
            self._phase_start = int(last["start"])
            self._phase_t0 = time.perf_counter() - float(last["wall_s"])
        self.generator.set_state(state["generator"])

    # -- the loop -------------------------------------------------------------------------
    def _open_phase(self, step: int) -> dict[str, Any]:
        return {"start": self._phase_start, "end": step, "sparse": self.structure.sparse,
                "sparsity": self.structure.sparsity(), "flops_per_sample": self._flops_now,
                "wall_s": time.perf_counter() - self._phase_t0}  # fmt: skip

    def before_step(
        self, step: int, optimizer: torch.optim.Optimizer
    ) -> tuple[torch.optim.Optimizer, dict[str, Any] | None]:
        """Prune or regrow if ``step`` starts a phase; returns the (maybe new) dense
        optimizer and a log record of the transition (None when nothing changed)."""
        want = self._sparse[step] if step < len(self._sparse) else False
        if want == self.structure.sparse:
            return optimizer, None
        self.phase_wall.append(self._open_phase(step))
        if want:
            t = shrink(
                self.model,
                self.structure,
                self.schedule.sparsity,
                self.schedule.score,
                self.generator,
            )
        else:
            t = grow(self.model, self.structure, self.schedule.init, self.generator)
        new = self.make_optimizer(self._dense_params())
        for g_new, g_old in zip(new.param_groups, optimizer.param_groups):
            g_new["lr"] = g_old["lr"]
        _transplant(optimizer, new, t, fill=self.schedule.state if not want else "zero")
        self._flops_now = self.flops(self.model)
        self._phase_t0, self._phase_start = time.perf_counter(), step
        rec = {"step": step, "phase": "sparse" if want else "dense", "sparsity": self.structure.sparsity(),
               "flops_per_sample": self._flops_now, "mlp_widths": {m: mlp_widths(self.model, m)[1:-1] for m in ("bottom", "top")}}  # fmt: skip
        return new, rec

    def after_step(self, batch_size: int) -> None:
        self.train_flops += self._flops_now * batch_size

    def finish(self, step: int) -> list[dict[str, Any]]:
        """Close the last phase; the per-phase record (steps, sparsity, FLOPs, wall time)."""
        return self.phase_wall + [self._open_phase(step)]

    def _dense_params(self) -> list[nn.Parameter]:
        return [*self.model.bottom.parameters(), *self.model.top.parameters()]


__all__ = ["GrowthManager", "train_flops_per_sample"]
