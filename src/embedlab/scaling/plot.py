"""Log-log plots of a sweep with its fitted law and band (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedlab.scaling.laws import PowerLawFit


def plot_fit(
    x: Sequence[float],
    y: Sequence[float],
    fit: PowerLawFit,
    path: str | Path,
    *,
    reference: float | None = None,
    reference_label: str = "Bayes limit",
    extend: float = 4.0,
    held_out: Sequence[bool] | None = None,
) -> Path:
    """Runs as points, the fit and its ``level`` band over the runs' range times ``extend``,
    the fitted constant and an optional reference level (e.g. the Bayes-optimal NE).
    Held-out runs (not used by the fit) are drawn hollow. A fit with a parameter on a bound
    (not identified) is drawn dashed and labelled as no law."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_arr = np.asarray(x, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    lo, hi = float(x_arr.min()), float(x_arr.max()) * extend
    grid = np.geomspace(lo, hi, 200)
    pred = fit.predict(grid)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if pred["band"] is not None:
        ax.fill_between(grid, pred["band"][0], pred["band"][1], color="C0", alpha=0.2,
                        label=f"{int(fit.level * 100)}% band")  # fmt: skip
    label = f"fit: {fit.a:.3g}·x^(-{fit.alpha:.3g}) + {fit.c:.4g}"
    if not fit.identified:
        label += f"\nnot a law: {', '.join(fit.at_bound)} on a bound (not identified)"
    ax.plot(grid, pred["prediction"], color="C0", ls="-" if fit.identified else "--", label=label)
    mask = np.zeros(x_arr.size, bool) if held_out is None else np.asarray(held_out, bool)
    ax.scatter(x_arr[~mask], y_arr[~mask], color="k", s=16, zorder=3, label="runs (fitted)")
    if mask.any():
        ax.scatter(x_arr[mask], y_arr[mask], facecolors="none", edgecolors="C3", s=28, zorder=3,
                   label="runs (held out)")  # fmt: skip
    c_label = "c on its bound (not fitted)" if "c" in fit.at_bound else "fitted constant c"
    ax.axhline(fit.c, color="C0", ls=":", lw=1, label=c_label)
    if reference is not None:
        ax.axhline(reference, color="C2", ls="--", lw=1, label=f"{reference_label} {reference:.4g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(fit.x_name)
    ax.set_ylabel(fit.y_name)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


__all__ = ["plot_fit"]
