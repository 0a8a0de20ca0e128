"""The sharding experiment of ``embedlab reproduce`` at its smoke size (real planners, a real
2-process DMP run)."""

from __future__ import annotations

import json

import pytest

from embedlab.experiments.registry import ExperimentContext
from embedlab.experiments.sharding import PLANNERS, sharding_planners


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding")
    return out, sharding_planners(ExperimentContext(out, quick=True, seeds=(0,), smoke=True))


def test_every_planner_is_measured_against_the_best_heuristic(result):
    out, res = result
    table = res.tables[0]
    rows = {r[0]: r for r in table.rows}
    assert list(rows) == list(PLANNERS)
    assert {"dreamshard", "autoshard", "neuroshard", "torchrec"} <= set(rows)
    heuristic = [r[2] for r in rows.values() if r[1] == "heuristic"]
    assert min(heuristic) == pytest.approx(1.0)  # one task: the best heuristic is the reference
    assert all(r[2] > 0.3 and r[3] > 0 for r in rows.values())
    assert [rows[n][1] for n in ("dreamshard", "autoshard", "neuroshard", "torchrec", "portfolio")] == [
        "learned"
    ] * 3 + ["TorchRec", "measured portfolio"]
    plans = json.loads((out / "plans.json").read_text())["plans"]
    assert sorted({p["planner"] for p in plans}) == sorted(PLANNERS)


def test_one_plan_runs_under_dmp_beside_its_prediction(result):
    out, res = result
    run = json.loads((out / "dmp_run.json").read_text())
    assert run["nproc"] == 2 and run["backend"] == "gloo" and run["planner"] == "portfolio"
    assert run["predicted"]["total_ms"] > 0 and run["comm_model"] is not None
    ranks = res.tables[1].rows
    assert [r[0] for r in ranks] == ["rank 0", "rank 1"]
    for r in ranks:  # embedding = the five phases the spec counts
        assert r[6] == pytest.approx(sum(r[1:6]))
    assert res.metrics["dmp_measured_ms"] == pytest.approx(max(r[6] for r in ranks))
    assert res.metrics["dmp_measured_over_predicted"] == pytest.approx(
        res.metrics["dmp_measured_ms"] / res.metrics["dmp_predicted_ms"]
    )
    for p in res.plots:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
