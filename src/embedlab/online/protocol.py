"""The prequential protocol: train on period 0, then for every later period ``t``
evaluate the deployed model on ``t`` (before it has seen any of it) and let the strategy
update it with the data of periods ``<= t``.

Outputs in the run folder: ``periods.jsonl`` (one line per evaluated period: AUC, NE, log
loss, the exact Bayes limits on synthetic data, the update's rows, steps and wall time),
``metrics.json`` (means over the evaluated periods: ``mean_next_period_auc``,
``mean_next_period_ne``, ...), ``config.json``, ``online.png`` and ``state.pt`` (the
checkpoint after the last finished period). Resumable: a rerun with the same config
continues after the last finished period and ends exactly where an uninterrupted run
would (training order is a pure function of ``(seed, period, epoch)``).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.io import atomic_open, ensure_dir, read_json, write_json
from embedlab.online.learner import Learner
from embedlab.online.periods import DATASETS, DriftConfig, PeriodStream, load_stream
from embedlab.online.strategies import make_strategy
from embedlab.train.checkpoint import load_checkpoint, save_checkpoint
from embedlab.train.metrics import auc, logloss, normalized_entropy


@dataclass(frozen=True)
class OnlineConfig:
    """One online run (written to ``config.json``; a resumed run must match it)."""

    data: str = "synth"
    strategy: str = "batch-update"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    period: str = "week"
    drift: DriftConfig = field(default_factory=DriftConfig)
    data_options: dict[str, Any] = field(default_factory=dict)
    model_size: str = "tiny"
    optimizer: str = "adagrad"
    lr: float = 0.1
    epochs: int = 1
    warmup_epochs: int = 2
    batch_size: int = 256
    seed: int = 0
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.data not in DATASETS:
            raise UserError(f"unknown online data {self.data!r}; valid: {', '.join(DATASETS)}")
        if self.epochs < 1 or self.warmup_epochs < 1:
            raise UserError("epochs and warmup epochs must be >= 1")
        if self.seed < 0:
            raise UserError(f"seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"learning rate must be a finite number > 0, got {self.lr}")
        allowed = {"movielens": {"data_dir", "cache_root", "min_rows"}, "synth": set()}[self.data]
        bad = sorted(set(self.data_options) - allowed)
        if bad:
            raise UserError(f"{self.data} takes no data option {', '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drift"] = asdict(self.drift) if self.data == "synth" else None
        if self.data == "synth":
            d.pop("period")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OnlineConfig:
        d = dict(d)
        drift = d.pop("drift", None)
        return cls(**d, drift=DriftConfig(**drift) if drift else DriftConfig())

    def stream(self) -> PeriodStream:
        return load_stream(self.data, period=self.period, drift=self.drift, **self.data_options)


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    d.pop("threads", None)
    return json.loads(json.dumps(d))


def evaluate(
    learner: Learner, arrays, bayes: dict[str, float] | None, params=None
) -> dict[str, float]:
    p = learner.predict(arrays, params)
    y = arrays.labels.astype(np.float64)
    out = {"auc": auc(y, p), "ne": normalized_entropy(y, p), "logloss": logloss(y, p),
           "ctr": float(y.mean())}  # fmt: skip
    if bayes is not None:
        out.update(bayes_auc=bayes["auc"], bayes_ne=bayes["ne"], ne_gap=out["ne"] - bayes["ne"],
                   drift_angle=bayes.get("drift_angle", 0.0))  # fmt: skip
    return out


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the evaluated periods (``nan`` AUCs of one-class periods are skipped)."""

    def mean(k: str) -> float:
        vals = [v for r in records if (v := r.get(k)) is not None and v == v]
        return statistics.fmean(vals) if vals else math.nan

    out: dict[str, Any] = {
        "periods_evaluated": len(records),
        "mean_next_period_auc": mean("auc"),
        "mean_next_period_ne": mean("ne"),
        "mean_next_period_logloss": mean("logloss"),
    }
    if records and "bayes_ne" in records[0]:
        out.update(mean_bayes_ne=mean("bayes_ne"), mean_bayes_auc=mean("bayes_auc"),
                   mean_ne_gap=mean("ne_gap"))  # fmt: skip
    updates = [r for r in records if "update_rows" in r]
    if updates:
        out["mean_update_rows"] = statistics.fmean(r["update_rows"] for r in updates)
        out["mean_update_wall_s"] = statistics.fmean(r["update_wall_s"] for r in updates)
    return out


