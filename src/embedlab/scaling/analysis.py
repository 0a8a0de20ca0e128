"""Fits over a table of runs (``runs.csv``): column names, the compute frontier, fit files.

A fit file (``fit.json``) holds the law (``kind`` ``power_law`` or ``joint``), its
parameters with bootstrap intervals, whether they are identified (``identified``,
``at_bound``: a parameter on a bound of the fit is not, and the fit is then no law), the
bootstrap's counts (``bootstrap``: refits asked for, failed, how the intervals were formed),
diagnostics, the bootstrap samples used for prediction intervals, which runs (and which
grid) were fitted, for a joint law its held-out check
(:func:`~embedlab.scaling.laws.joint_extrapolation_check`), and, when every run carries the
same reference level (``bayes_test_ne`` on planted-truth data), how the fitted constant
compares with it (only when ``c`` is identified).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.errors import UserError
from embedlab.io import read_json, write_json
from embedlab.scaling.laws import (
    JointFit,
    PowerLawFit,
    fit_joint,
    fit_power_law,
    joint_extrapolation_check,
)

#: Short names accepted by ``--x`` for the columns of ``runs.csv``.
X_ALIASES = {
    "params": "params_total",
    "embedding_params": "params_embedding",
    "dense_params": "params_dense",
    "samples": "train_samples",
    "data": "train_samples",
    "flops": "train_flops",
    "compute": "train_flops",
}
FIT_FORMAT = "embedlab.scaling-fit/v1"


def resolve_column(rows: list[dict[str, Any]], name: str) -> str:
    """The ``runs.csv`` column behind ``name``, or a clear error.

    A real column of that name wins over an alias (a user's own ``params`` column is read as
    itself); an alias applies only when its target column exists. The error lists exactly the
    names that would resolve: the numeric columns and the aliases whose target is present.
    """
    if name in rows[0]:
        return name
    col = X_ALIASES.get(name)
    if col is not None and col in rows[0]:
        return col
    numeric = {k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    valid = sorted(numeric | {a for a, c in X_ALIASES.items() if c in rows[0]})
    raise UserError(f"unknown column {name!r}; valid: {', '.join(valid)}")


def column(rows: list[dict[str, Any]], col: str) -> np.ndarray:
    vals = []
    for r in rows:
        v = r.get(col)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise UserError(f"run {r.get('run_id', '?')} has no numeric {col!r}")
        vals.append(float(v))
    return np.asarray(vals, dtype=np.float64)


def frontier(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of the runs on the lower envelope: no run with at most the same ``x`` has a
    lower ``y`` (for compute laws: the best quality each budget bought)."""
    order = np.lexsort((y, x))
    keep = np.zeros(x.size, bool)
    best = np.inf
    for i in order:
        if y[i] < best:
            keep[i] = True
            best = y[i]
    return keep


def _grids(row: dict[str, Any]) -> set[str]:
    return {g for g in str(row.get("grid", "") or "").split(";") if g}


def select_grid(rows: list[dict[str, Any]], grid: str | None = None) -> list[dict[str, Any]]:
    """The rows to fit: those of grid ``grid``, or (``None``) all rows when they share a
    grid; rows of different grids (``runs.csv`` of a folder that held several sweeps) are
    refused in one line that names the grids and their run counts. Rows without a ``grid``
    column (a table from elsewhere) are taken as they are."""
    if not any("grid" in r for r in rows):
        if grid is not None:
            raise UserError(f"--grid-id {grid}: these runs have no grid column")
        return rows
    sets = [_grids(r) for r in rows]
    counts: dict[str, int] = {}
    for s in sets:
        for g in s or {""}:
            counts[g] = counts.get(g, 0) + 1
    listing = ", ".join(f"{g or 'no recorded grid'} ({k} runs)" for g, k in sorted(counts.items()))
    if grid is not None:
        kept = [r for r, s in zip(rows, sets) if grid in s]
        if not kept:
            raise UserError(f"no run of grid {grid!r}; grids: {listing}")
        return kept
    if set.intersection(*sets):
        return rows
    raise UserError(f"the runs come from different grids ({listing}); fit one with --grid-id ID")


