"""The loop the reachability checks share (benchmarks/sharding_reach.py): rows, summary, resume."""

from __future__ import annotations

import argparse
import json

import pytest

from benchmarks.sharding_reach import reach_arguments, run_reach
from embedlab.sharding.moves import START_HEURISTICS


def _args(out, *extra):
    ap = argparse.ArgumentParser()
    reach_arguments(ap, str(out))
    return ap.parse_args(["--count", "2", "--tables", "6", "--devices", "2", *extra])


def test_run_reach_summarises_and_resumes(tmp_path, capsys):
    out = tmp_path / "reach.json"
    calls = []

    def check(k, task, planner, comm):
        calls.append(task.name)
        costs = {h: 10.0 + i for i, h in enumerate(START_HEURISTICS)} | {"x": 9.0 - k}
        return {"cost_ms": costs, "extra": k}, f"x {costs['x']}"

    doc = run_reach(_args(out), "test check", ("x",), check)
    assert len(calls) == 2 and doc["complete"] and [r["extra"] for r in doc["tasks"]] == [0, 1]
    assert doc["family_best_heuristic"] == START_HEURISTICS[0]
    assert doc["summary"]["x"]["ratio_to_best_heuristic"] == pytest.approx((0.9 + 0.8) / 2)
    assert doc["summary"]["x"]["tasks_at_most_0.92"] == 2
    assert json.loads(out.read_text())["summary"] == doc["summary"]
    assert f"{calls[0]}: x 9.0" in capsys.readouterr().out
    again = run_reach(_args(out, "--resume"), "test check", ("x",), check)
    assert len(calls) == 2  # both tasks were finished: nothing is measured again
    assert again["tasks"] == doc["tasks"]
    run_reach(_args(out), "test check", ("x",), check)
    assert len(calls) == 4  # without --resume the file is started afresh
