"""Tables from ``benchmarks/pu.py`` results: mean ± sd per (dataset, labeled) and method, and
paired differences between methods with 95% Student-t intervals over seeds.

Usage::

    python benchmarks/pu_report.py benchmarks/results/pu_grid.json \\
        --versus pucl-ft-nnpu-prior:nnpu-prior pucl:simclr

Prints Markdown: one accuracy table (``--metric auc`` for AUC), then for every ``A:B`` pair
and cell the mean of the per-seed differences ``A - B`` with its interval (seeds paired by
value; a cell where either method is missing, or with fewer than two common seeds, is left
out). With ``--zero`` a ``NAME-prior`` method also shows, in parentheses, the same model's
accuracy at the logit's own threshold (``accuracy_at_zero``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from embedlab.blender.dml import paired_difference  # noqa: E402
from embedlab.io import read_json  # noqa: E402

Cell = tuple[str, int]


def by_cell(results: list[dict[str, Any]]) -> dict[Cell, dict[str, dict[str, Any]]]:
    """``{(dataset, labeled): {method: row}}``; a later row replaces an earlier one."""
    out: dict[Cell, dict[str, dict[str, Any]]] = {}
    for r in results:
        out.setdefault((r["dataset"], int(r["labeled"])), {})[r["method"]] = r
    return out


def per_seed(row: dict[str, Any], metric: str) -> dict[int, float]:
    return dict(zip(row["seeds"], row[metric]["values"], strict=True)) if metric in row else {}


def paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> dict[str, float] | None:
    """``a - b`` over the seeds both rows hold, or None with fewer than two."""
    sa, sb = per_seed(a, metric), per_seed(b, metric)
    common = sorted(set(sa) & set(sb))
    if len(common) < 2:
        return None
    return paired_difference([sa[s] for s in common], [sb[s] for s in common])


def table(cells: dict[Cell, dict[str, dict[str, Any]]], methods: list[str], metric: str,
          zero: bool) -> list[str]:  # fmt: skip
    lines = [
        "| dataset | labeled | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for (ds, n), rows in sorted(cells.items()):
        vals = []
        for m in methods:
            r = rows.get(m)
            if r is None or metric not in r:
                vals.append("")
                continue
            txt = f"{r[metric]['mean']:.3f} ± {r[metric]['sd']:.3f}"
            if zero and metric == "accuracy" and "accuracy_at_zero" in r:
                txt += f" ({r['accuracy_at_zero']['mean']:.3f})"
            vals.append(txt)
        lines.append(f"| {ds} | {n} | " + " | ".join(vals) + " |")
    return lines


def differences(cells: dict[Cell, dict[str, dict[str, Any]]], pairs: list[tuple[str, str]],
                metric: str) -> list[str]:  # fmt: skip
    lines = []
    for a, b in pairs:
        lines += [f"\n{a} minus {b} ({metric}, mean and 95% interval over paired seeds):", ""]
        for (ds, n), rows in sorted(cells.items()):
            if a in rows and b in rows and (d := paired(rows[a], rows[b], metric)):
                lines.append(
                    f"- {ds}, {n} labeled: {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (n = {d['n']})"
                )
    return lines


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="pu.py result JSONs (merged, later files win)")
    ap.add_argument("--methods", nargs="+", default=None, help="columns (default: all, in order)")
    ap.add_argument("--metric", default="accuracy", choices=["accuracy", "auc", "f1", "wall_s"])
    ap.add_argument("--versus", nargs="*", default=[], help="A:B pairs for paired differences")
    ap.add_argument("--zero", action="store_true", help="also the accuracy at the logit's sign")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for path in args.results:
        rows += read_json(path)["results"]
    cells = by_cell(rows)
    methods = args.methods or list(dict.fromkeys(r["method"] for r in rows))
    pairs = []
    for p in args.versus:
        if p.count(":") != 1:
            ap.error(f"--versus takes A:B pairs, got {p!r}")
        a, b = p.split(":")
        pairs.append((a, b))
    text = "\n".join(
        table(cells, methods, args.metric, args.zero) + differences(cells, pairs, args.metric)
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
