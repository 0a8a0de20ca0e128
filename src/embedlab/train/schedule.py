"""Learning-rate schedules as pure functions of the step.

``constant``; ``warmup-decay`` (the DLRM reference's ``LRPolicyScheduler``: linear warm-up,
then a polynomial decay of power 2 to zero over the remaining steps); ``cosine`` (linear
warm-up, then half a cosine to zero).
"""

from __future__ import annotations

import math

from embedlab.errors import unknown_name

SCHEDULES = ("constant", "warmup-decay", "cosine")


def lr_at(
    step: int, base_lr: float, total_steps: int, schedule: str = "constant", warmup: int = 0
) -> float:
    """The learning rate for ``step`` (0-based) of ``total_steps``."""
    if schedule not in SCHEDULES:
        raise unknown_name("lr schedule", schedule, SCHEDULES)
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    span = max(total_steps - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    if schedule == "warmup-decay":
        return base_lr * (1.0 - t) ** 2
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
