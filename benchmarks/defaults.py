"""Defaults judged on data nobody tuned them on: DLRM training and CF-SGD / FA-SGD.

Families of planted-truth click logs in the Criteo TSV layout (:mod:`embedlab.data.families`)
vary what real logs vary. Two stages, each resumable (one JSON per finished run under
``--work``), two runs at a time with one thread each:

* ``--stage choose``: on the **training families** only, one seed, each candidate setting
  from a base; the score is the *validation* AUC. The defaults in ``TrainConfig`` and the
  optimizer registry were chosen from this table.
* ``--stage heldout``: on the **held-out families** (never used for a choice) and
  MovieLens-100k, seeds 0-2: (a) defaults, (b) the per-family best of a small grid chosen on
  its validation split, (c) the plain-PyTorch reference (``plain_reference.py``) at its best
  validation epoch, (d) the Bayes limit; also ``--epochs 1``, the previous defaults
  (hashed Kaggle-size tables, ``sqrt(1/rows)`` init, one epoch; first family, first seed)
  and Adagrad / CF-SGD / FA-SGD at defaults and tuned (relative lr x1/3, x1, x3). Every
  per-family choice (grid point, lr factor) is made on the first seed's *validation* AUC;
  the other seeds run the defaults, the reference and the chosen settings only.

    python benchmarks/defaults.py --stage choose --work benchmarks/.work/defaults
    python benchmarks/defaults.py --stage heldout --work benchmarks/.work/defaults --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embedlab.data.families import FamilySpec, generate_family  # noqa: E402

#: Families whose validation splits served every choice.
TRAIN_FAMILIES = [
    FamilySpec("T1-mid", rows=250_000, click_rate=0.25, card_range=(10, 20_000), zipf_range=(0.8, 1.3),
               id_effect=1.2, interaction=1.0, dense_signal=0.6, fresh=0.02),
    FamilySpec("T2-rare-clicks", rows=300_000, click_rate=0.05, card_range=(10, 200_000),
               zipf_range=(0.9, 1.4), id_effect=1.5, interaction=0.8, dense_signal=0.4, fresh=0.05),
    FamilySpec("T3-interactions", rows=150_000, click_rate=0.35, card_range=(5, 2_000),
               zipf_range=(0.6, 1.1), id_effect=0.7, interaction=1.5, dense_signal=1.2, n_pairs=20),
]  # fmt: skip
#: Families never used for a choice (the issue-like family first).
HELDOUT_FAMILIES = [
    FamilySpec("H1-criteo-like-42pct", rows=400_000, click_rate=0.42, card_range=(10, 5_000),
               zipf_range=(0.7, 1.3), id_effect=1.5, interaction=1.5, dense_signal=0.5, n_pairs=12),
    FamilySpec("H2-11pct-300k-ids", rows=400_000, click_rate=0.11, card_range=(10, 300_000),
               zipf_range=(0.7, 1.2), id_effect=1.5, interaction=1.0, dense_signal=0.5, fresh=0.03),
    FamilySpec("H3-2pct-10M-ids", rows=300_000, click_rate=0.02, card_range=(100, 10_000_000),
               zipf_range=(1.0, 1.3), id_effect=2.0, interaction=0.5, dense_signal=0.8, fresh=0.1),
]  # fmt: skip
DATA_SEED = 1  # the family instance (its ids, truth and rows); model seeds vary separately

#: The previous defaults (before this benchmark): Kaggle-size hashed tables, sqrt(1/rows)
#: init, one epoch, last-step metrics.
OLD = {"tables": "hash", "embedding_init": None, "epochs": 1, "early_stop_patience": None,
       "optimizer": "adam", "lr": 3e-3, "batch_size": 512, "model_size": "kaggle"}

#: Candidates on the training families (each a change to the base).
CANDIDATES: dict[str, dict[str, Any]] = {
    "base": {},
    "old-defaults": OLD,
    "init-rows": {"embedding_init": None},
    "init-0.01": {"embedding_init": 0.01},
    "init-0.5": {"embedding_init": 0.5},
    "hash-kaggle": {"tables": "hash"},
    "vocab-min1": {"vocab_min_count": 1},
    "vocab-min5": {"vocab_min_count": 5},
    "lr-1e-3": {"lr": 1e-3},
    "lr-1e-2": {"lr": 1e-2},
    "batch-2048": {"batch_size": 2048},
    "model-small": {"model_size": "small"},
    "adagrad": {"optimizer": "adagrad", "lr": None},
    "adagrad-lr0.03": {"optimizer": "adagrad", "lr": 0.03},
    "adagrad-lr0.003": {"optimizer": "adagrad", "lr": 0.003},
    "embedding-lr-1e-3": {"embedding_lr": 1e-3},
    "cf-sgd-rel0.003": {"optimizer": "cf-sgd", "lr": None, "embedding_lr": 0.003},
    "cf-sgd-rel0.01": {"optimizer": "cf-sgd", "lr": None, "embedding_lr": 0.01},
    "cf-sgd-rel0.03": {"optimizer": "cf-sgd", "lr": None, "embedding_lr": 0.03},
    "cf-sgd-occurrence-rel0.003": {"optimizer": "cf-sgd", "lr": None, "embedding_lr": 0.003,
                                   "optimizer_options": {"unit": "occurrence"}},
    "cf-sgd-occurrence-rel0.01": {"optimizer": "cf-sgd", "lr": None, "embedding_lr": 0.01,
                                  "optimizer_options": {"unit": "occurrence"}},
    "fa-sgd-rel0.01": {"optimizer": "fa-sgd", "lr": None, "embedding_lr": 0.01},
    "fa-sgd-rel0.03": {"optimizer": "fa-sgd", "lr": None, "embedding_lr": 0.03},
    "fa-sgd-rel0.1": {"optimizer": "fa-sgd", "lr": None, "embedding_lr": 0.1},
}
#: The base of the choice stage (every setting spelled out, so the table stays true when the
#: library's defaults change).
BASE: dict[str, Any] = {"epochs": 8, "optimizer": "adam", "lr": 3e-3, "batch_size": 512, "model_size": "kaggle",
                        "tables": "vocab", "vocab_min_count": 2, "embedding_init": 0.05,
                        "early_stop_patience": 2, "select_metric": "auc"}  # fmt: skip


def _key(d: dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _data(family: str, work: Path) -> tuple[str, dict[str, Any]]:
    if family == "movielens":
        return "movielens", {}
    d = work / "data" / family
    return "criteo", {k: str(d / f"{k}.txt") for k in ("train", "valid", "test")} | {
        "cache_root": str(work / "cache")}


def run_one(job: dict) -> dict:
    """One training run (in a worker process, one thread); returns the scored result."""
    import torch

    torch.set_num_threads(1)
    from embedlab.data.registry import load_data
    from embedlab.train.trainer import TrainConfig, train

    work = Path(job["work"])
    name, opts = _data(job["family"], work)
    data = load_data(name, **opts)
    t = time.perf_counter()
    if job["kind"] == "reference":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from plain_reference import run_reference

        res = run_reference(data, job["seed"], epochs=job.get("epochs", 5))
    else:
        cfg = TrainConfig.from_dict({"data": name, "seed": job["seed"], "checkpoint_every": 0,
                                     "log_every": 10**9, "threads": 1, **job["settings"]})  # fmt: skip
        out = work / "runs" / job["key"]
        m = train(cfg, out, data=data, show_progress=False)
        res = {k: m.get(k) for k in ("valid_auc", "test_auc", "test_ne", "valid_ne", "best_step", "best_epoch",
                                     "epochs_run", "params_embedding", "embedding_lr_effective", "steps")}  # fmt: skip
        res["checkpoint_bytes"] = (out / "checkpoint.pt").stat().st_size
        for p in out.glob("*.pt"):
            p.unlink()  # keep the disk small; the metrics are what this benchmark keeps
    res["wall_s"] = time.perf_counter() - t
    return {**job, "result": res}


def run_jobs(jobs: list[dict], work: Path, workers: int) -> list[dict]:
    done_dir = work / "results"
    done_dir.mkdir(parents=True, exist_ok=True)
    out, todo = [], []
    for j in jobs:
        p = done_dir / f"{j['key']}.json"
        if p.is_file():
            out.append(json.loads(p.read_text()))
        else:
            todo.append(j)
    print(f"{len(out)} runs cached, {len(todo)} to run", flush=True)
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(run_one, j): j for j in todo}
        for i, f in enumerate(as_completed(futs), 1):
            r = f.result()
            (done_dir / f"{r['key']}.json").write_text(json.dumps(r))
            out.append(r)
            res = r["result"]
            print(f"[{i}/{len(todo)}] {r['family']} {r['name']} seed {r['seed']}: valid {res['valid_auc']:.4f} "
                  f"test {res['test_auc']:.4f} ({res['wall_s']:.0f}s)", flush=True)  # fmt: skip
    return out


def _defaults_fingerprint() -> dict:
    """The library's defaults a run with unspecified settings gets (part of the run key)."""
    from embedlab.optim.registry import FREQ_RELATIVE_LR, OPTIMIZERS
    from embedlab.train.trainer import TrainConfig

    return {"config": TrainConfig().to_dict(), "freq": FREQ_RELATIVE_LR,
            "lrs": {k: v.default_lr for k, v in OPTIMIZERS.items()}}  # fmt: skip


