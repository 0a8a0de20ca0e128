"""Scaling sweeps: train a grid of DLRMs and tabulate sizes, compute and quality.

A sweep is a base :class:`~embedlab.train.trainer.TrainConfig` plus a grid over these keys
(the cartesian product of the values given, times the seeds):

* ``dim``: embedding dimension;
* ``hash_rows``: rows per table (ids taken modulo, the hashing trick);
* ``width``: multiplier on the base model's bottom and top MLP widths;
* ``model``: a model size by name or ``DIM:BOTTOM:TOP`` (replaces the base model);
* ``train_rows``: training-set size (the first N rows; with ``epochs=1`` every sample is
  seen once, as the reference DLRM trains).

Tables are hashed to fixed sizes unless the base config says otherwise (a training
vocabulary, the trainer's default, would make the parameter count grow with ``train_rows``).

``axis`` only picks the default grid (:func:`default_grid`) and the x of the later fit:
``params`` sweeps embedding dims, ``data`` training-set sizes, ``compute`` both.

Every run is a folder ``runs/<id>/`` written by the trainer (its own checkpoints, so a
killed run resumes where it stopped); a run whose ``metrics.json`` exists is finished and
never rerun. ``runs.csv`` (one row per finished run, :data:`CSV_COLUMNS` first) is
rewritten after every run.

One folder can hold the runs of several grids (on the same base settings): ``runs.csv``
lists every finished run, and its ``grid`` column keys each run with the ids of the grids
that contain it (:func:`grid_id`, recorded in ``grids.json``; ``;``-separated, empty for a
run no recorded grid contains). A fit refuses rows that share no grid
(:func:`embedlab.scaling.analysis.select_grid`). A finished run left by an earlier grid
whose row cannot be built (a :class:`~embedlab.errors.UserError`, e.g. a model size this
version no longer reads) is not in ``runs.csv``: it is listed with its reason in
``skipped.csv`` and reported through ``on_skip``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.data.registry import CTRData, load_data
from embedlab.data.schema import pooling_factors
from embedlab.data.transforms import limit_train_rows
from embedlab.errors import UserError
from embedlab.io import atomic_open, ensure_dir, read_json, write_json
from embedlab.models.dlrm import DLRMConfig, model_config
from embedlab.scaling.flops import dlrm_flops
from embedlab.train.trainer import TrainConfig, saved_config_matches

AXES = ("params", "data", "compute")
GRID_KEYS = ("model", "dim", "width", "hash_rows", "train_rows")
_INT_KEYS = ("dim", "hash_rows", "train_rows")

#: Leading columns of ``runs.csv`` (the trainer's other metrics follow).
CSV_COLUMNS = (
    "run_id", "grid", "seed", "model_size", "embedding_dim", "hash_rows", "train_rows",
    "params_embedding", "params_dense", "params_total", "train_samples",
    "flops_per_sample", "train_flops", "valid_ne", "test_ne", "valid_logloss", "test_logloss",
    "valid_auc", "test_auc", "bayes_test_ne", "wall_time_s",
)  # fmt: skip


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: the axis, the grid, the seeds and the base training settings."""

    axis: str
    grid: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...] = (0,)
    base: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        if self.axis not in AXES:
            raise UserError(f"unknown axis {self.axis!r}; valid: {', '.join(AXES)}")
        if not self.seeds:
            raise UserError("a sweep needs at least one seed")
        for k, vals in self.grid.items():
            if k not in GRID_KEYS:
                raise UserError(f"unknown grid key {k!r}; valid: {', '.join(GRID_KEYS)}")
            if not vals:
                raise UserError(f"grid key {k!r} has no values")
        if "model" in self.grid and ("dim" in self.grid or "width" in self.grid):
            raise UserError(
                "grid key 'model' replaces the model; do not combine it with dim or width"
            )
        self.base.validate()
        for cfg in self.configs().values():
            cfg.validate()

    def points(self) -> list[dict[str, Any]]:
        """The grid's cartesian product (keys in :data:`GRID_KEYS` order)."""
        keys = [k for k in GRID_KEYS if k in self.grid]
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]

    def configs(self) -> dict[str, TrainConfig]:
        """``run id -> TrainConfig`` for every grid point and seed (in sweep order)."""
        out: dict[str, TrainConfig] = {}
        for point in self.points():
            for seed in self.seeds:
                out[run_id(point, seed)] = point_config(self.base, point, seed)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "grid": {k: list(v) for k, v in self.grid.items()},
                "seeds": list(self.seeds), "base": self.base.to_dict()}  # fmt: skip


