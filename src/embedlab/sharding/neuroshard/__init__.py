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

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MODEL": "embedlab.sharding.neuroshard.planner",
        "NeuroShardPlanner": "embedlab.sharding.neuroshard.planner",
        "NeuroShardModel": "embedlab.sharding.neuroshard.model",
        "load_model": "embedlab.sharding.neuroshard.model",
        "PretrainSettings": "embedlab.sharding.neuroshard.train",
        "pretrain_neuroshard": "embedlab.sharding.neuroshard.train",
    },
)
