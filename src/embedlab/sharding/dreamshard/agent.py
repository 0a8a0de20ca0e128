"""DreamShard's estimated MDP, batched rollouts, REINFORCE, and the saved model.

The MDP (``dreamshard/env.py`` of the reference): tables are placed one at a time, in
descending order of the cost network's predicted single-table cost (forward + backward +
communication); at each step the legal devices are those whose placed bytes plus the
table's (weights plus optimizer state, :meth:`Task.table_bytes`) fit
``device_memory_bytes``; the reward is 0 until the last step, then minus the
cost network's predicted plan cost. :func:`rollout` plays ``E`` episodes of one task at
once (tensors ``[E, D, T]`` of which table is where), sampling from the policy's softmax or
taking its argmax. :class:`EstimatedMDP` is the same MDP one step at a time with the
``reset``/``step`` interface of ``gymnasium`` (observation: the per-device table mask).

Communication (ours; the reference learns it): with ``comm_mode="analytic"`` (the
default of :class:`~embedlab.sharding.dreamshard.train.TrainSettings`) the cost network's
overall head predicts only the straggler's compute, and the plan cost adds the all-to-all
time of :class:`~embedlab.sharding.comm.CommModel` from the columns each device holds
(:func:`all_to_all_total_ms`, the formula the CostMeter itself adds to measured compute).
A learned communication head cannot know the alpha-beta constants of a device count it
never saw (DLRM-50 on 8 devices: 52% MAPE when trained on 4), nor a fresh calibration of
the same machine; the calibrated model of the target devices can be given at planning time.
``comm_mode="learned"`` keeps the reference's behaviour (a model with ``comm=None``).
Measured side by side with the earlier meter (batch 512, compute plus pooled all-to-alls;
``benchmarks/results/dreamshard_comm.json`` and
``dreamshard_comm_4dev.json``: 3 training seeds on DLRM-50 (4), 10 unseen tasks per family):
MAPE 4.4 / 7.1 / 2.7% on DLRM-50 with 4 / 2 / 8 devices against 11.9 / 26.9 / 53.8% learned,
8.2 / 4.2 / 7.3% on DLRM-20 / 100 / 200 (4) against 50.2 / 7.8 / 7.2%; measured plan cost
1.000 / 1.015 / 1.000 and 1.012 / 0.990 / 0.990 of the best heuristic against 1.014 / 1.026 /
0.998 and 1.010 / 1.000 / 1.006. The meter's communication is itself the alpha-beta model, so
analytic mode predicts that part exactly by construction.

REINFORCE (``training.py`` of the reference): every step's return is the episode's final
reward, z-normalised over the batch of episodes; loss ``mean(-log π(a) · R̂) - c · H(π)``
with ``c = 0.001``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.sharding.comm import ACTIVATION_BYTES, CommModel, input_payload
from embedlab.sharding.dreamshard.features import task_features
from embedlab.sharding.dreamshard.model import CostNet, Policy
from embedlab.sharding.moves import apply_candidate, candidate_totals, changed_totals, neighbours
from embedlab.sharding.nn import read_model_folder, save_model_folder
from embedlab.sharding.types import Task

MODEL_FORMAT = "embedlab.dreamshard-model/v1"  # learned communication
#: Analytic communication: ``model.json`` also holds ``comm`` (the all-to-all model) and
#: ``comm_batch``; a reader of v1 alone would mistake the compute-only prediction for the cost.
MODEL_FORMAT_ANALYTIC = "embedlab.dreamshard-model/v2"
#: How a plan's cost is predicted (:meth:`DreamShardModel.plan_cost`).
COST_FORMS = ("overall", "composed")


@dataclass
class DreamShardModel:
    """The cost network, the policy and what they were trained on (``meta``)."""

    cost: CostNet = field(default_factory=CostNet)
    policy: Policy = field(default_factory=Policy)
    scale_ms: float = 1.0  # cost targets are ms / scale_ms
    meta: dict[str, Any] = field(default_factory=dict)
    #: Analytic communication (see the module doc): the all-to-all model added to the
    #: predicted compute, at the timed batch ``comm_batch``; None: communication is learned.
    comm: CommModel | None = None
    comm_batch: int = 0

    def save(self, folder: str | Path) -> None:
        """``weights.pt`` (a weights-only state dict) and ``model.json`` (format, scale, meta)."""
        info: dict[str, Any] = {"scale_ms": self.scale_ms, "meta": self.meta}
        if self.comm is not None:
            info.update(comm=self.comm.to_json(), comm_batch=self.comm_batch)
        fmt = MODEL_FORMAT if self.comm is None else MODEL_FORMAT_ANALYTIC
        save_model_folder(folder, fmt, {"cost": self.cost.state_dict(), "policy": self.policy.state_dict()},
                          info)  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path) -> DreamShardModel:
        info, w = read_model_folder(folder, (MODEL_FORMAT, MODEL_FORMAT_ANALYTIC), "a DreamShard")
        m = cls(scale_ms=float(info["scale_ms"]), meta=dict(info.get("meta", {})))
        if info["format"] == MODEL_FORMAT_ANALYTIC:
            m.comm = CommModel.from_json(info.get("comm"), f"the 'comm' of {folder}/model.json")
            m.comm_batch = int(info["comm_batch"])
        m.cost.load_state_dict(w["cost"])
        m.policy.load_state_dict(w["policy"])
        return m

    def comm_scaled(self, cols: torch.Tensor, comm: CommModel | None = None) -> torch.Tensor:
        """Forward + backward all-to-all time ``[...]`` (scaled units) of plans whose devices
        hold ``cols [..., D]`` columns: ``comm`` (or the model's own) in analytic mode, 0 when
        the model learned communication."""
        if self.comm is None:
            return torch.zeros(cols.shape[:-1])
        return all_to_all_total_ms(comm or self.comm, cols, self.comm_batch) / self.scale_ms

    def plan_cost(self, vec: torch.Tensor, cols: torch.Tensor, comm: CommModel | None = None,
                  payload: torch.Tensor | None = None, form: str = "overall") -> torch.Tensor:  # fmt: skip
        """Predicted plan cost ``[...]`` (scaled units) from the shard vectors ``[..., D, 32]``
        and the per-device columns ``[..., D]``, in one of :data:`COST_FORMS`:

        * ``"overall"`` (the reference): the overall head over the max-pooled shard vectors,
          plus the all-to-alls in analytic mode;
        * ``"composed"`` (ours): the step as DMP runs it, from the per-device heads -- the
          slowest device's forward plus the slowest device's backward (every device waits
          at the all-to-all between them; a device without tables counts 0, as measured), plus the pooled all-to-alls and the input
          all-to-all of the communication model at the devices' columns and id payloads
          ``payload [..., D]`` (bytes per sample, :func:`~embedlab.sharding.comm.input_payload`).
          Needs a model with analytic communication.
        """
        if form == "overall":
            return self.cost.overall(vec) + self.comm_scaled(cols, comm)
        if form != "composed":
            raise UserError(f"unknown DreamShard cost form {form!r} ({', '.join(COST_FORMS)})")
        if self.comm is None:
            raise UserError("the composed cost needs a DreamShard model trained with comm_mode 'analytic'")
        if payload is None:
            raise ValueError("the composed cost needs the devices' input payloads")
        return self.composed_cost(self.cost.parts(vec), cols, payload, comm)

    def composed_cost(self, parts: torch.Tensor, cols: torch.Tensor, payload: torch.Tensor,
                      comm: CommModel | None = None) -> torch.Tensor:  # fmt: skip
        """The ``"composed"`` cost ``[...]`` of :meth:`plan_cost` from the per-device heads'
        outputs ``parts [..., D, 3]`` (see there)."""
        parts = parts * (cols > 0).unsqueeze(-1)  # an empty device computes nothing
        compute = parts[..., 0].amax(-1) + parts[..., 1].amax(-1)
        c = comm or self.comm
        return compute + self.comm_scaled(cols, c) + input_total_ms(c, payload, self.comm_batch) / self.scale_ms


def all_to_all_total_ms(comm: CommModel, cols: torch.Tensor, batch_size: int,
                        elem_bytes: int = ACTIVATION_BYTES) -> torch.Tensor:  # fmt: skip
    """:meth:`CommModel.all_to_all_ms` (forward + backward) batched over plans: ``cols [..., D]``
    → ``[...]`` ms. Both all-to-alls move ``max(sent, received)`` per device (the backward
    swaps them), each at its own calibrated line (``output_fwd``, ``output_bwd``)."""
    d = cols.shape[-1]
    if d <= 1:
        return torch.zeros(cols.shape[:-1])
    c = cols.double()
    sent = batch_size * c * elem_bytes * (d - 1) / d
    recv = batch_size / d * (c.sum(-1, keepdim=True) - c) * elem_bytes
    most = torch.maximum(sent, recv).amax(-1)
    (af, bf), (ab, bb) = comm.line("output_fwd"), comm.line("output_bwd")
    return (af + ab + (bf + bb) * most).float()


def input_total_ms(comm: CommModel, payload: torch.Tensor, batch_size: int) -> torch.Tensor:
    """:meth:`CommModel.input_ms` batched over plans: ``payload [..., D]`` (bytes per sample
    of each device's shards) → ``[...]`` ms; 0 with one device or no ``input`` line."""
    return torch.as_tensor(comm.input_ms_batched(payload.detach().double().numpy(), batch_size)).float()


@dataclass
class TaskTensors:
    """A task as the networks see it."""

    feats: torch.Tensor  # [T, 21]
    sizes: torch.Tensor  # [T] device memory of each table: weights + optimizer state (bytes)
    memory: float
    devices: int
    cols: torch.Tensor  # [T] embedding columns (the table's dim)
    payload: torch.Tensor  # [T] input all-to-all bytes per sample (lengths and ids)


def task_tensors(task: Task) -> TaskTensors:
    """The features (the weights' size among them, as the models were trained) and, for the
    memory checks, each table's device memory: weights plus the task's optimizer state
    (:meth:`Task.table_bytes`)."""
    return TaskTensors(torch.from_numpy(task_features(task)),
                       torch.tensor([float(task.table_bytes(t)) for t in task.tables], dtype=torch.float64),
                       float(task.device_memory_bytes), task.num_devices,
                       torch.tensor([float(t.dim) for t in task.tables]),
                       torch.tensor([input_payload(t.pooling_factor) for t in task.tables]))  # fmt: skip


def placement_order(cost: CostNet, tt: TaskTensors) -> torch.Tensor:
    """Tables by descending predicted single-table cost (forward + backward + communication)."""
    with torch.no_grad():
        single = cost.parts(cost.table_fc(tt.feats)).sum(-1)
    return torch.argsort(single, descending=True, stable=True)


@dataclass
class Rollout:
    placement: torch.Tensor  # [E, T] device of each table (task order)
    log_prob: torch.Tensor  # [E] sum over steps
    entropy: torch.Tensor  # [E] mean over steps
    predicted: torch.Tensor  # [E] predicted plan cost (scaled units)
    feasible: torch.Tensor  # [E] bool: every step had a legal device


def rollout(model: DreamShardModel, tt: TaskTensors, episodes: int = 1, greedy: bool = False,
            generator: torch.Generator | None = None, grad: bool = False,
            comm: CommModel | None = None, form: str = "overall") -> Rollout:  # fmt: skip
    """Play ``episodes`` episodes of the estimated MDP of one task (see the module doc);
    ``comm`` replaces an analytic model's communication model; ``form`` is how the final
    plan's cost is predicted (:meth:`DreamShardModel.plan_cost`)."""
    cost, pol = model.cost, model.policy
    T, D, E = tt.feats.shape[0], tt.devices, episodes
    order = placement_order(cost, tt)
    with torch.set_grad_enabled(grad):
        enc_c = cost.table_fc(tt.feats).detach()  # [T, 32]
        enc_p = pol.table_fc(tt.feats)  # [T, 32]
        mask = torch.zeros(E, D, T)
        used = torch.zeros(E, D, dtype=torch.float64)
        placement = torch.zeros(E, T, dtype=torch.long)
        logp = torch.zeros(E)
        ent = torch.zeros(E)
        feasible = torch.ones(E, dtype=torch.bool)
        for t in order.tolist():
            vec_c = mask @ enc_c  # [E, D, 32]
            parts = cost.parts(vec_c).detach()
            h = torch.cat([mask @ enc_p, pol.cost_fc(parts)], -1)
            legal = used + tt.sizes[t] <= tt.memory
            none = ~legal.any(1)
            feasible &= ~none
            legal = legal | none.unsqueeze(1)  # an episode with no room anywhere may go anywhere
            logits = pol.out(h).squeeze(-1).masked_fill(~legal, float("-inf"))
            lp = torch.log_softmax(logits, -1)
            if greedy:
                a = lp.argmax(-1)
            else:
                a = torch.multinomial(lp.exp().detach(), 1, generator=generator).squeeze(1)
            logp = logp + lp.gather(1, a.unsqueeze(1)).squeeze(1)
            p = lp.exp()
            ent = ent - (p * lp.masked_fill(~legal, 0.0)).sum(-1) / T
            placement[:, t] = a
            step_mask = torch.zeros_like(mask)
            step_mask[torch.arange(E), a, t] = 1.0
            mask = mask + step_mask  # out of place: earlier steps' graphs still use mask
            used[torch.arange(E), a] += tt.sizes[t]
        with torch.no_grad():
            pred = model.plan_cost(mask @ enc_c, mask @ tt.cols, comm, mask @ tt.payload, form)
    return Rollout(placement, logp, ent, pred, feasible)


def predicted_costs(model: DreamShardModel, tt: TaskTensors, placements: torch.Tensor,
                    comm: CommModel | None = None, form: str = "overall") -> torch.Tensor:  # fmt: skip
    """The predicted plan cost ``[C]`` (scaled units) of placements ``[C, T]``."""
    c, T = placements.shape
    mask = torch.zeros(c, tt.devices, T)
    mask[torch.arange(c)[:, None], placements, torch.arange(T)[None]] = 1.0
    with torch.no_grad():
        return model.plan_cost(mask @ model.cost.table_fc(tt.feats), mask @ tt.cols, comm,
                               mask @ tt.payload, form)


def composed_candidates(model: DreamShardModel, enc: torch.Tensor, tt: TaskTensors, place: torch.Tensor,
                        nb: Any, straggler: int, current: tuple[torch.Tensor, ...],
                        comm: CommModel | None = None) -> torch.Tensor:  # fmt: skip
    """The composed cost ``[C]`` of every candidate of ``nb`` (moves and swaps of ``place``;
    ``enc [T, 32]`` the tables' encodings; ``current``: the present per-device encodings,
    columns, payloads and head outputs). A candidate changes two devices, so only their two
    new shard vectors go through the per-device heads (:func:`~embedlab.sharding.moves.changed_totals`);
    the other devices keep their present outputs. Equal to :meth:`DreamShardModel.plan_cost`
    of each candidate's full placement (``tests/sharding/test_dreamshard.py``), with a
    ``D / 2`` times smaller batch through the heads."""
    vec, dcols, dpay, parts = current
    first, second, new1, new2 = changed_totals(vec, enc, place, nb, straggler)
    ar = torch.arange(len(nb))
    cand = parts.expand(len(nb), -1, -1).clone()
    cand[ar, first] = model.cost.parts(new1)
    cand[ar, second] = model.cost.parts(new2)
    cols, pay = (candidate_totals(t, x, place, nb, straggler) for t, x in ((dcols, tt.cols), (dpay, tt.payload)))
    return model.composed_cost(cand, cols, pay, comm)


def refine_placement(model: DreamShardModel, tt: TaskTensors, placement: torch.Tensor,
                     steps: int, comm: CommModel | None = None,
                     form: str = "overall") -> tuple[torch.Tensor, float]:  # fmt: skip
    """Steepest descent on the predicted plan cost by single-table moves and swaps with the
    device of largest predicted cost (see ``planner.py``); memory limits are kept. Returns
    the placement ``[T]`` and its predicted cost.

    The cost network sees a plan only through its per-device sums of table encodings, so
    every candidate is scored from the current sums plus or minus the tables it moves
    (one batched head evaluation per step, no per-candidate plan masks); with the composed
    cost only the two devices a candidate changes go through the heads
    (:func:`composed_candidates`)."""
    place = placement.clone()
    D = tt.devices
    cost = model.cost
    with torch.no_grad():
        enc = cost.table_fc(tt.feats)  # [T, E]
        best = float(predicted_costs(model, tt, place[None], comm, form)[0])
        for _ in range(steps):
            vec = torch.zeros(D, enc.shape[1]).index_add_(0, place, enc)  # [D, E]
            dcols = torch.zeros(D).index_add_(0, place, tt.cols)  # [D]
            dpay = torch.zeros(D).index_add_(0, place, tt.payload)  # [D]
            p = cost.parts(vec)
            straggler = int((p[:, :2] if form == "composed" else p).sum(-1).argmax())
            nb = neighbours(place.numpy(), tt.sizes.numpy(), tt.memory, straggler, D)
            if len(nb) == 0:
                break
            if form == "composed":
                preds = composed_candidates(model, enc, tt, place, nb, straggler, (vec, dcols, dpay, p), comm)
            else:
                cand = [candidate_totals(total, x, place, nb, straggler)  # per candidate and device
                        for total, x in ((vec, enc), (dcols, tt.cols), (dpay, tt.payload))]  # fmt: skip
                preds = model.plan_cost(cand[0], cand[1], comm, cand[2], form)
            i = int(preds.argmin())
            if float(preds[i]) >= best - 1e-4 * abs(best):
                break
            apply_candidate(place, nb, i, straggler)
            best = float(preds[i])
    return place, best


def search_placement(model: DreamShardModel, tt: TaskTensors, *, samples: int = 0, refine_steps: int = 0,
                     starts: int = 0, seed: int = 0, comm: CommModel | None = None,
                     form: str = "overall",
                     extra_starts: Sequence[np.ndarray] = ()) -> tuple[torch.Tensor, float, bool]:  # fmt: skip
    """The planning-time search (options as ``DreamShardPlanner``'s, see ``planner.py``): the
    policy's greedy placement, or the best of it and ``samples`` sampled ones by predicted
    cost; then ``refine_steps`` steps of descent from it, from ``starts`` more sampled
    placements and from the feasible placements ``extra_starts`` (e.g. the heuristics'),
    the lowest prediction kept. Returns the placement ``[T]``, its predicted cost
    (scaled units) and whether it fits memory (when it does not, the placement is the
    greedy one, for the error message)."""
    with torch.no_grad():
        r = rollout(model, tt, episodes=1, greedy=True, comm=comm, form=form)
        place, pred, ok = r.placement[0], float(r.predicted[0]), bool(r.feasible[0])
        if samples:
            g = torch.Generator().manual_seed(seed)
            s = rollout(model, tt, episodes=samples, generator=g, comm=comm, form=form)
            cand = torch.where(s.feasible, s.predicted, torch.full_like(s.predicted, float("inf")))
            i = int(cand.argmin())
            if bool(s.feasible[i]) and (not ok or float(cand[i]) < pred):
                place, pred, ok = s.placement[i], float(cand[i]), True
    if not ok or not refine_steps:
        return place, pred, ok
    place, pred = refine_placement(model, tt, place, refine_steps, comm, form)
    if starts:  # descend from sampled placements too; keep the lowest prediction
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            s = rollout(model, tt, episodes=starts, generator=g, comm=comm, form=form)
        for i in s.feasible.nonzero().flatten().tolist():
            p, c = refine_placement(model, tt, s.placement[i], refine_steps, comm, form)
            if c < pred:
                place, pred = p, c
    for start in extra_starts:
        p, c = refine_placement(model, tt, torch.as_tensor(start, dtype=torch.long), refine_steps, comm, form)
        if c < pred:
            place, pred = p, c
    return place, pred, True


def reinforce_loss(r: Rollout, entropy_coef: float = 1e-3) -> torch.Tensor:
    """``mean(-log π · R̂) - c · H`` with ``R = -predicted cost`` (infeasible: doubled cost)."""
    reward = -(r.predicted * torch.where(r.feasible, 1.0, 2.0))
    adv = (
        (reward - reward.mean()) / (reward.std(unbiased=False) + 1e-8)
        if len(reward) > 1
        else reward * 0
    )
    return (-(r.log_prob * adv)).mean() - entropy_coef * r.entropy.mean()


class EstimatedMDP:
    """The estimated MDP of one task, one step at a time (``gymnasium``-style API; the real
    ``gymnasium.Env`` over many tasks is :func:`embedlab.sharding.dreamshard.gym_env.make_env`)."""

    def __init__(self, model: DreamShardModel, task: Task) -> None:
        self.model, self.task = model, task
        self.tt = task_tensors(task)
        self.order = placement_order(model.cost, self.tt).tolist()
        self.reset()

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self.t = 0
        self.mask = torch.zeros(self.tt.devices, len(self.order))
        self.used = torch.zeros(self.tt.devices, dtype=torch.float64)
        return self.mask.numpy().copy(), {"legal": self.legal(), "table": self.order[0]}

    def legal(self) -> np.ndarray:
        if self.t >= len(self.order):
            return np.zeros(self.tt.devices, dtype=bool)
        return (self.used + self.tt.sizes[self.order[self.t]] <= self.tt.memory).numpy()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.legal()[action]:
            raise ValueError(f"device {action} has no room for table {self.order[self.t]}")
        t = self.order[self.t]
        self.mask[action, t] = 1.0
        self.used[action] += self.tt.sizes[t]
        self.t += 1
        done = self.t == len(self.order)
        reward = 0.0
        if done:
            with torch.no_grad():
                vec = self.model.cost.shard_vectors(
                    self.tt.feats.expand(self.tt.devices, -1, -1), self.mask
                )
                cost = self.model.plan_cost(vec, self.mask @ self.tt.cols)
                reward = -float(cost) * self.model.scale_ms
        info = {"legal": self.legal(), "table": self.order[self.t] if not done else None}
        return self.mask.numpy().copy(), reward, done, False, info


__all__ = ["COST_FORMS", "DreamShardModel", "EstimatedMDP", "Rollout", "TaskTensors", "all_to_all_total_ms", "composed_candidates", "input_total_ms", "placement_order",
           "predicted_costs",
           "refine_placement", "reinforce_loss", "rollout", "search_placement", "task_tensors"]  # fmt: skip
