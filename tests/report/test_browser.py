"""The report checked in headless Chromium (Debian's ``chromium``; ``make setup-browser``)."""

from __future__ import annotations

import pytest

from embedlab.experiments import registry
from embedlab.experiments.registry import ExperimentResult, Table, register_experiment
from embedlab.experiments.runner import reproduce
from embedlab.report.browser import check_report, find_chromium, main

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="Chromium not installed (make setup-browser); CI installs it"
)


@pytest.fixture
def report(tmp_path, monkeypatch):
    """A report of two experiments with a plot each, one of them failing on demand."""
    monkeypatch.setattr(registry, "EXPERIMENTS", {})
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", [])
    fail = {"first": False, "second": False}

    def make(name):
        @register_experiment(name, f"The {name} one", "sharding")
        def run(ctx):
            if fail[name]:
                raise RuntimeError("boom")
            from embedlab.report.plots import line_plot

            line_plot(ctx.out / "p.png", {"a": ([1, 2], [3, 4])})
            return ExperimentResult("fine", [Table("t", ["x"], [[1]])], ["p.png"])

    make("first"), make("second")
    out = tmp_path / "report"

    def build(*, second_fails=False):
        fail["second"] = second_fails
        reproduce(out, quick=True, rerun=True)
        return out / "index.html"

    return build


def test_a_good_report_passes(report):
    res = check_report(report())
    assert res.problems() == []
    assert [s["id"] for s in res.sections] == ["first", "second"]
    assert len(res.images) == 2 and all(i["width"] > 100 for i in res.images)  # decoded PNGs


def test_a_failed_section_is_reported(report):
    res = check_report(report(second_fails=True))
    assert res.problems() == ["section second has status 'failed'"]


def test_a_missing_image_is_reported(report):
    index = report()
    (index.parent / "first" / "p.png").unlink()
    problems = check_report(index).problems()
    assert "image did not load: first/p.png" in problems
    assert any(
        p.startswith("failed to load file://") and p.endswith("first/p.png") for p in problems
    )


def test_a_corrupt_image_is_reported(report):
    index = report()
    (index.parent / "second" / "p.png").write_bytes(b"not a png")
    assert "image did not load: second/p.png" in check_report(index).problems()


def test_console_errors_and_script_errors_are_reported(report):
    index = report()
    page = index.read_text()
    index.write_text(
        page.replace(
            "</body>", "<script>console.error('bad thing'); undefined_fn();</script></body>"
        )
    )
    problems = check_report(index).problems()
    assert "console.error: bad thing" in problems
    assert any("undefined_fn is not defined" in p for p in problems)


def test_command_line_exit_codes(report, tmp_path, capsys):
    assert main([str(report())]) == 0
    assert "2 sections ok, 2 images loaded" in capsys.readouterr().out
    assert main([str(report(second_fails=True))]) == 1
    assert main([str(tmp_path / "nowhere.html")]) == 2