def _reference(rows: list[dict[str, Any]], name: str) -> float | None:
    vals = {r.get(name) for r in rows}
    if len(vals) == 1:
        v = next(iter(vals))
        if isinstance(v, float) and math.isfinite(v):
            return v
    return None


def fit_runs(
    rows: list[dict[str, Any]],
    x: str,
    y: str = "test_ne",
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    use_frontier: bool = False,
    max_x: float | None = None,
    reference: str = "bayes_test_ne",
    grid: str | None = None,
) -> tuple[PowerLawFit | JointFit, dict[str, Any]]:
    """Fit ``y`` against ``x`` (``"a,b"``: the joint law in two columns) over the runs of
    one grid (:func:`select_grid`); returns the fit and the document written as
    ``fit.json``."""
    names = [s.strip() for s in x.split(",") if s.strip()]
    if not 1 <= len(names) <= 2:
        raise UserError(f"--x takes one column or two (joint law), got {x!r}")
    rows = select_grid(rows, grid)
    cols = [resolve_column(rows, n) for n in names]
    ycol = resolve_column(rows, y)
    xs = [column(rows, c) for c in cols]
    ys = column(rows, ycol)
    keep = np.ones(ys.size, bool)
    if max_x is not None:
        keep &= xs[0] <= max_x
    if use_frontier:
        if len(cols) != 1:
            raise UserError("--frontier applies to a one-column fit")
        keep &= frontier(xs[0], ys)
    used = [r.get("run_id", str(i)) for i, r in enumerate(rows) if keep[i]]
    try:
        if len(cols) == 1:
            fit: PowerLawFit | JointFit = fit_power_law(
                xs[0][keep], ys[keep], bootstrap=bootstrap, seed=seed, level=level,
                x_name=cols[0], y_name=ycol,
            )  # fmt: skip
        else:
            fit = fit_joint(xs[0][keep], xs[1][keep], ys[keep], bootstrap=bootstrap, seed=seed,
                            level=level, names=(cols[0], cols[1], ycol))  # fmt: skip
    except ValueError as e:
        raise UserError(f"cannot fit {ycol} against {', '.join(cols)}: {e}") from None
    grids = set.intersection(*[_grids(rows[i]) for i in np.flatnonzero(keep)]) if keep.any() else set()
    doc: dict[str, Any] = {"format": FIT_FORMAT, **fit.to_dict(), "runs": used,
                           "grid": sorted(grids), "frontier": use_frontier, "max_x": max_x}  # fmt: skip
    if isinstance(fit, JointFit):
        try:
            doc["holdout"] = joint_extrapolation_check(
                xs[0][keep], xs[1][keep], ys[keep], bootstrap=min(bootstrap, 200), seed=seed,
                names=(cols[0], cols[1], ycol),
            )  # fmt: skip
        except ValueError as e:
            doc["holdout"] = {"skipped": str(e)}
    ref = _reference(rows, reference)
    if ref is not None:
        lo, hi = fit.intervals.get("c", (None, None))
        covers = None if "c" in fit.at_bound else (
            (lo is None or lo <= ref) and (hi is None or ref <= hi) if "c" in fit.intervals else None
        )  # fmt: skip
        doc["reference"] = {
            "name": reference, "value": ref, "c_identified": "c" not in fit.at_bound,
            "c_relative_error": None if "c" in fit.at_bound else (fit.c - ref) / ref,
            "c_interval_covers": covers,
        }  # fmt: skip
    return fit, doc


def save_fit(doc: dict[str, Any], path: str | Path) -> None:
    write_json(path, doc)


def load_fit(path: str | Path) -> PowerLawFit | JointFit:
    """A fit written by :func:`fit_runs` (a folder means its ``fit.json``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "fit.json"
    if not p.is_file():
        raise UserError(f"fit file not found: {p}")
    doc = read_json(p)
    if doc.get("format") != FIT_FORMAT:
        raise UserError(f"{p} is not a scaling fit ({FIT_FORMAT})")
    return JointFit.from_dict(doc) if doc.get("kind") == "joint" else PowerLawFit.from_dict(doc)


__all__ = [
    "FIT_FORMAT",
    "X_ALIASES",
    "column",
    "fit_runs",
    "frontier",
    "load_fit",
    "resolve_column",
    "save_fit",
    "select_grid",
]
