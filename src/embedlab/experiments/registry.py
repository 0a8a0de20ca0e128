"""The registry behind ``embedlab reproduce``.

Each capability registers experiments with :func:`register_experiment`. An experiment is
a function of an :class:`ExperimentContext` (its own output folder, the size -- full,
``quick`` or ``smoke``, the smallest setting, for CI -- and the seeds) returning an :class:`ExperimentResult`: a one-line summary, tables, PNG plots
and flat headline metrics. ``reproduce`` runs them, stores each result as JSON in the
experiment's folder (finished experiments are not rerun after a crash) and renders the
report.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedlab.errors import unknown_name


@dataclass(frozen=True)
class Table:
    """A titled table of rows (each a list aligned with ``columns``)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class ExperimentResult:
    """What an experiment reports."""

    summary: str
    tables: list[Table] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # file names inside the experiment folder
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentResult:
        return cls(
            summary=d["summary"], tables=[Table(**t) for t in d.get("tables", [])],
            plots=list(d.get("plots", [])), metrics=dict(d.get("metrics", {})), notes=d.get("notes", ""),
        )  # fmt: skip


@dataclass(frozen=True)
class ExperimentContext:
    """Where and how an experiment runs."""

    out: Path
    quick: bool
    seeds: tuple[int, ...] = (0,)
    show_progress: bool = False
    smoke: bool = False  # the smallest setting of the experiment (CI); implies quick

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else ("quick" if self.quick else "full")


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    capability: str
    run: Callable[[ExperimentContext], ExperimentResult]
    docs: str = ""  # the capability's documentation page, relative to the repository root


#: The documentation page of each capability (``docs/<page>.md``).
DOCS_PAGES = {
    "training": "docs/dlrm.md",
    "sharding": "docs/sharding.md",
    "optim": "docs/frequency-optimizers.md",
    "pu": "docs/pu.md",
    "scaling": "docs/scaling.md",
    "growth": "docs/growth.md",
    "online": "docs/online.md",
    "blender": "docs/blender.md",
}


EXPERIMENTS: dict[str, Experiment] = {}

#: Modules that register experiments when imported (each capability appends its own).
EXPERIMENT_MODULES = [
    "embedlab.experiments.training",
    "embedlab.experiments.pu",
    "embedlab.experiments.scaling",
    "embedlab.experiments.growth",
    "embedlab.experiments.online",
    "embedlab.experiments.blender",
    "embedlab.experiments.sharding",
    "embedlab.experiments.frequency",
]


def register_experiment(name: str, title: str, capability: str, docs: str | None = None) -> Callable:
    """Decorator registering ``fn(ctx) -> ExperimentResult`` under ``name``; ``docs`` is its
    documentation page (default: the capability's, :data:`DOCS_PAGES`)."""

    def deco(fn: Callable[[ExperimentContext], ExperimentResult]) -> Callable:
        page = docs if docs is not None else DOCS_PAGES.get(capability, "")
        EXPERIMENTS[name] = Experiment(name, title, capability, fn, page)
        return fn

    return deco


def all_experiments() -> dict[str, Experiment]:
    """Every registered experiment (importing the capability modules first)."""
    for m in EXPERIMENT_MODULES:
        importlib.import_module(m)
    return dict(EXPERIMENTS)


def select(names: list[str] | None) -> list[Experiment]:
    """The experiments called ``names`` (all when empty), in registration order."""
    exps = all_experiments()
    if not names:
        return list(exps.values())
    for n in names:
        if n not in exps:
            raise unknown_name("experiment", n, list(exps))
    return [exps[n] for n in names]