def job(work: Path, family: str, name: str, seed: int, settings: dict | None = None, kind: str = "train",
        fingerprint: bool = False) -> dict:  # fmt: skip
    settings = settings or {}
    ident = {"family": family, "seed": seed, "settings": settings, "kind": kind}
    if fingerprint:
        ident["defaults"] = _defaults_fingerprint()
    key = _key(ident)
    return {"work": str(work), "family": family, "name": name, "seed": seed, "settings": settings,
            "kind": kind, "key": key}  # fmt: skip


def prepare(families: list[FamilySpec], work: Path) -> dict[str, dict]:
    from embedlab.data.registry import load_data

    metas = {}
    for f in families:
        metas[f.name] = generate_family(f, DATA_SEED, work / "data" / f.name)
        load_data("criteo", **_data(f.name, work)[1])  # convert the TSVs once, before the workers
    return metas


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads_per_run": 1, "parallel_runs": 2}  # fmt: skip


def stage_choose(a: argparse.Namespace) -> dict:
    """Candidates on the training families; validation AUC averaged over ``--seeds``
    (``--candidates`` limits the run to some candidates, always with ``base``)."""
    work = Path(a.work)
    metas = prepare(TRAIN_FAMILIES, work)
    cands = {c: s for c, s in CANDIDATES.items() if not a.candidates or c in a.candidates or c == "base"}
    jobs = [job(work, f.name, c, seed, {**BASE, **s} if c != "old-defaults" else dict(s))
            for seed in a.seeds for f in TRAIN_FAMILIES for c, s in cands.items()]  # fmt: skip
    if not a.candidates:
        jobs += [job(work, f.name, "reference", seed, {"epochs": 5}, kind="reference")
                 for seed in a.seeds for f in TRAIN_FAMILIES]  # fmt: skip
    res = run_jobs(jobs, work, a.workers)
    per: dict[str, dict[str, list[float]]] = {}
    for r in res:
        per.setdefault(r["name"], {}).setdefault(r["family"], []).append(r["result"]["valid_auc"])
    table = {c: {f: float(np.mean(v)) for f, v in fs.items()} for c, fs in per.items()}
    base = table["base"]
    rows = {c: {**v, "mean_valid_auc": float(np.mean(list(v.values()))),
                "mean_delta_vs_base": float(np.mean([v[f] - base[f] for f in v]))} for c, v in table.items()}  # fmt: skip
    for c in [c for c in [*cands, "reference"] if c in rows]:
        r = rows[c]
        print(f"{c:18s} " + " ".join(f"{r[f.name]:.4f}" for f in TRAIN_FAMILIES) + f"  delta {r['mean_delta_vs_base']:+.4f}")
    return {"stage": "choose", "metric": f"valid_auc, mean over seeds {a.seeds}", "seeds": a.seeds, "base": BASE,
            "candidates": cands, "table": rows,
            "families": {f.name: {"spec": f.to_dict(), **{k: metas[f.name][k] for k in
                         ("bayes_test_auc", "test_unseen_id_share", "click_rate")}} for f in TRAIN_FAMILIES},
            "runs": [{k: r[k] for k in ("family", "name", "seed", "settings", "result")} for r in res]}  # fmt: skip


