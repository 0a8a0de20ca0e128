"""DreamShard's estimated MDP as a ``gymnasium.Env``, so other RL libraries can be tried.

Needs the optional ``gymnasium`` package (``pip install embedlab[rl]``). One episode places
every table of one task, one table per step, in DreamShard's order (descending predicted
single-table cost). At reset a task is drawn from the env's list (uniformly, with the
reset seed).

* **Observation** (``Dict``): ``placement`` ``[devices, max_tables]`` (1 where a table
  already sits on a device; zero-padded beyond the task's tables), ``table`` (the 21
  features of the table to place next, zeros when done), ``device_cost`` ``[devices, 3]``
  (the cost network's forward, backward and communication prediction per device, in ms)
  and ``free_bytes`` ``[devices]`` (memory left, in GiB).
* **Action**: ``Discrete(devices)``, the device for the next table. ``info["action_mask"]``
  marks the devices with room; an illegal action ends the episode with ``illegal_penalty``.
* **Reward**: 0 until the last table, then minus the cost network's predicted plan cost in
  ms (DreamShard's reward, no measurement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from embedlab.errors import UserError
from embedlab.sharding.dreamshard.agent import DreamShardModel, EstimatedMDP
from embedlab.sharding.dreamshard.features import NUM_FEATURES
from embedlab.sharding.types import Task


def _gym() -> Any:
    try:
        import gymnasium
    except ImportError:
        raise UserError(
            "the gymnasium env needs the optional package: pip install 'embedlab[rl]'"
        ) from None
    return gymnasium


def make_env(model: DreamShardModel, tasks: Sequence[Task], illegal_penalty: float = -1e4) -> Any:
    """A ``gymnasium.Env`` over ``tasks`` (all with the same number of devices)."""
    gym = _gym()
    from gymnasium import spaces

    if not tasks:
        raise UserError("the env needs at least one task")
    devices = {t.num_devices for t in tasks}
    if len(devices) != 1:
        raise UserError(
            f"all tasks of one env need the same number of devices, got {sorted(devices)}"
        )
    n_dev = devices.pop()
    max_tables = max(len(t.tables) for t in tasks)

    class DreamShardEnv(gym.Env):
        metadata: dict[str, Any] = {"render_modes": []}

        def __init__(self) -> None:
            self.observation_space = spaces.Dict({
                "placement": spaces.Box(0.0, 1.0, (n_dev, max_tables), np.float32),
                "table": spaces.Box(-np.inf, np.inf, (NUM_FEATURES,), np.float32),
                "device_cost": spaces.Box(-np.inf, np.inf, (n_dev, 3), np.float32),
                "free_bytes": spaces.Box(-np.inf, np.inf, (n_dev,), np.float32),
            })  # fmt: skip
            self.action_space = spaces.Discrete(n_dev)
            self.mdp: EstimatedMDP | None = None

        def _obs(self) -> dict[str, np.ndarray]:
            mdp = self.mdp
            assert mdp is not None
            place = np.zeros((n_dev, max_tables), np.float32)
            place[:, : mdp.mask.shape[1]] = mdp.mask.numpy()
            table = np.zeros(NUM_FEATURES, np.float32)
            if mdp.t < len(mdp.order):
                table[:] = mdp.tt.feats[mdp.order[mdp.t]].numpy()
            with torch.no_grad():
                cost = mdp.model.cost
                vec = cost.shard_vectors(mdp.tt.feats.expand(n_dev, -1, -1), mdp.mask)
                parts = cost.parts(vec).numpy() * mdp.model.scale_ms
            free = ((mdp.tt.memory - mdp.used.numpy()) / 2**30).astype(np.float32)
            return {
                "placement": place,
                "table": table,
                "device_cost": parts.astype(np.float32),
                "free_bytes": free,
            }

        def _info(self) -> dict[str, Any]:
            assert self.mdp is not None
            nxt = self.mdp.order[self.mdp.t] if self.mdp.t < len(self.mdp.order) else None
            return {
                "action_mask": self.mdp.legal().astype(np.int8),
                "table": nxt,
                "task": self.mdp.task.name,
            }

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
            super().reset(seed=seed)
            i = int(self.np_random.integers(len(tasks)))
            self.mdp = EstimatedMDP(model, tasks[i])
            return self._obs(), self._info()

        def step(self, action: Any):
            if self.mdp is None:
                raise RuntimeError("call reset() before step()")
            a = int(action)
            if not self.mdp.legal()[a]:
                return (
                    self._obs(),
                    float(illegal_penalty),
                    True,
                    False,
                    {**self._info(), "illegal": True},
                )
            _, reward, done, trunc, _ = self.mdp.step(a)
            return self._obs(), float(reward), bool(done), bool(trunc), self._info()

    return DreamShardEnv()


__all__ = ["make_env"]
