"""Criteo click logs at real scale: prepare speed, memory, cache size, re-sizing, streaming.

Generates a Criteo-format file (``--lines`` lines; default 45,840,617, the size of Criteo
Kaggle's ``train.txt``) and a gzip copy under ``benchmarks/.work/criteo_io/`` (gitignored),
then measures, in one run on the same files:

* ``prepare``: ``embedlab data prepare criteo`` (:func:`embedlab.data.criteo_prepare.prepare`)
  on the plain and on the gzip file, each in a fresh subprocess: lines/s, peak RSS of that
  process, the prepared folder's size (and its parts: dictionary and raw id columns,
  dense codes and overflow, missing mask, labels). The plain file is prepared twice: first
  **cold** (the kernel's page cache dropped first, when this process may: run as root),
  then **warm** (the file still cached from the cold run); the gzip file cold;
* ``torchrec``: TorchRec's own Criteo text path on the first ``--torchrec-lines`` lines
  (a prefix file cut from the same file): ``BinaryCriteoUtils.tsv_to_npys`` (its line
  reader ``CriteoIterDataPipe`` plus its conversion to ``.npy``) and the bare line reader
  (``CriteoIterDataPipe`` with no row mapper);
* ``old_reader``: this project's previous reader (``iter_chunks`` of
  ``src/embedlab/data/criteo.py`` at commit 7b6cd2c, loaded from git) on the first
  ``--old-lines`` lines;
* ``libs``: the two candidate CSV readers on the first 500,000 lines, 2 threads: pyarrow
  (fields as bytes; and with the NumPy hex conversion the reader uses) and polars (typed
  columns, then its hex-to-integer conversion);
* ``resize``: table sizing from the prepared folder without parsing (the parser is
  replaced by a function that fails): the training split's per-feature id counts (one
  pass, cached), a vocabulary at two frequency thresholds, and ids modulo two sets of
  table sizes over one streaming window;
* ``train``: training samples/s of the same DLRM (``--model-size``, SGD, hashed tables
  capped at ``--max-rows``) fed by the in-memory path (the first ``--inmem-rows`` training
  rows, materialized and sized, batches by a permutation as the trainer does) and by the
  streaming path (:class:`embedlab.data.prepared.BlockStream` over the whole training
  split, background read-ahead), timed alternately ``--rounds`` times ``--steps`` steps
  after a warm-up; the RSS of this process before and after the streamed steps.

The generator: labels Bernoulli(0.26); integers ``floor(lognormal(1.5, 2))`` with 20%
empty (5% of I2 set to -1); hex ids of Zipf(1.2) draws modulo the Kaggle cardinalities,
scrambled by a multiplicative hash, 10% empty; about 243 bytes per line as in the real
file. It writes 1M-line chunks (each from its own seed) to the plain file and, as gzip
members, to the ``.gz`` copy, and records progress after each chunk, so a killed
generation resumes.

The machine is shared with other jobs: every timing records the load average
(``os.getloadavg``) at its start and end.

Usage::

    python benchmarks/criteo_io.py                     # full scale (45.8M lines; ~15 GB disk)
    python benchmarks/criteo_io.py --lines 2000000 --out /tmp/criteo_io_small.json   # check
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_LINES = 45_840_617
CHUNK = 1_000_000
CARDS = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
         27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)  # fmt: skip
OLD_COMMIT = "7b6cd2c"


def vm(kind: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in bytes."""
    return [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith(kind)][0]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- data generation


def _hex8(v: np.ndarray) -> np.ndarray:
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    v = v.astype(np.uint32)
    out = np.empty((len(v), 8), np.uint8)
    for k in range(8):
        out[:, 7 - k] = digits[(v >> np.uint32(4 * k)) & np.uint32(15)]
    return out.view("S8").ravel()