#: The small grid of (b): one change at a time to the defaults (the defaults are its centre).
GRID = {"lr1e-3": {"lr": 1e-3}, "lr1e-2": {"lr": 1e-2}, "batch2048": {"batch_size": 2048},
        "model-small": {"model_size": "small"}}  # fmt: skip
#: Relative lr factors of the tuned optimizer comparison (Adagrad: its lr; CF/FA-SGD: relative lr).
OPT_FACTORS = (1 / 3, 1.0, 3.0)


def _heldout_jobs(work: Path, fam: str, seed: int, first: bool, picks: dict[str, str] | None) -> list[dict]:
    """Runs of one family and seed. ``first`` (the first seed): every grid point and lr factor;
    other seeds: only what the first seed's validation AUC chose (``picks``)."""
    from embedlab.optim.registry import get_optimizer

    jobs = [job(work, fam, "defaults", seed, fingerprint=True),
            job(work, fam, "epochs-1", seed, {"epochs": 1}, fingerprint=True),
            job(work, fam, "reference", seed, {"epochs": 5}, kind="reference")]  # fmt: skip
    if first and fam == HELDOUT_FAMILIES[0].name:  # 540M-parameter tables: one run shows size and gap
        jobs.append(job(work, fam, "old-defaults", seed, OLD))
    for g, gs in GRID.items():
        if first or (picks and picks["grid"] == f"grid-{g}"):
            jobs.append(job(work, fam, f"grid-{g}", seed, gs, fingerprint=True))
    for opt in ("adagrad", "cf-sgd", "fa-sgd"):
        spec = get_optimizer(opt)
        base = spec.embedding_lr({}, spec.default_lr)
        for fct in OPT_FACTORS:
            name = f"{opt}-x{fct:g}"
            if first or fct == 1.0 or (picks and picks[opt] == name):
                st = {"optimizer": opt} if fct == 1.0 else {"optimizer": opt, "embedding_lr": base * fct}
                jobs.append(job(work, fam, name, seed, st, fingerprint=True))
    return jobs


