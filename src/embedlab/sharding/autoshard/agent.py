"""AutoShard's episodes on estimated costs, the actor-critic loss, and the saved model.

**Episode** (``GymWrapper`` of the reference): at reset the task's tables are sorted by the
cost head's predicted single-table cost, descending (re-sorted at every reset, so the order
follows the cost head as it learns); step ``t`` places table ``t`` on a device; the reward
is 0 until the last step, then :func:`~embedlab.sharding.autoshard.model.balance_reward` of
the cost head's per-device estimates. :func:`rollout` plays ``E`` episodes of one task at
once. The LSTM input depends only on the table sequence and the step (as in the
reference), so its outputs are computed once per rollout and shared by the ``E``
episodes; the per-device action features change with each episode's placement.

**Memory masking** (our choice; the reference has none and relies on the penalty):
devices whose placed bytes plus the table's would exceed ``device_memory_bytes`` get logit
``-inf``. An episode in which no device has room places the table anywhere (unmasked), is
marked infeasible and gets the reward's memory penalty. Inference takes the argmax.

**Learner** (:func:`actor_critic_loss`). The paper trains with IMPALA's V-trace
(torchbeast: 8 actors, unroll 100, batch 8, entropy cost 0.001, baseline cost 0.5, grad-norm
clip 40, Adam lr 1e-3 decayed linearly). V-trace corrects for the lag between the actors'
behaviour policy and the learner's policy with truncated importance weights. Here one
process alternates rollouts and updates on a 2-core CPU: every batch is played by the
current parameters with gradients on, so the behaviour and target policies coincide, all
importance weights are 1 and the V-trace targets reduce exactly to the λ-returns (λ = 1:
Monte-Carlo returns). We therefore use the equivalent synchronous on-policy actor-critic
(A2C) with generalised advantage estimation: ``δ_t = r_t + γ V_{t+1} - V_t``,
``A_t = Σ (γλ)^k δ_{t+k}``, γ = 1 (the paper's discount), λ = 1 by default; loss
``-mean(log π · A) + baseline_cost · ½ mean((G - V)²) - entropy_cost · H``. By default the
advantages are z-normalised over the batch (our choice, as DreamShard normalises its
returns): the balance ratio moves in a narrow band near 1, so raw advantages are tiny
next to the entropy bonus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from embedlab.errors import UserError
from embedlab.sharding.autoshard.model import AutoShardNet, balance_reward
from embedlab.sharding.comm import CommModel
from embedlab.sharding.dreamshard.agent import TaskTensors, task_tensors  # the same task view
from embedlab.sharding.nn import read_model_folder, save_model_folder

MODEL_FORMAT = "embedlab.autoshard-model/v1"


@dataclass
class AutoShardModel:
    """The network, the cost scale (targets are ms / ``scale_ms``) and ``meta`` (what it
    was trained on, by which command, seed and measurement backend)."""

    net: AutoShardNet = field(default_factory=AutoShardNet)
    scale_ms: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> None:
        """``weights.pt`` (a weights-only state dict; ``safetensors`` is not installed here)
        and ``model.json`` (format, scale, meta)."""
        save_model_folder(folder, MODEL_FORMAT, {"net": self.net.state_dict()},
                          {"scale_ms": self.scale_ms, "meta": self.meta})  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path) -> AutoShardModel:
        info, w = read_model_folder(folder, MODEL_FORMAT, "an AutoShard")
        p = Path(folder)
        m = cls(scale_ms=float(info["scale_ms"]), meta=dict(info.get("meta", {})))
        try:
            m.net.load_state_dict(w["net"])
        except (KeyError, RuntimeError) as e:
            raise UserError(
                f"{p}/weights.pt does not hold AutoShard weights: {str(e)[:200]}"
            ) from None
        return m


def placement_order(net: AutoShardNet, tt: TaskTensors) -> torch.Tensor:
    """Tables by descending predicted single-table cost (stable: ties keep task order)."""
    with torch.no_grad():
        single = net.shard_cost(net.t_fc(tt.feats))
    return torch.argsort(single, descending=True, stable=True)


@dataclass
class Rollout:
    placement: torch.Tensor  # [E, T] device of each table, task order
    log_prob: torch.Tensor  # [E, T] log π(a_t), step order
    entropy: torch.Tensor  # [E, T] entropy over legal devices, step order
    value: torch.Tensor  # [T] V(s_t), step order (the same for every episode)
    device_cost: torch.Tensor  # [E, D] predicted cost of each device's shard (scaled ms)
    device_bytes: torch.Tensor  # [E, D]
    feasible: torch.Tensor  # [E] every step had a device with room
    reward: torch.Tensor  # [E] balance reward (float64)


def rollout(model: AutoShardModel, tt: TaskTensors, episodes: int = 1, greedy: bool = False,
            generator: torch.Generator | None = None, grad: bool = False) -> Rollout:  # fmt: skip
    """Play ``episodes`` episodes of one task (module docstring); ``greedy``: argmax."""
    net = model.net
    T, D, E = tt.feats.shape[0], tt.devices, episodes
    order = placement_order(net, tt)
    with torch.no_grad():
        enc_all = net.t_fc(tt.feats)  # [T, 32]; the policy sees it detached (model.py)
    ar = torch.arange(E)
    with torch.set_grad_enabled(grad):
        states = net.states(enc_all[order], torch.arange(T, dtype=torch.float32) / T)  # [T, 64]
        values = net.value(states)
        dev_enc = torch.zeros(E, D, enc_all.shape[1])
        count = torch.zeros(E, D)
        used = torch.zeros(E, D, dtype=torch.float64)
        placement = torch.zeros(E, T, dtype=torch.long)
        logps, ents = [], []
        feasible = torch.ones(E, dtype=torch.bool)
        for k, t in enumerate(order.tolist()):
            e_t = enc_all[t]
            size = tt.sizes[t]
            with torch.no_grad():
                now = net.shard_cost(dev_enc).clamp_min(0) * (count > 0)
                after = net.shard_cost(dev_enc + e_t).clamp_min(0)
            fill = ((used + size) / tt.memory).float()
            action = net.action_features(dev_enc, torch.stack([now, after, fill], -1))
            legal = used + size <= tt.memory
            none = ~legal.any(1)
            feasible &= ~none
            legal = legal | none.unsqueeze(1)
            logits = net.logits(states[k].expand(E, -1), action).masked_fill(~legal, float("-inf"))
            lp = torch.log_softmax(logits, -1)
            if greedy:
                a = lp.argmax(-1)
            else:
                a = torch.multinomial(lp.exp().detach(), 1, generator=generator).squeeze(1)
            logps.append(lp.gather(1, a.unsqueeze(1)).squeeze(1))
            ents.append(-(lp.exp() * lp.masked_fill(~legal, 0.0)).sum(-1))
            placement[:, t] = a
            onehot = torch.zeros(E, D)
            onehot[ar, a] = 1.0
            dev_enc = dev_enc + onehot.unsqueeze(-1) * e_t
            count = count + onehot
            used = used + onehot.double() * size
        with torch.no_grad():
            dcost = net.shard_cost(dev_enc).clamp_min(0) * (count > 0)
    reward = balance_reward(dcost, used, tt.memory)
    return Rollout(placement, torch.stack(logps, 1), torch.stack(ents, 1), values, dcost, used,
                   feasible, reward)  # fmt: skip


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 1.0
) -> torch.Tensor:
    """Generalised advantages ``[E, T]`` from per-step rewards and values ``[E, T]``
    (the state after the last step is terminal, value 0)."""
    E, T = rewards.shape
    adv = torch.zeros(E, T, dtype=rewards.dtype)
    nxt_v = torch.zeros(E, dtype=rewards.dtype)
    run = torch.zeros(E, dtype=rewards.dtype)
    for t in range(T - 1, -1, -1):
        delta = rewards[:, t] + gamma * nxt_v - values[:, t]
        run = delta + gamma * lam * run
        adv[:, t] = run
        nxt_v = values[:, t]
    return adv


def actor_critic_loss(r: Rollout, entropy_cost: float = 1e-3, baseline_cost: float = 0.5,
                      lam: float = 1.0, normalize: bool = True) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """The A2C loss of one batch of episodes (module docstring) and its parts."""
    E, T = r.log_prob.shape
    rewards = torch.zeros(E, T)
    rewards[:, -1] = r.reward.float()
    v = r.value.unsqueeze(0).expand(E, T)
    adv = gae(rewards, v.detach(), 1.0, lam)
    returns = (adv + v.detach()).detach()  # λ-returns: the value targets
    a = adv
    if normalize and a.numel() > 1:
        a = (a - a.mean()) / (a.std(unbiased=False) + 1e-8)
    pg = -(r.log_prob * a.detach()).mean()
    vloss = 0.5 * ((returns - v) ** 2).mean()
    ent = r.entropy.mean()
    loss = pg + baseline_cost * vloss - entropy_cost * ent
    return loss, {
        "pg": float(pg.detach()),
        "value": float(vloss.detach()),
        "entropy": float(ent.detach()),
    }


# --- planning-time search (ours; the paper plans with the argmax rollout alone) --------------


def _model_batch(model: AutoShardModel) -> int:
    """The batch the model's costs were measured at (its meter settings)."""
    return int(model.meta.get("meter", {}).get("batch_size", 4096))


