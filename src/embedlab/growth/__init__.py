"""Alternating growth and pruning of the DLRM MLPs: the schedule, the manager the trainer
drives, and the structure operations (shrink, grow, optimizer-state transplant)."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "GrowthSchedule": "embedlab.growth.schedule",
        "Phase": "embedlab.growth.schedule",
        "SCHEMES": "embedlab.growth.schedule",
        "GrowthManager": "embedlab.growth.scheme",
        "train_flops_per_sample": "embedlab.growth.scheme",
        "Structure": "embedlab.growth.structure",
        "full_structure": "embedlab.growth.structure",
        "shrink": "embedlab.growth.structure",
        "grow": "embedlab.growth.structure",
    },
)
