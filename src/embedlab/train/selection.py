"""Best-on-validation training: the loop hook both trainers share.

The trainer evaluates the validation split at the end of every epoch (and every
``eval_every`` steps when asked) and hands the metrics to :class:`BestOnValid`, which

* says whether this evaluation is the best so far (the trainer then saves the weights as
  the *best checkpoint*; the test metrics of a run come from it, not from the last step);
* counts evaluations without improvement and says when to stop (``patience``; ``None``
  never stops early);
* is part of the training checkpoint (:meth:`state_dict`), so a resumed run selects and
  stops exactly as an uninterrupted one.

The selection metric is the validation AUC by default (higher is better) or ``logloss``
/ ``ne`` (lower is better). A tie does not count as an improvement (the earlier, shorter
run is kept). Pure bookkeeping: no tensors, no files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedlab.errors import UserError, unknown_name

#: Selection metrics and whether higher is better.
METRICS: dict[str, bool] = {"auc": True, "logloss": False, "ne": False}


def check_metric(name: str) -> None:
    if name not in METRICS:
        raise unknown_name("selection metric", name, list(METRICS))


@dataclass
class BestOnValid:
    """Tracks the best validation evaluation and the early-stopping count."""

    metric: str = "auc"
    patience: int | None = None
    best: float | None = None
    best_step: int | None = None
    best_epoch: float | None = None
    evals: int = 0
    bad_evals: int = 0
    stopped_step: int | None = None

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if self.patience is not None and self.patience < 1:
            raise UserError(f"early-stop-patience must be >= 1, got {self.patience}")

    def update(self, step: int, epoch: float, metrics: dict[str, float]) -> bool:
        """Record one evaluation; ``True`` when it is the best so far."""
        v = float(metrics[self.metric])
        self.evals += 1
        better = self.best is None or (v > self.best if METRICS[self.metric] else v < self.best)
        if better:
            self.best, self.best_step, self.best_epoch, self.bad_evals = v, step, epoch, 0
        else:
            self.bad_evals += 1
        return better

    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def summary(self) -> dict[str, Any]:
        """Flat fields for ``metrics.json``."""
        return {
            "select_metric": self.metric,
            f"best_valid_{self.metric}": self.best,
            "best_step": self.best_step,
            "best_epoch": self.best_epoch,
            "valid_evaluations": self.evals,
            "stopped_early": self.stopped_step is not None,
            "stopped_step": self.stopped_step,
        }

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            if k in ("metric", "patience"):
                continue  # settings come from the run's config
            setattr(self, k, v)


def evaluation_due(step: int, per_epoch: int, total: int, eval_every: int) -> bool:
    """Whether the loop evaluates the validation split after ``step`` steps: at every
    epoch's end, at the last step, and every ``eval_every`` steps when asked."""
    return step % per_epoch == 0 or step == total or bool(eval_every and step % eval_every == 0)


__all__ = ["METRICS", "BestOnValid", "check_metric", "evaluation_due"]
