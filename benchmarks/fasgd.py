"""Frequency-aware embedding optimizers against SGD and the adaptive ones, on two data sets.

Data: MovieLens-100k (the loader's time split, label ``rating >= 4``) and planted-truth
synthetic CTR at the Criteo-like configuration (26 tables, Kaggle-like cardinalities capped
at 300k) with strongly imbalanced ids (Zipf exponents drawn from 0.8 to 1.3), ``--rows``
training rows.

Protocol (the test split is used for no choice):

* Only the **embedding** optimizer varies: every run trains the MLPs with Adam at a fixed
  rate (``--dense-optimizer adam``; MovieLens 1e-3 and synthetic 3e-3, the rates chosen on
  validation earlier for these data), so differences come from the embedding updates.
* Embedding optimizers: SGD, Adagrad, row-wise Adagrad, Adam (FBGEMM-fused where FBGEMM's
  CPU kernels have them; Adam through ``SparseAdam``), FA-SGD (frequencies: occurrences in
  the training split) and CF-SGD (FBGEMM's fused counter mode; unit ``batch``). Each gets a
  4-point embedding learning-rate grid (:data:`GRIDS`, half-decade steps) on seed 0,
  extended by half a decade while the best validation AUC sits at an end (at most 5
  extensions, the same rule for every optimizer); the best validation AUC picks its rate; seeds 1 and 2 are then trained at that rate. Same
  model, batch and number of epochs for all.
* Reported on test, mean ± sample sd over the 3 seeds: AUC, logloss, NE, and AUC on the
  **tail rows**: rows where most of the data set's id features carry ids seen fewer than
  10 times in training (MovieLens: ``item_id``; synthetic: the 8 tables of >= 90k rows, at
  least 5 of 8 rare); also the embedding optimizer's state in bytes.
* **Ablation** of CF-SGD's unpublished choices (seed 0, at CF-SGD's chosen rate, on our
  sparse-gradient implementation): counting unit batch / occurrence / sample, and exponent
  0.5 vs 1.0; the batch-unit run also checks our implementation against FBGEMM's.
* **Step time**: every optimizer's training step (forward, backward, update; the data
  set's model and batch) timed in interleaved rounds in one process, median per optimizer,
  as a ratio to SGD on the same embedding kernel (fused or sparse).

Usage::

    .venv/bin/python benchmarks/fasgd.py --out benchmarks/results/fasgd.json
    .venv/bin/python benchmarks/fasgd.py --quick --out /tmp/fasgd.json   # smoke test

Runs are cached in ``--work`` (a finished run is not rerun after a crash).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.data.registry import CTRData, load_data  # noqa: E402
from embedlab.data.schema import iter_batches  # noqa: E402
from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.train.checkpoint import load_checkpoint  # noqa: E402
from embedlab.train.metrics import ctr_metrics  # noqa: E402
from embedlab.train.trainer import (  # noqa: E402
    TrainConfig,
    build_model,
    predict,
    saved_config_matches,
    step_on_batch,
    train,
)

OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad", "adam", "fa-sgd", "cf-sgd")
GRIDS: dict[str, tuple[float, ...]] = {
    "sgd": (0.01, 0.03, 0.1, 0.3),
    "adagrad": (0.003, 0.01, 0.03, 0.1),
    "rowwise_adagrad": (0.003, 0.01, 0.03, 0.1),
    "adam": (1e-4, 3e-4, 1e-3, 3e-3),
    "fa-sgd": (0.1, 0.3, 1.0, 3.0),
    "cf-sgd": (0.03, 0.1, 0.3, 1.0),
}
DATASETS: dict[str, dict[str, Any]] = {
    "movielens": {"model_size": "small", "batch_size": 256, "epochs": 1, "lr": 1e-3, "tail_features": ["item_id"], "tail_min": 1},
    "synth-zipf": {"model_size": "small", "batch_size": 512, "epochs": 1, "lr": 3e-3, "tail_features": "large", "tail_min": 5},
}  # fmt: skip
SEEDS = (0, 1, 2)
RARE = 10
#: Grid extension: while the best validation AUC sits at an end of an optimizer's grid, one
#: more point half a decade further is tried (at most MAX_EXTENSIONS), for every optimizer.
STEP = 10**0.5
MAX_EXTENSIONS = 5
DATA_OPTIONS: dict[str, dict[str, Any]] = {}  # recorded in each run's config (set in main)


def tail_mask(data: CTRData, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Test rows where at least ``tail_min`` of the id features' ids are rare in training."""
    names = data.schema.sparse_names
    feats = spec["tail_features"]
    if feats == "large":
        feats = [n for n, s in zip(names, data.schema.table_sizes) if s >= 90_000]
    rare = np.zeros(len(data.test), dtype=np.int64)
    for f in feats:
        i = names.index(f)
        tr = np.asarray(data.train.sparse[i]).reshape(-1)
        counts = np.bincount(tr[tr >= 0], minlength=data.schema.table_sizes[i])
        te = np.asarray(data.test.sparse[i])
        if te.ndim != 1:
            raise ValueError(f"tail feature {f} must be one id per row")
        rare += (np.where(te >= 0, counts[np.maximum(te, 0)], RARE) < RARE).astype(np.int64)
    return rare >= spec["tail_min"], feats


