"""AutoShard's training loop on :class:`~embedlab.sharding.cost.CostMeter` measurements.

The reference (``autoshard/training.py``) runs IMPALA: each of 8 actors plays the sampling
policy on its own GPU, benchmarks every shard of the plans it produces (single-GPU fused
TBE forward+backward, no communication) into a ring replay buffer of 5,000 shard costs,
and the learner does 20 cost-head updates (batch 512) per policy update, 100k steps in all.
Here one process alternates (each of ``iterations`` outer iterations):

1. **measure**: the sampling policy plays one episode on each of ``rollout_tasks`` random
   training tasks; every non-empty device of those plans is timed with
   :meth:`CostMeter.measure_devices` (compute only: fused FBGEMM forward+backward of the
   shard on one device, as AutoShard measures; a task's devices are timed interleaved) and
   pushed into the :class:`ReplayBuffer` (ring, ``buffer_size``). Before they are pushed,
   the cost head's error on these unseen shards is logged (``fresh_mape``: an honest
   generalisation error). Skipped once ``measure_budget_s`` seconds of measurement are
   spent (or the meter's own budget raises): training then continues on the buffer.
2. **fit the cost head**: ``cost_steps`` Adam steps on minibatches of ``cost_batch``
   buffer samples (MSE on ms / ``scale_ms``; ``scale_ms`` = median of the first
   measurements).
3. **policy**, by ``reward``:

   * ``"measured"`` (default, the paper's: its actors benchmark the plans they play and are
     rewarded with the measured balance): the episodes of step 1 -- ``measured_episodes``
     per task, played with gradients on -- get :func:`balance_reward` of their *measured*
     per-device costs, and each task's batch is one actor-critic update. The cost head
     still learns from the buffer (it orders the tables and feeds the action features).
     Once the measurement budget is spent, no new reward can be measured: the remaining
     iterations fall back to the cost-head reward below (logged as ``reward_source``).
   * ``"cost_head"``: ``rl_updates`` actor-critic updates
     (:func:`~embedlab.sharding.autoshard.agent.actor_critic_loss`), each on one random
     training task × ``rl_episodes`` episodes whose reward comes from the cost head -- no
     measurement in this inner loop (cheaper; what the first version of this module did).

One Adam optimizer (lr 1e-3, the paper's) for the whole network, decayed linearly to 0
over the iterations; grad-norm clip 40; entropy cost 0.001; baseline cost 0.5 (the
paper's). After every iteration the run folder gets ``model/`` (weights-only) and
``checkpoint.pt`` (network, optimizer, scheduler, replay buffer, log, seconds and count of
measurements). Every iteration re-seeds its random generators from ``(seed, iteration)``,
so a run killed and resumed reaches the same state as an uninterrupted one as long as the
measurements repeat (the meter's cache is not saved: a resumed run re-times what it meets
again, and timings vary).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.io import ensure_dir, write_json
from embedlab.sharding.autoshard.agent import (
    AutoShardModel,
    actor_critic_loss,
    rollout,
    task_tensors,
)
from embedlab.sharding.autoshard.model import balance_reward, cost_loss
from embedlab.sharding.cost import MeasurementBudgetExceeded
from embedlab.sharding.dreamshard.features import NUM_FEATURES, table_features
from embedlab.sharding.types import Shard, Task
from embedlab.train.checkpoint import load_checkpoint, save_checkpoint

REWARDS = ("measured", "cost_head")


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. Reference values: buffer 5000, cost batch 512, lr 1e-3, entropy
    0.001, baseline 0.5, clip 40. The loop sizes (iterations, tasks measured, steps) are
    ours, scaled to a CPU budget of minutes."""

    iterations: int = 20
    rollout_tasks: int = 4
    buffer_size: int = 5000
    cost_steps: int = 100
    cost_batch: int = 512
    rl_updates: int = 20
    rl_episodes: int = 8
    lr: float = 1e-3
    entropy_cost: float = 1e-3
    baseline_cost: float = 0.5
    grad_clip: float = 40.0
    gae_lambda: float = 1.0
    normalize_advantage: bool = True
    measure_budget_s: float | None = None
    seed: int = 0
    reward: str = "measured"
    measured_episodes: int = 4

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise UserError(f"AutoShard reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        for k in ("iterations", "rollout_tasks", "buffer_size", "cost_batch", "rl_episodes",
                  "measured_episodes"):  # fmt: skip
            if getattr(self, k) < 1:
                raise UserError(f"AutoShard setting {k!r} must be >= 1, got {getattr(self, k)}")
        for k in ("cost_steps", "rl_updates"):
            if getattr(self, k) < 0:
                raise UserError(f"AutoShard setting {k!r} must be >= 0, got {getattr(self, k)}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise UserError(
                f"AutoShard setting 'gae_lambda' must be in [0, 1], got {self.gae_lambda}"
            )
        if self.lr <= 0:
            raise UserError(f"AutoShard setting 'lr' must be > 0, got {self.lr}")