def _picks(res: list[dict], fam: str, seed: int) -> dict[str, str]:
    """Per family, on the first seed's *validation* AUC: the grid point (defaults included)
    and each optimizer's lr factor."""
    v = {r["name"]: r["result"]["valid_auc"] for r in res if r["family"] == fam and r["seed"] == seed}
    grid = max(["defaults"] + [n for n in v if n.startswith("grid-")], key=lambda n: v[n])
    out = {"grid": grid}
    for opt in ("adagrad", "cf-sgd", "fa-sgd"):
        out[opt] = max([n for n in v if n.startswith(f"{opt}-x")], key=lambda n: v[n])
    return out


def stage_heldout(a: argparse.Namespace) -> dict:
    work = Path(a.work)
    fams = [f for f in HELDOUT_FAMILIES if not a.families or f.name in a.families]
    metas = prepare(fams, work)
    names = [f.name for f in fams] + (["movielens"] if not a.families or "movielens" in a.families else [])
    first, rest = a.seeds[0], a.seeds[1:]
    res = run_jobs([j for fam in names for j in _heldout_jobs(work, fam, first, True, None)], work, a.workers)
    picks = {fam: _picks(res, fam, first) for fam in names}
    print(json.dumps(picks, indent=1), flush=True)
    res = run_jobs([j for fam in names for j in _heldout_jobs(work, fam, first, True, None)]
                   + [j for s in rest for fam in names for j in _heldout_jobs(work, fam, s, False, picks[fam])],
                   work, a.workers)  # fmt: skip
    return summarize_heldout(res, names, metas, a.seeds, picks)


def _mean_sd(x: list[float]) -> dict:
    return {"mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0, "n": len(x),
            "values": [float(v) for v in x]}  # fmt: skip


