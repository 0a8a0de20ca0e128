"""The demo's console: torch's fx-tracing notice (triggered by TorchRec) is filtered, precisely."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import logging, torch
import embedlab.cli.main  # the CLI (and every torchrun worker it starts) installs the filter
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
KeyedJaggedTensor.from_lengths_sync(keys=["a"], values=torch.tensor([1, 2]), lengths=torch.tensor([2]))
logging.getLogger("torch.fx._symbolic_trace").warning("another notice of that logger")
"""


def test_fx_tracing_notice_is_dropped_and_nothing_else():
    err = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    ).stderr
    assert "is_fx_tracing will return true" not in err
    assert "another notice of that logger" in err