def chunk_text(index: int, n: int) -> bytes:
    """``n`` Criteo-format lines, a pure function of ``index``."""
    import polars as pl

    rng = np.random.default_rng([20251204, index])
    cols: dict[str, Any] = {"label": (rng.random(n) < 0.26).astype(np.int8)}
    for i in range(13):
        x = np.floor(rng.lognormal(1.5, 2.0, n)).astype(np.int64)
        if i == 1:
            x = np.where(rng.random(n) < 0.05, -1, x)
        cols[f"I{i + 1}"] = pl.Series(f"I{i + 1}", x).scatter(np.flatnonzero(rng.random(n) < 0.2), None)
    for j, card in enumerate(CARDS):
        ids = rng.zipf(1.2, n) % card
        h = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(j * 97)) % np.uint64(2**32)
        s = pl.Series(f"C{j + 1}", _hex8(h)).cast(pl.String)
        cols[f"C{j + 1}"] = s.scatter(np.flatnonzero(rng.random(n) < 0.1), None)
    buf = io.BytesIO()
    pl.DataFrame(cols).write_csv(buf, separator="\t", include_header=False, quote_style="never")
    return buf.getvalue()


def generate(work: Path, lines: int, gzip_level: int) -> tuple[Path, Path]:
    """The plain file and its gzip copy (resumable chunk by chunk)."""
    from tqdm.auto import tqdm

    plain, gz = work / f"train_{lines}.txt", work / f"train_{lines}.txt.gz"
    state_path = work / f"train_{lines}.state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"chunks": 0, "plain": 0, "gz": 0}
    n_chunks = -(-lines // CHUNK)
    if state["chunks"] == n_chunks:
        return plain, gz
    mode = "r+b" if state["chunks"] else "wb"
    with open(plain, mode) as fp, open(gz, mode) as fg, tqdm(total=lines, initial=min(lines, state["chunks"] * CHUNK),
                                                               unit="line", unit_scale=True, desc="generate") as bar:  # fmt: skip
        fp.truncate(state["plain"])
        fg.truncate(state["gz"])
        fp.seek(state["plain"])
        fg.seek(state["gz"])
        for c in range(state["chunks"], n_chunks):
            n = min(CHUNK, lines - c * CHUNK)
            text = chunk_text(c, n)
            fp.write(text)
            fg.write(gzip.compress(text, compresslevel=gzip_level))
            fp.flush()
            fg.flush()
            state = {"chunks": c + 1, "plain": fp.tell(), "gz": fg.tell()}
            state_path.write_text(json.dumps(state))
            bar.update(n)
    return plain, gz


def prefix_file(src: Path, lines: int, dst: Path) -> Path:
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    tmp = dst.with_suffix(".part")
    with open(src, "rb") as f, open(tmp, "wb") as g:
        for k, ln in enumerate(f):
            if k >= lines:
                break
            g.write(ln)
    os.replace(tmp, dst)
    return dst


# ---------------------------------------------------------------- measurements

_PREPARE_CHILD = """
import json, sys, time
import pyarrow.csv  # noqa: F401  (imported before the clock starts, as in a long-running process)
from embedlab.data.criteo_prepare import prepare
t = time.perf_counter()
r = prepare(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]) if sys.argv[3] != "0" else None)
dt = time.perf_counter() - t
hwm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
print(json.dumps({"seconds": dt, "rows": r.meta["rows"], "skipped": r.meta["skipped"], "parsed": r.parsed,
                  "peak_rss_bytes": hwm}))  # VmHWM: ru_maxrss would include the parent's before exec
"""


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def drop_page_cache() -> bool:
    """Write back and drop the kernel's page cache (needs root); whether it was dropped."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def measure_prepare(src: Path, out: Path, workers: int, cold: bool = False) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    dropped = drop_page_cache() if cold else False
    la0 = load()
    p = subprocess.run([sys.executable, "-c", _PREPARE_CHILD, str(src), str(out), str(workers)],
                       env=child_env(), capture_output=True, text=True, check=True)  # fmt: skip
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r.update({"lines_per_s": r["rows"] / r["seconds"], "input_bytes": src.stat().st_size,
              "page_cache": "dropped first" if dropped else ("not dropped (no permission)" if cold else "as left"),
              "load_start": la0, "load_end": load()})  # fmt: skip
    return r


def folder_size(out: Path) -> dict[str, Any]:
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    cols = json.loads((out / "meta.json").read_text())["columns"]
    by = {"uint8": 0, "uint16": 0, "uint32": 0}
    for name, c in cols.items():
        by[c["dtype"]] += sizes[f"{name}.npy"]
    return {"total_bytes": sum(sizes.values()),
            "ids_bytes": sum(v for k, v in sizes.items() if k.startswith("C")),
            "ids_by_width_bytes": by, "dictionaries_bytes": sum(v for k, v in sizes.items() if k.endswith(".dict.npy")),
            "columns_by_width": {w: sum(c["dtype"] == w for c in cols.values()) for w in by},
            "dense_codes_bytes": sizes["dense.npy"],
            "dense_overflow_bytes": sizes["dense_over_index.npy"] + sizes["dense_over_value.npy"],
            "missing_bytes": sizes["missing.npy"], "labels_bytes": sizes["labels.npy"],
            "meta_bytes": sizes["meta.json"]}  # fmt: skip


def measure_torchrec(prefix: Path, work: Path) -> dict[str, Any]:
    import warnings

    from torchrec.datasets.criteo import BinaryCriteoUtils, CriteoIterDataPipe

    warnings.filterwarnings("ignore")
    n = sum(1 for _ in open(prefix, "rb"))
    la0 = load()
    t = time.perf_counter()
    k = sum(1 for _ in CriteoIterDataPipe([str(prefix)], row_mapper=None))
    dt_lines = time.perf_counter() - t
    la1 = load()
    out = work / "torchrec_npy"
    out.mkdir(exist_ok=True)
    t = time.perf_counter()
    BinaryCriteoUtils.tsv_to_npys(str(prefix), str(out / "dense.npy"), str(out / "sparse.npy"),
                                  str(out / "labels.npy"), dataset_name="criteo_kaggle")  # fmt: skip
    dt_conv = time.perf_counter() - t
    return {"lines": n, "line_reader_lines_per_s": k / dt_lines, "line_reader_load": [la0, la1],
            "tsv_to_npys_lines_per_s": n / dt_conv, "tsv_to_npys_load": [la1, load()]}  # fmt: skip


def old_module() -> Any:
    """The previous reader, from git (the code as it was, not a copy)."""
    import types

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:src/embedlab/data/criteo.py"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    mod = types.ModuleType("embedlab_old_criteo")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{OLD_COMMIT}:criteo.py", "exec"), mod.__dict__)
    return mod


def measure_old(prefix: Path) -> dict[str, Any]:
    old = old_module()
    schema = old.criteo_schema([2**32] * 26)
    la0 = load()
    t = time.perf_counter()
    rows = sum(len(c) for c in old.iter_chunks(prefix, schema))
    dt = time.perf_counter() - t
    return {"lines": rows, "lines_per_s": rows / dt, "load_start": la0, "load_end": load(), "commit": OLD_COMMIT}


def measure_new_on(prefix: Path, work: Path) -> dict[str, Any]:
    """The new prepare on the same prefix as the old and TorchRec readers."""
    return measure_prepare(prefix, work / "prepared_prefix", 0)


def measure_libs(prefix: Path, repeats: int = 2) -> dict[str, Any]:
    """The two candidate CSV readers on the same prefix, 2 threads: pyarrow's (fields as
    bytes, then the hex ids through NumPy as the reader does) and polars's (typed columns,
    then its own hex-to-integer conversion)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from embedlab.data.criteo_read import _NAMES, _hex_column

    n = sum(1 for _ in open(prefix, "rb"))
    pa.set_cpu_count(2)
    out: dict[str, Any] = {"lines": n, "pyarrow_threads": 2, "polars_threads": pl.thread_pool_size()}

    def arrow(convert: bool) -> None:
        t = pacsv.read_csv(prefix, read_options=pacsv.ReadOptions(column_names=_NAMES),
                           parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                           convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in _NAMES},
                                                                strings_can_be_null=False))  # fmt: skip
        if convert:
            for j in range(26):
                _hex_column(t.column(14 + j).combine_chunks())

    def polars() -> None:
        schema = {"label": pl.Int8, **{f"I{i}": pl.Int64 for i in range(1, 14)}, **{f"C{j}": pl.String for j in range(1, 27)}}
        df = pl.read_csv(prefix, separator="\t", has_header=False, schema=schema, quote_char=None)
        df.select([pl.col(f"C{j}").str.to_integer(base=16, strict=False).cast(pl.UInt32) for j in range(1, 27)])

    for name, fn in (("pyarrow_bytes", lambda: arrow(False)), ("pyarrow_bytes_then_numpy_hex", lambda: arrow(True)),
                     ("polars_typed_then_hex", polars)):  # fmt: skip
        rates = []
        for _ in range(repeats):
            la0 = load()
            t = time.perf_counter()
            fn()
            rates.append({"lines_per_s": n / (time.perf_counter() - t), "load_start": la0, "load_end": load()})
        out[name] = rates
    return out


