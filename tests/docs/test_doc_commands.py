"""Every command and Python snippet in README.md and docs/ still runs (tools/check_docs_commands.py),
and the checker itself rejects what is broken."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_docs_commands", ROOT / "tools" / "check_docs_commands.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chk = _load_checker()


@pytest.fixture(scope="module")
def root_cmd():
    return chk._click_root()


def test_every_documented_command_and_snippet_works():
    snippets = chk.all_snippets()
    # the extraction finds the README's quickstarts and every capability page's commands
    where = {s.where.split(":")[0] for s in snippets}
    for page in ("README.md", "docs/dlrm.md", "docs/sharding.md", "docs/blender.md", "docs/online.md"):
        assert page in where, page
    assert any(s.kind == "python" and s.run and s.where.startswith("README.md") for s in snippets)
    assert chk.problems(snippets) == []


@pytest.mark.parametrize(
    ("cmd", "problem"),
    [
        ("embedlab shard plna --tasks t.json --out p.json", "no command 'embedlab shard plna'"),
        ("embedlab train --data synth --lerning-rate 0.1 --out r", "No such option"),
        ("embedlab train --data synth --epochs two --out r", "--epochs"),
        ("embedlab shard plan --tasks t.json", "missing --out"),
        ("embedlab shard plan --tasks t.json --out p.json extra", "unexpected argument"),
        ("embedlab train --data synth --out", "requires an argument"),
        ("torchrun --nproc_per_node 2 -m embedlab train --nprocs 2 --out r", "No such option"),
        ("python benchmarks/nonexistent.py --x 1", "no file benchmarks/nonexistent.py"),
        ("python benchmarks/quality.py --no-such-flag", "unknown option --no-such-flag"),
        ("make nonexistent-target", "no target"),
    ],
)
def test_checker_rejects_broken_commands(root_cmd, cmd, problem):
    err = chk.check_shell(cmd, root_cmd)
    assert err is not None and problem in err, err


@pytest.mark.parametrize(
    "cmd",
    [
        "embedlab shard plan --tasks tasks.json --planner default --out plans.json",
        "embedlab train ... --optimizer cf-sgd",  # elided options
        "embedlab train --planner ... --nproc N",  # placeholders
        "embedlab reproduce [--quick] [--only NAME ...] --out DIR",  # usage syntax
        "torchrun --nproc_per_node 8 -m embedlab train --data criteo --train t.txt --out r",
        "python benchmarks/quality.py --work /tmp/q --seeds 0 1",
        "OUT=x DEADLINE=270 bash benchmarks/blender_gpu.sh",
        "make demo",
    ],
)
def test_checker_accepts_valid_commands(root_cmd, cmd):
    assert chk.check_shell(cmd, root_cmd) is None


def test_script_options_from_a_shared_benchmarks_module(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "common.py").write_text(
        "def shared(ap):\n    ap.add_argument('--count', type=int)\n"
    )
    (tmp_path / "benchmarks" / "run.py").write_text(
        "import argparse\nfrom benchmarks.common import shared\n"
        "ap = argparse.ArgumentParser()\nshared(ap)\nap.add_argument('--out')\n"
    )
    words = ["python", "benchmarks/run.py", "--count", "3", "--out", "x.json"]
    assert chk.check_script(words, tmp_path) is None
    assert "unknown option --bogus" in chk.check_script([*words, "--bogus"], tmp_path)


def test_inline_mentions_may_leave_out_required_options(root_cmd):
    assert chk.check_shell("embedlab shard plan", root_cmd, elided=True) is None
    assert "missing --tasks" in chk.check_shell("embedlab shard plan", root_cmd)
    # but an unknown option is wrong in a mention too
    assert "No such option" in chk.check_shell("embedlab shard plan --bogus", root_cmd, elided=True)


def test_extraction_of_fences_spans_and_continuations(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "Run `embedlab shard planners` or\n`embedlab reproduce\n--list`.\n\n"
        "```bash\nembedlab train --data synth \\\n    --out runs/x   # a comment\n"
        "pip install foo\n```\n\n"
        "<!-- docs-check: run -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
    )
    (tmp_path / "README.md").write_text("# r\n")
    snippets = chk.all_snippets(tmp_path)
    shell = [s.text for s in snippets if s.kind == "shell"]
    assert shell == [
        "embedlab train --data synth --out runs/x",
        "embedlab shard planners",
        "embedlab reproduce --list",
    ]
    assert [(s.inline) for s in snippets if s.kind == "shell"] == [False, True, True]
    python = [(s.text, s.run) for s in snippets if s.kind == "python"]
    assert python == [("x = 1", True), ("y = 2", False)]
    assert snippets[0].where == "docs/page.md:6"


@pytest.mark.parametrize(
    ("code", "run", "problem"),
    [
        ("from embedlab.sharding.planners import no_such_name", False, "has no 'no_such_name'"),
        ("from embedlab.no_such_module import x", False, "import embedlab.no_such_module"),
        ("import embedlab as el\nel.no_such_export", False, "embedlab has no 'no_such_export'"),
        ("def f(:\n  pass", False, "syntax error"),
        ("raise RuntimeError('boom')", True, "RuntimeError: boom"),
        ("from embedlab.sharding.planners import get_planner\nget_planner('nope')", True, "nope"),
    ],
)
def test_checker_rejects_broken_python(code, run, problem):
    err = chk.check_python(chk.Snippet("python", code, "x.md:1", run))
    assert err is not None and problem in err, err


def test_runnable_python_runs_in_a_fresh_directory():
    code = (
        "import os\nfrom pathlib import Path\nassert Path.cwd().resolve() == Path(tmp).resolve()\n"
        "assert os.environ['EMBEDLAB_CACHE'].startswith(tmp)\nPath('made').touch()"
    )
    before = os.environ.get("EMBEDLAB_CACHE")
    assert chk.check_python(chk.Snippet("python", code, "x.md:1", True)) is None
    assert not (Path.cwd() / "made").exists()
    assert os.environ.get("EMBEDLAB_CACHE") == before


def test_results_files_named_in_the_text_must_exist(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "real.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "See `benchmarks/results/real.json` and `benchmarks/results/gone.json`; `runs.json`.\n"
    )
    (tmp_path / "README.md").write_text("| x | `real.json` | `lost.json` |\n")
    files = [s for s in chk.all_snippets(tmp_path) if s.kind == "file"]
    # README names results by bare file name; other pages only by path (`runs.json` is a user file)
    assert sorted(s.text for s in files) == [
        "benchmarks/results/gone.json",
        "benchmarks/results/lost.json",
        "benchmarks/results/real.json",
        "benchmarks/results/real.json",
    ]
    missing = sorted(s.text for s in files if chk.check_file(s.text, tmp_path))
    assert missing == ["benchmarks/results/gone.json", "benchmarks/results/lost.json"]
    assert chk.check_file("benchmarks/results/re*.json", tmp_path) is None


def test_broken_fences_are_reported(tmp_path):
    """The shape of a defect README.md once had: a block pasted twice without its opening
    fence, so the install section rendered as code; and a fence never closed."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "```bash\nmake demo\n```\n\nmake demo\n```\n\nInstall text.\n\n```bash\nembedlab train --out r\n```\n"
    )
    (tmp_path / "docs" / "page.md").write_text("# P\n\n```python\nx = 1\n")
    fences = [(s.where, s.text) for s in chk.all_snippets(tmp_path) if s.kind == "fence"]
    assert [w for w, _ in fences] == ["README.md:10", "docs/page.md:3"]
    assert "opening fence inside a code block" in fences[0][1]
    assert "never closed" in fences[1][1]
    snippets = chk.all_snippets(tmp_path)
    assert any("never closed" in p for p in chk.problems(snippets, run=False))