def run_online(
    cfg: OnlineConfig,
    out: str | Path,
    *,
    stream: PeriodStream | None = None,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``cfg`` into ``out``; returns the final metrics.

    ``stop_after``: stop once that many periods are finished (for crash tests).
    """
    from tqdm.auto import tqdm

    outdir = ensure_dir(out)
    cfg_path, state_path, lines_path = (
        outdir / "config.json",
        outdir / "state.pt",
        outdir / "periods.jsonl",
    )
    if cfg_path.exists():
        old = read_json(cfg_path)
        if _comparable(old) != _comparable(cfg.to_dict()):
            raise UserError(f"{outdir} holds a run with another config; use a new --out")
    stream = stream if stream is not None else cfg.stream()
    learner = Learner(stream.schema, model_size=cfg.model_size, optimizer=cfg.optimizer, lr=cfg.lr,
                      batch_size=cfg.batch_size, seed=cfg.seed)  # fmt: skip
    strategy = make_strategy(cfg.strategy, cfg.strategy_options, learner, cfg.seed)
    write_json(cfg_path, cfg.to_dict())  # only once everything above was accepted
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    records: list[dict[str, Any]] = []
    next_t = 0
    if state_path.exists():
        state = load_checkpoint(state_path)
        learner.load_state_dict(state["learner"])
        strategy.load_state_dict(state["strategy"])
        next_t = int(state["next_period"])
        records = [json.loads(x) for x in lines_path.read_text().splitlines() if x.strip()]
        records = [r for r in records if r["period"] < next_t]
    T = len(stream)
    bar = tqdm(total=T, initial=next_t, disable=not show_progress, unit="period", dynamic_ncols=True,
               desc=f"{cfg.strategy} on {stream.name}")  # fmt: skip
    done = 0
    for t in range(next_t, T):
        rec: dict[str, Any] = {
            "period": t,
            "label": stream.labels[t],
            "rows": len(stream.periods[t]),
        }
        if t > 0:
            deployed = getattr(strategy, "deployed_params", lambda: None)()
            rec.update(
                evaluate(
                    learner, stream.periods[t], stream.bayes[t] if stream.bayes else None, deployed
                )
            )
        if t == 0:
            t0 = time.perf_counter()
            stats = learner.train(stream.periods[0], cfg.warmup_epochs, seed=cfg.seed * 1000)
            rec.update(warmup_rows=stats.rows, warmup_wall_s=time.perf_counter() - t0)
        elif t < T - 1:  # the last period has no next one to serve
            t0 = time.perf_counter()
            up = strategy.update(learner, stream, t, cfg.epochs, cfg.seed * 1000 + t)
            rec.update(update_rows=up.rows, update_steps=up.steps,
                       update_wall_s=time.perf_counter() - t0, **up.info)  # fmt: skip
        records.append(rec)
        # Lines first, then the checkpoint: a crash in between leaves a line the resumed
        # run drops (it redoes that period); the other order would lose the line.
        with atomic_open(lines_path) as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
        save_checkpoint(state_path, {"learner": learner.state_dict(), "strategy": strategy.state_dict(),
                                     "next_period": t + 1})  # fmt: skip
        bar.update(1)
        if t > 0:
            bar.set_postfix(ne=f"{rec['ne']:.4f}")
        done += 1
        if stop_after is not None and done >= stop_after and t < T - 1:
            bar.close()
            return {}
    bar.close()
    evaluated = [r for r in records if r["period"] > 0]
    metrics = {
        "data": stream.name,
        "strategy": cfg.strategy,
        "strategy_options": cfg.strategy_options,
        "seed": cfg.seed,
        "periods": T,
        "rows_per_period": stream.rows(),
        "params": learner.num_params(),
        **summarize(evaluated),
    }
    write_json(outdir / "metrics.json", metrics)
    try:
        from embedlab.online.plot import plot_runs

        plot_runs({cfg.strategy: evaluated}, outdir / "online.png", title=stream.name)
    except Exception as e:  # a plot must never lose a finished run
        metrics["plot_error"] = str(e)[:200]
    return metrics


def read_periods(run_dir: str | Path) -> list[dict[str, Any]]:
    p = Path(run_dir) / "periods.jsonl"
    if not p.exists():
        raise UserError(f"{run_dir} has no periods.jsonl (not an online run folder)")
    return [
        r
        for r in (json.loads(x) for x in p.read_text().splitlines() if x.strip())
        if r["period"] > 0
    ]
