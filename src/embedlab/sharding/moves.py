"""The neighbourhood of a table-wise placement that the planners' descents search.

One function, :func:`neighbours`, shared by DreamShard's descent on its cost network
(:func:`embedlab.sharding.dreamshard.agent.refine_placement`) and NeuroShard's descent on its
simulator (:func:`embedlab.sharding.neuroshard.search.refine`): every **move** of one item
(table or column piece) to another device with memory room, and every **swap** of an item on
the straggler device with an item elsewhere, both devices keeping within memory. Items are
enumerated in a fixed order -- moves by (item, device), swaps by (straggler item, other
item) -- so a descent's choice among equal scores is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Neighbours:
    """Candidate changes of a placement: ``move_item[i]`` goes to ``move_to[i]``; swap ``j``
    sends ``swap_out[j]`` (on the straggler) to ``swap_to[j]``, the device of ``swap_in[j]``,
    which goes to the straggler."""

    move_item: np.ndarray
    move_to: np.ndarray
    swap_out: np.ndarray
    swap_in: np.ndarray
    swap_to: np.ndarray

    def __len__(self) -> int:
        return len(self.move_item) + len(self.swap_out)


def neighbours(place: np.ndarray, sizes: np.ndarray, memory: float, straggler: int,
               num_devices: int) -> Neighbours:  # fmt: skip
    """The moves and swaps of ``place [N]`` (device of each item) that keep every device's
    summed ``sizes`` within ``memory`` (see the module doc)."""
    place = np.asarray(place, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.float64)
    used = np.bincount(place, weights=sizes, minlength=num_devices)
    t, d = (x.reshape(-1) for x in np.meshgrid(np.arange(len(place)), np.arange(num_devices), indexing="ij"))
    ok = (d != place[t]) & (used[d] + sizes[t] <= memory)
    on, off = np.flatnonzero(place == straggler), np.flatnonzero(place != straggler)
    a, b = (x.reshape(-1) for x in np.meshgrid(on, off, indexing="ij"))
    db = place[b]
    delta = sizes[b] - sizes[a]
    fits = (used[straggler] + delta <= memory) & (used[db] - delta <= memory)
    return Neighbours(t[ok], d[ok], a[fits], b[fits], db[fits])


__all__ = ["Neighbours", "neighbours"]
