"""The CLI's error paths: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import json

import pytest
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--data", "nope", "--out", "{tmp}/r"],
            "unknown data 'nope'; valid: criteo, movielens, synth",
        ),
        (["train", "--optimizer", "lamb", "--out", "{tmp}/r"], "unknown optimizer 'lamb'; valid:"),
        (
            ["train", "--data", "criteo", "--train", "{tmp}/missing.tsv", "--out", "{tmp}/r"],
            "--train file not found",
        ),
        (["train", "--data", "criteo", "--out", "{tmp}/r"], "needs --train FILE"),
        (["train", "--batch-size", "-1", "--out", "{tmp}/r"], "batch-size must be positive"),
        (["train", "--model-size", "giant", "--out", "{tmp}/r"], "unknown model size"),
        (
            ["train", "--data", "synth", "--data-dir", "{tmp}", "--out", "{tmp}/r"],
            "not a synthetic data folder",
        ),
        (["train", "--resume", "{tmp}"], "not a run folder"),
        (["train"], "missing --out"),
        (["train", "--tables", "bloom", "--out", "{tmp}/r"], "unknown table sizing 'bloom'"),
        (["train", "--tables", "vocab", "--hash-rows", "100", "--out", "{tmp}/r"], "cannot go with --tables vocab"),
        (["train", "--embedding-init", "big", "--out", "{tmp}/r"], "--embedding-init must be a number or 'rows'"),
        (["train", "--early-stop-patience", "-1", "--out", "{tmp}/r"], "--early-stop-patience must be >= 0"),
        (["train", "--select-metric", "f1", "--out", "{tmp}/r"], "unknown selection metric 'f1'"),
        (["train", "--vocab-min-count", "0", "--out", "{tmp}/r"], "vocab-min-count must be >= 1"),
        (["train", "--optimizer", "cf-sgd", "--optimizer-options", "lr_rule=fast", "--out", "{tmp}/r"], "unknown lr_rule"),
        (["data", "synth-ctr", "--rows", "-5", "--out", "{tmp}/d"], "rows must be positive"),
        (
            ["data", "synth-ctr", "--cardinalities", "1,2,x", "--out", "{tmp}/d"],
            "comma-separated integers",
        ),
        (["data", "synth-ctr", "--drift", "sideways", "--out", "{tmp}/d"], "unknown drift"),
        (["reproduce", "--only", "nothing", "--out", "{tmp}/rep"], "unknown experiment 'nothing'"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run(["data", "synth-ctr", "--rows", "10", "--out", str(blocker / "x")], capsys)
    assert code == 2 and "cannot create output folder" in err


def test_wrong_column_count_strict(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t2\t3\n")
    code, _, err = run(
        [
            "train",
            "--data",
            "criteo",
            "--train",
            str(bad),
            "--strict",
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "bad.tsv:1: expected 40 tab-separated fields, got 3" in err


def test_synth_then_train_end_to_end(tmp_path, capsys):
    cards = ",".join(["30"] * 26)
    code, out, _ = run(
        [
            "data",
            "synth-ctr",
            "--rows",
            "3000",
            "--valid-rows",
            "1000",
            "--test-rows",
            "1000",
            "--cardinalities",
            cards,
            "--out",
            str(tmp_path / "d"),
        ],
        capsys,
    )
    assert code in (0, None) and "Bayes-optimal test AUC" in out
    code, out, _ = run(
        [
            "train",
            "--data",
            "synth",
            "--data-dir",
            str(tmp_path / "d"),
            "--model-size",
            "tiny",
            "--batch-size",
            "256",
            "--no-progress",
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    assert code in (0, None)
    assert "test_auc" in out and "Bayes limit" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["cfg_batch_size"] == 256 and 0 < metrics["test_auc"] <= 1
