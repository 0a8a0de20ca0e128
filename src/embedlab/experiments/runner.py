"""Run registered experiments into one folder and render the report (``embedlab reproduce``)."""

from __future__ import annotations

import os
import resource
import subprocess
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedlab import __version__
from embedlab.errors import UserError
from embedlab.experiments.registry import ExperimentContext, ExperimentResult, select
from embedlab.io import ensure_dir, read_json, write_json
from embedlab.machine import describe
from embedlab.report.html import render


def reproduce(
    out: str | Path,
    *,
    quick: bool = False,
    smoke: bool = False,
    only: list[str] | None = None,
    seeds: tuple[int, ...] | None = None,
    rerun: bool = False,
    show_progress: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the experiments (all, or ``only``) and write ``results.json`` and ``index.html``.

    ``smoke`` runs the smallest setting of every experiment (CI; implies ``quick``). A
    finished experiment's ``result.json`` is reused unless ``rerun`` (or the mode, the
    seeds or the embedlab version differ), so a crashed ``reproduce`` resumes where it
    stopped. A failing experiment is recorded as failed and the others still run.
    """
    t_start, c_start = time.perf_counter(), cpu_seconds()
    quick = quick or smoke
    mode = "smoke" if smoke else ("quick" if quick else "full")
    exps = select(only)
    root = ensure_dir(out)
    seeds = seeds or ((0,) if quick else (0, 1, 2))
    results: dict[str, dict[str, Any]] = {}
    for exp in exps:
        # smoke runs keep their own folder: their small runs must never stand in for quick ones
        rel = f"{exp.name}/smoke" if smoke else exp.name
        folder = ensure_dir(root / rel)
        cached = folder / "result.json"
        entry: dict[str, Any] = {"title": exp.title, "capability": exp.capability, "docs": exp.docs,
                                 "folder": rel}  # fmt: skip
        if cached.is_file() and not rerun:
            prev = read_json(cached)
            if (
                prev.get("mode", "quick" if prev.get("quick") else "full") == mode
                and prev.get("seeds") == list(seeds)
                and prev.get("version") == __version__
                and prev.get("status") == "ok"
            ):
                results[exp.name] = {**prev, "docs": exp.docs, "folder": rel, "cached": True}
                if on_event:
                    on_event("cached", {"name": exp.name, **prev})
                continue
        if on_event:
            on_event("start", {"name": exp.name, "title": exp.title})
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            res = exp.run(ExperimentContext(folder, quick, tuple(seeds), show_progress, smoke))
            if not isinstance(res, ExperimentResult):
                raise TypeError(f"experiment {exp.name} returned {type(res).__name__}")
            entry.update(status="ok", result=res.to_dict())
        except UserError as e:
            entry.update(status="failed", error=str(e))
        except Exception as e:  # an experiment's bug must not lose the others' results
            entry.update(
                status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()
            )
        entry.update(
            wall_time_s=time.perf_counter() - t0,
            cpu_time_s=cpu_seconds() - c0,
            quick=quick,
            mode=mode,
            seeds=list(seeds),
            version=__version__,
        )
        write_json(cached, entry)
        results[exp.name] = entry
        if on_event:
            on_event("done", {"name": exp.name, **entry})
    ran = [r for r in results.values() if not r.get("cached")]
    header = {
        "embedlab": __version__,
        "commit": git_commit() or "unknown (not a git checkout)",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode if not smoke else "smoke (the smallest setting of every experiment: it shows that "
        "each one runs; its figures are not results)",
        "seeds": ",".join(map(str, seeds)),
        "machine": describe(),
        "wall time": f"{time.perf_counter() - t_start:.0f} s",
        "CPU time": f"{cpu_seconds() - c_start:.0f} s",
        "experiments": f"{sum(r['status'] == 'ok' for r in results.values())}/{len(results)} ok"
        + (f", {len(results) - len(ran)} reused from an earlier run" if len(ran) < len(results) else ""),
    }
    write_json(root / "results.json", {"header": header, "experiments": results})
    render(results, root, header, docs_root=docs_root())
    return results


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (on a shared
    machine a steadier measure of an experiment's work than its wall time)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _source_root() -> Path:
    """The folder holding ``src/embedlab`` (the repository root of a source checkout)."""
    return Path(__file__).resolve().parents[3]


def git_commit() -> str | None:
    """Short commit of the source checkout embedlab runs from (``+dirty`` with local
    changes); None outside a git checkout or without git."""
    root = _source_root()
    if not (root / ".git").exists():
        return None
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout.strip()  # fmt: skip
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def docs_root() -> Path | None:
    """The ``docs/`` folder's parent when embedlab runs from a source checkout (the report
    links each section to its page there), else None."""
    root = _source_root()
    return root if (root / "docs").is_dir() else None
