"""DLRM training: :func:`~embedlab.train.trainer.train` over a
:class:`~embedlab.train.trainer.TrainConfig`, metrics, schedules, checkpoints, baselines.

This package is also callable: ``embedlab.train(cfg, out, ...)`` is
:func:`embedlab.train.trainer.train`. The top-level name ``embedlab.train`` is necessarily
this package (Python binds a subpackage to its parent's attribute on first import, so a
function of that name would be replaced by the package as soon as any training module is
imported); making the package callable keeps ``el.train(cfg, out)`` working whichever way
the name was reached. Nothing heavy is imported until a name is used.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "TrainConfig": "embedlab.train.trainer",
        "train": "embedlab.train.trainer",
        "resume_run": "embedlab.train.trainer",
        "build_model": "embedlab.train.trainer",
        "evaluate": "embedlab.train.trainer",
        "predict": "embedlab.train.trainer",
        "ctr_metrics": "embedlab.train.metrics",
        "auc": "embedlab.train.metrics",
        "normalized_entropy": "embedlab.train.metrics",
        "BestOnValid": "embedlab.train.selection",
        "popularity_scores": "embedlab.train.baselines",
        "logistic_regression_scores": "embedlab.train.baselines",
    },
)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Train a DLRM: :func:`embedlab.train.trainer.train` (same arguments)."""
        from embedlab.train.trainer import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