def grid_id(grid: dict[str, Sequence[Any]], seeds: Sequence[int]) -> str:
    """A short, stable id of a grid and its seeds (the first 10 hex digits of the SHA-256 of
    their canonical JSON); the same grid gives the same id in any folder."""
    canon = json.dumps({"grid": {k: [str(v) for v in vals] for k, vals in sorted(grid.items())},
                        "seeds": [int(x) for x in seeds]}, sort_keys=True)  # fmt: skip
    return "g" + hashlib.sha256(canon.encode()).hexdigest()[:10]


def grid_run_ids(grid: dict[str, Sequence[Any]], seeds: Sequence[int]) -> set[str]:
    """The run ids of a grid (no config is built, so any recorded grid can be read)."""
    keys = [k for k in GRID_KEYS if k in grid]
    return {
        run_id(dict(zip(keys, vals)), int(seed))
        for vals in itertools.product(*(grid[k] for k in keys))
        for seed in seeds
    }


def _record_grid(root: Path, spec: SweepSpec) -> dict[str, set[str]]:
    """Add ``spec``'s grid to ``root/grids.json``; returns ``grid id -> run ids`` of every
    grid recorded in the folder."""
    path = root / "grids.json"
    grids = read_json(path) if path.is_file() else {}
    grids[grid_id(spec.grid, spec.seeds)] = {
        "axis": spec.axis, "grid": {k: list(v) for k, v in spec.grid.items()}, "seeds": list(spec.seeds),
    }  # fmt: skip
    write_json(path, grids)
    return {g: grid_run_ids(v["grid"], v["seeds"]) for g, v in grids.items()}


def _mlp_size(cfg: DLRMConfig) -> str:
    j = lambda w: "-".join(str(x) for x in w)  # noqa: E731
    return f"{cfg.embedding_dim}:{j(cfg.bottom_mlp)}:{j(cfg.top_mlp)}"


def point_config(base: TrainConfig, point: dict[str, Any], seed: int) -> TrainConfig:
    """The training settings of one grid point and seed."""
    model = model_config(str(point.get("model", base.model_size)))
    if "width" in point:
        w = float(point["width"])
        if not w > 0:
            raise UserError(f"grid width must be positive, got {w}")
        scale = lambda ws: tuple(max(1, round(x * w)) for x in ws)  # noqa: E731
        model = DLRMConfig(model.embedding_dim, scale(model.bottom_mlp), scale(model.top_mlp))
    if "dim" in point:
        model = DLRMConfig(int(point["dim"]), model.bottom_mlp, model.top_mlp)
    size = str(point["model"]) if "model" in point and len(point) == 1 else _mlp_size(model)
    changes: dict[str, Any] = {"model_size": size, "seed": seed}
    if base.tables is None:  # fixed tables: a vocabulary would grow the model with the data
        changes["tables"] = "hash"
    for k in ("hash_rows", "train_rows"):
        if k in point:
            changes[k] = int(point[k])
    return dataclasses.replace(base, **changes)


def run_id(point: dict[str, Any], seed: int) -> str:
    """A readable, unique folder name for a grid point and seed."""
    parts = [f"{k}{str(v).replace(':', '_')}" for k, v in point.items()]
    return "-".join([*parts, f"s{seed}"]) if parts else f"s{seed}"