#: fasgd.json tuned CF-SGD / FA-SGD's plain learning rate (the paper's rule).
PLAIN = {"cf-sgd": {"lr_rule": "plain"}, "fa-sgd": {"lr_rule": "plain"}}


def run(data: CTRData, name: str, opt: str, elr: float, seed: int, work: Path, quick: bool,
        options: dict[str, Any] | None = None, kernel: str = "auto") -> dict[str, Any]:  # fmt: skip
    data_options = DATA_OPTIONS.get(name, {})
    """Train one run (cached) and return its metrics plus test predictions' tail AUC."""
    spec = DATASETS[name]
    cfg = TrainConfig(
        data=name if name == "movielens" else "synth", data_options=data_options,
        model_size=spec["model_size"], optimizer=opt, lr=spec["lr"], embedding_lr=elr,
        dense_optimizer="adam", batch_size=spec["batch_size"], epochs=spec["epochs"],
        max_steps=30 if quick else None, seed=seed, checkpoint_every=0, threads=1,
        optimizer_options={**PLAIN.get(opt, {}), **(options or {})}, embedding_kernel=kernel,
        tables="hash", embedding_init=None, early_stop_patience=None,  # as fasgd.json was measured
    )  # fmt: skip
    tag = f"{name}/{opt}-{kernel}-{elr:g}-s{seed}" + "".join(
        f"-{k}{v}" for k, v in sorted((options or {}).items())
    )
    out = work / tag
    if (out / "result.json").is_file() and saved_config_matches(out, cfg):
        return read_json(out / "result.json")
    m = train(cfg, out, data=data, show_progress=False)
    # test predictions of the final model, for the tail AUC
    ck = load_checkpoint(out / "checkpoint.pt")
    freqs = None
    from embedlab.optim.registry import get_optimizer

    if get_optimizer(opt).needs_frequencies:
        from embedlab.optim.frequency import count_ids

        freqs = count_ids(data.train.sparse, data.schema.table_sizes)
    model, _ = build_model(cfg, data.schema, freqs)
    model.load_state_dict(ck["model"])
    p = predict(model, data.test, data.schema)
    mask, _ = tail_mask(data, spec)
    y = np.asarray(data.test.labels, dtype=np.float64)
    tail = ctr_metrics(y[mask], p[mask]) if mask.sum() > 1 else {"auc": float("nan")}
    res = {k: m[k] for k in ("valid_auc", "valid_logloss", "test_auc", "test_logloss", "test_ne", "optimizer_state_bytes_embedding",
                             "embedding_kernel", "train_samples_per_s", "wall_time_s")}  # fmt: skip
    res.update({"tail_auc": tail["auc"], "tail_rows": int(mask.sum()), "optimizer": opt, "embedding_lr": elr, "seed": seed,
                "options": options or {}, "kernel_requested": kernel})  # fmt: skip
    write_json(out / "result.json", res)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return res


