"""The small default generator shipped with the package (weights only; see its
``generator.json`` for the command, seed and machine that trained it)."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_GENERATOR = Path(__file__).parent


def default_partition() -> dict:
    """The class partition the default generator was trained on (its training classes)."""
    return json.loads((DEFAULT_GENERATOR / "partition.json").read_text())
