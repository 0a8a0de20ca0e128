"""AUC and NE over time, one line per strategy (and the Bayes limit where known)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_runs(runs: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    bayes_drawn = False
    for name, recs in runs.items():
        t = [r["period"] for r in recs]
        axes[0].plot(t, [r["auc"] for r in recs], label=name, lw=1.2)
        axes[1].plot(t, [r["ne"] for r in recs], label=name, lw=1.2)
        if not bayes_drawn and recs and "bayes_ne" in recs[0]:
            axes[0].plot(t, [r["bayes_auc"] for r in recs], "k--", lw=1, label="Bayes limit")
            axes[1].plot(t, [r["bayes_ne"] for r in recs], "k--", lw=1, label="Bayes limit")
            bayes_drawn = True
    axes[0].set_ylabel("next-period AUC")
    axes[1].set_ylabel("next-period NE")
    axes[1].set_xlabel("period")
    axes[0].legend(fontsize=8)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