def _comm_scaled(model: AutoShardModel, comm: CommModel, cols: torch.Tensor, payload: torch.Tensor) -> torch.Tensor:
    """Pooled and input all-to-all time ``[...]`` (scaled ms) of devices holding ``cols`` and
    ``payload [..., D]``, at the model's timed batch."""
    from embedlab.sharding.dreamshard.agent import all_to_all_total_ms, input_total_ms

    b = _model_batch(model)
    return (all_to_all_total_ms(comm, cols, b) + input_total_ms(comm, payload, b)) / model.scale_ms


def _device_costs(model: AutoShardModel, dev_enc: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The cost head's prediction per device ``[..., D]``; an empty device costs 0."""
    return model.net.shard_cost(dev_enc).clamp_min(0) * (count > 0)


def placement_score(model: AutoShardModel, dev_enc: torch.Tensor, count: torch.Tensor, cols: torch.Tensor,
                    payload: torch.Tensor, comm: CommModel | None = None) -> torch.Tensor:  # fmt: skip
    """Predicted cost ``[...]`` (scaled ms) of placements given, per device, the summed table
    encodings ``dev_enc [..., D, 32]``, table counts, columns and input payloads ``[..., D]``:
    the largest device's predicted compute (what AutoShard models) plus, with ``comm``, the
    pooled and input all-to-alls at the model's timed batch (the step as DMP runs it)."""
    compute = _device_costs(model, dev_enc, count).amax(-1)
    return compute if comm is None else compute + _comm_scaled(model, comm, cols, payload)


def _totals(enc: torch.Tensor, tt: TaskTensors, place: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-device sums of the table encodings ``enc [T, 32]``, table counts, columns and input
    payloads of ``place``."""
    D = tt.devices
    return (torch.zeros(D, enc.shape[1]).index_add_(0, place, enc),
            torch.zeros(D).index_add_(0, place, torch.ones(len(place))),
            torch.zeros(D).index_add_(0, place, tt.cols), torch.zeros(D).index_add_(0, place, tt.payload))  # fmt: skip


def candidate_scores(model: AutoShardModel, tt: TaskTensors, enc: torch.Tensor, place: torch.Tensor, nb: Any,
                     straggler: int, comm: CommModel | None = None) -> torch.Tensor:  # fmt: skip
    """:func:`placement_score` ``[C]`` of every candidate of ``nb``
    (:class:`~embedlab.sharding.moves.Neighbours` of ``place``; ``enc [T, 32]`` the tables'
    encodings), in one batch. A move or swap changes two devices, so only their two new shard
    encodings go through the cost head; the other devices keep their present cost."""
    from embedlab.sharding.moves import candidate_totals, changed_totals

    vec, count, cols, pay = _totals(enc, tt, place)
    first, second, new1, new2 = changed_totals(vec, enc, place, nb, straggler)
    _, _, cnt1, cnt2 = changed_totals(count, torch.ones(len(place)), place, nb, straggler)
    ar = torch.arange(len(nb))
    dev = _device_costs(model, vec, count).expand(len(nb), -1).clone()
    dev[ar, first] = _device_costs(model, new1, cnt1)
    dev[ar, second] = _device_costs(model, new2, cnt2)
    score = dev.amax(-1)
    if comm is None:
        return score
    c, p = (candidate_totals(t, x, place, nb, straggler) for t, x in ((cols, tt.cols), (pay, tt.payload)))
    return score + _comm_scaled(model, comm, c, p)


def refine_placement(model: AutoShardModel, tt: TaskTensors, placement: torch.Tensor, steps: int,
                     comm: CommModel | None = None) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Steepest descent on :func:`placement_score` by single-table moves and swaps with the
    device of largest predicted compute (:func:`~embedlab.sharding.moves.neighbours`, memory
    kept), at most ``steps`` steps, each scoring every neighbour in one batch
    (:func:`candidate_scores`); stops when no neighbour lowers the score by more than
    ``1e-4`` relative. Returns the placement ``[T]`` and its score."""
    from embedlab.sharding.moves import apply_candidate, neighbours

    place = placement.clone()
    with torch.no_grad():
        enc = model.net.t_fc(tt.feats)
        vec, count, cols, pay = _totals(enc, tt, place)
        best = float(placement_score(model, vec, count, cols, pay, comm))
        for _ in range(steps):
            straggler = int(_device_costs(model, vec, count).argmax())
            nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, tt.devices)
            if len(nb) == 0:
                break
            scores = candidate_scores(model, tt, enc, place, nb, straggler, comm)
            i = int(scores.argmin())
            if float(scores[i]) >= best - 1e-4 * abs(best):
                break
            apply_candidate(place, nb, i, straggler)
            vec, count, cols, pay = _totals(enc, tt, place)
            best = float(scores[i])
    return place, best


def search_placement(model: AutoShardModel, tt: TaskTensors, *, samples: int = 0, refine_steps: int = 0,
                     starts: int = 0, seed: int = 0, comm: CommModel | None = None,
                     extra_starts: Sequence[Any] = ()) -> tuple[torch.Tensor, float, bool]:  # fmt: skip
    """The planning-time search of :class:`~embedlab.sharding.autoshard.planner.AutoShardPlanner`:
    the argmax rollout, or the best of it and ``samples`` sampled rollouts by
    :func:`placement_score` (with ``comm``: the step cost); then ``refine_steps`` steps of
    :func:`refine_placement` from it, from ``starts`` more sampled rollouts and from the
    placements ``extra_starts`` (e.g. the heuristics'), the lowest score kept. Returns the
    placement ``[T]``, its score (scaled ms) and whether it fits memory (when it does not,
    the argmax placement, for the error message)."""
    with torch.no_grad():
        enc = model.net.t_fc(tt.feats)

        def score(p: torch.Tensor) -> float:
            return float(placement_score(model, *_totals(enc, tt, p), comm))

        r = rollout(model, tt, episodes=1, greedy=True)
        place, ok = r.placement[0], bool(r.feasible[0])
        if not ok:
            return place, float("inf"), False
        pred = score(place)
        if samples:
            s = rollout(model, tt, episodes=samples, generator=torch.Generator().manual_seed(seed))
            for i in s.feasible.nonzero().flatten().tolist():
                c = score(s.placement[i])
                if c < pred:
                    place, pred = s.placement[i], c
        if not refine_steps:
            return place, pred, True
        place, pred = refine_placement(model, tt, place, refine_steps, comm)
        more = []
        if starts:
            s = rollout(model, tt, episodes=starts, generator=torch.Generator().manual_seed(seed + 1))
            more = [s.placement[i] for i in s.feasible.nonzero().flatten().tolist()]
        more += [torch.as_tensor(p, dtype=torch.long) for p in extra_starts]
        for start in more:
            p, c = refine_placement(model, tt, start, refine_steps, comm)
            if c < pred:
                place, pred = p, c
    return place, pred, True


__all__ = ["MODEL_FORMAT", "AutoShardModel", "Rollout", "TaskTensors", "actor_critic_loss", "gae",
           "candidate_scores", "placement_order", "placement_score", "refine_placement", "rollout", "search_placement", "task_tensors"]  # fmt: skip
