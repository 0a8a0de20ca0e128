"""BLENDER: diffusion-residual union and intersection for intra-class diversity in deep
metric learning (Kolf et al., 2026), for any epsilon-prediction diffusers model.

* :mod:`~embedlab.blender.operators`: the residual operators (union, intersection, mean,
  Composable sum) and blended conditions, as pure functions.
* :mod:`~embedlab.blender.sampler`: the guided DDIM sampler over diffusers schedulers.
* :mod:`~embedlab.blender.data`: Attributed Animal Silhouettes, a problem where every
  attribute is known and has an exact detector.
* :mod:`~embedlab.blender.generator`: the small conditional UNet and its training.
* :mod:`~embedlab.blender.dml`: deep metric learning on unseen classes (pytorch-metric-learning).
"""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "union_sum": "embedlab.blender.operators",
        "union_max": "embedlab.blender.operators",
        "intersection_pca": "embedlab.blender.operators",
        "intersection_consensus": "embedlab.blender.operators",
        "mean_residual": "embedlab.blender.operators",
        "composable_sum": "embedlab.blender.operators",
        "blend_conditions": "embedlab.blender.operators",
        "get_operator": "embedlab.blender.operators",
        "SamplerConfig": "embedlab.blender.sampler",
        "blender_sample": "embedlab.blender.sampler",
        "UNet2DEps": "embedlab.blender.sampler",
        "UNet2DConditionEps": "embedlab.blender.sampler",
        "GeneratorConfig": "embedlab.blender.generator",
        "ConditionalGenerator": "embedlab.blender.generator",
        "load_generator": "embedlab.blender.generator",
        "train_generator": "embedlab.blender.generator",
        "DEFAULT_GENERATOR": "embedlab.blender.default_model",
        "default_partition": "embedlab.blender.default_model",
        "make_splits": "embedlab.blender.data",
        "detect_attributes": "embedlab.blender.data",
        "DMLConfig": "embedlab.blender.dml",
        "train_dml": "embedlab.blender.dml",
    },
)
