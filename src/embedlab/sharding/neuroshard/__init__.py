"""NeuroShard (MLSys 2023, arXiv 2305.01868): pre-trained cost models, then search.

* :mod:`.features` -- the 20 table features;
* :mod:`.data` -- pre-training data: measured shard compute, modelled all-to-all with stragglers;
* :mod:`.model` -- compute network, per-device-count communication networks, save/load;
* :mod:`.train` -- :func:`pretrain_neuroshard`;
* :mod:`.simulator` -- plan cost from the cost models;
* :mod:`.search` -- greedy grid search (table-wise) and beam search (column-wise halving);
* :mod:`.planner` -- :class:`NeuroShardPlanner`.

Submodules import torch; import them, not this package, where start-up time matters.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("NeuroShardPlanner", "DEFAULT_MODEL"):
        from embedlab.sharding.neuroshard import planner

        return getattr(planner, name)
    if name in ("NeuroShardModel", "load_model"):
        from embedlab.sharding.neuroshard import model

        return getattr(model, name)
    if name in ("pretrain_neuroshard", "PretrainSettings"):
        from embedlab.sharding.neuroshard import train

        return getattr(train, name)
    raise AttributeError(name)


__all__ = ["DEFAULT_MODEL", "NeuroShardModel", "NeuroShardPlanner", "PretrainSettings", "load_model",
           "pretrain_neuroshard"]  # fmt: skip