def summarize_heldout(res: list[dict], names: list[str], metas: dict, seeds: list[int],
                      picks: dict[str, dict[str, str]]) -> dict:  # fmt: skip
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for r in res:
        by.setdefault((r["family"], r["name"]), {})[r["seed"]] = r["result"]
    out: dict[str, Any] = {}
    for fam in names:
        row: dict[str, Any] = {}
        methods = sorted({n for f, n in by if f == fam})
        for n in methods:
            got = [s for s in seeds if s in by[(fam, n)]]
            row[n] = {"test_auc": _mean_sd([by[(fam, n)][s]["test_auc"] for s in got]),
                      "valid_auc": _mean_sd([by[(fam, n)][s]["valid_auc"] for s in got]), "seeds": got}  # fmt: skip
        tuned = picks[fam]["grid"]  # chosen on the first seed's validation split
        row["tuned"] = {"choice": tuned, **row[tuned]}
        for opt in ("adagrad", "cf-sgd", "fa-sgd"):
            row[f"{opt}-tuned"] = {"choice": picks[fam][opt], **row[picks[fam][opt]]}
        def pair(a: str, b: str, fam: str = fam) -> dict:
            return _mean_sd([by[(fam, a)][s]["test_auc"] - by[(fam, b)][s]["test_auc"] for s in seeds])

        row["delta_defaults_minus_tuned"] = pair("defaults", tuned)
        row["delta_defaults_minus_reference"] = pair("defaults", "reference")
        row["delta_epochsN_minus_epochs1"] = pair("defaults", "epochs-1")
        for opt in ("cf-sgd", "fa-sgd"):
            row[f"delta_{opt}_minus_adagrad_defaults"] = pair(f"{opt}-x1", "adagrad-x1")
            row[f"delta_{opt}_minus_adagrad_tuned"] = pair(row[f"{opt}-tuned"]["choice"], row["adagrad-tuned"]["choice"])
        if fam in metas:
            row["bayes_test_auc"] = metas[fam]["bayes_test_auc"]
            row["family"] = {k: metas[fam][k] for k in ("spec", "click_rate", "test_unseen_id_share", "cardinalities")}
        ck = [by[(fam, "defaults")][s]["checkpoint_bytes"] for s in seeds]
        old_ck = [v["checkpoint_bytes"] for v in by.get((fam, "old-defaults"), {}).values()]
        row["checkpoint_mb"] = {"defaults": float(np.mean(ck)) / 1e6,
                                "old_defaults": float(np.mean(old_ck)) / 1e6 if old_ck else None}  # fmt: skip
        out[fam] = row
        print(f"\n{fam}: defaults {row['defaults']['test_auc']['mean']:.4f} ± {row['defaults']['test_auc']['sd']:.4f} | "
              f"tuned ({tuned}) {row['tuned']['test_auc']['mean']:.4f} | reference {row['reference']['test_auc']['mean']:.4f} | "
              f"epochs-1 {row['epochs-1']['test_auc']['mean']:.4f} | "
              f"Bayes {row.get('bayes_test_auc', float('nan')):.4f}")  # fmt: skip
        print("  adagrad/cf/fa defaults: " + " / ".join(f"{row[f'{o}-x1']['test_auc']['mean']:.4f}" for o in ("adagrad", "cf-sgd", "fa-sgd"))
              + "; tuned: " + " / ".join(f"{row[f'{o}-tuned']['test_auc']['mean']:.4f}" for o in ("adagrad", "cf-sgd", "fa-sgd")))  # fmt: skip
    return {"stage": "heldout", "seeds": seeds, "metric": "test AUC, mean ± sd over seeds; choices on valid",
            "held_out_families": names, "chosen_on": [f.name for f in TRAIN_FAMILIES], "grid": GRID,
            "per_family_choices": picks, "per_family_choice_rule": f"validation AUC of seed {seeds[0]}",
            "opt_factors": OPT_FACTORS, "families": out,
            "runs": [{k: r[k] for k in ("family", "name", "seed", "settings", "result")} for r in res]}  # fmt: skip


