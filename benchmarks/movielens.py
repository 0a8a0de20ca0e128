"""MovieLens-100k: DLRM against a popularity baseline and a logistic regression.

The issue's benchmark: test AUC and logloss of DLRM, of item popularity and of a
scikit-learn logistic regression on the same features, on the same 80/10/10 time split
(``load_data("movielens")``, label ``rating >= 4``), over 3 seeds. Goal: DLRM test AUC
>= 0.73.

Everything is run twice, once per **variant** of the loader's features:

* ``history`` (the loader's default, ``history=True``): the 3 side dense features plus
  the 6 causal history features of :mod:`embedlab.data.movielens` (the user's and the
  item's number of strictly earlier ratings, smoothed earlier positive rate and smoothed
  earlier mean rating; prequential: valid/test rows see the labels of earlier valid/test
  rows, as a deployed recommender would);
* ``no_history`` (``history=False``): the 3 side dense features only (the old schema).

The sparse features are the same in both. Every method of a variant gets that variant's
features, and the DLRM grid is tuned separately on each variant's validation split, so
the two columns of the summary table differ only by the history features. Which variant
is the loader's default is decided by the DLRM validation AUC (recorded under
``history_default``), never by test numbers.

Protocol within a variant (the test split is never used for a choice):

* **popularity**: :func:`embedlab.train.baselines.popularity_scores` on ``item_id``
  (smoothing 10 pseudo-counts), the item's positive rate on the training split. It uses
  no dense feature, so it is the same in both variants. Deterministic, so it is computed
  once and the same numbers stand for every seed (std 0).
* **popularity_online** (``history`` only): the ``item_hist_rate`` feature itself as the
  score, i.e. item popularity updated online from all strictly earlier interactions
  (smoothed toward the training positive rate) -- popularity given the same history
  information as the other methods. Nothing is fit. Deterministic.
* **logistic regression**: :func:`embedlab.train.baselines.logistic_regression_scores`,
  ``C`` chosen on validation logloss among :data:`LOGREG_CS` (0.001 to 3), once with all
  sparse features and once with the issue's subset ``user_id, item_id, age_bucket,
  gender, occupation``; both also use all dense features of the variant (3 or 9).
  Deterministic (lbfgs), computed once.
* **DLRM**: :func:`embedlab.train.trainer.train` with ``data="movielens"`` (the loaded
  :class:`CTRData` is passed in, ``data_options`` records the variant, run folders live
  in a temporary folder). A small grid (:data:`GRID`: model size, optimizer, learning
  rate, batch size) is run on seed 0 for :data:`MAX_EPOCHS` epochs each with a
  validation evaluation after every epoch (``eval_every`` = one epoch). With the
  constant learning rate and the data order a pure function of ``(seed, epoch)``, the
  model after epoch ``k`` of that run is exactly the model of a run with ``epochs=k``, so
  every ``(config, epochs)`` pair gets a validation AUC from one run per config. The pair
  with the best validation AUC is then trained as a full run (``epochs`` = the chosen
  number) on every seed and scored on test; the seed-0 rerun's validation AUC is recorded
  next to the grid's as a check of that equivalence.

Means and standard deviations are over seeds (sample std, ``ddof=1``). The top-level
``methods``, ``dlrm_grid`` and ``goal`` of the result are those of the default variant;
``variants`` holds both and ``history_effect`` compares them.

Usage::

    .venv/bin/python benchmarks/movielens.py                 # full: 3 seeds, both variants
    .venv/bin/python benchmarks/movielens.py --quick         # smoke test: tiny grid
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.data.registry import CTRData, load_data
from embedlab.data.schema import num_batches
from embedlab.io import ensure_dir, write_json
from embedlab.machine import cpu_model  # noqa: E402
from embedlab.train.baselines import DEFAULT_CS, logistic_regression_scores, popularity_scores
from embedlab.train.metrics import ctr_metrics
from embedlab.train.trainer import TrainConfig, train

GOAL_AUC = 0.73
ISSUE_FEATURES = ("user_id", "item_id", "age_bucket", "gender", "occupation")
MAX_EPOCHS = 5

#: The DLRM grid (seed 0, each run MAX_EPOCHS epochs with a valid eval after each epoch),
#: the same for both variants. Sizes are ``dim:bottom:top`` or the named ``small``
#: (16:128-64:128-64) and ``tiny`` (8:32:32). MovieLens-100k has 80k training rows, and only
#: ~15% of valid/test rows come from users seen in training (the split is by time), so
#: small models and few epochs. ``embedding_lr`` (None: the same as ``lr``) lets the dense
#: layers learn at ``lr`` while the id embeddings, which mostly memorize training users,
#: move slowly: the last six settings were added with the history features.
GRID: list[dict[str, Any]] = [
    {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "batch_size": 512},
    {"model_size": "tiny", "optimizer": "adam", "lr": 1e-3, "batch_size": 512},
    {"model_size": "tiny", "optimizer": "adam", "lr": 1e-3, "batch_size": 256},
    {"model_size": "small", "optimizer": "rowwise_adagrad", "lr": 0.01, "batch_size": 512},
    {"model_size": "small", "optimizer": "rowwise_adagrad", "lr": 0.05, "batch_size": 512},
    {"model_size": "small", "optimizer": "rowwise_adagrad", "lr": 0.02, "batch_size": 1024},
    {"model_size": "16:64:64-32", "optimizer": "rowwise_adagrad", "lr": 0.02, "batch_size": 256},
    {"model_size": "tiny", "optimizer": "rowwise_adagrad", "lr": 0.03, "batch_size": 512},
    {"model_size": "4:32:32", "optimizer": "rowwise_adagrad", "lr": 0.02, "batch_size": 512},
    {
        "model_size": "32:128-64:128-64",
        "optimizer": "rowwise_adagrad",
        "lr": 0.01,
        "batch_size": 512,
    },
    {"model_size": "4:32:32", "optimizer": "adam", "lr": 3e-3, "batch_size": 512},
    {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "embedding_lr": 1e-4,
     "batch_size": 512},
    {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "embedding_lr": 3e-5,
     "batch_size": 512},
    {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "embedding_lr": 1e-5,
     "batch_size": 512},
    {"model_size": "small", "optimizer": "adam", "lr": 1e-3, "embedding_lr": 1e-4,
     "batch_size": 256},
    {"model_size": "small", "optimizer": "adam", "lr": 3e-4, "embedding_lr": 1e-4,
     "batch_size": 512},
]  # fmt: skip
GRID = [{"embedding_lr": None, **g} for g in GRID]
SETTING_KEYS = ("model_size", "optimizer", "lr", "embedding_lr", "batch_size")

#: ``--quick``: two configs, two epochs (a smoke test of the whole pipeline).
QUICK_GRID = [GRID[8], GRID[11]]
QUICK_EPOCHS = 2
QUICK_CS = (0.1, 1.0)
#: Logistic regression's C list: the library default extended downward, because with the
#: history features the best C was 0.01, the smallest of :data:`DEFAULT_CS`.
LOGREG_CS = (0.001, 0.003, *DEFAULT_CS)


def summarize(per_seed: list[dict[str, float]], keys=("auc", "logloss")) -> dict[str, Any]:
    """Mean, sample std and per-seed values of ``keys`` over the seeds' test metrics."""
    out: dict[str, Any] = {}
    for k in keys:
        v = np.array([m[k] for m in per_seed], dtype=np.float64)
        out[k] = {
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "per_seed": [float(x) for x in v],
        }
    return out


