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


def test_smoke_results_never_stand_in_for_quick_ones(tmp_path, fake_experiments):
    seen = []

    @register_experiment("sized", "Sized by mode", "test")
    def sized(ctx):
        seen.append((ctx.mode, ctx.out.relative_to(tmp_path).as_posix()))
        return ExperimentResult(f"ran {ctx.mode}")

    reproduce(tmp_path, smoke=True, only=["sized"])
    reproduce(tmp_path, quick=True, only=["sized"])
    reproduce(tmp_path, smoke=True, only=["sized"])  # cached in its own folder
    assert seen == [("smoke", "sized/smoke"), ("quick", "sized")]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["header"]["mode"].startswith("smoke (the smallest setting")
    assert saved["experiments"]["sized"]["result"]["summary"] == "ran smoke"


def test_report_header_and_docs_links(tmp_path, fake_experiments, monkeypatch):
    from embedlab import __version__
    from embedlab.experiments import runner

    docs = tmp_path / "repo"
    (docs / "docs").mkdir(parents=True)
    (docs / "docs" / "sharding.md").write_text("# sharding\n")
    monkeypatch.setattr(runner, "docs_root", lambda: docs)
    monkeypatch.setattr(runner, "git_commit", lambda: "abc123def456")

    @register_experiment("shard", "Sharding", "sharding")
    def shard(ctx):
        return ExperimentResult("ok")

    out = tmp_path / "reports" / "x"
    res = reproduce(out, quick=True, only=["shard", "good"])
    header = json.loads((out / "results.json").read_text())["header"]
    assert header["embedlab"] == __version__ and header["commit"] == "abc123def456"
    assert header["wall time"].endswith(" s") and header["CPU time"].endswith(" s") and header["machine"]
    assert res["shard"]["docs"] == "docs/sharding.md" and res["shard"]["cpu_time_s"] >= 0
    page = (out / "index.html").read_text()
    assert "embedlab: " + __version__ in page and "commit: abc123def456" in page
    assert "<a href='../../repo/docs/sharding.md'>docs/sharding.md</a>" in page  # resolves from the report
    assert "<section class='experiment' id='shard' data-status='ok'>" in page
    assert "<code>" not in page.split("id='shard'")[1].split("</section>")[0]


def test_git_commit_of_this_checkout():
    import subprocess

    from embedlab.experiments.runner import _source_root, git_commit

    if not (_source_root() / ".git").exists():
        pytest.skip("not running from a git checkout")
    head = subprocess.run(["git", "-C", str(_source_root()), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert head.startswith(git_commit().removesuffix("+dirty"))
