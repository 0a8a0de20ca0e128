"""Embedding optimizers: the frequency-aware FA-SGD and counter-based CF-SGD, row-wise
Adagrad, and the registry that maps an optimizer name to fused FBGEMM or sparse kernels."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CFSGD": "embedlab.optim.frequency",
        "FASGD": "embedlab.optim.frequency",
        "count_ids": "embedlab.optim.frequency",
        "row_learning_rate": "embedlab.optim.frequency",
        "RowWiseAdagrad": "embedlab.optim.rowwise_adagrad",
        "OptimizerSpec": "embedlab.optim.registry",
        "get_optimizer": "embedlab.optim.registry",
        "register_optimizer": "embedlab.optim.registry",
        "state_bytes": "embedlab.optim.registry",
    },
)