def score_splits(data: CTRData, probs: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {s: ctr_metrics(data.split(s).labels, probs[s]) for s in ("valid", "test")}


def deterministic_method(name: str, data: CTRData, seeds: list[int], probs, info=None) -> dict:
    m = score_splits(data, probs)
    print(
        f"{name}: valid AUC {m['valid']['auc']:.4f}  test AUC {m['test']['auc']:.4f} "
        f"logloss {m['test']['logloss']:.4f}",
        flush=True,
    )
    return {
        "deterministic": True,
        "note": "no randomness: computed once, the same for every seed",
        "valid": m["valid"],
        "test": summarize([m["test"]] * len(seeds)),
        **({"info": info} if info is not None else {}),
    }


def dlrm_config(
    setting: dict[str, Any], epochs: int, seed: int, threads: int | None, history: bool = True
) -> TrainConfig:
    return TrainConfig(
        data="movielens",
        data_options={"history": history},
        model_size=setting["model_size"],
        optimizer=setting["optimizer"],
        lr=setting["lr"],
        embedding_lr=setting.get("embedding_lr"),
        batch_size=setting["batch_size"],
        epochs=epochs,
        seed=seed,
        checkpoint_every=0,
        log_every=10**9,
        threads=threads,
        tables="hash", embedding_init=None, early_stop_patience=None,  # as movielens.json was measured
    )


def run_grid(
    data: CTRData, grid, max_epochs: int, threads: int | None, tmp: Path, history: bool
) -> list[dict]:
    """Seed 0, each setting ``max_epochs`` epochs with a valid evaluation after each epoch."""
    rows = []
    for i, setting in enumerate(grid):
        per_epoch = num_batches(len(data.train), setting["batch_size"])
        cfg = dlrm_config(setting, max_epochs, 0, threads, history)
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "eval_every": per_epoch})
        run = tmp / f"grid{i}"
        t = time.perf_counter()
        final = train(cfg, run, data=data, show_progress=False)
        wall = time.perf_counter() - t
        recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
        valid = {
            r["step"] // per_epoch: r["valid_auc"]
            for r in recs
            if "valid_auc" in r and "test_auc" not in r
        }
        valid[max_epochs] = final["valid_auc"]  # the last epoch is evaluated as the final metrics
        per_epoch_auc = [float(valid[e]) for e in range(1, max_epochs + 1)]
        variant = "history" if history else "no_history"
        curve = [round(a, 4) for a in per_epoch_auc]
        print(
            f"grid {i} ({variant}): {setting} valid AUC by epoch {curve} ({wall:.1f}s)",
            flush=True,
        )
        rows.append({**setting, "valid_auc_by_epoch": per_epoch_auc, "wall_s": wall})
    return rows


