"""What machine a result was measured on (recorded next to every benchmark and report)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def describe() -> str:
    """One line: CPU model, architecture and core count."""
    return f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cpus)"
