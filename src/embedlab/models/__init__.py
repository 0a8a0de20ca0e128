"""The DLRM model (TorchRec embedding bags, FBGEMM kernels) and its size presets."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DLRM": "embedlab.models.dlrm",
        "DLRMConfig": "embedlab.models.dlrm",
        "EmbeddingOptimizerSpec": "embedlab.models.dlrm",
        "model_config": "embedlab.models.dlrm",
        "KERNELS": "embedlab.models.dlrm",
    },
)