def choose(rows: list[dict]) -> tuple[dict, int, float]:
    """The (setting, epochs) with the best valid AUC (ties: earlier in the grid, fewer epochs)."""
    best = None
    for row in rows:
        for e, a in enumerate(row["valid_auc_by_epoch"], start=1):
            if best is None or a > best[2]:
                best = ({k: row.get(k) for k in SETTING_KEYS}, e, a)
    assert best is not None
    return best


VARIANTS = {"history": True, "no_history": False}


def run_variant(
    history: bool, grid, max_epochs: int, cs, seeds: list[int], threads: int | None
) -> tuple[CTRData, dict[str, Any]]:
    """All methods on ``load_data("movielens", history=history)``; see the module docstring."""
    name = "history" if history else "no_history"
    print(f"\n=== variant {name} ===", flush=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    data = load_data("movielens", history=history)

    methods: dict[str, Any] = {}
    t = time.perf_counter()
    methods["popularity"] = deterministic_method(
        "popularity",
        data,
        seeds,
        popularity_scores(data, "item_id", smoothing=10.0),
        {"feature": "item_id", "smoothing": 10.0, "fit_on": "train split"},
    )
    timings["popularity_s"] = time.perf_counter() - t
    if history:
        j = data.schema.dense_names.index("item_hist_rate")
        probs = {s: data.split(s).dense[:, j].astype(np.float64) for s in ("valid", "test")}
        methods["popularity_online"] = deterministic_method(
            "popularity_online",
            data,
            seeds,
            probs,
            {
                "feature": "item_hist_rate",
                "note": "item positive rate over strictly earlier interactions (all splits), "
                "smoothed toward the training positive rate; nothing fit",
                **data.info["history"],
            },
        )
    for key, feats in (("logreg_all", None), ("logreg_issue_features", list(ISSUE_FEATURES))):
        t = time.perf_counter()
        probs, info = logistic_regression_scores(data, feats, Cs=cs, seed=0)
        methods[key] = deterministic_method(key, data, seeds, probs, info)
        timings[f"{key}_s"] = time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="embedlab-movielens-") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        rows = run_grid(data, grid, max_epochs, threads, tmp, history)
        timings["dlrm_grid_s"] = time.perf_counter() - t
        setting, epochs, grid_valid = choose(rows)
        print(f"chosen: {setting} epochs={epochs} (valid AUC {grid_valid:.4f})", flush=True)
        t = time.perf_counter()
        per_seed = []
        for s in seeds:
            m = train(
                dlrm_config(setting, epochs, s, threads, history),
                tmp / f"seed{s}",
                data=data,
                show_progress=False,
            )
            per_seed.append(m)
            print(
                f"DLRM seed {s}: valid AUC {m['valid_auc']:.4f}  test AUC {m['test_auc']:.4f} "
                f"logloss {m['test_logloss']:.4f} ({m['wall_time_s']:.1f}s)",
                flush=True,
            )
        timings["dlrm_seeds_s"] = time.perf_counter() - t

    test = summarize([{k: m[f"test_{k}"] for k in ("auc", "logloss")} for m in per_seed])
    seed0 = next((m for s, m in zip(seeds, per_seed, strict=True) if s == 0), None)
    methods["dlrm"] = {
        "deterministic": False,
        "config": {
            **setting,
            "epochs": epochs,
            "schedule": "constant",
            "threads": threads,
            "data_options": {"history": history},
        },
        "params": {
            k[len("params_") :]: v for k, v in per_seed[0].items() if k.startswith("params_")
        },
        "valid": summarize([{k: m[f"valid_{k}"] for k in ("auc", "logloss")} for m in per_seed]),
        "test": test,
        "seconds_per_run": [float(m["wall_time_s"]) for m in per_seed],
    }
    timings["total_s"] = time.perf_counter() - t_all
    variant = {
        "data_options": {"history": history},
        "dense_names": list(data.schema.dense_names),
        "history": data.info["history"],
        "methods": methods,
        "dlrm_grid": {
            "seed": 0,
            "max_epochs": max_epochs,
            "schedule": "constant",
            "selected_by": "valid AUC",
            "runs": rows,
            "chosen": {**setting, "epochs": epochs, "valid_auc": grid_valid},
            "seed0_rerun_valid_auc": float(seed0["valid_auc"]) if seed0 else None,
        },
        "goal": {
            "metric": "DLRM mean test AUC over seeds",
            "threshold": GOAL_AUC,
            "value": test["auc"]["mean"],
            "met": bool(test["auc"]["mean"] >= GOAL_AUC),
            "every_seed_met": bool(all(a >= GOAL_AUC for a in test["auc"]["per_seed"])),
        },
        "timings_s": timings,
    }
    return data, variant


