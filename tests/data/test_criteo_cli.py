"""`embedlab data prepare criteo`, `embedlab train --prepared`, and options refused where
they would be silently ignored."""

from __future__ import annotations

import json

import pytest
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)

from .criteo_lines import random_lines


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "movielens", "--strict"], "--strict applies to text data"),
        (["--data", "synth", "--max-ind-range", "5", "--data-dir", "{tmp}"], "--max-ind-range apply to --data criteo"),
        (["--data", "synth", "--prepared", "{tmp}", "--data-dir", "{tmp}"], "--prepared apply to --data criteo"),
        (["--data", "criteo", "--train", "{tmp}/missing.tsv", "--max-ind-range", "1000"],
         "--max-ind-range caps Criteo's hashed table sizes"),
        (["--data", "criteo", "--train", "{tmp}/missing.tsv", "--data-dir", "{tmp}"], "--data-dir applies to --data synth and movielens"),
        (["--data", "criteo", "--train", "{tmp}/missing.tsv", "--stream"], "--stream need --prepared DIR"),
        (["--data", "criteo", "--prepared", "{tmp}", "--train", "{tmp}/missing.tsv"], "not both"),
        (["--data", "criteo", "--prepared", "{tmp}"], "is not a prepared Criteo folder"),
    ],
)  # fmt: skip
def test_inapplicable_options_are_refused(tmp_path, capsys, monkeypatch, argv, message):
    empty = tmp_path / "ml"
    empty.mkdir()
    monkeypatch.setenv("EMBEDLAB_MOVIELENS_DIR", str(empty))  # no download, whatever happens
    argv = ["train", *[a.replace("{tmp}", str(tmp_path)) for a in argv], "--out", str(tmp_path / "r")]
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_movielens_data_dir_is_used(tmp_path, capsys, monkeypatch):
    env_dir, given = tmp_path / "env_ml", tmp_path / "given_ml"
    env_dir.mkdir()
    given.mkdir()
    monkeypatch.setenv("EMBEDLAB_MOVIELENS_DIR", str(env_dir))
    code, _, err = run(["train", "--data", "movielens", "--data-dir", given, "--out", tmp_path / "r"], capsys)
    assert code == 2 and f"MovieLens folder {given} lacks" in err  # the folder given, not the env's


def test_prepare_then_train_streamed_with_max_steps(tmp_path, capsys):
    src = tmp_path / "train.txt"
    src.write_text("".join(random_lines(1400)))
    code, out, _ = run(["data", "prepare", "criteo", "--input", src, "--out", tmp_path / "p", "--no-progress"], capsys)
    assert code in (0, None) and "prepared, 1,400 rows from 1 file(s)" in out
    code, out, _ = run(["data", "prepare", "criteo", "--input", src, "--out", tmp_path / "p", "--no-progress"], capsys)
    assert "already prepared" in out
    for extra in (["--stream"], []):
        run_dir = tmp_path / f"run{len(extra)}"
        code, out, err = run(["train", "--data", "criteo", "--prepared", tmp_path / "p", "--split", "kaggle", *extra,
                              "--tables", "hash", "--hash-rows", "1000", "--model-size", "tiny", "--batch-size", "32",
                              "--max-steps", "7", "--no-progress", "--out", run_dir], capsys)  # fmt: skip
        assert code in (0, None), err
        m = json.loads((run_dir / "metrics.json").read_text())
        assert m["steps"] == 7 and m["train_samples"] == 7 * 32
        assert m["data_split"] == "kaggle" and m["data_stream"] is bool(extra)
        assert m["data_split_rows_train"] == 1200 and m["data_split_rows_test"] == 100