def time_steps(
    data: CTRData, name: str, configs: list[tuple[str, str, str, float]], steps: int, rounds: int
) -> dict[str, float]:
    """Median ms per training step of each (label, optimizer, kernel, lr), interleaved rounds."""

    spec = DATASETS[name]
    torch.set_num_threads(1)
    built = []
    for label, opt, kernel, elr in configs:
        cfg = TrainConfig(model_size=spec["model_size"], optimizer=opt, lr=spec["lr"], embedding_lr=elr, dense_optimizer="adam",
                          batch_size=spec["batch_size"], embedding_kernel=kernel, optimizer_options=PLAIN.get(opt, {}),
                          embedding_init=None)  # fmt: skip
        freqs = None
        if opt == "fa-sgd":
            from embedlab.optim.frequency import count_ids

            freqs = count_ids(data.train.sparse, data.schema.table_sizes)
        model, opts = build_model(cfg, data.schema, freqs)
        batches = list(iter_batches(data.train, data.schema, spec["batch_size"], seed=0))[
            : steps + 3
        ]
        built.append((label, model, opts, batches))
    times: dict[str, list[float]] = {label: [] for label, *_ in configs}
    for r in range(rounds):
        for label, model, opts, batches in built[r % len(built) :] + built[: r % len(built)]:
            for k, b in enumerate(batches):
                observe = getattr(opts[1], "observe", None) if len(opts) > 1 else None
                t0 = time.perf_counter()
                if observe is not None and getattr(opts[1], "unit", "batch") != "batch":
                    per_key = b.sparse.to_dict()
                    for n, w in zip(data.schema.sparse_names, model.embedding_parameters()):
                        observe(w, per_key[n].values(), per_key[n].offsets())
                step_on_batch(model, opts, b)
                if k >= 3:  # warm-up steps of each round untimed
                    times[label].append((time.perf_counter() - t0) * 1e3)
    return {label: statistics.median(v) for label, v in times.items()}


