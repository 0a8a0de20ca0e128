"""Sweeps: grids, run folders, runs.csv, and resuming without rerunning finished runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import embedlab.train.trainer as trainer
from embedlab.errors import UserError
from embedlab.scaling.sweep import (
    CSV_COLUMNS,
    SweepSpec,
    default_grid,
    parse_grid,
    point_config,
    read_runs_csv,
    run_sweep,
)
from embedlab.train.trainer import TrainConfig


def test_parse_grid():
    g = parse_grid(
        ["dim=4,8", "train_rows=1e3,2000", "width=0.5,2", "model=tiny", "hash-rows=geom:100:1600:5"]
    )
    assert g == {"dim": (4, 8), "train_rows": (1000, 2000), "width": (0.5, 2.0), "model": ("tiny",),
                 "hash_rows": (100, 200, 400, 800, 1600)}  # fmt: skip
    for bad in (
        ["dim"],
        ["depth=3"],
        ["dim=4", "dim=8"],
        ["dim=0"],
        ["dim=2.5"],
        ["train_rows=geom:5:1:3"],
    ):
        with pytest.raises(UserError):
            parse_grid(bad)


def test_point_config_sets_model_and_sizes():
    base = TrainConfig(model_size="16:64-32:64", seed=9)
    cfg = point_config(base, {"dim": 4, "width": 0.5, "train_rows": 100, "hash_rows": 50}, 2)
    assert cfg.model_size == "4:32-16:32" and cfg.seed == 2
    assert cfg.train_rows == 100 and cfg.hash_rows == 50
    assert point_config(base, {"model": "tiny"}, 0).model_size == "tiny"
    with pytest.raises(UserError, match="replaces"):
        SweepSpec("params", {"model": ("tiny",), "dim": (2,)}).validate()


def test_default_grids_span_32x():
    assert default_grid("params", 1000)["dim"] == (2, 4, 8, 16, 32, 64)
    sizes = default_grid("data", 64_000)["train_rows"]
    assert len(sizes) == 6 and sizes[-1] == 64_000 and sizes[-1] / sizes[0] == 32
    g = default_grid("compute", 64_000)
    assert set(g) == {"dim", "train_rows"} and g["train_rows"][-1] == 64_000


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from embedlab.data.synth import SynthConfig, default_cardinalities, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(rows=2048, seed=1, cardinalities=default_cardinalities(300)), out)
    return out


def _spec(synth: Path, grid: dict) -> SweepSpec:
    base = TrainConfig(data="synth", data_options={"data_dir": str(synth)}, model_size="tiny", optimizer="adagrad", epochs=1,
                       batch_size=128, threads=1)  # fmt: skip
    return SweepSpec("data", grid, seeds=(0, 1), base=base)


def test_sweep_writes_runs_and_a_resumed_sweep_reruns_nothing_finished(
    synth: Path, tmp_path: Path, monkeypatch
):
    calls: list[str] = []
    real = trainer.train

    def counting(cfg, out, **kw):
        calls.append(Path(out).name)
        return real(cfg, out, **kw)

    monkeypatch.setattr(trainer, "train", counting)
    rows = run_sweep(_spec(synth, {"train_rows": (512, 1024)}), tmp_path, show_progress=False)
    assert len(rows) == len(calls) == 4
    table = read_runs_csv(tmp_path / "runs.csv")
    assert list(table[0])[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    by = {r["run_id"]: r for r in table}
    r = by["train_rows512-s0"]
    assert (
        r["train_rows"] == 512
        and r["train_samples"] == 512
        and r["train_flops"] == r["flops_per_sample"] * 512
    )
    assert 0 < r["test_ne"] < 2 and r["bayes_test_ne"] > 0
    assert by["train_rows1024-s1"]["params_total"] == r["params_total"]

    # the same grid again: nothing trains; a larger grid: only the new point trains
    calls.clear()
    run_sweep(_spec(synth, {"train_rows": (512, 1024)}), tmp_path, show_progress=False)
    assert calls == []
    run_sweep(_spec(synth, {"train_rows": (512, 1024, 2048)}), tmp_path, show_progress=False)
    assert sorted(calls) == ["train_rows2048-s0", "train_rows2048-s1"]
    assert len(read_runs_csv(tmp_path / "runs.csv")) == 6


def test_a_killed_run_resumes_from_its_checkpoint(synth: Path, tmp_path: Path, monkeypatch):
    spec = _spec(synth, {"train_rows": (1024,)})
    spec = SweepSpec(
        spec.axis,
        spec.grid,
        seeds=(0,),
        base=TrainConfig(**{**spec.base.to_dict(), "checkpoint_every": 2}),
    )

    class Killed(Exception):
        pass

    def kill(step: int) -> None:
        if step == 5:
            raise Killed

    real = trainer.train
    monkeypatch.setattr(trainer, "train", lambda cfg, out, **kw: real(cfg, out, on_step=kill, **kw))
    with pytest.raises(Killed):
        run_sweep(spec, tmp_path, show_progress=False)
    resumed: list[bool] = []
    monkeypatch.setattr(
        trainer,
        "train",
        lambda cfg, out, **kw: (resumed.append(kw["resume"]), real(cfg, out, **kw))[1],
    )
    run_sweep(spec, tmp_path, show_progress=False)
    assert resumed == [True]
    assert len(read_runs_csv(tmp_path / "runs.csv")) == 1


def test_other_base_settings_in_the_same_folder_are_refused(synth: Path, tmp_path: Path):
    run_sweep(_spec(synth, {"train_rows": (512,)}), tmp_path, show_progress=False)
    other = _spec(synth, {"train_rows": (512,)})
    other = SweepSpec(
        "data", other.grid, other.seeds, TrainConfig(**{**other.base.to_dict(), "batch_size": 64})
    )
    with pytest.raises(UserError, match="other base settings"):
        run_sweep(other, tmp_path, show_progress=False)


def test_runs_csv_flops_match_the_analytic_count(synth: Path, tmp_path: Path):
    """The trainer's FLOP count (per step, current widths) equals the analytic DLRM count."""
    from embedlab.data.registry import load_data
    from embedlab.data.schema import pooling_factors
    from embedlab.models.dlrm import model_config
    from embedlab.scaling.flops import dlrm_flops

    spec = SweepSpec("data", {"train_rows": (1024,)}, (0,), _spec(synth, {}).base)
    (row,) = run_sweep(spec, tmp_path, show_progress=False)
    data = load_data("synth", data_dir=str(synth))
    names = data.schema.sparse_names
    pf = pooling_factors(data.train.take(slice(0, 1024)), names)
    per = dlrm_flops(
        model_config("tiny"), data.schema.num_dense, len(names), [pf[n] for n in names]
    ).train
    assert row["flops_per_sample"] == pytest.approx(per) and row["train_flops"] == pytest.approx(
        per * 1024
    )


