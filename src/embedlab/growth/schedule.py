"""When to prune and when to grow: the phase schedule of a training run.

"Alternate Model Growth and Pruning" (Du et al., ICMLA 2021) alternates structured pruning
and regrowth during training so that long stretches run sparse while the model ends full
size. Its exact schedule is not public; ours (all fractions of the run's optimizer steps):

* ``growth-pruning``: a dense warm-up (``warmup``), then ``cycles`` equal cycles, each a
  sparse phase (the first ``sparse_fraction`` of the cycle, pruned to ``sparsity``) followed
  by a dense phase (the rest, after regrowing). The last cycle's dense phase ends the run:
  training always ends dense and full size.
* ``prune-only`` (baseline): dense until the remaining steps equal growth-pruning's total
  sparse steps with the same settings, then pruned to ``sparsity`` to the end; both spend
  the same number of sparse steps (so about the same training FLOPs), but this one ends
  small.
* ``dense`` (baseline): no pruning.

Regrown neurons: ``init`` (see :mod:`embedlab.growth.structure`) for their weights and
``state`` for their optimizer state (``zero``, or ``mean``: accumulated squared gradients at
the mean of the layer's kept entries). Defaults: ``sparsity 0.5``, ``warmup 0.1``,
``cycles 1``, ``sparse_fraction 0.7`` (63% of the steps sparse), importance ``l2``,
regrowth ``function-preserving`` with ``mean`` state, both MLPs. The cycles, regrowth init
and state were chosen on validation NE in ``benchmarks/growth.py`` (synthetic data, 3 seeds,
sparsity 0.5; 8 variants within 0.0024 NE of each other: 1 cycle + mean state best, 0.8410
against 0.8425 for 2 cycles + zero state).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedlab.errors import UserError
from embedlab.growth.structure import MLPS, REGROW_INITS, SCORES, STATE_FILLS
from embedlab.options import dataclass_options

SCHEMES = ("dense", "growth-pruning", "prune-only")
LAYERS = {"all": MLPS, "bottom": ("bottom",), "top": ("top",)}


@dataclass(frozen=True)
class Phase:
    """Steps ``[start, end)`` run ``sparse`` (pruned) or dense."""

    start: int
    end: int
    sparse: bool


@dataclass(frozen=True)
class GrowthSchedule:
    """A training scheme and its settings (see the module doc)."""

    scheme: str = "growth-pruning"
    sparsity: float = 0.5
    warmup: float = 0.1
    cycles: int = 1
    sparse_fraction: float = 0.7
    init: str = "function-preserving"
    score: str = "l2"
    layers: str = "all"
    state: str = "mean"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise UserError(f"unknown scheme {self.scheme!r}; valid: {', '.join(SCHEMES)}")
        if not 0 < self.sparsity < 1:
            raise UserError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if not 0 <= self.warmup < 1:
            raise UserError(f"warmup must be in [0, 1), got {self.warmup}")
        if self.cycles < 1:
            raise UserError(f"cycles must be at least 1, got {self.cycles}")
        if not 0 < self.sparse_fraction < 1:
            raise UserError(f"sparse_fraction must be in (0, 1), got {self.sparse_fraction}")
        if self.init not in REGROW_INITS:
            raise UserError(
                f"unknown regrowth init {self.init!r}; valid: {', '.join(REGROW_INITS)}"
            )
        if self.score not in SCORES:
            raise UserError(f"unknown importance score {self.score!r}; valid: {', '.join(SCORES)}")
        if self.state not in STATE_FILLS:
            raise UserError(
                f"unknown regrowth state {self.state!r}; valid: {', '.join(STATE_FILLS)}"
            )
        if self.layers not in LAYERS:
            raise UserError(f"unknown layers {self.layers!r}; valid: {', '.join(LAYERS)}")

    @classmethod
    def from_options(cls, scheme: str, options: dict[str, Any]) -> GrowthSchedule:
        """A schedule from ``--scheme`` and ``KEY=VALUE`` options (types coerced, unknown
        keys refused)."""
        return cls(scheme=scheme, **dataclass_options(cls, "scheme", options, exclude=("scheme",)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def mlps(self) -> tuple[str, ...]:
        return LAYERS[self.layers]

    def _growth_phases(self, total: int) -> list[Phase]:
        warm = int(round(self.warmup * total))
        bounds = [warm + round(i * (total - warm) / self.cycles) for i in range(self.cycles + 1)]
        phases = [Phase(0, warm, False)] if warm > 0 else []
        for a, b in zip(bounds[:-1], bounds[1:]):
            mid = a + int(round(self.sparse_fraction * (b - a)))
            # each cycle both prunes and regrows; a cycle of one step cannot, so stays dense
            mid = min(max(mid, a + 1), b - 1) if b - a >= 2 else a
            phases += [Phase(a, mid, True), Phase(mid, b, False)]
        return [p for p in phases if p.end > p.start]

    def phases(self, total: int) -> list[Phase]:
        """The run's phases over ``total`` optimizer steps, in order, covering them all."""
        if total <= 0:
            return []
        if self.scheme == "dense":
            return [Phase(0, total, False)]
        if self.scheme == "growth-pruning":
            return self._growth_phases(total)
        sparse = sum(p.end - p.start for p in self._growth_phases(total) if p.sparse)
        return [
            p
            for p in (Phase(0, total - sparse, False), Phase(total - sparse, total, True))
            if p.end > p.start
        ]

    def sparse_at(self, step: int, total: int) -> bool:
        """Whether optimizer step ``step`` (0-based) runs pruned."""
        return any(p.start <= step < p.end and p.sparse for p in self.phases(total))

    def sparse_steps(self, total: int) -> int:
        return sum(p.end - p.start for p in self.phases(total) if p.sparse)


__all__ = ["GrowthSchedule", "LAYERS", "Phase", "SCHEMES"]
