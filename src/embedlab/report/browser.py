"""Check a report in a real browser: headless Chromium loads ``index.html`` and says whether
every image decoded, every experiment section succeeded and nothing reached the console as
an error.

How: a copy of the page, with a ``<base href>`` pointing at the report folder (so the copy
loads the report's own images) and a small script first in ``<head>``, is opened with
``chromium --headless --dump-dom``. The script records ``console.error`` calls, uncaught
errors and rejections, and failed resource loads (``error`` events in the capture phase);
after ``load`` it checks every ``<img>`` (``complete`` and ``naturalWidth > 0``) and every
``section.experiment``'s ``data-status``, and writes the findings as JSON into the DOM,
which ``--dump-dom`` prints. Chromium's own console log (``--enable-logging=stderr``) is
read as well, for errors the page's script cannot see.

``python -m embedlab.report.browser reports/latest/index.html`` runs the check (exit 1 on a
finding, 2 without Chromium); CI runs it on the smoke report. Debian's ``chromium``
package provides the browser (``make setup-browser``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from embedlab.errors import UserError

#: Chromium executables tried in order (Debian's package installs ``/usr/bin/chromium``).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Flags for a closed network and a throwaway profile (see the module doc).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
)  # fmt: skip

_PROBE = """<script>
(function () {
  var errors = [];
  var origError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return origError.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) {
      errors.push("failed to load " + (t.src || t.href));
    } else {
      errors.push("uncaught error: " + (e.message || String(e.error)));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason));
  });
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth};
    });
    var sections = Array.prototype.map.call(document.querySelectorAll("section.experiment"), function (s) {
      return {id: s.id, status: s.getAttribute("data-status")};
    });
    var out = document.createElement("pre");
    out.id = "embedlab-browser-check";
    out.textContent = JSON.stringify({images: images, sections: sections, errors: errors});
    document.body.appendChild(out);
  });
})();
</script>"""

_RESULT = re.compile(r'<pre id="embedlab-browser-check">(.*?)</pre>', re.S)
_CONSOLE = re.compile(r":(ERROR|WARNING|INFO):CONSOLE\(\d+\)\] \"(.*?)\", source: (\S*)")


@dataclass
class BrowserCheck:
    """What Chromium saw: the images, the experiment sections and the errors."""

    images: list[dict] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per finding (empty: the page is fine)."""
        out = [f"image did not load: {i['src']}" for i in self.images
               if not i["complete"] or i["width"] <= 0]  # fmt: skip
        out += [f"section {s['id']} has status {s['status']!r}" for s in self.sections
                if s["status"] != "ok"]  # fmt: skip
        if not self.sections:
            out.append("no experiment section on the page")
        return out + self.errors


def find_chromium() -> str | None:
    """The Chromium executable (``EMBEDLAB_CHROMIUM`` first), or None."""
    env = os.environ.get("EMBEDLAB_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_report(
    index: str | Path, *, chromium: str | None = None, timeout_s: float = 120
) -> BrowserCheck:
    """Load ``index`` in headless Chromium and return what it saw (see the module doc)."""
    index = Path(index).resolve()
    if not index.is_file():
        raise UserError(f"no report at {index}")
    exe = chromium or find_chromium()
    if exe is None:
        raise UserError(
            "Chromium not found: install it with `make setup-browser` (Debian's chromium)"
        )
    page = index.read_text(encoding="utf-8")
    base = f"<base href='{html.escape(index.parent.as_uri())}/'>"
    probed, n = re.subn(r"<head>", "<head>" + base + _PROBE, page, count=1, flags=re.I)
    if n != 1:
        raise UserError(f"{index} has no <head>")
    with tempfile.TemporaryDirectory(prefix="embedlab-browser-") as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(probed, encoding="utf-8")
        cmd = [exe, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", "--virtual-time-budget=10000",
               "--dump-dom", copy.as_uri()]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    m = _RESULT.search(proc.stdout)
    if m is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"Chromium printed no check result (exit {proc.returncode}): {tail}")
    res = BrowserCheck(**json.loads(html.unescape(m.group(1))))
    for level, msg, source in _CONSOLE.findall(proc.stderr):
        if level == "ERROR":
            res.errors.append(f"console: {msg} ({source})")
    return res


def main(argv: list[str] | None = None) -> int:
    """``python -m embedlab.report.browser INDEX.html``: 0 when the page is fine."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m embedlab.report.browser REPORT/index.html", file=sys.stderr)
        return 2
    try:
        res = check_report(args[0])
    except UserError as e:
        print(f"browser check: {e}", file=sys.stderr)
        return 2
    problems = res.problems()
    for p in problems:
        print(f"browser check: {p}", file=sys.stderr)
    if not problems:
        print(f"browser check: {len(res.sections)} sections ok, {len(res.images)} images loaded, "
              f"no console errors ({args[0]})")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