def test_runs_csv_keys_each_run_with_its_grid_and_a_fit_refuses_mixed_grids(
    synth: Path, tmp_path: Path
):
    from embedlab.scaling.analysis import fit_runs
    from embedlab.scaling.sweep import grid_id

    data_grid = {"train_rows": (512, 1024, 2048)}
    run_sweep(_spec(synth, data_grid), tmp_path, show_progress=False)
    dim_grid = {"dim": (2, 4, 8)}  # another grid in the same folder, on the same base
    run_sweep(_spec(synth, dim_grid), tmp_path, show_progress=False)
    g_data, g_dim = grid_id(data_grid, (0, 1)), grid_id(dim_grid, (0, 1))
    assert g_data != g_dim and g_data == grid_id({"train_rows": [512, 1024, 2048]}, [0, 1])
    table = read_runs_csv(tmp_path / "runs.csv")
    assert len(table) == 12
    assert {r["grid"] for r in table if r["run_id"].startswith("train_rows")} == {g_data}
    assert {r["grid"] for r in table if r["run_id"].startswith("dim")} == {g_dim}
    with pytest.raises(UserError, match=f"different grids.*{g_data} \\(6 runs\\).*--grid-id"):
        fit_runs(table, "samples", bootstrap=0)
    fit, doc = fit_runs(table, "samples", bootstrap=0, grid=g_data)
    assert fit.n == 6 and doc["grid"] == [g_data]


def test_a_finished_run_that_cannot_be_read_is_recorded_as_skipped(synth: Path, tmp_path: Path):
    import json
    import shutil

    from embedlab.scaling.sweep import read_skipped

    spec = _spec(synth, {"train_rows": (512,)})
    run_sweep(spec, tmp_path, show_progress=False)
    # a finished run left by an earlier grid whose config this version cannot read
    old = tmp_path / "runs" / "model_bogus-s0"
    shutil.copytree(tmp_path / "runs" / "train_rows512-s0", old)
    cfg = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**cfg, "model_size": "bogus"}))
    seen: list[tuple[str, str]] = []
    run_sweep(spec, tmp_path, show_progress=False, on_skip=lambda r, why: seen.append((r, why)))
    assert [r for r, _ in seen] == ["model_bogus-s0"] and "model size 'bogus'" in seen[0][1]
    assert read_skipped(tmp_path) == dict(seen)
    assert [r["run_id"] for r in read_runs_csv(tmp_path / "runs.csv")] == [
        "train_rows512-s0",
        "train_rows512-s1",
    ]
