"""Small network pieces shared by the learned planners (DreamShard, AutoShard, NeuroShard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from embedlab.errors import UserError


def mlp(sizes: list[int], last_relu: bool = False) -> nn.Sequential:
    """``Linear`` layers over ``sizes`` (input first) with a ReLU between them (and after the
    last one when ``last_relu``); PyTorch's default initialization."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def save_model_folder(
    folder: str | Path, fmt: str, weights: dict[str, Any], info: dict[str, Any]
) -> None:
    """A learned planner's model folder: ``weights.pt`` (a weights-only state dict, read back
    with ``weights_only=True``) and ``model.json`` (``{"format": fmt, **info}``)."""
    from embedlab.io import ensure_dir, write_json
    from embedlab.train.checkpoint import save_checkpoint

    out = ensure_dir(folder)
    save_checkpoint(out / "weights.pt", weights)
    write_json(out / "model.json", {"format": fmt, **info})


def read_model_folder(
    folder: str | Path, fmt: str | tuple[str, ...], what: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model.json, weights)`` of a folder written by :func:`save_model_folder`; a missing
    file or a format other than ``fmt`` (one, or a tuple of accepted ones) is a
    :class:`UserError` naming ``what`` (e.g. "a DreamShard")."""
    from embedlab.io import read_json
    from embedlab.train.checkpoint import load_checkpoint

    p = Path(folder)
    if not (p / "model.json").is_file() or not (p / "weights.pt").is_file():
        raise UserError(f"{p} is not {what} model folder (model.json and weights.pt)")
    info = read_json(p / "model.json")
    accepted = (fmt,) if isinstance(fmt, str) else fmt
    if not isinstance(info, dict) or info.get("format") not in accepted:
        raise UserError(f"{p}/model.json is not {' or '.join(accepted)}")
    return info, load_checkpoint(p / "weights.pt")
