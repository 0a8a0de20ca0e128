from __future__ import annotations

import json

import pytest

from embedlab.errors import UserError
from embedlab.experiments import registry
from embedlab.experiments.registry import ExperimentResult, Table, register_experiment
from embedlab.experiments.runner import reproduce


@pytest.fixture
def fake_experiments(monkeypatch):
    monkeypatch.setattr(registry, "EXPERIMENTS", {})
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", [])
    calls = {"good": 0, "bad": 0}

    @register_experiment("good", "A good one", "test")
    def good(ctx):
        calls["good"] += 1
        from embedlab.report.plots import line_plot

        line_plot(ctx.out / "p.png", {"a": ([1, 2], [3, 4])})
        return ExperimentResult("fine", [Table("t", ["x", "y"], [[1, 0.5]])], ["p.png"], {"m": 1.0})

    @register_experiment("bad", "A broken one", "test")
    def bad(ctx):
        calls["bad"] += 1
        raise RuntimeError("boom")

    return calls


def test_reproduce_writes_report_records_failures_and_resumes(tmp_path, fake_experiments):
    res = reproduce(tmp_path, quick=True)
    assert res["good"]["status"] == "ok" and res["bad"]["status"] == "failed"
    assert "boom" in res["bad"]["error"]
    html = (tmp_path / "index.html").read_text()
    assert "A good one" in html and "good/p.png" in html and "failed" in html
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["experiments"]["good"]["result"]["metrics"] == {"m": 1.0}
    reproduce(tmp_path, quick=True)  # the finished one is reused, the failed one retried
    assert fake_experiments == {"good": 1, "bad": 2}
    reproduce(tmp_path, quick=False, seeds=(0,))  # a different mode reruns
    assert fake_experiments["good"] == 2


def test_only_unknown(tmp_path, fake_experiments):
    with pytest.raises(UserError, match="valid: bad, good"):
        reproduce(tmp_path, only=["nope"])


def test_a_result_of_another_embedlab_version_is_rerun(tmp_path, fake_experiments):
    reproduce(tmp_path, quick=True, only=["good"])
    cached = tmp_path / "good" / "result.json"
    entry = json.loads(cached.read_text())
    reproduce(tmp_path, quick=True, only=["good"])
    assert fake_experiments["good"] == 1  # same version: reused
    entry["version"] = "0.0.0-other"
    cached.write_text(json.dumps(entry))
    reproduce(tmp_path, quick=True, only=["good"])
    assert fake_experiments["good"] == 2  # another version: discarded and rerun
    assert json.loads(cached.read_text())["version"] != "0.0.0-other"
