"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing anchor
or a page left out of the navigation fails), and its API pages cover every module."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings")
yaml = pytest.importorskip("yaml")


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)},
    )  # fmt: skip


def test_site_builds_strict(tmp_path):
    result = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    # every capability page and the API reference rendered from the docstrings
    for page in ("index", "dlrm", "sharding", "benchmarks", "ARCHITECTURE", "api/sharding"):
        assert (site / f"{page}.html").is_file(), page
    api = (site / "api" / "sharding.html").read_text()
    assert 'id="embedlab.sharding.cost.CostMeter"' in api
    assert "balanced_estimate" in api
    # Sphinx roles of the docstrings are rendered as code, not printed (tools/griffe_sphinx_roles.py)
    assert "Raise <code>UserError</code>" in api
    for page in (site / "api").glob("*.html"):
        assert ":class:" not in page.read_text(), page.name


def test_every_docs_page_is_in_the_nav():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for v in entry.values():
                yield from pages(v)
        else:
            for v in entry:
                yield from pages(v)

    listed = set(pages(nav))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed


def test_strict_settings_fail_on_orphan_pages_and_broken_links(tmp_path):
    """Our `validation` settings turn each problem into a failure of the strict build."""
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the guide](guide.md#no-such-heading).\n")
    (docs / "guide.md").write_text("# Guide\n\nSee [results](../benchmarks/results/x.json).\n")
    (docs / "orphan.md").write_text("# Not in the nav\n")
    cfg.update(docs_dir=str(docs), nav=[{"Home": "index.md"}, {"Guide": "guide.md"}],
               plugins=["search"])  # fmt: skip
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(cfg))
    result = _mkdocs_build(config, tmp_path / "site")
    assert result.returncode != 0
    err = result.stderr
    assert "orphan.md" in err
    assert "no-such-heading" in err
    assert "results/x.json" in err


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_api_pages", ROOT / "tools" / "gen_api_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_api_pages_cover_every_module_and_are_current(capsys):
    gen = _load_generator()
    assert gen.uncovered_modules() == []
    assert gen.main(["--check"]) == 0, capsys.readouterr().out
    # a module nobody listed would be reported
    assert "embedlab.sharding.cost" in {m for p in gen.PAGES for pkg in p.packages
                                        for m in gen.modules_of(pkg)}  # fmt: skip


def test_architecture_page_names_every_module_and_only_real_files():
    """docs/ARCHITECTURE.md stays true to the code: every module of src/embedlab is named in
    its layout, and every ``x.py`` it names exists in src/, benchmarks/ or tools/."""
    import re

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"\b([a-z_][a-z0-9_]*\.py)\b", text))
    src = ROOT / "src" / "embedlab"
    modules = [p for p in src.rglob("*.py") if not p.name.startswith("_")]
    missing = sorted(str(p.relative_to(src)) for p in modules if p.name not in named)
    assert missing == [], f"modules not in docs/ARCHITECTURE.md: {missing}"
    existing = {p.name for d in ("src", "benchmarks", "tools") for p in (ROOT / d).rglob("*.py")}
    stale = sorted(n for n in named if n not in existing)
    assert stale == [], f"docs/ARCHITECTURE.md names files that do not exist: {stale}"


def test_sphinx_roles_become_code_spans():
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", ROOT / "tools" / "griffe_sphinx_roles.py")
    roles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(roles)
    text = "Raise :class:`~embedlab.errors.UserError`; see :func:`embedlab.io.write_json` and :py:mod:`x`."
    assert roles.plain(text) == "Raise `UserError`; see `embedlab.io.write_json` and `x`."
    assert roles.plain("no roles, `code` and ``literal``") == "no roles, `code` and ``literal``"


def test_top_level_names_are_listed_from_the_export_table(tmp_path):
    gen = _load_generator()
    init = tmp_path / "__init__.py"
    init.write_text('_EXPORTS: dict[str, str] = {"DLRM": "embedlab.models.dlrm", '
                    '"generate_synth": "embedlab.data.synth:generate"}\n')  # fmt: skip
    assert gen.top_level_exports(init) == {"DLRM": "embedlab.models.dlrm",
                                           "generate_synth": "embedlab.data.synth"}  # fmt: skip
    assert gen.page_of("embedlab.models.dlrm").stem == "models"
    assert gen.page_of("embedlab.sharding.dreamshard.planner").stem == "sharding-learned"
    init.write_text('"""no table"""\n')
    assert gen.top_level_exports(init) == {}