def report(path: Path) -> str:
    """Markdown tables of a result file (README and docs/defaults.md)."""
    r = json.loads(path.read_text())
    if r["stage"] == "choose":
        fam = list(r["families"])
        lines = ["| candidate | " + " | ".join(fam) + " | mean Δ vs base |", "|---" * (len(fam) + 2) + "|",
                 "| Bayes limit (test) | " + " | ".join(f"{r['families'][f]['bayes_test_auc']:.3f}" for f in fam) + " | |"]  # fmt: skip
        for c, row in r["table"].items():
            lines.append(f"| {c} | " + " | ".join(f"{row[f]:.4f}" for f in fam) + f" | {row['mean_delta_vs_base']:+.4f} |")
        return "\n".join(lines)
    fams = r["families"]
    f = lambda d: f"{d['test_auc']['mean']:.4f} ± {d['test_auc']['sd']:.4f}"  # noqa: E731
    g = lambda d: f"{d['mean']:+.4f} ± {d['sd']:.4f}"  # noqa: E731
    lines = ["| family | Bayes | defaults | tuned best (choice) | defaults − tuned | plain reference (best epoch) | "
             "defaults − reference | `--epochs 1` | previous defaults (seed 0) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in fams.items():
        bayes = f"{row['bayes_test_auc']:.3f}" if "bayes_test_auc" in row else "–"
        lines.append(f"| {name} | {bayes} | {f(row['defaults'])} | {f(row['tuned'])} ({row['tuned']['choice']}) | "
                     f"{g(row['delta_defaults_minus_tuned'])} | {f(row['reference'])} | "
                     f"{g(row['delta_defaults_minus_reference'])} | {f(row['epochs-1'])} | "
                     + (f"{row['old-defaults']['test_auc']['mean']:.4f} |" if "old-defaults" in row else "– |"))  # fmt: skip
    lines += ["", "| family | Adagrad | CF-SGD | FA-SGD | CF − Adagrad | FA − Adagrad | tuned: Adagrad / CF / FA | "
              "tuned CF − Adagrad | tuned FA − Adagrad |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in fams.items():
        lines.append(f"| {name} | {f(row['adagrad-x1'])} | {f(row['cf-sgd-x1'])} | {f(row['fa-sgd-x1'])} | "
                     f"{g(row['delta_cf-sgd_minus_adagrad_defaults'])} | {g(row['delta_fa-sgd_minus_adagrad_defaults'])} | "
                     + " / ".join(f"{row[f'{o}-tuned']['test_auc']['mean']:.4f} ({row[f'{o}-tuned']['choice'].split('-x')[1]})"
                                  for o in ("adagrad", "cf-sgd", "fa-sgd"))
                     + f" | {g(row['delta_cf-sgd_minus_adagrad_tuned'])} | {g(row['delta_fa-sgd_minus_adagrad_tuned'])} |")  # fmt: skip
    lines += ["", "| goal (mean over seeds) | " + " | ".join(fams) + " |", "|---" * (len(fams) + 1) + "|"]
    checks = [
        ("defaults ≥ tuned best − 0.003", lambda w: w["delta_defaults_minus_tuned"]["mean"] >= -0.003),
        ("defaults ≥ plain reference (best epoch)", lambda w: w["delta_defaults_minus_reference"]["mean"] >= 0),
        ("`--epochs N` ≥ `--epochs 1`", lambda w: w["delta_epochsN_minus_epochs1"]["mean"] >= 0),
        ("CF-SGD ≥ Adagrad − 0.005, defaults", lambda w: w["delta_cf-sgd_minus_adagrad_defaults"]["mean"] >= -0.005),
        ("FA-SGD ≥ Adagrad − 0.005, defaults", lambda w: w["delta_fa-sgd_minus_adagrad_defaults"]["mean"] >= -0.005),
        ("CF-SGD ≥ Adagrad − 0.001, tuned", lambda w: w["delta_cf-sgd_minus_adagrad_tuned"]["mean"] >= -0.001),
        ("FA-SGD ≥ Adagrad − 0.001, tuned", lambda w: w["delta_fa-sgd_minus_adagrad_tuned"]["mean"] >= -0.001),
    ]  # fmt: skip
    for label, ok in checks:
        lines.append(f"| {label} | " + " | ".join("met" if ok(row) else "**not met**" for row in fams.values()) + " |")
    lines += ["", "| family | checkpoint MB, defaults | previous defaults | epochs run (mean) | best epoch (mean) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, row in fams.items():
        runs = [x["result"] for x in r["runs"] if x["family"] == name and x["name"] == "defaults"]
        old = row["checkpoint_mb"]["old_defaults"]
        lines.append(f"| {name} | {row['checkpoint_mb']['defaults']:.1f} | {'–' if old is None else f'{old:.0f}'} | "
                     f"{np.mean([x['epochs_run'] for x in runs]):.1f} | {np.mean([x['best_epoch'] for x in runs]):.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("choose", "heldout"))
    ap.add_argument("--work", default="benchmarks/.work/defaults")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 (choose), 0 1 2 (heldout)")
    ap.add_argument("--candidates", nargs="*", default=None, help="choose stage: only these candidates (and base)")
    ap.add_argument("--families", nargs="*", default=None, help="held-out families to run (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", default=None, help="print Markdown tables of a held-out result file and exit")
    a = ap.parse_args()
    if a.report:
        print(report(Path(a.report)))
        return
    if a.stage is None:
        ap.error("give --stage choose|heldout, or --report FILE")
    if a.seeds is None:
        a.seeds = [0] if a.stage == "choose" else [0, 1, 2]
    t = time.time()
    res = stage_choose(a) if a.stage == "choose" else stage_heldout(a)
    res.update({"command": "python " + " ".join(sys.argv), "machine": machine(), "wall_s": time.time() - t,
                "data_seed": DATA_SEED})  # fmt: skip
    out = Path(a.out or f"benchmarks/results/defaults_{a.stage}.json")
    out.write_text(json.dumps(res, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
