"""Checkpoints: written atomically, read with ``weights_only=True``, checked for origin.

Two stores, one rule (a checkpoint is either complete and named, or never read):

* one process: :func:`save_checkpoint` writes one file through a temp file, ``fsync`` and
  ``os.replace``: the file is its own pointer;
* several processes (sharded tables): :class:`StepCheckpoints`, PyTorch's convention for
  sharded state (``torch.distributed.checkpoint``) into one folder per step, with a pointer
  file replaced last.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embedlab.errors import UserError

FORMAT = "embedlab-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | Path, state: dict[str, Any], *, format: str = FORMAT, version: int = VERSION
) -> None:
    """Save ``state`` (tensors and primitives only) to ``path`` via a temp file + rename,
    stamped with ``format`` and ``version`` (other file kinds, e.g. the PU model file, pass
    their own)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": format, "version": version, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(
    path: str | Path,
    *,
    format: str = FORMAT,
    version: int = VERSION,
    what: str = "an embedlab checkpoint",
    error: type[UserError] = UserError,
) -> dict[str, Any]:
    """Load a file written by :func:`save_checkpoint` with ``format`` and ``version``; a
    missing, corrupt or foreign file raises ``error`` (a :class:`UserError`) naming ``what``
    the file should have been."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p} not found (expected {what})")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
    ) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{p} is not {what}, or is corrupt: {first[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != format:
        raise error(f"{p} is not {what}")
    if state.get("version") != version:
        raise error(
            f"{p}: version {state.get('version')} is not supported (this embedlab reads version {version})"
        )
    return state


# --- sharded state: torch.distributed.checkpoint into per-step folders + a pointer ---------

#: Environment variable for fault-injection tests: ``"RANK:STEP"`` makes that rank leave
#: (``os._exit(17)``) in the middle of saving that step's sharded checkpoint, after writing
#: its own files and before the checkpoint is complete.
FAULT_ENV = "EMBEDLAB_FAULT_SAVE"


def _fault_due(step: int) -> bool:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return False
    import torch.distributed as dist

    rank_s, step_s = spec.split(":")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return int(rank_s) == rank and int(step_s) == step


def _writer(folder: Path, step: int) -> Any:
    """DCP's file writer (one file per rank, fsynced), with the fault-injection point."""
    from torch.distributed.checkpoint import FileSystemWriter

    class _Writer(FileSystemWriter):
        def write_data(self, plan: Any, planner: Any) -> Any:
            fut = super().write_data(plan, planner)
            if _fault_due(step):
                fut.wait()  # this rank's shard files are on disk; .metadata is not
                os._exit(17)
            return fut

    return _Writer(str(folder), single_file_per_rank=True, sync_files=True)


