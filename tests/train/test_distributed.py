"""Sharded DLRM training under torchrun (2 CPU processes, gloo): smoke test, resume, helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedlab.data.schema import CTRArrays
from embedlab.distributed import strip_option
from embedlab.train.distributed import pooling_factors

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups on POSIX only")


def test_pooling_factors_count_present_ids():
    arrays = CTRArrays(
        dense=np.zeros((4, 1), dtype=np.float32),
        sparse=[
            np.array([1, 2, -1, 3]),
            np.array([[1, 2, -1], [3, -1, -1], [-1, -1, -1], [4, 5, 6]]),
        ],
        labels=np.zeros(4, dtype=np.float32),
    )
    pf = pooling_factors(arrays, ["a", "b"])
    assert pf == {"a": 0.75, "b": 1.5}
    assert pooling_factors(arrays, ["a", "b"], max_rows=1) == {"a": 1.0, "b": 2.0}


def test_strip_option():
    assert strip_option(["x", "--nproc", "2", "--out", "o"], "--nproc") == ["x", "--out", "o"]
    assert strip_option(["--nproc=4", "y"], "--nproc") == ["y"]
    assert strip_option(["--nprocs", "3"], "--nproc") == ["--nprocs", "3"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from embedlab.data.synth import SynthConfig, default_cardinalities, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(rows=6000, seed=1, cardinalities=default_cardinalities(2000)), out)
    return out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "embedlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


#: Same weights, data order and optimizers: the sharded run's numbers differ from the
#: 1-process run's only by float summation order (measured: equal AUC, logloss 2e-9 apart;
#: from different initial tables the two differ by up to 0.07 AUC at this length).
AUC_TOL = 1e-3
LOGLOSS_TOL = 1e-4


def test_train_with_planner_on_two_processes(synth: Path, tmp_path: Path):
    """The CI smoke test: `embedlab train --planner NAME --nproc 2` launches torchrun; the
    sharded run learns what the same run on one process learns, from the same weights."""
    from embedlab.train.trainer import TrainConfig, train

    base = TrainConfig(data="synth", data_options={"data_dir": str(synth)}, model_size="tiny",
                       optimizer="adagrad", batch_size=128, max_steps=2, threads=1)  # fmt: skip
    train(base, tmp_path / "start", show_progress=False)  # the weights both runs start from
    one = train(TrainConfig(**{**base.to_dict(), "max_steps": 30, "init_from": str(tmp_path / "start")}),
                tmp_path / "one", show_progress=False)  # fmt: skip
    r = _cli("train", "--data", "synth", "--data-dir", str(synth), "--model-size", "tiny", "--optimizer", "adagrad",
             "--batch-size", "128", "--max-steps", "30", "--planner", "size_lookup_greedy", "--nproc", "2",
             "--init-from", str(tmp_path / "start"), "--out", str(tmp_path / "run"), "--no-progress", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["nproc"] == 2 and m["backend"] == "gloo" and m["steps"] == 30
    assert m["test_auc"] == pytest.approx(one["test_auc"], abs=AUC_TOL)
    assert m["test_logloss"] == pytest.approx(one["test_logloss"], abs=LOGLOSS_TOL)

    def losses(run: Path) -> list[float]:
        recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["train_loss"] for r in recs if "train_loss" in r]

    assert len(losses(tmp_path / "run")) == 1  # logged at the last step (log_every 50)
    assert losses(tmp_path / "run") == pytest.approx(losses(tmp_path / "one"), abs=LOGLOSS_TOL)
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert {s["device"] for s in plan["shards"]} == {0, 1}
    assert len(plan["shards"]) == 26  # every table of the synthetic Criteo layout, once


def test_planner_with_unfusable_optimizer_is_a_clear_error(synth: Path, tmp_path: Path):
    base = [
        "train",
        "--data",
        "synth",
        "--data-dir",
        str(synth),
        "--planner",
        "round_robin",
        "--out",
        str(tmp_path / "run"),
    ]
    r = _cli(*base, "--optimizer", "adagrad", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "--nproc" in r.stderr  # no torchrun and no --nproc
    r = _cli(*base, "--optimizer", "adam", "--nproc", "2", cwd=tmp_path)
    assert r.returncode != 0 and "cannot be fused into sharded tables" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int, world: int, port: int, synth: str, out: str, mode: str, optimizer: str
) -> None:
    import faulthandler

    faulthandler.enable(all_threads=True)  # a native abort prints every thread's Python stack
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))  # fmt: skip
    from embedlab.distributed import finish
    from embedlab.io import write_json
    from embedlab.train.checkpoint import FAULT_ENV
    from embedlab.train.distributed import train_distributed
    from embedlab.train.trainer import TrainConfig

    cfg = TrainConfig(data="synth", data_options={"data_dir": synth}, model_size="tiny", optimizer=optimizer,
                      batch_size=128, max_steps=24, checkpoint_every=8, log_every=2, eval_every=12, seed=3,
                      tensorboard=True)  # fmt: skip
    from embedlab.distributed import exit_worker

    try:
        kw = {"planner": "lookup_greedy", "show_progress": False, "threads": 1}
        if mode == "full+crash":  # one launch: an uninterrupted run, then one whose rank 1
            # dies in the middle of saving step 16's checkpoint
            m = train_distributed(cfg, Path(out) / "full", **kw)
            if m is not None:
                write_json(Path(out) / "full" / "final_full.json", m)
            os.environ[FAULT_ENV] = "1:16"
            m = train_distributed(cfg, Path(out) / "cut", **kw)
        elif mode == "resume":
            m = train_distributed(cfg, out, resume=True, **kw)
        else:
            m = train_distributed(cfg, out, **kw)
        if m is not None:
            write_json(Path(out) / f"final_{mode}.json", m)
    except BaseException:
        finish()
        raise
    finish()
    exit_worker(0)  # as the CLI's ranks do


def _full_tensors(folder: Path, tmp: Path) -> dict:
    """Every tensor of a DCP checkpoint folder, sharded ones assembled whole."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dst = tmp / f"{folder.parent.parent.name}_{folder.name}.pt"
    dcp_to_torch_save(folder, dst)
    flat: dict = {}

    def walk(prefix: str, x) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(x, torch.Tensor):
            flat[prefix] = x

    walk("", torch.load(dst, weights_only=False))
    return flat


