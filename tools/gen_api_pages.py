"""Write the API reference pages (docs/api/*.md): one page per package, one mkdocstrings
block (``::: module``) per module, rendered from the docstrings at ``mkdocs build`` time.

Run after adding a module: ``python tools/gen_api_pages.py``. ``tests/docs/test_docs_site.py``
fails when a module under ``src/embedlab`` is on no API page, or a page is out of date.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
API = ROOT / "docs" / "api"


@dataclass(frozen=True)
class Page:
    """One API page: its file stem, title, a sentence, the capability page it belongs to, and
    the packages (or single modules) whose modules it renders."""

    stem: str
    title: str
    intro: str
    guide: str | None
    packages: tuple[str, ...]


PAGES: tuple[Page, ...] = (
    Page("data", "embedlab.data", "Data sources (synthetic planted truth, Criteo TSV, MovieLens-100k), "
         "their cache, vocabularies and batches.", "dlrm.md", ("embedlab.data",)),
    Page("models", "embedlab.models", "The DLRM on TorchRec's embedding-bag collections.",
         "dlrm.md", ("embedlab.models",)),
    Page("train", "embedlab.train", "The training loop, its configuration, metrics, checkpoints, "
         "best-on-validation selection, sharded training and baselines.", "dlrm.md",
         ("embedlab.train",)),
    Page("optim", "embedlab.optim", "Optimizers by name, row-wise Adagrad, and the frequency-aware "
         "FA-SGD and CF-SGD.", "frequency-optimizers.md", ("embedlab.optim",)),
    Page("sharding", "embedlab.sharding", "Sharding tasks and plans, the heuristic planners, the "
         "step-cost meter, the communication model and the TorchRec bridge.", "sharding.md",
         ("embedlab.sharding",)),
    Page("sharding-learned", "embedlab.sharding: learned planners", "DreamShard, AutoShard and "
         "NeuroShard: models, training and planners.", "sharding.md",
         ("embedlab.sharding.dreamshard", "embedlab.sharding.autoshard",
          "embedlab.sharding.neuroshard")),
    Page("growth", "embedlab.growth", "Alternate growth and pruning of the DLRM's MLPs.",
         "growth.md", ("embedlab.growth",)),
    Page("online", "embedlab.online", "Online training under temporal shift: periods, the "
         "prequential protocol, update strategies and Future Gradient Descent.", "online.md",
         ("embedlab.online",)),
    Page("scaling", "embedlab.scaling", "Scaling sweeps, analytic FLOPs and power-law fits.",
         "scaling.md", ("embedlab.scaling",)),
    Page("pu", "embedlab.pu", "Positive-unlabeled learning: losses, puPL clustering, encoders, "
         "data and the PUClassifier estimator.", "pu.md", ("embedlab.pu",)),
    Page("blender", "embedlab.blender", "BLENDER: residual operators, the sampler, the generator, "
         "the Attributed Animal Silhouettes data, fidelity and metric learning.", "blender.md",
         ("embedlab.blender",)),
    Page("experiments", "embedlab.experiments and embedlab.report", "The experiments behind "
         "`embedlab reproduce` and the HTML report.", None,
         ("embedlab.experiments", "embedlab.report")),
    Page("core", "embedlab: errors, I/O, machine, seeding, torchrun",
         "Small modules every package uses (errors, the KEY=VALUE option parser, I/O, machine, seeding).", None,
         ("embedlab.errors", "embedlab.options", "embedlab.io", "embedlab.machine", "embedlab.seed",
          "embedlab.distributed")),
)

# Not rendered: the CLI (documented by its commands on every capability page), the package
# entry point, and data-only packages.
EXCLUDED = ("embedlab", "embedlab.__main__", "embedlab.cli", "embedlab.blender.default_model")


def module_path(name: str) -> Path:
    """The file or package directory of a dotted module name under src/."""
    return SRC.joinpath(*name.split("."))


def modules_of(package: str) -> list[str]:
    """The modules a page renders for ``package``: the module itself when it is a file, else
    the package (when its ``__init__`` has a docstring or exports) and its public modules;
    subpackages are their own entries in ``PAGES``."""
    path = module_path(package)
    if path.with_suffix(".py").is_file():
        return [package]
    names: list[str] = []
    init = path / "__init__.py"
    if init.read_text().strip():
        names.append(package)
    for child in sorted(path.glob("*.py")):
        if child.stem.startswith("_"):
            continue
        names.append(f"{package}.{child.stem}")
    return names


def all_modules() -> set[str]:
    """Every module and package under src/embedlab, as dotted names."""
    names: set[str] = set()
    for file in (SRC / "embedlab").rglob("*.py"):
        parts = list(file.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def uncovered_modules() -> list[str]:
    """Modules on no API page and not excluded (each needs a page entry or an exclusion)."""
    covered = {m for page in PAGES for pkg in page.packages for m in modules_of(pkg)}
    missing = []
    for name in sorted(all_modules()):
        if name in covered or name in EXCLUDED:
            continue
        if any(name.startswith(ex + ".") for ex in EXCLUDED if ex != "embedlab"):
            continue
        if name.split(".")[-1].startswith("_") or name.endswith("__init__"):
            continue
        # a package whose __init__ is empty is represented by its modules
        path = module_path(name)
        if path.is_dir() and not (path / "__init__.py").read_text().strip():
            continue
        missing.append(name)
    return missing


def render(page: Page) -> str:
    """The Markdown of one API page."""
    lines = [f"# {page.title}", "", page.intro]
    if page.guide:
        lines += ["", f"Usage, choices and measured figures: [the guide]({'../' + page.guide})."]
    lines.append("")
    for package in page.packages:
        for name in modules_of(package):
            lines += [f"::: {name}", ""]
    return "\n".join(lines)


def top_level_exports(init: Path | None = None) -> dict[str, str]:
    """``import embedlab as el``: the public names of the top-level package and their defining
    modules, read (not imported) from the ``_EXPORTS`` dict literal of its ``__init__.py``
    (``"module"`` or ``"module:attribute"``); empty when the package declares none."""
    import ast

    init = init or SRC / "embedlab" / "__init__.py"
    for node in ast.walk(ast.parse(init.read_text())):
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and isinstance(node.value, ast.Dict):
            return {k.value: v.value.split(":")[0] for k, v in zip(node.value.keys, node.value.values)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}  # fmt: skip
    return {}


def page_of(module: str) -> Page | None:
    """The API page that renders ``module`` (or its package)."""
    for page in PAGES:
        for pkg in page.packages:
            if module == pkg or module in modules_of(pkg):
                return page
    return None


def render_index() -> str:
    """The API overview page: one line per page, and the top-level names when declared."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by mkdocstrings, one page per package. Each docstring says",
        "what the paper or the field's convention states and what embedlab chose.",
        "The command line (`embedlab ...`) is documented on each capability page.",
        "",
        "| page | contents |",
        "|---|---|",
    ]
    for page in PAGES:
        lines.append(f"| [{page.title}]({page.stem}.md) | {page.intro} |")
    exports = top_level_exports()
    if exports:
        lines += [
            "",
            "## The top-level API",
            "",
            "`import embedlab as el` reaches these names; each is imported on first use, so",
            "`import embedlab` stays fast. Each links to the page that documents it.",
            "",
            "| name | defined in |",
            "|---|---|",
        ]
        for name, module in sorted(exports.items(), key=lambda kv: (kv[1], kv[0].lower())):
            page = page_of(module)
            where = f"[`{module}`]({page.stem}.md)" if page else f"`{module}`"
            lines.append(f"| `el.{name}` | {where} |")
    lines.append("")
    return "\n".join(lines)


def expected_files() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {API / f"{page.stem}.md": render(page) for page in PAGES}
    files[API / "index.md"] = render_index()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a page is out of date")
    args = parser.parse_args(argv)
    missing = uncovered_modules()
    if missing:
        print("modules on no API page (add them to PAGES or EXCLUDED):", ", ".join(missing))
        return 1
    stale = []
    for path, text in expected_files().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python tools/gen_api_pages.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
