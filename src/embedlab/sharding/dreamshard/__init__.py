"""DreamShard (Zha et al., NeurIPS 2022): a learned cost network and placement policy,
trained on CostMeter measurements; :class:`DreamShardPlanner` uses the shipped model when
none is given. Nothing heavy is imported until a name is used."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DEFAULT_MODEL": "embedlab.sharding.dreamshard.planner",
        "DEFAULT_SEARCH": "embedlab.sharding.dreamshard.planner",
        "search_options": "embedlab.sharding.dreamshard.planner",
        "DreamShardPlanner": "embedlab.sharding.dreamshard.planner",
        "TrainSettings": "embedlab.sharding.dreamshard.train",
        "train_dreamshard": "embedlab.sharding.dreamshard.train",
    },
)
