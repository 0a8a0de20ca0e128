"""The one way CLI tests call ``embedlab``: in-process, returning (exit code, stdout, stderr)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from embedlab.cli.main import main


def run(argv: Sequence[Any], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """Run ``embedlab argv`` (items turned into strings); the exit code and captured output."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err