@dataclass(frozen=True)
class StepCheckpoints:
    """Checkpoints of a sharded run: one folder per saved step, a pointer flipped last.

    Layout (under the run folder): ``{name}/step_{N:09d}/`` holds one
    ``torch.distributed.checkpoint`` (DCP) save (one ``.distcp`` file per rank and DCP's
    ``.metadata``, which DCP writes after every rank's files) plus ``meta.json`` (the
    step's plain values, written by rank 0); ``{pointer}`` (JSON: ``step``, ``dir``,
    ``world_size``) names the newest complete folder. The pointer is replaced atomically
    (temp file + ``os.replace``) by rank 0 after a barrier that follows every rank's
    writes, so a crash at any moment leaves it naming a complete checkpoint (or no file):
    a folder the pointer does not name is never read. After each flip the ``keep`` newest
    complete folders are kept and older ones (and leftovers of an interrupted save)
    removed. DCP's convention, followed here: the state dict to load into is built first
    (same model, same plan) and filled in place.
    """

    run: Path
    name: str = "ckpt"
    pointer: str = "checkpoint.json"
    keep: int = 2

    def folder(self, step: int) -> Path:
        return self.run / self.name / f"step_{step:09d}"

    def latest(self) -> dict[str, Any] | None:
        """The pointer's contents (``step``, ``dir``, ...) or ``None`` when nothing was saved."""
        p = self.run / self.pointer
        if not p.is_file():
            return None
        try:
            info = json.loads(p.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{p} is not a checkpoint pointer (not JSON)") from None
        if not isinstance(info, dict) or "dir" not in info:
            raise UserError(
                f"{p} is a checkpoint of an older embedlab layout (per-rank files); "
                "start the run afresh"
            )
        if not (self.run / info["dir"] / ".metadata").is_file():
            raise UserError(f"{p} names {info['dir']}, which is not a complete checkpoint")
        return info

    def clear(self) -> None:
        """Forget every checkpoint (call on one process): pointer first, then the folders."""
        (self.run / self.pointer).unlink(missing_ok=True)
        shutil.rmtree(self.run / self.name, ignore_errors=True)

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
        """Collective: save ``state`` (tensors, ShardedTensors, nested dicts of them) and
        ``meta`` (JSON values) as step ``step``, then flip the pointer to it."""
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp

        from embedlab.io import write_json

        main = not dist.is_initialized() or dist.get_rank() == 0
        folder = self.folder(step)
        if main:  # a leftover of a save interrupted at this step is discarded first
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        _barrier()
        dcp.save(state, storage_writer=_writer(folder, step))
        if main:
            write_json(folder / "meta.json", {"step": step, **meta})
        _barrier()  # every rank's files and .metadata are on disk
        if main:
            world = dist.get_world_size() if dist.is_initialized() else 1
            rel = folder.relative_to(self.run).as_posix()
            write_json(self.run / self.pointer, {"step": step, "dir": rel, "world_size": world,
                                                 "format": "torch.distributed.checkpoint"})  # fmt: skip
            self._prune(step)
        _barrier()

    def load(self, state: dict[str, Any]) -> dict[str, Any]:
        """Collective: fill ``state`` in place from the pointer's checkpoint; its ``meta``."""
        import torch.distributed.checkpoint as dcp

        info = self.latest()
        if info is None:
            raise UserError(f"{self.run} has no complete checkpoint ({self.pointer}) to resume")
        folder = self.run / info["dir"]
        from torch.distributed.checkpoint.api import CheckpointException

        try:
            dcp.load(state, checkpoint_id=str(folder))
        except (CheckpointException, ValueError, RuntimeError, KeyError) as e:
            # DCP reports per-rank failures as one CheckpointException (a BaseException)
            # whose text holds each rank's traceback; its last line names the mismatch
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            first = lines[-1] if lines else type(e).__name__
            raise UserError(
                f"checkpoint {folder} does not fit this model (another plan or process count?): "
                f"{first[:300]}"
            ) from None
        return json.loads((folder / "meta.json").read_text())

    def _prune(self, newest: int) -> None:
        root = self.run / self.name
        steps = sorted(
            int(p.name.removeprefix("step_"))
            for p in root.glob("step_*")
            if p.name.removeprefix("step_").isdigit()
        )
        complete = [s for s in steps if s <= newest and (self.folder(s) / ".metadata").is_file()]
        keep = set(complete[-self.keep :])
        for s in steps:
            if s not in keep:
                shutil.rmtree(self.folder(s), ignore_errors=True)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _fbgemm_kernels(model: torch.nn.Module) -> list[torch.nn.Module]:
    """FBGEMM's table-batched kernels inside ``model``: TorchRec keeps some modules on the way
    to them in plain lists (``_lookups`` of sharded collections, ``_emb_modules`` of fused
    ones), out of ``modules()``' reach, so those lists are walked too."""
    seen: set[int] = set()
    out: list[torch.nn.Module] = []
    stack: list[Any] = [model]
    while stack:
        m = stack.pop()
        if id(m) in seen or not isinstance(m, torch.nn.Module):
            continue
        seen.add(id(m))
        if hasattr(m, "iter_cpu") and isinstance(getattr(m, "iter", None), torch.Tensor):
            out.append(m)
        stack.extend(m.children())
        for name in ("_lookups", "_emb_modules"):
            stack.extend(getattr(m, name, None) or [])
        stack.append(getattr(m, "_emb_module", None))
    return out


def fbgemm_iteration(model: torch.nn.Module) -> int | None:
    """The iteration counter of the model's FBGEMM fused embedding kernels (``None`` without
    any). FBGEMM numbers training steps itself (``iter``, and a CPU copy ``iter_cpu`` it
    reloads from ``iter`` only while it is 0) and records each row's last update step in
    ``prev_iter``; TorchRec's sharded state dict leaves the counter out, so checkpoints save
    it here (the largest of the kernels' counters; they step together)."""
    its = [int(m.iter.max().item()) for m in _fbgemm_kernels(model)]
    return max(its) if its else None


def set_fbgemm_iteration(model: torch.nn.Module, value: int | None) -> None:
    """Restore :func:`fbgemm_iteration` into every FBGEMM kernel of ``model`` (both copies)."""
    if value is None:
        return
    for m in _fbgemm_kernels(model):
        m.iter.fill_(value)
        m.iter_cpu.fill_(value)
