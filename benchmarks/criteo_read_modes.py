"""What reading a large file once costs the machine: page cache against ``O_DIRECT``.

Reads the plain Criteo-format file of ``benchmarks/criteo_io.py`` (``--file``) from a cold
page cache (dropped first; needs root), in 16 MB blocks, three ways, each in a fresh
subprocess, and records wall time and the process's user and system CPU time:

* ``page_cache``: ordinary ``read()`` calls (what ``iter_blocks(direct=False)`` does);
* ``direct``: ``O_DIRECT`` reads into one reused page-aligned buffer (what
  ``iter_blocks(direct=True)``, used by ``embedlab data prepare criteo``, does with its pool);
* ``direct_fresh_buffers``: ``O_DIRECT`` into a new buffer per block (why the pool exists).

Usage::

    python benchmarks/criteo_read_modes.py --out benchmarks/results/criteo_read_modes.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import mmap, os, resource, sys, time
path, mode, block = sys.argv[1], sys.argv[2], 16 << 20
r0, t0, total = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
if mode == "page_cache":
    with open(path, "rb", buffering=0) as f:
        while b := f.read(block):
            total += len(b)
else:
    fd, off, buf = os.open(path, os.O_RDONLY | os.O_DIRECT), 0, mmap.mmap(-1, block)
    while True:
        if mode == "direct_fresh_buffers":
            buf = mmap.mmap(-1, block)
        n = os.preadv(fd, [buf], off)
        total, off = total + max(n, 0), off + max(n, 0)
        if n < block:
            break
    os.close(fd)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"bytes": total, "wall_s": time.perf_counter() - t0,
                  "user_s": r1.ru_utime - r0.ru_utime, "system_s": r1.ru_stime - r0.ru_stime}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", type=Path, default=ROOT / "benchmarks" / ".work" / "criteo_io" / "train_45840617.txt")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "criteo_read_modes.json")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not args.file.is_file():
        sys.exit(f"{args.file} not found: run benchmarks/criteo_io.py first (it generates the file)")
    runs: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        for mode in ("page_cache", "direct", "direct_fresh_buffers"):
            os.sync()
            try:
                Path("/proc/sys/vm/drop_caches").write_text("1\n")
                dropped = True
            except OSError:
                dropped = False
            p = subprocess.run([sys.executable, "-c", "import json\n" + _CHILD, str(args.file), mode],
                               capture_output=True, text=True, check=True)  # fmt: skip
            rec = json.loads(p.stdout)
            rec.update({"round": r, "page_cache_dropped": dropped})
            runs.setdefault(mode, []).append(rec)
            print(mode, rec, flush=True)
    result = {
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "file": str(args.file.relative_to(ROOT)) if args.file.is_relative_to(ROOT) else str(args.file),
        "file_bytes": args.file.stat().st_size,
        "runs": runs,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