def mean_sd(xs: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(xs),
        "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "values": xs,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--work", default="benchmarks/.work/fasgd")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/fasgd.json")
    args = ap.parse_args(argv)
    work = Path(args.work)
    t_start = time.perf_counter()
    doc: dict[str, Any] = {
        "benchmark": "frequency-aware embedding optimizers (FA-SGD, CF-SGD) vs SGD and adaptive optimizers",
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "machine": describe(), "quick": args.quick, "seeds": list(SEEDS), "grids": GRIDS, "datasets": {},
        "selection": "embedding lr per optimizer by seed-0 validation AUC; test used for no choice",
        "dense_optimizer": "adam at a fixed rate per data set (only the embedding optimizer varies)",
    }  # fmt: skip
    from embedlab.data.synth import SynthConfig, generate

    for name in args.datasets:
        if name == "movielens":
            data = load_data("movielens")
        else:
            d = work / f"synth-{args.rows}"
            if not (d / "meta.json").is_file():
                generate(SynthConfig(rows=args.rows, seed=0, zipf_range=(0.8, 1.3)), d)
            data = load_data("synth", data_dir=str(d))
            DATA_OPTIONS[name] = {"data_dir": str(d)}
        mask, feats = tail_mask(data, DATASETS[name])
        grids = {o: (g[1:3] if args.quick else g) for o, g in GRIDS.items()}
        seeds = SEEDS[:2] if args.quick else SEEDS
        entry: dict[str, Any] = {"tail_features": feats, "tail_rows": int(mask.sum()), "test_rows": len(data.test),
                                 "config": DATASETS[name], "optimizers": {}}  # fmt: skip
        if name != "movielens":
            entry["bayes_test_auc"] = data.info.get("bayes", {}).get("test", {}).get("auc")
        doc["datasets"][name] = entry
        for opt in OPTIMIZERS:
            lrs = list(grids[opt])
            grid = [run(data, name, opt, lr, 0, work, args.quick) for lr in lrs]
            for _ in range(0 if args.quick else MAX_EXTENSIONS):  # extend past an edge optimum
                best_i = max(range(len(grid)), key=lambda i: grid[i]["valid_auc"])
                if 0 < best_i < len(grid) - 1:
                    break
                lr = lrs[0] / STEP if best_i == 0 else lrs[-1] * STEP
                r = run(data, name, opt, float(f"{lr:.3g}"), 0, work, args.quick)
                if best_i == 0:
                    lrs.insert(0, r["embedding_lr"])
                    grid.insert(0, r)
                else:
                    lrs.append(r["embedding_lr"])
                    grid.append(r)
            best = max(grid, key=lambda r: r["valid_auc"])
            runs = [best] + [
                run(data, name, opt, best["embedding_lr"], s, work, args.quick) for s in seeds[1:]
            ]
            entry["optimizers"][opt] = {
                "grid": [{"embedding_lr": r["embedding_lr"], "valid_auc": r["valid_auc"]} for r in grid],
                "chosen_lr": best["embedding_lr"], "chosen_at_grid_edge": best["embedding_lr"] in (lrs[0], lrs[-1]), "grid_points": len(lrs),
                "kernel": best["embedding_kernel"], "state_bytes": best["optimizer_state_bytes_embedding"],
                **{k: mean_sd([r[k] for r in runs]) for k in ("test_auc", "test_logloss", "test_ne", "tail_auc", "valid_auc")},
            }  # fmt: skip
            o = entry["optimizers"][opt]
            print(f"{name} {opt:16s} lr {o['chosen_lr']:g} test AUC {o['test_auc']['mean']:.4f}±{o['test_auc']['sd']:.4f} "
                  f"tail {o['tail_auc']['mean']:.4f} state {o['state_bytes']:,} B", flush=True)  # fmt: skip
            write_json(
                args.out, {**doc, "complete": False, "wall_s": time.perf_counter() - t_start}
            )
        # ablation of CF-SGD's choices on the sparse-gradient implementation (seed 0)
        lr = entry["optimizers"]["cf-sgd"]["chosen_lr"]
        abl = {}
        for label, options in (("unit=batch", {"unit": "batch"}), ("unit=occurrence", {"unit": "occurrence"}),
                               ("unit=sample", {"unit": "sample"}), ("exponent=1", {"unit": "batch", "exponent": 1.0})):  # fmt: skip
            r = run(data, name, "cf-sgd", lr, 0, work, args.quick, options=options, kernel="sparse")
            abl[label] = {
                k: r[k]
                for k in ("valid_auc", "test_auc", "tail_auc", "optimizer_state_bytes_embedding")
            }
        entry["cf_sgd_ablation"] = {"lr": lr, "seed": 0, "kernel": "sparse", "runs": abl,
                                    "fused_fbgemm_seed0": {k: entry["optimizers"]["cf-sgd"][k]["values"][0] for k in ("valid_auc", "test_auc")}}  # fmt: skip
        # step time, interleaved
        cfgs = [(o, o, "auto", entry["optimizers"][o]["chosen_lr"]) for o in OPTIMIZERS]
        cfgs += [("sgd/sparse", "sgd", "sparse", entry["optimizers"]["sgd"]["chosen_lr"]),
                 ("cf-sgd/sparse", "cf-sgd", "sparse", lr)]  # fmt: skip
        ms = time_steps(
            data, name, cfgs, steps=10 if args.quick else 40, rounds=2 if args.quick else 5
        )
        kern = {o: entry["optimizers"][o]["kernel"] for o in OPTIMIZERS}
        kern.update({"sgd/sparse": "sparse", "cf-sgd/sparse": "sparse"})
        ref = {"fused": ms["sgd"], "sparse": ms["sgd/sparse"]}
        entry["step_time"] = {label: {"ms": v, "kernel": kern[label], "ratio_to_sgd_same_kernel": v / ref[kern[label]],
                                      "ratio_to_fused_sgd": v / ms["sgd"]} for label, v in ms.items()}  # fmt: skip
        write_json(args.out, {**doc, "complete": False, "wall_s": time.perf_counter() - t_start})
    doc.update({"complete": True, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "wall_s": time.perf_counter() - t_start})  # fmt: skip
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
