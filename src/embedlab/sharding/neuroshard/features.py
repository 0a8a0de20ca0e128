"""The 20 NeuroShard table features.

Paper/reference: DreamShard's 21 features without ``size`` -- ``dim``, ``row``,
``pooling_factor`` and the 17 index-reuse bins -- ordered by sorted key name (the
reference's ``dict2tensor``): ``bin_0, bin_1, bin_10 .. bin_16, bin_2 .. bin_9, dim,
pooling_factor, row`` (:data:`FEATURE_NAMES`). The reference z-scores them with statistics
of the compute pre-training set; so do we (the statistics live in the compute network as
buffers, :class:`~embedlab.sharding.neuroshard.model.ComputeCostNet`).

Our choices: before z-scoring, ``dim`` is ``columns / 128``, ``row`` is ``log10(rows) / 8``
and ``pooling_factor`` is ``log10(1 + pooling_factor) / 2`` (the DreamShard package's global
scaling; logs keep heavy-tailed hash sizes and bag lengths in a trainable range). The reuse
bins are :func:`embedlab.sharding.dreamshard.features.reuse_bins` (the table's own
``reuse_bins`` if it carries them, else a cached 2,048-sample draw). A column-wise shard
has the features of its table with ``dim`` = its number of columns (the reference's
halving duplicates a table with the same rows and index data).
"""

from __future__ import annotations

import math

import numpy as np

from embedlab.sharding.dreamshard.features import reuse_bins
from embedlab.sharding.types import NUM_REUSE_BINS, Table

#: Feature names in the reference's order (sorted key names).
FEATURE_NAMES: tuple[str, ...] = tuple(
    sorted([f"bin_{j}" for j in range(NUM_REUSE_BINS)] + ["dim", "pooling_factor", "row"])
)
NUM_FEATURES = len(FEATURE_NAMES)
_BIN_POS = [FEATURE_NAMES.index(f"bin_{j}") for j in range(NUM_REUSE_BINS)]
_DIM, _PF, _ROW = (FEATURE_NAMES.index(k) for k in ("dim", "pooling_factor", "row"))


def table_features(table: Table, columns: int | None = None) -> np.ndarray:
    """The 20 scaled (not yet z-scored) features of ``table`` or of ``columns`` of it."""
    f = np.zeros(NUM_FEATURES, dtype=np.float32)
    f[_BIN_POS] = reuse_bins(table)
    f[_DIM] = (table.dim if columns is None else columns) / 128.0
    f[_PF] = math.log10(1.0 + table.pooling_factor) / 2.0
    f[_ROW] = math.log10(max(table.rows, 1)) / 8.0
    return f


def with_columns(features: np.ndarray, columns: int) -> np.ndarray:
    """A copy of a feature row with ``dim`` set to ``columns`` (a column-wise shard)."""
    f = np.array(features, dtype=np.float32, copy=True)
    f[..., _DIM] = columns / 128.0
    return f


__all__ = ["FEATURE_NAMES", "NUM_FEATURES", "table_features", "with_columns"]