class ReplayBuffer:
    """Ring buffer of measured shards: per shard its tables' features ``[n, 21]`` and its
    measured cost (ms)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.feats: list[np.ndarray] = []
        self.cost_ms: list[float] = []
        self.pos = 0  # next slot to overwrite once full
        self.added = 0

    def __len__(self) -> int:
        return len(self.feats)

    def add(self, feats: np.ndarray, cost_ms: float) -> None:
        if len(self.feats) < self.capacity:
            self.feats.append(feats)
            self.cost_ms.append(cost_ms)
        else:
            self.feats[self.pos] = feats
            self.cost_ms[self.pos] = cost_ms
            self.pos = (self.pos + 1) % self.capacity
        self.added += 1

    def batch(self, idx: list[int] | np.ndarray, scale_ms: float) -> tuple[torch.Tensor, ...]:
        """Padded ``feats [B, N, 21]``, ``mask [B, N]`` and targets ``[B]`` (ms / scale)."""
        return shard_batch([self.feats[i] for i in idx], [self.cost_ms[i] for i in idx], scale_ms)

    def to_state(self) -> dict[str, Any]:
        lengths = [len(f) for f in self.feats]
        flat = np.concatenate(self.feats) if self.feats else np.zeros((0, NUM_FEATURES), np.float32)
        return {"feats": torch.from_numpy(flat), "lengths": torch.tensor(lengths, dtype=torch.long),
                "cost_ms": torch.tensor(self.cost_ms, dtype=torch.float64), "pos": self.pos,
                "added": self.added, "capacity": self.capacity}  # fmt: skip

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> ReplayBuffer:
        b = cls(int(d["capacity"]))
        flat = d["feats"].numpy()
        starts = np.concatenate([[0], np.cumsum(d["lengths"].numpy())])
        b.feats = [flat[starts[i] : starts[i + 1]] for i in range(len(starts) - 1)]
        b.cost_ms = [float(c) for c in d["cost_ms"].tolist()]
        b.pos, b.added = int(d["pos"]), int(d["added"])
        return b


def shard_batch(
    feats: list[np.ndarray], cost_ms: list[float], scale_ms: float
) -> tuple[torch.Tensor, ...]:
    B, N = len(feats), max((len(f) for f in feats), default=1) or 1
    x = torch.zeros(B, N, NUM_FEATURES)
    mask = torch.zeros(B, N)
    for i, f in enumerate(feats):
        x[i, : len(f)] = torch.from_numpy(f)
        mask[i, : len(f)] = 1.0
    return x, mask, torch.tensor(cost_ms, dtype=torch.float32) / scale_ms


def cost_mape(model: AutoShardModel, feats: list[np.ndarray], cost_ms: list[float]) -> float:
    """Mean absolute percentage error of the cost head on measured shards."""
    if not feats:
        return float("nan")
    x, mask, y = shard_batch(feats, cost_ms, model.scale_ms)
    with torch.no_grad():
        pred = model.net.cost(x, mask).clamp_min(0)
    return float(((pred - y).abs() / y.clamp_min(1e-9)).mean())


def placement_shards(task: Task, placement: list[int]) -> list[list[Shard]]:
    """Table-wise shards of a placement, grouped by device."""
    by_dev: list[list[Shard]] = [[] for _ in range(task.num_devices)]
    for t, d in zip(task.tables, placement):
        by_dev[int(d)].append(Shard(t.name, int(d), 0, t.dim))
    return by_dev


@dataclass
class TrainState:
    iteration: int = 0
    measure_s: float = 0.0
    measurements: int = 0
    wall_s: float = 0.0
    budget_spent: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)


def _settings_key(s: TrainSettings) -> str:
    return json.dumps(asdict(s), sort_keys=True)


def train_autoshard(tasks: list[Task], out_dir: str | Path, meter: Any, settings: TrainSettings = TrainSettings(),
                    *, resume: bool = False, show_progress: bool = True,
                    meta: dict[str, Any] | None = None) -> AutoShardModel:  # fmt: skip
    """Train (or, with ``resume``, continue) AutoShard on ``tasks``; run folder ``out_dir``.

    ``meter``: a :class:`~embedlab.sharding.cost.CostMeter` (anything with its
    ``measure_devices(task, shard_sets)`` → objects with ``total_ms``, and ``settings``).
    ``meta`` is stored with the model (the CLI passes ``command``; ``seed`` and
    ``backend`` are filled in). Returns the model, also saved to ``out_dir/model``.
    """
    if not tasks:
        raise UserError("AutoShard needs at least one training task")
    run = ensure_dir(out_dir)
    ck = run / "checkpoint.pt"
    if not resume and ck.is_file():
        raise UserError(
            f"{run} already holds an AutoShard run; pass resume=True (--resume) or use a new folder"
        )
    torch.manual_seed(settings.seed)
    meter_settings = getattr(meter, "settings", None)
    backend = getattr(meter_settings, "backend", type(meter).__name__)
    model = AutoShardModel(meta=dict(meta or {}))
    if not model.meta.get("command"):  # the CLI passes its own command line
        model.meta["command"] = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    model.meta["seed"] = settings.seed
    model.meta["backend"] = backend
    opt = torch.optim.Adam(model.net.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: max(0.0, 1.0 - i / settings.iterations)
    )
    buf = ReplayBuffer(settings.buffer_size)
    st = TrainState()
    if resume and ck.is_file():
        c = load_checkpoint(ck)
        if c.get("settings") != _settings_key(settings):
            raise UserError(f"{ck} was written with other settings; resume with the same ones")
        model.net.load_state_dict(c["net"])
        opt.load_state_dict(c["opt"])
        sched.load_state_dict(c["sched"])
        model.scale_ms = float(c["scale_ms"])
        buf = ReplayBuffer.from_state(c["buffer"])
        st = TrainState(int(c["iteration"]), float(c["measure_s"]), int(c["measurements"]), float(c["wall_s"]),
                        bool(c["budget_spent"]), json.loads(c["log"]))  # fmt: skip
        old = json.loads(c["meta"])
        cmd = model.meta.pop("command")
        old.update(model.meta)
        if cmd != old.get("command"):  # keep the command that started the run
            old["resume_commands"] = [*old.get("resume_commands", []), cmd]
        model.meta = old
    tts = [task_tensors(t) for t in tasks]
    from tqdm.auto import tqdm

    bar = tqdm(total=settings.iterations, initial=st.iteration, disable=not show_progress, unit="iter",
               desc="autoshard")  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread beats two on a busy 2-core CPU
    try:
        t_start = time.perf_counter()
        while st.iteration < settings.iterations:
            rng = np.random.default_rng([settings.seed, st.iteration])
            gen = torch.Generator().manual_seed(settings.seed * 100_003 + st.iteration)
            # 1. measure shards of sampled plans
            fresh_f: list[np.ndarray] = []
            fresh_c: list[float] = []
            over = (
                settings.measure_budget_s is not None and st.measure_s >= settings.measure_budget_s
            )
            measured_rollouts = []  # (rollout with measured reward) per task, to learn from
            if not (over or st.budget_spent):
                picks = rng.choice(
                    len(tasks), size=min(settings.rollout_tasks, len(tasks)), replace=False
                )
                measured = settings.reward == "measured"
                for i in picks:
                    task = tasks[int(i)]
                    with torch.set_grad_enabled(measured):
                        r = rollout(model, tts[int(i)], episodes=settings.measured_episodes if measured else 1,
                                    generator=gen, grad=measured)  # fmt: skip
                    per_ep = [placement_shards(task, p.tolist()) for p in r.placement]
                    sets = [s for by_dev in per_ep for s in by_dev if s]
                    t0 = time.perf_counter()
                    try:
                        costs = meter.measure_devices(task, sets)
                    except MeasurementBudgetExceeded:
                        st.budget_spent = True
                        break
                    finally:
                        st.measure_s += time.perf_counter() - t0
                    st.measurements += len(sets)
                    seen: dict[tuple, float] = {}
                    for shards, c in zip(sets, costs):
                        key = tuple(sorted((s.table, s.columns) for s in shards))
                        if key in seen:  # the same device in another episode: learned once
                            continue
                        seen[key] = float(c.total_ms)
                        fresh_f.append(np.stack([table_features(task.table(s.table), s.columns)
                                                 for s in shards]))  # fmt: skip
                        fresh_c.append(float(c.total_ms))
                    if measured:
                        cost_ed = torch.zeros(len(per_ep), task.num_devices, dtype=torch.float64)
                        for e, by_dev in enumerate(per_ep):
                            for d, shards in enumerate(by_dev):
                                if shards:
                                    cost_ed[e, d] = seen[tuple(sorted((s.table, s.columns) for s in shards))]
                        r.reward = balance_reward(cost_ed, r.device_bytes, tts[int(i)].memory)
                        measured_rollouts.append(r)
            # policy update on the measured rewards: one step on every task's episodes (their
            # graphs were built with the current parameters, before anything else moves them)
            parts: list[dict[str, float]] = []
            rewards, feas = [], []
            source = "measured" if measured_rollouts else None
            if measured_rollouts:
                losses = []
                for r in measured_rollouts:
                    loss, p = actor_critic_loss(r, settings.entropy_cost, settings.baseline_cost, settings.gae_lambda,
                                                settings.normalize_advantage)  # fmt: skip
                    losses.append(loss)
                    parts.append(p)
                    rewards.append(float(r.reward.mean()))
                    feas.append(float(r.feasible.float().mean()))
                opt.zero_grad(set_to_none=True)
                torch.stack(losses).mean().backward()
                torch.nn.utils.clip_grad_norm_(model.net.parameters(), settings.grad_clip)
                opt.step()
            if st.iteration == 0 and model.scale_ms == 1.0 and fresh_c:
                model.scale_ms = float(np.median(fresh_c)) or 1.0
            fresh_mape = cost_mape(model, fresh_f, fresh_c) if st.iteration > 0 else float("nan")
            for f, c in zip(fresh_f, fresh_c):
                buf.add(f, c)
            if not len(buf):
                raise UserError(
                    "AutoShard measured no shard: the measurement budget is spent before the first iteration"
                )
            # 2. fit the cost head
            c_losses = []
            for _ in range(settings.cost_steps):
                idx = rng.choice(len(buf), size=min(settings.cost_batch, len(buf)), replace=False)
                loss = cost_loss(model.net, *buf.batch(idx, model.scale_ms))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.net.parameters(), settings.grad_clip)
                opt.step()
                c_losses.append(float(loss.detach()))
            # 3. policy updates on the cost head's reward (measured rewards were learned above)
            if not measured_rollouts and (settings.reward == "cost_head" or st.budget_spent or over):
                source = "cost_head"
                for _ in range(settings.rl_updates):
                    i = int(rng.integers(len(tasks)))
                    r = rollout(model, tts[i], episodes=settings.rl_episodes, generator=gen, grad=True)
                    loss, p = actor_critic_loss(r, settings.entropy_cost, settings.baseline_cost, settings.gae_lambda,
                                                settings.normalize_advantage)  # fmt: skip
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.net.parameters(), settings.grad_clip)
                    opt.step()
                    parts.append(p)
                    rewards.append(float(r.reward.mean()))
                    feas.append(float(r.feasible.float().mean()))
            sched.step()
            st.iteration += 1
            st.wall_s += time.perf_counter() - t_start
            t_start = time.perf_counter()
            recent = max(0, len(buf) - 500)
            st.log.append({
                "iteration": st.iteration, "cost_loss": float(np.mean(c_losses[-20:])) if c_losses else None,
                "fresh_mape": fresh_mape, "train_mape": cost_mape(model, buf.feats[recent:], buf.cost_ms[recent:]),
                "mean_reward": float(np.mean(rewards)) if rewards else None, "reward_source": source,
                "feasible": float(np.mean(feas)) if feas else None,
                "entropy": float(np.mean([p["entropy"] for p in parts])) if parts else None,
                "buffer": len(buf), "measurements": st.measurements, "measure_s": st.measure_s, "wall_s": st.wall_s,
            })  # fmt: skip
            last = st.log[-1]
            bar.set_postfix(reward=f"{last['mean_reward'] or 0:.3f}", mape=f"{last['train_mape']:.3f}",
                            meas=st.measurements)  # fmt: skip
            bar.update(1)
            model.meta.update({"iterations": st.iteration, "settings": asdict(settings), "measure_s": st.measure_s,
                               "measurements": st.measurements, "wall_s": st.wall_s, "buffer": len(buf),
                               "budget_spent": st.budget_spent or over, "tasks": len(tasks),
                               "meter": asdict(meter_settings) if meter_settings is not None else None,
                               "learner": "a2c (synchronous on-policy actor-critic, GAE)"})  # fmt: skip
            model.save(run / "model")
            save_checkpoint(ck, {
                "net": model.net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "scale_ms": model.scale_ms, "iteration": st.iteration, "buffer": buf.to_state(),
                "measure_s": st.measure_s, "measurements": st.measurements, "wall_s": st.wall_s,
                "budget_spent": st.budget_spent, "log": json.dumps(st.log), "meta": json.dumps(model.meta, default=str),
                "settings": _settings_key(settings),
            })  # fmt: skip
            write_json(run / "log.json", st.log)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    if st.iteration == settings.iterations and not (run / "model" / "model.json").is_file():
        model.save(run / "model")
    return model


def load_model(folder: str | Path) -> AutoShardModel:
    """A trained AutoShard model folder (``model.json`` + ``weights.pt``)."""
    return AutoShardModel.load(folder)


__all__ = ["ReplayBuffer", "TrainSettings", "cost_mape", "load_model", "placement_shards", "shard_batch",
           "train_autoshard"]  # fmt: skip