def _tb_steps(run: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_a_rank_killed_mid_save_resumes_from_the_previous_checkpoint(synth: Path, tmp_path: Path):
    """Rank 1 dies while step 16's checkpoint is being written: the pointer still names
    step 8, the resumed run loads it and ends like an uninterrupted run, its checkpoints
    hold the same values, each step is logged once. Sharded tables and their optimizer state
    (CF-SGD: FBGEMM's per-row counters, sharded with their table) are in the checkpoint."""
    import torch
    import torch.multiprocessing as mp

    optimizer = "cf-sgd"  # the most optimizer state: per-row counters next to the tables

    def go(out: Path, mode: str) -> None:
        mp.start_processes(_worker, args=(2, _free_port(), str(synth), str(out), mode, optimizer), nprocs=2, join=True,
                           start_method="spawn")  # fmt: skip

    with pytest.raises(mp.ProcessExitedException, match="exit code 17"):
        go(tmp_path, "full+crash")
    cut = tmp_path / "cut"
    pointer = json.loads((cut / "checkpoint.json").read_text())
    assert pointer["step"] == 8 and pointer["dir"] == "ckpt/step_000000008"
    assert (cut / "ckpt" / "step_000000016").is_dir()  # the interrupted save
    assert not (cut / "ckpt" / "step_000000016" / ".metadata").exists()
    assert not (cut / "metrics.json").exists()
    go(cut, "resume")
    full = json.loads((tmp_path / "full" / "final_full.json").read_text())
    resumed = json.loads((cut / "final_resume.json").read_text())
    assert resumed["steps"] == full["steps"] == 24
    # best-on-validation selection (the shared hook) survives the crash as well
    assert resumed["best_step"] == full["best_step"] and full["best_step"] in (12, 24)
    assert full[f"best_valid_{full['select_metric']}"] == pytest.approx(full["valid_auc"])
    for k in ("valid_auc", "test_auc", "test_logloss"):
        assert resumed[k] == pytest.approx(full[k], rel=1e-6, abs=1e-9), k
    # the newest two checkpoints are kept, and hold the uninterrupted run's values
    for run in (tmp_path / "full", cut):
        assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_000000016", "step_000000024"]
    for step in ("step_000000016", "step_000000024"):
        a = _full_tensors(tmp_path / "full" / "ckpt" / step, tmp_path)
        b = _full_tensors(cut / "ckpt" / step, tmp_path)
        assert a.keys() == b.keys() and any("sparse" in k for k in a)
        assert any("fused_optim" in k for k in a) and any("dense_optim" in k for k in a)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
        # a different step holds different weights: the comparison can fail
    assert not all(
        torch.equal(x, y)
        for x, y in zip(_full_tensors(cut / "ckpt" / "step_000000016", tmp_path).values(),
                        _full_tensors(cut / "ckpt" / "step_000000024", tmp_path).values())
    )  # fmt: skip
    full_log = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    cut_log = (cut / "metrics.jsonl").read_text().splitlines()
    # the log lines written after the last checkpoint by the crashed run (steps 10..16) are dropped
    assert [json.loads(x)["step"] for x in cut_log] == [json.loads(x)["step"] for x in full_log]
    assert any("valid_auc" in json.loads(x) and json.loads(x)["step"] == 12 for x in full_log)
    # TensorBoard shows each step once, with the resumed run's values
    assert _tb_steps(cut, "train_loss") == _tb_steps(tmp_path / "full", "train_loss") == list(range(2, 25, 2))
    assert _tb_steps(cut, "valid_auc") == _tb_steps(tmp_path / "full", "valid_auc") == [12, 24]
    assert _tb_steps(cut, "final_test_auc") == [24]
