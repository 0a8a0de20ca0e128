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