def parse_grid(items: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """``["dim=4,8,16", "train_rows=1e4,2e4"]`` -> ``{"dim": (4, 8, 16), ...}``.

    Integer keys accept ``1e4``-style numbers and ``geom:LO:HI:N`` (N sizes spaced evenly
    in log between LO and HI, rounded).
    """
    grid: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key, sep, vals = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not vals.strip():
            raise UserError(f"grid entries look like KEY=V1,V2,...; got {item!r}")
        if key not in GRID_KEYS:
            raise UserError(f"unknown grid key {key!r}; valid: {', '.join(GRID_KEYS)}")
        if key in grid:
            raise UserError(f"grid key {key!r} given twice")
        if key in _INT_KEYS:
            grid[key] = tuple(_parse_ints(vals, key))
        elif key == "width":
            try:
                grid[key] = tuple(float(v) for v in vals.split(","))
            except ValueError:
                raise UserError(f"grid width values must be numbers, got {vals!r}") from None
        else:
            grid[key] = tuple(v.strip() for v in vals.split(",") if v.strip())
    return grid


def _parse_ints(text: str, key: str) -> list[int]:
    text = text.strip()
    if text.startswith("geom:"):
        try:
            lo, hi, n = text[5:].split(":")
            lo_f, hi_f, n_i = float(lo), float(hi), int(n)
        except ValueError:
            raise UserError(f"grid {key}: geom:LO:HI:N, got {text!r}") from None
        if not (0 < lo_f < hi_f and n_i >= 2):
            raise UserError(f"grid {key}: geom needs 0 < LO < HI and N >= 2, got {text!r}")
        vals = [round(lo_f * (hi_f / lo_f) ** (i / (n_i - 1))) for i in range(n_i)]
        return sorted(set(vals))
    out = []
    for v in text.split(","):
        try:
            f = float(v)
        except ValueError:
            raise UserError(f"grid {key} values must be integers, got {v!r}") from None
        if f != int(f) or f <= 0:
            raise UserError(f"grid {key} values must be positive integers, got {v!r}")
        out.append(int(f))
    return out


def default_grid(axis: str, train_rows_available: int) -> dict[str, tuple[Any, ...]]:
    """Six points over a 32x range on the axis (compute: 3 dims x 4 sizes)."""
    n = train_rows_available
    sizes = tuple(sorted({max(1, round(n / 2**k)) for k in range(6)}))
    if axis == "params":
        return {"dim": (2, 4, 8, 16, 32, 64)}
    if axis == "data":
        return {"train_rows": sizes}
    if axis == "compute":
        return {
            "dim": (4, 16, 64),
            "train_rows": sizes[::-1][::2][::-1] + ((n,) if sizes[-1] != n else ()),
        }
    raise UserError(f"unknown axis {axis!r}; valid: {', '.join(AXES)}")


def run_row(rid: str, cfg: TrainConfig, metrics: dict[str, Any], data: CTRData) -> dict[str, Any]:
    """One ``runs.csv`` row: sizes, parameter counts, samples, FLOPs, quality, wall time."""
    model = model_config(cfg.model_size)
    samples = int(metrics["train_samples"])
    train_rows = cfg.train_rows if cfg.train_rows is not None else len(data.train)
    if "train_flops" in metrics:  # counted by the trainer (same rules, embedlab.scaling.flops)
        total_flops = float(metrics["train_flops"])
    else:  # a run recorded before the trainer counted FLOPs
        # hashing keeps every id present (ids mod rows), so pooling needs only the row limit
        view = limit_train_rows(data, cfg.train_rows) if cfg.train_rows is not None else data
        names = view.schema.sparse_names
        pf = pooling_factors(view.train, names)
        total_flops = (
            dlrm_flops(model, view.schema.num_dense, len(names), [pf[n] for n in names]).train
            * samples
        )
    row: dict[str, Any] = {
        "run_id": rid, "seed": cfg.seed, "model_size": cfg.model_size,
        "embedding_dim": model.embedding_dim, "hash_rows": cfg.hash_rows or "",
        "train_rows": train_rows, "params_embedding": metrics["params_embedding"],
        "params_dense": metrics["params_dense"], "params_total": metrics["params_total"],
        "train_samples": samples, "flops_per_sample": total_flops / max(samples, 1), "train_flops": total_flops,
        "bayes_test_ne": metrics.get("data_bayes_test_ne", ""),
    }  # fmt: skip
    for k in CSV_COLUMNS:
        if k not in row:
            row[k] = metrics.get(k, "")
    for k, v in sorted(metrics.items()):
        if k not in row and isinstance(v, (int, float, str, bool)):
            row[k] = v
    return row


def write_runs_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """All rows, :data:`CSV_COLUMNS` first, then every other key in sorted order."""
    extra = sorted({k for r in rows for k in r} - set(CSV_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*CSV_COLUMNS, *extra], restval="")
    w.writeheader()
    w.writerows(rows)
    with atomic_open(path, "w") as f:
        f.write(buf.getvalue())


_TEXT_COLUMNS = ("run_id", "grid", "model_size")


def read_runs_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``runs.csv`` with numeric fields as floats (``run_id``, ``grid`` and
    ``model_size`` stay text)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"runs file not found: {p}")
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"{p} has no runs")
    out = []
    for r in rows:
        conv: dict[str, Any] = {}
        for k, v in r.items():
            if k in _TEXT_COLUMNS:
                conv[k] = v or ""
                continue
            try:
                conv[k] = float(v)
            except (TypeError, ValueError):
                conv[k] = v
        out.append(conv)
    return out


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    data: CTRData | None = None,
    show_progress: bool = True,
    on_run: Callable[[str, dict[str, Any]], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every run of ``spec`` not finished yet under ``out``; returns the rows of this
    grid (``runs.csv`` also lists the finished runs of earlier grids in ``out``).

    ``on_skip(run_id, reason)`` is called once per finished run of an earlier grid left out
    of ``runs.csv`` (also listed in ``skipped.csv``)."""
    from tqdm.auto import tqdm

    from embedlab.train.trainer import train

    spec.validate()
    root = ensure_dir(out)
    saved = root / "sweep.json"
    if saved.is_file():
        prev = read_json(saved)
        # settings added to TrainConfig since are taken at their defaults
        saved_base = TrainConfig.from_dict(prev.get("base", {})).to_dict()
        if json.loads(json.dumps(saved_base)) != json.loads(json.dumps(spec.base.to_dict())):
            raise UserError(
                f"{saved} holds other base settings; use another --out or the same settings"
            )
    write_json(saved, spec.to_dict())
    grids = _record_grid(root, spec)
    if data is None:
        data = load_data(spec.base.data, **spec.base.data_options)
    configs = spec.configs()
    rows: dict[str, dict[str, Any]] = {}
    reported: set[str] = set()

    def write_tables() -> None:
        # every finished run of this folder (also those of earlier, other grids)
        table, skipped = _all_rows(root, rows, data)
        for r in table:
            r["grid"] = ";".join(sorted(g for g, ids in grids.items() if r["run_id"] in ids))
        write_runs_csv(root / "runs.csv", table)
        _write_skipped(root / "skipped.csv", skipped)
        for rid, reason in skipped.items():
            if rid not in reported and on_skip is not None:
                on_skip(rid, reason)
            reported.add(rid)

    bar = tqdm(total=len(configs), disable=not show_progress, unit="run", dynamic_ncols=True)
    try:
        for rid, cfg in configs.items():
            bar.set_description(rid)
            run = root / "runs" / rid
            done = (run / "metrics.json").is_file() and saved_config_matches(run, cfg)
            if done:
                metrics = read_json(run / "metrics.json")
            else:
                resume = (run / "checkpoint.pt").is_file() and saved_config_matches(run, cfg)
                metrics = train(cfg, run, data=data, resume=resume, show_progress=False)
            rows[rid] = run_row(rid, cfg, metrics, data)
            rows[rid]["grid"] = ";".join(sorted(g for g, ids in grids.items() if rid in ids))
            write_tables()
            if on_run is not None:
                on_run(rid, metrics)
            bar.update(1)
    finally:
        bar.close()
    return list(rows.values())


def _all_rows(
    root: Path, rows: dict[str, dict[str, Any]], data: CTRData
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of this sweep plus those of finished runs left in ``root/runs`` by earlier grids
    on the same base settings, and ``run id -> reason`` of the finished runs left out."""
    out = dict(rows)
    skipped: dict[str, str] = {}
    for d in sorted((root / "runs").iterdir()) if (root / "runs").is_dir() else []:
        if d.name in out or not (d / "metrics.json").is_file() or not (d / "config.json").is_file():
            continue
        try:
            cfg = TrainConfig.from_dict(read_json(d / "config.json"))
            out[d.name] = run_row(d.name, cfg, read_json(d / "metrics.json"), data)
        except UserError as e:
            skipped[d.name] = str(e)
    return [out[k] for k in [*rows, *sorted(set(out) - set(rows))]], skipped


def _write_skipped(path: Path, skipped: dict[str, str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run_id", "reason"])
    w.writerows(sorted(skipped.items()))
    with atomic_open(path, "w") as f:
        f.write(buf.getvalue())


def read_skipped(out: str | Path) -> dict[str, str]:
    """``run id -> reason`` of the finished runs a sweep in ``out`` left out of ``runs.csv``."""
    p = Path(out) / "skipped.csv"
    if not p.is_file():
        return {}
    with p.open(newline="") as f:
        return {r["run_id"]: r["reason"] for r in csv.DictReader(f)}


def fit_columns(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    """The ``x`` and ``y`` columns of ``rows`` (rows missing either are an error)."""
    xs, ys = [], []
    for r in rows:
        xv, yv = r.get(x), r.get(y)
        if (
            not isinstance(xv, float)
            or not isinstance(yv, float)
            or math.isnan(xv)
            or math.isnan(yv)
        ):
            raise UserError(f"run {r.get('run_id', '?')} has no numeric {x!r} and {y!r}")
        xs.append(xv)
        ys.append(yv)
    return xs, ys


__all__ = [
    "AXES",
    "CSV_COLUMNS",
    "GRID_KEYS",
    "SweepSpec",
    "default_grid",
    "fit_columns",
    "grid_id",
    "grid_run_ids",
    "parse_grid",
    "point_config",
    "read_runs_csv",
    "read_skipped",
    "run_id",
    "run_row",
    "run_sweep",
    "write_runs_csv",
]
