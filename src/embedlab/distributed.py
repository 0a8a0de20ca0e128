"""Running under ``torchrun``: detect it, launch it, and set up the process group.

Commands that run on several processes (``embedlab shard run``, ``embedlab train
--planner``) work two ways:

* launched by the user: ``torchrun --nproc_per_node D -m embedlab ...`` (one node) or
  ``torchrun --nnodes N --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node D -m
  embedlab ...`` (several); every process runs the command body;
* launched by embedlab: ``embedlab ... --nproc D`` re-runs the same command line under
  ``python -m torch.distributed.run --standalone --nproc_per_node D`` (one node, a free
  local port), after checking the arguments once in the launching process.

Backend: NCCL with one GPU per process (``cuda:LOCAL_RANK``) where CUDA is available, gloo
on CPU otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from embedlab.errors import UserError


def under_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its environment says so)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m embedlab *argv`` in ``nproc`` processes under torchrun; its exit code."""
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    argv = strip_option(argv, "--nproc")  # the workers do not need it (and torchrun would take it)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "embedlab", *argv]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(cmd, env=env, check=False).returncode


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(threads: int | None = None) -> DistEnv:
    """Initialize the default process group from torchrun's environment.

    ``threads`` intra-op threads per process (default: the machine's cores shared evenly
    among the local processes, at least 1).
    """
    import torch.distributed as dist

    if not under_torchrun():
        raise UserError("not started by torchrun (RANK, WORLD_SIZE and LOCAL_RANK are unset)")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if torch.cuda.is_available():
        backend, device = "nccl", torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistEnv(rank, world, local_rank, local_world, backend, device)


def finish() -> None:
    """Tear down the default process group, if any."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int = 0) -> None:
    """End a worker process now, skipping the interpreter's and C++ static teardown.

    After :func:`finish`, a gloo worker sometimes aborted at exit ("terminate called without
    an active exception", SIGABRT: a native thread object destroyed while still joinable
    during static destruction), failing a run whose work was done and saved. Everything
    the run writes is flushed and closed before this is called, so nothing is lost by
    leaving with ``os._exit``.
    """
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


__all__ = [
    "DistEnv",
    "exit_worker",
    "finish",
    "init_distributed",
    "launch",
    "strip_option",
    "under_torchrun",
]
