"""Alternate growth and pruning against dense training and prune-only, on two data sets.

Data:

* **synthetic** planted-truth CTR at the Criteo-like configuration (26 tables, Kaggle-like
  cardinalities capped at ``--max-cardinality``), ``--rows`` training rows, with the
  reference DLRM's Kaggle MLPs (bottom 13-512-256-64-16, top 367-512-256-1), which dominate
  the compute; plus one more "day" of the same teacher, drifted (``--days 2 --drift smooth``,
  day 1: every per-id parameter moved by the full drift), for recurring training;
* **MovieLens-100k** (the loader's time split), same MLPs.

Protocol (the test split is used for no choice):

1. Learning rate of the dense baseline on validation (Adagrad for embeddings and MLPs,
   ``--lr-grid``, seed 0); every scheme and seed uses it.
2. **Regrowth variant on validation** (synthetic, sparsity 0.5, every seed): regrown
   weights ``function-preserving`` or ``restore``, their optimizer state ``zero`` or
   ``mean`` (Adagrad's accumulator at the layer's mean), 2 cycles or 1 (one sparse phase,
   then a dense phase of 30% of the rest); the best mean validation NE is used for every
   growth-pruning run on both data sets (prune-only keeps the 2-cycle sparse-step count).
3. Per seed, in one process and interleaved (dense, then each scheme and sparsity): dense,
   prune-only and growth-pruning at sparsities 0.25, 0.5, 0.75 (schedule defaults of
   :mod:`embedlab.growth.schedule`: 10% dense warm-up, then 70% sparse / 30% dense per cycle;
   prune-only prunes for the same number of steps, at the end); 1 thread.
4. Reported: test AUC, NE (and the gap to the Bayes NE on synthetic data), training FLOPs
   (analytic, per step at the current widths), measured wall time of the training loop,
   final dense parameters; ratios to dense per seed (paired), mean ± sd over seeds.
5. **Recurring training** (synthetic): each full-size final model (dense and
   growth-pruning) continues on day 1 (80% train, test on its last 10%) with fresh optimizer
   state, one pass; prune-only models end pruned and cannot.

Usage::

    .venv/bin/python benchmarks/growth.py --out benchmarks/results/growth.json
    .venv/bin/python benchmarks/growth.py --quick --out /tmp/growth.json   # smoke test

Finished runs are reused from ``--work`` after a crash.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.data.registry import load_data  # noqa: E402
from embedlab.data.synth import SynthConfig, default_cardinalities, generate  # noqa: E402
from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.train.trainer import TrainConfig, saved_config_matches, train  # noqa: E402

SCHEMES = [("dense", None)] + [(s, p) for p in (0.25, 0.5, 0.75) for s in ("growth-pruning", "prune-only")]  # fmt: skip
VARIANTS = [{"init": i, "state": st, "cycles": c} for c in (2, 1) for i in ("function-preserving", "restore")
            for st in ("zero", "mean")]  # fmt: skip


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/growth.json"))
    p.add_argument("--work", type=Path, default=Path("benchmarks/.work/growth"))
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--day-rows", type=int, default=100_000)
    p.add_argument("--max-cardinality", type=int, default=20_000)
    p.add_argument("--model", default="kaggle")
    p.add_argument("--lr-grid", default="0.01,0.03,0.1")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default="synth,movielens")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--quick", action="store_true")
    return p.parse_args()


def run_or_load(cfg: TrainConfig, out: Path, data: Any) -> dict[str, Any]:
    """Train unless ``out`` already finished this run (its checkpoint stays: recurring
    training starts from it)."""
    same = saved_config_matches(out, cfg)
    if same and (out / "metrics.json").is_file():
        return read_json(out / "metrics.json")
    return train(
        cfg, out, data=data, resume=same and (out / "checkpoint.pt").is_file(), show_progress=False
    )


def _ms(xs: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(xs),
        "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "n": len(xs),
    }


def _key(scheme: str, sparsity: float | None) -> str:
    return scheme if sparsity is None else f"{scheme}@{sparsity}"


def main() -> None:
    a = _args()
    t0 = time.time()
    if a.quick:
        a.rows, a.day_rows, a.max_cardinality, a.model = 8192, 4096, 500, "8:64-32:64-32"
        a.seeds, a.lr_grid = "0", "0.03"
        a.work = a.work.with_name(a.work.name + "-quick")
    seeds = [int(s) for s in a.seeds.split(",")]
    out: dict[str, Any] = {}
    for ds in a.datasets.split(","):
        if ds == "synth":
            cfg_s = SynthConfig(
                rows=a.rows, seed=0, cardinalities=default_cardinalities(a.max_cardinality)
            )
            ddir = a.work / "synth"
            if not (ddir / "meta.json").is_file():
                generate(cfg_s, ddir)
            day_dir = a.work / "synth-days"
            if not (day_dir / "meta.json").is_file():
                generate(SynthConfig(rows=a.day_rows, seed=0, cardinalities=cfg_s.cardinalities, days=2, drift="smooth"),
                         day_dir)  # fmt: skip
            opts: dict[str, Any] = {"data_dir": str(ddir)}
        else:
            opts = {}
        data = load_data(ds, **opts)
        bayes = data.info.get("bayes_test_ne")
        base = TrainConfig(data=ds, data_options=opts, model_size=a.model, optimizer="adagrad", batch_size=a.batch_size,
                           checkpoint_every=0, threads=1, epochs=1, tables="hash", embedding_init=None,
                           early_stop_patience=None)  # fmt: skip  # the settings growth.json was measured with
        work = a.work / f"runs-{ds}"

        lr_rows = []
        for lr in (float(x) for x in a.lr_grid.split(",")):
            cfg = TrainConfig(**{**base.to_dict(), "lr": lr, "seed": 0})
            m = run_or_load(cfg, work / f"dense-lr{lr}-s0", data)
            lr_rows.append({"lr": lr, "valid_ne": m["valid_ne"]})
            print(f"[{ds}] lr {lr}: valid NE {m['valid_ne']:.4f}", flush=True)
        best = min(lr_rows, key=lambda r: r["valid_ne"])["lr"]
        base = TrainConfig(**{**base.to_dict(), "lr": best})

        if ds == a.datasets.split(",")[0]:  # the regrowth variant, chosen on validation
            ablation = []
            for v in VARIANTS:
                ms = []
                for seed in seeds:
                    so = {"sparsity": 0.5, **v}
                    cfg = TrainConfig(**{**base.to_dict(), "seed": seed, "scheme": "growth-pruning", "scheme_options": so})
                    ms.append(run_or_load(cfg, work / f"variant-{v['init']}-{v['state']}{'' if v['cycles'] == 2 else '-c1'}-s{seed}", data))
                ablation.append({**v, "valid_ne": _ms([m["valid_ne"] for m in ms]), "test_ne": _ms([m["test_ne"] for m in ms])})
                print(f"[{ds}] variant {v}: valid NE {ablation[-1]['valid_ne']['mean']:.4f}", flush=True)
            chosen = {k: v for k, v in min(ablation, key=lambda r: r["valid_ne"]["mean"]).items() if k in ("init", "state", "cycles")}
        runs: dict[str, list[dict[str, Any]]] = {}
        for seed in seeds:
            for scheme, sp in SCHEMES:
                so = {} if sp is None else {"sparsity": sp, **(chosen if scheme == "growth-pruning" else {})}
                cfg = TrainConfig(
                    **{**base.to_dict(), "seed": seed, "scheme": scheme, "scheme_options": so}
                )
                m = run_or_load(cfg, work / f"{_key(scheme, sp)}-s{seed}", data)
                runs.setdefault(_key(scheme, sp), []).append(m)
                print(f"[{ds}] seed {seed} {_key(scheme, sp)}: test NE {m['test_ne']:.4f}, FLOPs {m['train_flops']:.3g}, "
                      f"{m['wall_time_s']:.1f} s", flush=True)  # fmt: skip

        dense = runs["dense"]
        table: dict[str, Any] = {}
        for key, ms in runs.items():
            row = {
                "test_auc": _ms([m["test_auc"] for m in ms]), "test_ne": _ms([m["test_ne"] for m in ms]),
                "train_flops": _ms([m["train_flops"] for m in ms]), "wall_time_s": _ms([m["wall_time_s"] for m in ms]),
                "final_params_dense": ms[0]["params_dense"],
                "flops_ratio_to_dense": _ms([m["train_flops"] / d["train_flops"] for m, d in zip(ms, dense)]),
                "wall_ratio_to_dense": _ms([m["wall_time_s"] / d["wall_time_s"] for m, d in zip(ms, dense)]),
                "ne_ratio_to_dense": _ms([m["test_ne"] / d["test_ne"] for m, d in zip(ms, dense)]),
            }  # fmt: skip
            if bayes is not None:
                row["ne_gap_to_bayes"] = _ms([m["test_ne"] - bayes for m in ms])
            table[key] = row

        cont: dict[str, Any] = {}
        if ds == "synth":
            for key in [k for k in runs if not k.startswith("prune-only")]:
                vals = []
                for seed in seeds:
                    src = work / f"{key}-s{seed}"
                    cfg = TrainConfig(**{**base.to_dict(), "seed": seed, "init_from": str(src),
                                         "data_options": {"data_dir": str(a.work / "synth-days"), "day": 1}})  # fmt: skip
                    day = load_data("synth", data_dir=str(a.work / "synth-days"), day=1)
                    vals.append(run_or_load(cfg, work / f"day1-{key}-s{seed}", day))
                cont[key] = {"test_ne": _ms([m["test_ne"] for m in vals]), "test_auc": _ms([m["test_auc"] for m in vals]),
                             "ne_ratio_to_dense": None}  # fmt: skip
            for key in cont:
                cont[key]["ne_ratio_to_dense"] = (
                    cont[key]["test_ne"]["mean"] / cont["dense"]["test_ne"]["mean"]
                )

        gp, po = table.get("growth-pruning@0.5"), table.get("prune-only@0.5")
        goals = None
        if gp and po:
            goals = {
                "flops_saving_at_0.5": 1 - gp["flops_ratio_to_dense"]["mean"],
                "wall_saving_at_0.5": 1 - gp["wall_ratio_to_dense"]["mean"],
                "ne_relative_change_at_0.5": gp["ne_ratio_to_dense"]["mean"] - 1,
                "flops_25pct": gp["flops_ratio_to_dense"]["mean"] <= 0.75,
                "wall_15pct": gp["wall_ratio_to_dense"]["mean"] <= 0.85,
                "ne_within_0.2pct": gp["ne_ratio_to_dense"]["mean"] - 1 <= 0.002,
                "full_size": gp["final_params_dense"] == table["dense"]["final_params_dense"],
                "beats_prune_only": gp["test_ne"]["mean"] < po["test_ne"]["mean"],
                "prune_only_flops_ratio_to_growth": po["train_flops"]["mean"] / gp["train_flops"]["mean"],
            }  # fmt: skip
            if cont:
                goals["adapts_at_least_as_well_as_dense"] = (
                    cont["growth-pruning@0.5"]["ne_ratio_to_dense"] <= 1.0
                )
        out[ds] = {"regrowth_variants": ablation if ds == a.datasets.split(",")[0] else None, "regrowth_chosen": chosen,
                   "lr_selection": lr_rows, "lr": best, "lr_at_grid_edge": best in (lr_rows[0]["lr"], lr_rows[-1]["lr"]),
                   "bayes_test_ne": bayes, "schemes": table, "recurring_day1": cont, "goals": goals,
                   "train_rows": len(data.train)}  # fmt: skip
        print(f"[{ds}] goals: {goals}", flush=True)
    doc = {
        "benchmark": "alternate growth and pruning vs dense and prune-only",
        "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
        "date": dt.date.today().isoformat(), "machine": describe(), "quick": a.quick, "seeds": seeds,
        "model": a.model, "batch_size": a.batch_size, "rows": a.rows, "max_cardinality": a.max_cardinality,
        "schedule": "warmup 0.1, sparse_fraction 0.7, l2 importance; cycles, regrowth init and state: regrowth_chosen per data set",
        "results": out, "wall_s": time.time() - t0,
    }  # fmt: skip
    write_json(a.out, doc)
    print(f"-> {a.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
