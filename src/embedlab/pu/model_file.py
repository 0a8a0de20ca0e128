"""A fitted :class:`~embedlab.pu.classifier.PUClassifier` as one file (``embedlab pu fit`` writes
``OUT/model.pt``; ``embedlab pu predict --model`` reads it).

The file is a ``torch.save`` of a dictionary of plain values and tensors, read back with
``torch.load(weights_only=True)``: loading it runs no code from the file (a pickle of the
estimator, scikit-learn's usual persistence, would). It holds:

* ``format`` (``"embedlab-pu-model"``), ``version`` (1) and the ``embedlab_version`` that wrote it;
* ``params``: the estimator's parameters (``get_params``; a ``random_state`` that is not an int
  or None is stored as None);
* the fitted state: ``classes``, ``input_shape``, the tabular standardisation ``mean`` / ``std``
  (None for images), ``threshold`` (``threshold_``), ``finetuned``, ``cluster_space`` (the
  space the probe reads, None for heads on the encoder), ``seed``, ``members`` (ensemble size),
  ``encoder_kind``, the ``encoder``, ``head`` and (contrastive methods) ``proj`` state dicts,
  ``history``, ``n_features_in`` and ``feature_names_in``;
* for contrastive fits, the ``pretrained`` encoder and ``pretrain_data`` fingerprint, so that
  ``refit`` works on a loaded model.

Modules are loaded onto ``device`` (default CPU). Pseudo-labels and self-training labels are
training-set diagnostics and are not stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embedlab.pu.validation import PUInputError
from embedlab.train.checkpoint import load_checkpoint, save_checkpoint

FORMAT = "embedlab-pu-model"
VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def save_model(clf: Any, path: str | Path) -> None:
    """Write the fitted ``clf`` to ``path`` (atomically; see the module doc)."""
    from sklearn.utils.validation import check_is_fitted

    from embedlab import __version__
    from embedlab.pu.classifier import EnsembleEncoder

    check_is_fitted(clf, ["encoder_", "head_"])
    params = {k: (v if isinstance(v, _PLAIN) else None) for k, v in clf.get_params().items()}
    enc = clf.encoder_
    members = len(enc.members) if isinstance(enc, EnsembleEncoder) else 1

    def cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in sd.items()}

    names = getattr(clf, "feature_names_in_", None)
    payload = {
        "embedlab_version": __version__, "params": params,
        "classes": torch.from_numpy(np.asarray(clf.classes_)), "input_shape": list(clf.input_shape_),
        "mean": torch.from_numpy(clf.mean_) if hasattr(clf, "mean_") else None,
        "std": torch.from_numpy(clf.std_) if hasattr(clf, "std_") else None,
        "threshold": float(clf.threshold_), "finetuned": bool(clf.finetuned_),
        "cluster_space": clf.cluster_space_, "seed": int(clf.seed_), "members": members,
        "encoder_kind": clf.encoder_kind_, "encoder": cpu(enc.state_dict()), "head": cpu(clf.head_.state_dict()),
        "proj": cpu(clf.proj_.state_dict()) if hasattr(clf, "proj_") else None,
        "pretrained": cpu(clf.pretrained_state_) if hasattr(clf, "pretrained_state_") else None,
        "pretrain_data": getattr(clf, "pretrain_data_", None),
        "history": [float(v) for v in clf.history_], "n_features_in": int(clf.n_features_in_),
        "feature_names_in": [str(n) for n in names] if names is not None else None,
    }  # fmt: skip
    save_checkpoint(path, payload, format=FORMAT, version=VERSION)


def _linear(state: dict[str, torch.Tensor], prefix: str = "") -> nn.Linear:
    w = state[f"{prefix}weight"]
    return nn.Linear(int(w.shape[1]), int(w.shape[0]))


def load_model(path: str | Path, device: str = "cpu") -> Any:
    """The fitted ``PUClassifier`` stored in ``path`` by :func:`save_model`, on ``device``."""
    from embedlab.pu.classifier import EnsembleEncoder, EnsembleHead, PUClassifier, _encoder
    from embedlab.pu.encoders import projection_head

    d = load_checkpoint(path, format=FORMAT, version=VERSION,
                        what="a PU model file written by `embedlab pu fit`", error=PUInputError)  # fmt: skip
    clf = PUClassifier(**d["params"])
    shape = (1, *d["input_shape"])
    m = int(d["members"])
    if m > 1:
        enc: nn.Module = EnsembleEncoder([_encoder(d["encoder_kind"], shape) for _ in range(m)])
        head: nn.Module = EnsembleHead([_linear(d["head"], f"heads.{i}.") for i in range(m)])
    else:
        enc, head = _encoder(d["encoder_kind"], shape), _linear(d["head"])
    enc.load_state_dict(d["encoder"])
    head.load_state_dict(d["head"])
    dev = torch.device(device)
    clf.encoder_, clf.head_ = enc.to(dev).eval(), head.to(dev).eval()
    if d["proj"] is not None:
        proj = projection_head(
            int(d["proj"]["0.weight"].shape[1]), int(d["proj"]["3.weight"].shape[0])
        )
        proj.load_state_dict(d["proj"])
        clf.proj_ = proj.to(dev).eval()
    if d["pretrained"] is not None:
        clf.pretrained_state_ = d["pretrained"]
        clf.pretrain_data_ = d["pretrain_data"]
    clf.classes_ = d["classes"].numpy()
    clf.input_shape_ = tuple(int(v) for v in d["input_shape"])
    if d["mean"] is not None:
        clf.mean_, clf.std_ = d["mean"].numpy(), d["std"].numpy()
    clf.threshold_ = float(d["threshold"])
    clf.finetuned_ = bool(d["finetuned"])
    clf.cluster_space_ = d["cluster_space"]
    clf.seed_ = int(d["seed"])
    clf.encoder_kind_ = d["encoder_kind"]
    clf.history_ = list(d["history"])
    clf.n_features_in_ = int(d["n_features_in"])
    if d["feature_names_in"] is not None:
        clf.feature_names_in_ = np.asarray(d["feature_names_in"], dtype=object)
    clf._ck_sig = None
    return clf


__all__ = ["FORMAT", "VERSION", "load_model", "save_model"]
