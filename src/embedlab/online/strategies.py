"""Update strategies of the online protocol, behind one interface and a registry.

Every strategy gets the learner (already trained through period ``t-1`` and just evaluated
on period ``t``) and the stream, and updates the learner with the data of periods
``<= t``; it never sees period ``t+1``. All start from the same model trained on period 0.

* ``batch-update`` (the paper's baseline, "Batch Update"): warm-start from the deployed
  model, ``epochs`` passes over period ``t`` only.
* ``full-retrain``: a fresh model trained for ``epochs`` passes over the last ``window``
  periods (default 4; ``window=0`` means all history). Cost grows with the window.
* ``recency-weighted``: warm-start, ``epochs`` passes over the last ``window`` periods
  (default 3) with per-row loss weights ``decay ** age`` (age 0 = period ``t``; default
  ``decay = 0.5``): sample re-weighting toward recent periods.
* ``static``: trained on period 0 only and never updated (shows what the shift costs).
* ``extrapolate``: batch update deployed at ``theta_t + c * (theta_t - theta_{t-1})`` with a
  fixed ``c`` (default 0.5): FGD's generator replaced by a hand-set one (ablation).
* ``fgd``: Future Gradient Descent, :mod:`embedlab.online.fgd`.

A strategy may serve a model other than the one it keeps training: ``deployed_params()``
(optional) returns the parameters to evaluate on the next period, or ``None`` for the
learner's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from embedlab.data.schema import CTRArrays
from embedlab.errors import UserError, unknown_name
from embedlab.online.fgd import FGDConfig, FutureStepGenerator
from embedlab.online.learner import Learner, TrainStats
from embedlab.online.periods import PeriodStream
from embedlab.options import coerce_options
from embedlab.train.metrics import logloss


@dataclass
class UpdateStats:
    """What one update did: rows through forward+backward (training and gradient passes),
    optimizer steps, and strategy-specific numbers."""

    rows: int = 0
    steps: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, s: TrainStats) -> None:
        self.rows += s.rows
        self.steps += s.steps


class Strategy(Protocol):
    name: str

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


StrategyFactory = Callable[[dict[str, Any], Learner, int], Strategy]
_REGISTRY: dict[str, tuple[StrategyFactory, str]] = {}


def register_strategy(name: str, summary: str) -> Callable[[StrategyFactory], StrategyFactory]:
    def deco(fn: StrategyFactory) -> StrategyFactory:
        _REGISTRY[name] = (fn, summary)
        return fn

    return deco


def strategy_names() -> list[str]:
    return list(_REGISTRY)


def strategy_summaries() -> dict[str, str]:
    return {k: v[1] for k, v in _REGISTRY.items()}


def make_strategy(name: str, options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    if name not in _REGISTRY:
        raise unknown_name("strategy", name, list(_REGISTRY))
    return _REGISTRY[name][0](dict(options), learner, seed)


def _take_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **coerce_options(name, options, defaults)}


class _Stateless:
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class BatchUpdate(_Stateless):
    name = "batch-update"

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        st = UpdateStats()
        st.add(learner.train(stream.periods[t], epochs, seed=seed))
        return st


class Static(_Stateless):
    name = "static"

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        return UpdateStats()


class FullRetrain(_Stateless):
    name = "full-retrain"

    def __init__(self, window: int) -> None:
        if window < 0:
            raise UserError(f"full-retrain window must be >= 0, got {window}")
        self.window = window

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        lo = 0 if self.window == 0 else max(0, t - self.window + 1)
        data = CTRArrays.concat(stream.periods[lo : t + 1])
        learner.reset(seed)
        st = UpdateStats(info={"window_periods": t + 1 - lo})
        st.add(learner.train(data, epochs, seed=seed))
        return st


class RecencyWeighted(_Stateless):
    name = "recency-weighted"

    def __init__(self, window: int, decay: float) -> None:
        if window < 1:
            raise UserError(f"recency-weighted window must be >= 1, got {window}")
        if not 0 < decay <= 1:
            raise UserError(f"recency-weighted decay must be in (0, 1], got {decay}")
        self.window, self.decay = window, decay

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        lo = max(0, t - self.window + 1)
        parts = stream.periods[lo : t + 1]
        w = np.concatenate(
            [np.full(len(p), self.decay ** (t - lo - i)) for i, p in enumerate(parts)]
        )
        st = UpdateStats()
        st.add(learner.train(CTRArrays.concat(parts), epochs, seed=seed, weights=w / w.mean()))
        return st


class FGD:
    """Future Gradient Descent (see :mod:`embedlab.online.fgd`)."""

    name = "fgd"

    def __init__(self, cfg: FGDConfig, learner: Learner, seed: int) -> None:
        self.cfg = cfg
        self.gen = FutureStepGenerator(cfg, learner.param_kinds(), seed)
        self.updates: list[list[torch.Tensor]] = []  # the last K updates u_s, oldest first
        self.base: list[torch.Tensor] | None = None  # theta_{t-1}, the base of the pending pair
        self.window: list[list[torch.Tensor]] | None = None  # G's input for the pending pair
        self.deploy: list[torch.Tensor] | None = None  # what serves the next period
        self.gains: list[float] = []

    def deployed_params(self) -> list[torch.Tensor] | None:
        return self.deploy

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        cfg, data = self.cfg, stream.periods[t]
        st = UpdateStats()
        info: dict[str, Any] = {}
        if self.window is not None and self.base is not None:
            # The pair (t-1 -> t) is complete: score the forecast, then learn from it.
            y = data.labels.astype(np.float64)
            with torch.no_grad():
                step = self.gen.step(self.window)
            if any(bool(s.any()) for s in step):  # a zero step (untrained) has no gain
                moved = [b + cfg.scale * s for b, s in zip(self.base, step, strict=True)]
                gain = logloss(y, learner.predict(data)) - logloss(y, learner.predict(data, moved))
                self.gains.append(gain)
                info["forecast_gain"] = gain
            rows = max(1, round(cfg.meta_fraction * len(data)))
            for k in range(cfg.meta_steps):

                def grad_at(step: list[torch.Tensor], k: int = k) -> list[torch.Tensor]:
                    params = [b + cfg.scale * s for b, s in zip(self.base, step, strict=True)]
                    g, _ = learner.period_gradient(
                        data, max_rows=rows, seed=seed * 100 + k, params=params
                    )
                    return [cfg.scale * x for x in g]

                self.gen.meta_step(self.window, grad_at)
                st.rows += rows
        before = [p.detach().clone() for p in learner.params]
        st.add(learner.train(data, epochs, seed=seed))
        self.updates.append([p.detach() - b for p, b in zip(learner.params, before, strict=True)])
        del self.updates[: -cfg.lags]
        self.deploy = self.window = self.base = None
        if len(self.updates) == cfg.lags:
            self.window = [list(u) for u in self.updates]
            self.base = [p.detach().clone() for p in learner.params]
            recent = self.gains[-cfg.gate_window :]
            open_ = not cfg.gate or (bool(recent) and float(np.mean(recent)) > 0)
            if open_:
                with torch.no_grad():
                    self.deploy = [
                        b + cfg.scale * s
                        for b, s in zip(self.base, self.gen.step(self.window), strict=True)
                    ]
            info["forecast_applied"] = open_
        info["generator_linear"] = self.gen.coefficients()
        st.info = info
        return st

    def state_dict(self) -> dict:
        return {"gen": self.gen.state_dict(), "updates": self.updates, "base": self.base,
                "window": self.window, "deploy": self.deploy, "gains": list(self.gains)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.gen.load_state_dict(state["gen"])
        self.updates = [list(u) for u in state["updates"]]
        self.base, self.deploy = state["base"], state["deploy"]
        self.window = [list(w) for w in state["window"]] if state["window"] is not None else None
        self.gains = [float(g) for g in state["gains"]]


class Extrapolate:
    """Batch update, deployed at ``theta_t + c * u_t`` (the last update extrapolated by a
    fixed ``c``): FGD with a fixed, hand-set generator; the ablation that shows what the
    learning in FGD adds."""

    name = "extrapolate"

    def __init__(self, c: float) -> None:
        if not c >= 0:
            raise UserError(f"extrapolate: c must be >= 0, got {c}")
        self.c = c
        self.deploy: list[torch.Tensor] | None = None

    def deployed_params(self) -> list[torch.Tensor] | None:
        return self.deploy

    def update(
        self, learner: Learner, stream: PeriodStream, t: int, epochs: int, seed: int
    ) -> UpdateStats:
        before = [p.detach().clone() for p in learner.params]
        st = UpdateStats()
        st.add(learner.train(stream.periods[t], epochs, seed=seed))
        self.deploy = [
            p.detach() + self.c * (p.detach() - b)
            for p, b in zip(learner.params, before, strict=True)
        ]
        return st

    def state_dict(self) -> dict:
        return {"deploy": self.deploy}

    def load_state_dict(self, state: dict) -> None:
        self.deploy = state["deploy"]


@register_strategy(
    "batch-update", "warm-start, train on the newest period only (the paper's baseline)"
)
def _bu(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    _take_options("batch-update", options, {})
    return BatchUpdate()


@register_strategy("full-retrain", "fresh model on the last WINDOW periods (window=4; 0 = all)")
def _full(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    return FullRetrain(**_take_options("full-retrain", options, {"window": 4}))


@register_strategy(
    "recency-weighted", "warm-start, last WINDOW periods weighted DECAY**age (3, 0.5)"
)
def _recency(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    return RecencyWeighted(
        **_take_options("recency-weighted", options, {"window": 3, "decay": 0.5})
    )


@register_strategy("static", "trained on the first period only, never updated (reference)")
def _static(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    _take_options("static", options, {})
    return Static()


@register_strategy(
    "extrapolate", "batch update deployed at theta + C * last update (c=0.5; FGD's fixed ablation)"
)
def _extrapolate(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    return Extrapolate(**_take_options("extrapolate", options, {"c": 0.5}))


@register_strategy(
    "fgd", "Future Gradient Descent: serve the model moved by a learned forecast of the next step"
)
def _fgd(options: dict[str, Any], learner: Learner, seed: int) -> Strategy:
    return FGD(FGDConfig.from_options(options), learner, seed)
