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
