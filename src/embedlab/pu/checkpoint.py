"""Per-epoch checkpoints of a ``PUClassifier`` fit, so a crashed fit resumes where it stopped.

A checkpoint is one file (``torch.save``, loaded with ``weights_only=True``), rewritten
atomically after every epoch of a training stage (``pretrain``, ``finetune`` or
``end_to_end``). It holds the stage and its finished epochs, the modules, optimizer and
scheduler states, the data-order generator and torch's global RNG state, the loss history and,
once pretraining has finished, the pretrained encoder and projection head. A *signature* (the
estimator's parameters that change the result, and a fingerprint of ``X`` and ``y``) guards
against resuming a different fit: a mismatch is an error, never a silent restart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.io import atomic_open

#: Parameters that do not change what the checkpointed stages compute (``threshold`` is set
#: after the last stage, from the trained model).
IGNORED = ("verbose", "checkpoint", "device", "threshold")

#: Parameters added after checkpoints of this format existed, with their defaults: left out of
#: the signature at the default, so an older checkpoint of the same fit still resumes.
ADDED_DEFAULTS: dict[str, Any] = {"ensemble": 1}


def fingerprint(x: torch.Tensor, y: np.ndarray) -> str:
    """A content hash of the training data: the shape, dtype and every byte of ``x``, and the
    labels (BLAKE2b; Fashion-MNIST's 188 MB of float32 training images take about half a
    second). A sample of the rows would let a change elsewhere pass as the same data."""
    h = hashlib.blake2b(digest_size=32)
    h.update(repr((tuple(x.shape), str(x.dtype))).encode())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(memoryview(np.ascontiguousarray(x.detach().cpu().numpy())).cast("B"))
    return h.hexdigest()


def signature(params: dict[str, Any], data: str) -> str:
    kept = {
        k: params[k]
        for k in sorted(params)
        if k not in IGNORED and not (k in ADDED_DEFAULTS and params[k] == ADDED_DEFAULTS[k])
    }
    return f"{kept!r}|{data}"


def save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load(path: str | Path) -> dict[str, Any] | None:
    p = Path(path)
    if not p.is_file():
        return None
    return torch.load(p, map_location="cpu", weights_only=True)


__all__ = ["ADDED_DEFAULTS", "IGNORED", "fingerprint", "load", "save", "signature"]
