"""Matplotlib plots (Agg backend) written as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def line_plot(
    path: str | Path,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    hlines: dict[str, float] | None = None,
    errors: dict[str, Sequence[float]] | None = None,
) -> Path:
    """One PNG with a line per series (``label -> (x, y)``), optional horizontal references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in series.items():
        err = (errors or {}).get(label)
        if err is not None:
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        else:
            ax.plot(x, y, marker="o", label=label)
    for label, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", color="gray", linewidth=1)
        ax.annotate(
            label, xy=(0.01, y), xycoords=("axes fraction", "data"), fontsize=8, va="bottom"
        )
    if logx:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        xs = sorted({float(v) for x, _ in series.values() for v in x})
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(FuncFormatter(_human))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    p = Path(path)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return p


def _human(v: float, _pos: object = None) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def bar_plot(
    path: str | Path,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    errors: Sequence[float] | None = None,
    title: str = "",
    ylabel: str = "",
    ylim: tuple[float, float] | None = None,
    hline: float | None = None,
) -> Path:
    """One PNG bar chart (labels slanted when they would overlap; ``hline``: a dashed
    reference level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(list(labels), list(values), yerr=errors, capsize=4, color="#4c72b0")
    if ylim:
        ax.set_ylim(*ylim)
    if hline is not None:
        ax.axhline(hline, linestyle="--", color="gray", linewidth=1)
    if max(map(len, map(str, labels)), default=0) * len(labels) > 60:  # would overlap at this width
        ax.tick_params(axis="x", labelrotation=35)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    p = Path(path)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return p