def measure_resize(prepared: Path) -> dict[str, Any]:
    import embedlab.data.criteo_read as cr
    from embedlab.data.prepared import (
        BlockStream,
        Prepared,
        modulo_mapper,
        split_ranges,
        train_counts,
    )
    from embedlab.data.vocab import Vocabulary

    def no_parse(*a: Any, **k: Any) -> Any:
        raise AssertionError("re-sizing parsed text")

    cr.parse_block = no_parse  # type: ignore[assignment]
    prep = Prepared.open(prepared)
    a, b = split_ranges(prep, "kaggle")["train"]
    shutil.rmtree(prepared / "counts", ignore_errors=True)
    out: dict[str, Any] = {"train_rows": b - a}
    la0 = load()
    t = time.perf_counter()
    counts = train_counts(prep, a, b)
    out["counts_first_s"] = time.perf_counter() - t
    t = time.perf_counter()
    counts = train_counts(prep, a, b)
    out["counts_cached_s"] = time.perf_counter() - t
    for mc in (2, 10):
        t = time.perf_counter()
        v = Vocabulary(tuple(u[c >= mc].astype(np.int64) for u, c in counts), mc)
        out[f"vocab_min_count_{mc}_s"] = time.perf_counter() - t
        out[f"vocab_min_count_{mc}_rows"] = int(sum(v.table_sizes))
    for cap in (100_000, 10_000_000):
        sizes = [min(c, cap) for c in CARDS]
        st = BlockStream(prep, a, b, [modulo_mapper(s) for s in sizes])
        t = time.perf_counter()
        st.read_window(st._windows(0, 0)[0], 0, 0, 0)
        out[f"modulo_cap_{cap}_window_s"] = time.perf_counter() - t
    out["window_rows"] = 8 * (1 << 16)
    out["load_start"], out["load_end"] = la0, load()
    return out


