"""One self-contained HTML page (plus PNGs beside it) from experiment results."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from embedlab.experiments.registry import ExperimentResult
from embedlab.io import atomic_open


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def render(results: dict[str, dict[str, Any]], out: Path, header: dict[str, Any]) -> Path:
    """Write ``out/index.html``; ``results`` maps name -> {title, status, wall_time_s, result}."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>embedlab report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}.fail{color:#b00}"
        ".meta{color:#555;font-size:.9em}</style></head><body>",
        "<h1>embedlab report</h1>",
        "<p class='meta'>"
        + " · ".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in header.items())
        + "</p>",
        "<h2>Summary</h2><table><tr><th>experiment</th><th>status</th><th>summary</th><th>wall time (s)</th></tr>",
    ]
    for name, r in results.items():
        summ = r["result"]["summary"] if r.get("result") else r.get("error", "")
        parts.append(
            f"<tr><td><a href='#{name}'>{html.escape(name)}</a></td><td>{html.escape(r['status'])}</td>"
            f"<td style='text-align:left'>{html.escape(summ)}</td><td>{_fmt(r.get('wall_time_s', float('nan')))}</td></tr>"
        )
    parts.append("</table>")
    for name, r in results.items():
        parts.append(
            f"<h2 id='{name}'>{html.escape(r['title'])} <small>({html.escape(name)})</small></h2>"
        )
        if not r.get("result"):
            parts.append(f"<p class='fail'>failed: {html.escape(r.get('error', ''))}</p>")
            continue
        res = ExperimentResult.from_dict(r["result"])
        parts.append(f"<p>{html.escape(res.summary)}</p>")
        if res.notes:
            parts.append(f"<p class='meta'>{html.escape(res.notes)}</p>")
        for t in res.tables:
            parts.append(f"<h3>{html.escape(t.title)}</h3><table><tr>")
            parts.extend(f"<th>{html.escape(c)}</th>" for c in t.columns)
            parts.append("</tr>")
            for row in t.rows:
                parts.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        for p in res.plots:
            parts.append(
                f"<p><img src='{html.escape(name)}/{html.escape(p)}' alt='{html.escape(p)}'></p>"
            )
    parts.append("</body></html>")
    path = out / "index.html"
    with atomic_open(path) as f:
        f.write("\n".join(parts))
    return path
