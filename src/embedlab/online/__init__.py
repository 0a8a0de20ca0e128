"""Online recommendation training under temporal shift: the prequential protocol,
update strategies (batch update, full retrain, recency weighting, Future Gradient
Descent) and time-ordered data (MovieLens weeks, drifting planted-truth CTR)."""

from embedlab.online.fgd import FGDConfig, FutureStepGenerator
from embedlab.online.learner import Learner
from embedlab.online.periods import (
    DriftConfig,
    PeriodStream,
    load_stream,
    movielens_stream,
    synth_stream,
)
from embedlab.online.protocol import OnlineConfig, run_online
from embedlab.online.strategies import make_strategy, register_strategy, strategy_names

__all__ = [
    "DriftConfig", "FGDConfig", "FutureStepGenerator", "Learner", "OnlineConfig",
    "PeriodStream", "load_stream", "make_strategy", "movielens_stream", "register_strategy",
    "run_online", "strategy_names", "synth_stream",
]  # fmt: skip