def measure_train(prepared: Path, steps: int, rounds: int, batch: int, inmem_rows: int, max_rows: int,
                  model_size: str, warmup: int = 20) -> dict[str, Any]:  # fmt: skip
    import torch

    from embedlab.data.criteo import criteo_schema
    from embedlab.data.prepared import (
        BlockStream,
        Prepared,
        modulo_mapper,
        split_arrays,
        split_ranges,
    )
    from embedlab.data.schema import iter_batches
    from embedlab.train.trainer import TrainConfig, build_model, step_on_batch

    prep = Prepared.open(prepared)
    a, b = split_ranges(prep, "kaggle")["train"]
    sizes = [min(c, max_rows) for c in CARDS]
    mappers = [modulo_mapper(s) for s in sizes]
    schema = criteo_schema(sizes)
    n_mem = min(inmem_rows, b - a)
    lazy = split_arrays(prep, a, a + n_mem, mappers)
    t = time.perf_counter()
    from embedlab.data.schema import CTRArrays

    mem = CTRArrays(dense=np.asarray(lazy.dense), sparse=[np.asarray(c) for c in lazy.sparse],
                    labels=np.asarray(lazy.labels, dtype=np.float32))  # fmt: skip
    materialize_s = time.perf_counter() - t
    stream = BlockStream(prep, a, b, mappers)
    cfg = TrainConfig(data="criteo", model_size=model_size, optimizer="sgd", batch_size=batch, tables="hash")
    torch.manual_seed(0)
    model, opts = build_model(cfg, schema)
    fused = model.fused_optimizer()

    def run(batches: Any, n: int) -> float:
        t0 = time.perf_counter()
        for _, bt in zip(range(n), batches):
            step_on_batch(model, opts, bt)
        return n * batch / (time.perf_counter() - t0)

    mem_it = iter_batches(mem, schema, batch, seed=0, epoch=0)
    str_it = stream.batches(schema, batch, seed=0, epoch=0)
    run(mem_it, warmup)  # first touches of the tables' pages and of the in-memory arrays
    run(str_it, warmup)
    rss0 = vm("VmRSS")
    res: dict[str, Any] = {"rounds": []}
    for r in range(rounds):
        order = ["in_memory", "streaming"] if r % 2 == 0 else ["streaming", "in_memory"]
        rec: dict[str, Any] = {"load_start": load()}
        for name in order:
            rec[name] = run(mem_it if name == "in_memory" else str_it, steps)
        rec["load_end"] = load()
        res["rounds"].append(rec)
    for name in ("in_memory", "streaming"):
        res[f"{name}_samples_per_s_median"] = float(np.median([r[name] for r in res["rounds"]]))
    res["streaming_over_in_memory"] = float(np.median([r["streaming"] / r["in_memory"] for r in res["rounds"]]))
    res.update({"warmup_steps": warmup, "steps_per_round": steps, "batch_size": batch, "model_size": model_size, "optimizer": "sgd",
                "table_cap": max_rows, "inmem_rows": n_mem, "stream_rows": b - a,
                "inmem_materialize_s": materialize_s, "rss_before_timed_bytes": rss0,
                "rss_after_timed_bytes": vm("VmRSS"),
                "embedding_kernel": model.embedding_kernel, "fused": fused is not None,
                "threads": torch.get_num_threads()})  # fmt: skip
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=KAGGLE_LINES)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "criteo_io")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "criteo_io.json")
    ap.add_argument("--gzip-level", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="prepare's parallel blocks (0: its default)")
    ap.add_argument("--torchrec-lines", type=int, default=2_000_000)
    ap.add_argument("--old-lines", type=int, default=2_000_000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps of each path first")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--inmem-rows", type=int, default=4_000_000)
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    ap.add_argument("--model-size", default="small")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: gzip,torchrec,old,libs,resize,train")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                    "python": platform.python_version(), "shared": "other jobs ran on the same cores; see load"},
        "lines": args.lines, "load_start": load(),
    }  # fmt: skip
    t = time.perf_counter()
    plain, gz = generate(args.work, args.lines, args.gzip_level)
    result["generate"] = {"seconds_this_run": time.perf_counter() - t, "plain_bytes": plain.stat().st_size,
                          "gzip_bytes": gz.stat().st_size, "gzip_level": args.gzip_level}  # fmt: skip
    prepared = args.work / "prepared_plain"
    result["prepare_plain"] = measure_prepare(plain, prepared, args.workers, cold=True)
    result["prepare_plain"]["folder"] = folder_size(prepared)
    print(json.dumps(result["prepare_plain"]), flush=True)
    result["prepare_plain_warm"] = measure_prepare(plain, prepared, args.workers)
    print(json.dumps(result["prepare_plain_warm"]), flush=True)
    if "gzip" not in skip:
        result["prepare_gzip"] = measure_prepare(gz, args.work / "prepared_gzip", args.workers, cold=True)
        shutil.rmtree(args.work / "prepared_gzip", ignore_errors=True)
        print(json.dumps(result["prepare_gzip"]), flush=True)
    if "torchrec" not in skip or "old" not in skip:
        n_prefix = max(args.torchrec_lines, args.old_lines)
        prefix = prefix_file(plain, min(n_prefix, args.lines), args.work / f"prefix_{min(n_prefix, args.lines)}.txt")
        result["prepare_prefix"] = measure_new_on(prefix, args.work)
        if "torchrec" not in skip:
            tr_prefix = prefix_file(plain, min(args.torchrec_lines, args.lines), args.work / f"prefix_{min(args.torchrec_lines, args.lines)}.txt")
            result["torchrec"] = measure_torchrec(tr_prefix, args.work)
            print(json.dumps(result["torchrec"]), flush=True)
        if "old" not in skip:
            old_prefix = prefix_file(plain, min(args.old_lines, args.lines), args.work / f"prefix_{min(args.old_lines, args.lines)}.txt")
            result["old_reader"] = measure_old(old_prefix)
            print(json.dumps(result["old_reader"]), flush=True)
    if "libs" not in skip:
        lib_prefix = prefix_file(plain, min(500_000, args.lines), args.work / f"prefix_{min(500_000, args.lines)}.txt")
        result["libs"] = measure_libs(lib_prefix)
        print(json.dumps(result["libs"]), flush=True)
    if "resize" not in skip:
        result["resize"] = measure_resize(prepared)
        print(json.dumps(result["resize"]), flush=True)
    if "train" not in skip:
        result["train"] = measure_train(prepared, args.steps, args.rounds, args.batch_size, args.inmem_rows,
                                        args.max_rows, args.model_size, args.warmup)  # fmt: skip
        print(json.dumps({k: v for k, v in result["train"].items() if k != "rounds"}), flush=True)
    p = result["prepare_plain"]
    summary = {
        "prepare_plain_lines_per_s": p["lines_per_s"],
        "prepare_plain_page_cache": p["page_cache"],
        "prepare_plain_warm_lines_per_s": result["prepare_plain_warm"]["lines_per_s"],
        "prepare_gzip_lines_per_s": result.get("prepare_gzip", {}).get("lines_per_s"),
        "prepare_peak_rss_gib": max(p["peak_rss_bytes"], result.get("prepare_gzip", {}).get("peak_rss_bytes", 0)) / 2**30,
        "cache_gib": p["folder"]["total_bytes"] / 2**30,
        "cache_ids_gib": p["folder"]["ids_bytes"] / 2**30,
    }  # fmt: skip
    if "old_reader" in result:
        old_rate = result["old_reader"]["lines_per_s"]
        summary["speedup_over_old_reader_same_prefix"] = result["prepare_prefix"]["lines_per_s"] / old_rate
        summary["speedup_over_old_reader_full_cold"] = p["lines_per_s"] / old_rate
        summary["speedup_over_old_reader_full_warm"] = result["prepare_plain_warm"]["lines_per_s"] / old_rate
    if "torchrec" in result:
        summary["speedup_over_torchrec_tsv_to_npys_same_prefix"] = result["prepare_prefix"]["lines_per_s"] / result["torchrec"]["tsv_to_npys_lines_per_s"]
    if "train" in result:
        summary["streaming_over_in_memory_samples_per_s"] = result["train"]["streaming_over_in_memory"]
    result["summary"] = summary
    result["load_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