def _valid_auc(m: dict) -> float:
    v = m["valid"]["auc"]
    return float(v["mean"] if isinstance(v, dict) else v)


def history_effect(variants: dict[str, dict]) -> dict[str, Any]:
    """Valid and test AUC of every method in both variants, and the test AUC difference."""
    out: dict[str, Any] = {}
    on, off = variants["history"]["methods"], variants["no_history"]["methods"]
    for name in dict.fromkeys([*off, *on]):
        row: dict[str, Any] = {}
        for key, ms in (("history", on), ("no_history", off)):
            if name in ms:
                row[key] = {
                    "valid_auc": _valid_auc(ms[name]),
                    "test_auc_mean": ms[name]["test"]["auc"]["mean"],
                    "test_auc_std": ms[name]["test"]["auc"]["std"],
                }
        if len(row) == 2:
            row["test_auc_gain"] = (
                row["history"]["test_auc_mean"] - row["no_history"]["test_auc_mean"]
            )
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default benchmarks/results/movielens.json, "
        "movielens_quick.json with --quick)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny grid and C list: a smoke test")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per DLRM run")
    args = ap.parse_args(argv)
    out = args.out or Path("benchmarks/results") / (
        "movielens_quick.json" if args.quick else "movielens.json"
    )
    ensure_dir(out.parent)
    grid = QUICK_GRID if args.quick else GRID
    max_epochs = QUICK_EPOCHS if args.quick else MAX_EPOCHS
    cs = QUICK_CS if args.quick else LOGREG_CS
    seeds = list(args.seeds)

    t_all = time.perf_counter()
    variants: dict[str, dict] = {}
    datas: dict[str, CTRData] = {}
    for name, history in VARIANTS.items():
        datas[name], variants[name] = run_variant(
            history, grid, max_epochs, cs, seeds, args.threads
        )

    # the loader's default: the variant whose DLRM has the better validation AUC
    grid_valid = {n: v["dlrm_grid"]["chosen"]["valid_auc"] for n, v in variants.items()}
    by_valid = max(grid_valid, key=lambda n: grid_valid[n])
    default = "history" if load_movielens_default_history() else "no_history"
    default_block = {
        "loader_default": default,
        "selected_by": "DLRM valid AUC of the chosen grid point (seed 0), per variant",
        "valid_auc": grid_valid,
        "better_on_valid": by_valid,
        "agrees": by_valid == default,
    }
    if by_valid != default:
        print(
            f"WARNING: the loader's default ({default}) is not the variant with the better "
            f"validation AUC ({by_valid})",
            flush=True,
        )
    main_v = variants[default]
    data = datas[default]

    import sklearn
    import torch
    import torchrec

    result = {
        "benchmark": "movielens-100k",
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "argv": sys.argv,
        "quick": args.quick,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "processor": platform.processor(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchrec": getattr(torchrec, "__version__", "unknown"),
            "sklearn": sklearn.__version__,
            "torch_threads_per_run": args.threads,
        },
        "data": {
            k: data.info[k]
            for k in (
                "rows",
                "users",
                "items",
                "label",
                "split",
                "splits",
                "table_sizes",
                "dense_names",
                "history",
            )  # fmt: skip
        },
        "seeds": seeds,
        "std": "sample standard deviation over seeds (ddof=1)",
        "selection": (
            "per variant: DLRM settings and epochs chosen on seed 0 by valid AUC; logistic "
            "regression C by valid logloss; the loader's history default by DLRM valid AUC; "
            "the test split is used for no choice"
        ),
        "default_variant": default,
        "history_default": default_block,
        "methods": main_v["methods"],
        "dlrm_grid": main_v["dlrm_grid"],
        "goal": main_v["goal"],
        "history_effect": history_effect(variants),
        "variants": variants,
        "timings_s": {"total_s": time.perf_counter() - t_all},
    }
    write_json(out, result)
    for name, v in variants.items():
        print(f"\n[{name}] method             valid AUC   test AUC (mean ± std)   test logloss")
        for mname, m in v["methods"].items():
            a, ll = m["test"]["auc"], m["test"]["logloss"]
            print(
                f"{mname:24s} {_valid_auc(m):.4f}     {a['mean']:.4f} ± {a['std']:.4f}"
                f"       {ll['mean']:.4f} ± {ll['std']:.4f}"
            )
    print(
        f"\ndefault variant {default} (better on valid: {by_valid}); goal DLRM test AUC >= "
        f"{GOAL_AUC}: {'met' if result['goal']['met'] else 'NOT met'}"
        f"  (total {result['timings_s']['total_s']:.0f}s) -> {out}"
    )
    return result


def load_movielens_default_history() -> bool:
    """The loader's default for ``history`` (read from its signature)."""
    import inspect

    from embedlab.data.movielens import load_movielens

    return bool(inspect.signature(load_movielens).parameters["history"].default)


if __name__ == "__main__":
    main()
