"""One self-contained HTML page (plus PNGs beside it) from experiment results."""

from __future__ import annotations

import html
import math
import os
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


def _doc_href(page: str, out: Path, docs_root: Path | None) -> str | None:
    target = docs_root / page if docs_root is not None and page else None
    if target is None or not target.is_file():
        return None
    return Path(os.path.relpath(target, out.resolve())).as_posix()


def _doc_cell(page: str, out: Path, docs_root: Path | None) -> str:
    href = _doc_href(page, out, docs_root)
    label = html.escape(page.removeprefix("docs/"))
    return f"<a href='{html.escape(href)}'>{label}</a>" if href else label


def docs_link(page: str, out: Path, docs_root: Path | None) -> str:
    """HTML naming ``page`` (``docs/<name>.md``): a link relative to the report folder when
    the documentation sits in ``docs_root`` (a source checkout), else the path as text."""
    if not page:
        return ""
    href = _doc_href(page, out, docs_root)
    if href is None:
        return f"<p class='docs'>Documentation: <code>{html.escape(page)}</code></p>"
    return f"<p class='docs'>Documentation: <a href='{html.escape(href)}'>{html.escape(page)}</a></p>"


def render(
    results: dict[str, dict[str, Any]],
    out: Path,
    header: dict[str, Any],
    docs_root: Path | None = None,
) -> Path:
    """Write ``out/index.html``; ``results`` maps name -> {title, status, wall_time_s, result,
    docs}. Each experiment is a ``<section class='experiment' data-status=...>`` (the browser
    check reads the status there); ``docs_root`` is where ``docs/`` lives, for the links."""
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
        "<h2>Summary</h2><table><tr><th>experiment</th><th>status</th><th>summary</th><th>wall time (s)</th><th>CPU time (s)</th><th>docs</th></tr>",
    ]
    for name, r in results.items():
        summ = r["result"]["summary"] if r.get("result") else r.get("error", "")
        parts.append(
            f"<tr><td><a href='#{name}'>{html.escape(name)}</a></td><td>{html.escape(r['status'])}</td>"
            f"<td style='text-align:left'>{html.escape(summ)}</td><td>{r.get('wall_time_s', float('nan')):.0f}</td>"
            f"<td>{r.get('cpu_time_s', float('nan')):.0f}</td><td>{_doc_cell(r.get('docs', ''), out, docs_root)}</td></tr>"
        )
    parts.append("</table>")
    for name, r in results.items():
        parts.append(
            f"<section class='experiment' id='{html.escape(name)}' data-status='{html.escape(r['status'])}'>"
            f"<h2>{html.escape(r['title'])} <small>({html.escape(name)})</small></h2>"
        )
        parts.append(docs_link(r.get("docs", ""), out, docs_root))
        if not r.get("result"):
            parts.append(f"<p class='fail'>failed: {html.escape(r.get('error', ''))}</p></section>")
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
        folder = r.get("folder", name)  # the experiment's folder, relative to the report
        for p in res.plots:
            parts.append(
                f"<p><img src='{html.escape(folder)}/{html.escape(p)}' alt='{html.escape(p)}'></p>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    path = out / "index.html"
    with atomic_open(path) as f:
        f.write("\n".join(parts))
    return path
