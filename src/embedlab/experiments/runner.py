"""Run registered experiments into one folder and render the report (``embedlab reproduce``)."""

from __future__ import annotations

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
    only: list[str] | None = None,
    seeds: tuple[int, ...] | None = None,
    rerun: bool = False,
    show_progress: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the experiments (all, or ``only``) and write ``results.json`` and ``index.html``.

    A finished experiment's ``result.json`` is reused unless ``rerun`` (or the ``quick``
    flag, the seeds or the embedlab version differ), so a crashed ``reproduce`` resumes where it stopped. A failing experiment
    is recorded as failed and the others still run.
    """
    exps = select(only)
    root = ensure_dir(out)
    seeds = seeds or ((0,) if quick else (0, 1, 2))
    results: dict[str, dict[str, Any]] = {}
    for exp in exps:
        folder = ensure_dir(root / exp.name)
        cached = folder / "result.json"
        entry: dict[str, Any] = {"title": exp.title, "capability": exp.capability}
        if cached.is_file() and not rerun:
            prev = read_json(cached)
            if (
                prev.get("quick") == quick
                and prev.get("seeds") == list(seeds)
                and prev.get("version") == __version__
                and prev.get("status") == "ok"
            ):
                results[exp.name] = prev
                if on_event:
                    on_event("cached", {"name": exp.name, **prev})
                continue
        if on_event:
            on_event("start", {"name": exp.name, "title": exp.title})
        t0 = time.perf_counter()
        try:
            res = exp.run(ExperimentContext(folder, quick, tuple(seeds), show_progress))
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
            quick=quick,
            seeds=list(seeds),
            version=__version__,
        )
        write_json(cached, entry)
        results[exp.name] = entry
        if on_event:
            on_event("done", {"name": exp.name, **entry})
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if quick else "full",
        "seeds": ",".join(map(str, seeds)),
        "machine": describe(),
    }
    write_json(root / "results.json", {"header": header, "experiments": results})
    render(results, root, header)
    return results
