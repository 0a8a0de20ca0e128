"""``embedlab scaling``: sweep -> fit -> predict end to end, and its user errors."""

from __future__ import annotations

import json

import pytest
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)


def test_sweep_fit_predict(tmp_path, capsys):
    data = tmp_path / "data"
    code, _, err = run(["data", "synth-ctr", "--out", data, "--rows", 4096, "--max-cardinality", 300,
                        "--interaction-std", 0.5], capsys)  # fmt: skip
    assert code == 0, err
    sweep = tmp_path / "sweep"
    code, out, err = run(["scaling", "sweep", "--axis", "data", "--data-dir", data, "--model-size", "tiny",
                          "--optimizer", "adagrad", "--batch-size", 128, "--grid", "train_rows=geom:512:4096:4",
                          "--seeds", "0", "--threads", 1, "--out", sweep, "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    assert "4 runs" in out and (sweep / "runs.csv").is_file()
    # a finished run of an earlier grid that cannot be read is reported, not dropped silently
    import shutil

    bogus = sweep / "runs" / "model_bogus-s0"
    shutil.copytree(sweep / "runs" / "train_rows512-s0", bogus)
    cfg = json.loads((bogus / "config.json").read_text())
    (bogus / "config.json").write_text(json.dumps({**cfg, "model_size": "bogus"}))
    code, out, err = run(["scaling", "sweep", "--axis", "data", "--data-dir", data, "--model-size", "tiny",
                          "--optimizer", "adagrad", "--batch-size", 128, "--grid", "train_rows=geom:512:4096:4",
                          "--seeds", "0", "--threads", 1, "--out", sweep, "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    assert "skipped finished run model_bogus-s0 of an earlier grid: unknown model size 'bogus'" in err
    assert "1 finished run(s) of earlier grids left out of runs.csv (model_bogus-s0)" in out
    assert "model_bogus-s0,\"unknown model size 'bogus'" in (sweep / "skipped.csv").read_text()
    code, out, err = run(["scaling", "fit", "--runs", sweep / "runs.csv", "--x", "samples", "--bootstrap", 50,
                          "--out", tmp_path / "fit"], capsys)  # fmt: skip
    assert code == 0, err
    doc = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert doc["kind"] == "power_law" and doc["x_name"] == "train_samples" and len(doc["runs"]) == 4
    assert "reference" in doc and (tmp_path / "fit" / "fit.png").stat().st_size > 1000
    assert "c is" in out and "residuals" in out
    code, out, err = run(
        ["scaling", "predict", "--fit", tmp_path / "fit", "--at", "1e5", "--json"], capsys
    )
    assert code == 0, err
    (p,) = json.loads(out)
    assert p["band"][0] <= p["prediction"] <= p["band"][1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["scaling", "sweep", "--axis", "depth", "--out", "{tmp}/s"], "unknown axis 'depth'"),
        (
            ["scaling", "sweep", "--axis", "data", "--grid", "layers=2", "--out", "{tmp}/s"],
            "unknown grid key",
        ),
        (
            ["scaling", "sweep", "--axis", "data", "--seeds", "a", "--out", "{tmp}/s"],
            "--seeds must be",
        ),
        (["scaling", "fit", "--runs", "{tmp}/none.csv", "--out", "{tmp}/f"], "runs file not found"),
        (["scaling", "predict", "--fit", "{tmp}", "--at", "1"], "fit file not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_fit_of_an_unknown_column_is_a_clear_error(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text("run_id,params_total,test_ne\na,1,0.9\nb,2,0.8\nc,4,0.75\n")
    code, _, err = run(
        ["scaling", "fit", "--runs", csv, "--x", "width", "--out", tmp_path / "f"], capsys
    )
    assert code == 2 and "unknown column 'width'" in err
    code, _, err = run(
        [
            "scaling",
            "fit",
            "--runs",
            csv,
            "--x",
            "params",
            "--out",
            tmp_path / "f",
            "--bootstrap",
            5,
        ],
        capsys,
    )
    assert code == 0, err


def test_fit_refuses_runs_of_different_grids(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    lines = ["run_id,grid,params_total,test_ne"]
    for g, off in (("g0123456789", 0.0), ("gabcdef0123", 0.05)):
        lines += [f"{g}-{i},{g},{x},{2.5 * x**-0.3 + 0.6 + off}" for i, x in enumerate([1e4, 2e4, 4e4, 8e4])]
    csv.write_text("\n".join(lines) + "\n")
    code, _, err = run(["scaling", "fit", "--runs", csv, "--x", "params", "--bootstrap", 0, "--out", tmp_path / "f"],
                       capsys)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "different grids (g0123456789 (4 runs), gabcdef0123 (4 runs))" in err
    code, out, err = run(["scaling", "fit", "--runs", csv, "--x", "params", "--bootstrap", 0, "--grid-id",
                          "gabcdef0123", "--out", tmp_path / "f"], capsys)  # fmt: skip
    assert code == 0, err
    doc = json.loads((tmp_path / "f" / "fit.json").read_text())
    assert doc["n"] == 4 and doc["grid"] == ["gabcdef0123"] and doc["c"] == pytest.approx(0.65, rel=1e-5)


def test_a_fit_with_its_constant_on_the_cap_is_reported_as_no_law(tmp_path, capsys):
    import numpy as np

    x = np.geomspace(1e4, 3.2e5, 6).repeat(2)
    y = 0.78 + 0.05 * np.exp(-x / 5e3) + 1e-4 * np.random.default_rng(0).standard_normal(12)
    csv = tmp_path / "runs.csv"
    csv.write_text("run_id,params_total,test_ne,bayes_test_ne\n"
                   + "".join(f"r{i},{a},{b},0.75\n" for i, (a, b) in enumerate(zip(x, y))))  # fmt: skip
    code, out, err = run(["scaling", "fit", "--runs", csv, "--x", "params", "--bootstrap", 50, "--out",
                          tmp_path / "f"], capsys)  # fmt: skip
    assert code == 0, err
    assert f"+ {y.min():.4g} (on its bound)" in out and "NOT A LAW: c on a bound" in out
    assert "c is not identified, no comparison" in out
    doc = json.loads((tmp_path / "f" / "fit.json").read_text())
    assert doc["identified"] is False and doc["at_bound"] == ["c"] and "c" not in doc["intervals"]
    code, out, err = run(["scaling", "predict", "--fit", tmp_path / "f", "--at", "1e6"], capsys)
    assert code == 0 and "c of this fit sit on a bound (not identified)" in err
