"""The experiments behind ``embedlab reproduce`` (one module per capability), their
registry and the runner that writes the report."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "reproduce": "embedlab.experiments.runner",
        "ExperimentContext": "embedlab.experiments.registry",
        "ExperimentResult": "embedlab.experiments.registry",
        "Table": "embedlab.experiments.registry",
        "all_experiments": "embedlab.experiments.registry",
        "register_experiment": "embedlab.experiments.registry",
    },
)
