"""Scaling laws on planted-truth data, checked against the generator's Bayes limit.

Data: planted-truth synthetic CTR (``embedlab data synth-ctr``) with ``--rows`` training
rows, one fixed validation and test set, 26 tables capped at ``--max-cardinality`` rows and
the teacher's interaction part scaled to ``--interaction-std``. The generator reports the
Bayes-optimal test NE: the irreducible loss a data-size law should find.

Which teacher, and why: the default teacher here has **no pairwise interactions**
(``--interaction-std 0``): its logit is a bias, per-id scalars (Zipf-distributed ids, so
rare ids keep being learned as data grows) and a tanh MLP of the dense features. A DLRM of
embedding dim ``d >= 26 + 2`` represents it exactly (each table's scalar in a dimension of
its own, matched by a constant in the bottom MLP's output, the dense term in one more), so
the data sweep uses dim 32 and its limit is the Bayes NE. With the generator's interaction
part switched on, the one-pass DLRM flattens well above the Bayes limit within what this CPU
can train (pilot, ``--interaction-std 0.5 --max-cardinality 300``, dim 32, Adagrad: test NE
0.841 / 0.806 / 0.788 / 0.785 at 64k / 256k / 1M / 2M samples against Bayes 0.751), so a
fitted constant there estimates what this architecture and optimizer reach, not the Bayes
limit; that run is reported too (``scaling_interactions.json``) to show the difference.
The parameter sweep (embedding dims 1..32 at the full data size) shows the approximation
error of too-small dims: per-table scalars that share dimensions interfere.

Protocol (the test split is used for no choice):

1. **Learning rate on validation**: Adagrad (FBGEMM-fused embeddings, Adagrad MLPs) at
   ``--lr-grid`` on the data-sweep model, full data, seed 0; the best validation NE wins
   and every run of both sweeps uses it.
2. **Data sweep**: 6 training-set sizes over 32x (nested prefixes of one training set,
   one pass each, as the reference DLRM trains), ``--seeds``.
3. **Parameter sweep**: embedding dims 1, 2, 4, 8, 16, 32 (MLPs fixed) at the full data
   size, ``--seeds``.
4. **Fits** (``embedlab.scaling``): ``test_ne = a x^(-alpha) + c`` per sweep over all runs
   (x = training samples, x = total parameters), 95% case-bootstrap intervals; the data
   sweep's ``c`` against the Bayes NE; **extrapolation**: fit on the smallest 4 of 6 sizes
   (two thirds), predict the 2 largest, relative error against each run and the mean.

Usage::

    .venv/bin/python benchmarks/scaling.py --out benchmarks/results/scaling.json
    .venv/bin/python benchmarks/scaling.py --interaction-std 0.5 --max-cardinality 300 \
        --out benchmarks/results/scaling_interactions.json
    .venv/bin/python benchmarks/scaling.py --rows 8388608 --sweeps data --lr-grid 0.01 \
        --out benchmarks/results/scaling_data_8m.json     # the data-rich regime (lr from above)
    .venv/bin/python benchmarks/scaling.py --quick --out /tmp/scaling.json   # smoke test
    .venv/bin/python benchmarks/scaling.py --refit benchmarks/results/scaling.json \
        --out benchmarks/results/scaling.json   # re-derive the fits from the stored runs

A fit with a parameter on a bound of the fit (``c = min y``: the curve flattened inside the
data; ``alpha`` at its cap) is reported with ``identified: false`` and ``at_bound``, without
an interval for that parameter, and the goals that would need it are ``null``: it is no law.

Runs are cached under ``--work`` (``embedlab.scaling.run_sweep``: finished runs are not
rerun after a crash).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.data.registry import load_data  # noqa: E402
from embedlab.data.synth import SynthConfig, default_cardinalities, generate  # noqa: E402
from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.scaling.analysis import column, fit_runs  # noqa: E402
from embedlab.scaling.laws import extrapolation_check, fit_summary  # noqa: E402
from embedlab.scaling.plot import plot_fit  # noqa: E402
from embedlab.scaling.sweep import SweepSpec, run_sweep  # noqa: E402
from embedlab.train.trainer import TrainConfig  # noqa: E402


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.json"))
    p.add_argument("--work", type=Path, default=Path("benchmarks/.work/scaling"))
    p.add_argument("--rows", type=int, default=1 << 21)
    p.add_argument("--max-cardinality", type=int, default=2000)
    p.add_argument("--interaction-std", type=float, default=0.0)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--data-model", default="32:128-64:128-64")
    p.add_argument("--param-dims", default="1,2,4,8,16,32")
    p.add_argument("--lr-grid", default="0.01,0.03,0.1")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument(
        "--sweeps", default="data,params", help="Which sweeps to run (data, params or both)."
    )
    p.add_argument("--quick", action="store_true", help="Tiny sizes: checks the script runs.")
    p.add_argument("--refit", type=Path, default=None,
                   help="Re-derive the fits of this results file from the runs it stores (no training).")  # fmt: skip
    return p.parse_args()


def _summary(fit, doc: dict[str, Any]) -> dict[str, Any]:
    out = {
        **fit_summary(fit),
        "rms_relative_residual": fit.diagnostics["rms_relative_residual"],
        "max_abs_relative_residual": fit.diagnostics["max_abs_relative_residual"],
        "runs_test": fit.diagnostics["runs_test"], "runs": fit.n,
    }  # fmt: skip
    if "reference" in doc:
        out["bayes"] = doc["reference"]
    return out


def _analyse(
    name: str, rows: list[dict[str, Any]], x: str, bootstrap: int, bayes: float, plots: Path,
    skipped: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Fit one sweep's runs, check extrapolation, draw the plots; the results entry."""
    rows = [{k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in r.items()}
            for r in rows]  # fmt: skip
    fit, doc = fit_runs(rows, x, "test_ne", bootstrap=bootstrap, seed=0)
    xs, ys = column(rows, x), column(rows, "test_ne")
    check = extrapolation_check(xs, ys, bootstrap=min(bootstrap, 300), seed=0)
    cut = check["fit_on_x_max"]
    plot_fit(xs, ys, fit, plots / f"{name}.png", reference=bayes)
    small = fit_runs(rows, x, "test_ne", bootstrap=min(bootstrap, 300), seed=0, max_x=cut)[0]
    plot_fit(xs, ys, small, plots / f"{name}_extrapolation.png", reference=bayes, held_out=list(xs > cut))
    per_x = {}
    for xv in sorted(set(xs.tolist())):
        v = ys[xs == xv]
        per_x[f"{xv:.6g}"] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                              "values": v.tolist()}  # fmt: skip
    means = [per_x[k]["mean"] for k in sorted(per_x, key=float)]
    keys = ("run_id", "grid", "seed", "embedding_dim", "train_rows", "params_total", "train_samples",
            "train_flops", "valid_ne", "test_ne", "test_auc", "wall_time_s")  # fmt: skip
    out = {
        "x": x,
        # the marginal return of the last step of the sweep, and what the law says is left
        # (only when the law identifies its constant)
        "last_step_gain_relative": (means[-2] - means[-1]) / means[-2],
        "reducible_left_relative": (means[-1] - fit.c) / means[-1] if "c" not in fit.at_bound else None,
        "fit": _summary(fit, doc), "extrapolation": check, "test_ne_by_x": per_x,
        "wall_s": float(sum(float(r["wall_time_s"]) for r in rows)),
        "skipped_runs": [{"run_id": k, "reason": v} for k, v in sorted(skipped.items())],
        "runs": [{k: r[k] for k in keys if k in r} for r in rows],
    }  # fmt: skip
    f = out["fit"]
    law = "" if f["identified"] else f" NOT A LAW: {', '.join(f['at_bound'])} on a bound, not identified;"
    print(f"{name}:{law} alpha {f['alpha']:.3f} {f['intervals'].get('alpha')}, c {f['c']:.4f} "
          f"{f['intervals'].get('c')} (Bayes {bayes:.4f}); bootstrap {f['bootstrap']['failed']} failed of "
          f"{f['bootstrap']['drawn']}; extrapolation max error {check['max_abs_relative_error_mean']:.2%} (mean), "
          f"{check['max_abs_relative_error_run']:.2%} (run)", flush=True)  # fmt: skip
    for r, why in sorted(skipped.items()):
        print(f"{name}: skipped finished run {r}: {why}", flush=True)
    return out


def _goals(results: dict[str, Any], bayes: float) -> dict[str, Any]:
    """The checks the docs report; a comparison that needs an unidentified parameter is
    ``None`` (the fit is no law there)."""
    goals: dict[str, Any] = {}
    if "data" in results:
        d = results["data"]["fit"]
        c_ok = "c" not in d["at_bound"]
        lo, hi = d["intervals"].get("c", (None, None))
        goals.update({
            "data_law_identified": d["identified"],
            "data_c_within_2pct_of_bayes": bool(abs(d["c"] - bayes) / bayes <= 0.02) if c_ok else None,
            "data_c_relative_error": (d["c"] - bayes) / bayes if c_ok else None,
            "data_c_interval_covers_bayes": (bool((lo is None or lo <= bayes) and (hi is None or bayes <= hi))
                                             if "c" in d["intervals"] else None),
            "data_extrapolation_within_1pct": results["data"]["extrapolation"]["max_abs_relative_error_mean"] <= 0.01,
        })  # fmt: skip
    if "params" in results:
        p = results["params"]["fit"]
        goals.update({
            "params_law_identified": p["identified"],
            "params_extrapolation_within_1pct": results["params"]["extrapolation"]["max_abs_relative_error_mean"] <= 0.01,
            "params_c_minus_bayes": p["c"] - bayes if "c" not in p["at_bound"] else None,
        })  # fmt: skip
    if "data" in results and "params" in results:
        goals.update({
            # exponents compare only between two identified laws
            "larger_exponent": ("data" if d["alpha"] > p["alpha"] else "params")
                               if d["identified"] and p["identified"] else None,
            "larger_last_step_gain": max(("data", "params"), key=lambda k: results[k]["last_step_gain_relative"]),
        })  # fmt: skip
    return goals


def refit(a: argparse.Namespace) -> None:
    """Re-derive a results file from the runs it stores (no training): every fit, check,
    goal and plot again with this version's analysis; data and training sections kept."""
    t_start = time.time()
    prev = read_json(a.refit)
    bayes = float(prev["data"]["bayes_test_ne"])
    plots = a.out.parent / f"{a.out.stem}_plots"
    results = {}
    for name, r in prev["results"].items():
        rows = [{**run, "bayes_test_ne": bayes} for run in r["runs"]]
        skipped = {s["run_id"]: s["reason"] for s in r.get("skipped_runs", [])}
        results[name] = _analyse(name, rows, r["x"], a.bootstrap, bayes, plots, skipped)
    goals = _goals(results, bayes)
    doc = {
        **prev, "results": results, "goals": goals, "plots": str(plots),
        "refit": {"from": str(a.refit), "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
                  "date": dt.date.today().isoformat(), "machine": describe(), "bootstrap": a.bootstrap,
                  "wall_s": time.time() - t_start,
                  "note": "fits re-derived from the runs stored in the file; the runs were trained by 'command'"},
    }  # fmt: skip
    write_json(a.out, doc)
    print(f"goals: {goals}\n-> {a.out} ({time.time() - t_start:.0f} s)")


def main() -> None:
    a = _args()
    if a.refit is not None:
        refit(a)
        return
    t_start = time.time()
    if a.quick:
        a.rows, a.max_cardinality, a.data_model = 16_384, 300, "8:32:32"
        a.param_dims, a.lr_grid, a.bootstrap = "1,2,4,8", "0.03,0.1", 50
        a.work = a.work.with_name(a.work.name + "-quick")
    seeds = tuple(int(s) for s in a.seeds.split(","))
    data_dir = a.work / f"synth-r{a.rows}-c{a.max_cardinality}-i{a.interaction_std}-s{a.data_seed}"
    if not (data_dir / "meta.json").is_file():
        generate(SynthConfig(rows=a.rows, valid_rows=max(a.rows // 32, 4096), test_rows=max(a.rows // 16, 8192),
                             seed=a.data_seed, cardinalities=default_cardinalities(a.max_cardinality),
                             interaction_std=a.interaction_std), data_dir)  # fmt: skip
    data = load_data("synth", data_dir=str(data_dir))
    work = a.work / f"runs-{data_dir.name}"  # the sweeps of this data set
    bayes = float(data.info["bayes_test_ne"])
    print(f"data {data_dir}: {len(data.train)} train rows, Bayes test NE {bayes:.4f}", flush=True)
    base = TrainConfig(data="synth", data_options={"data_dir": str(data_dir)}, model_size=a.data_model,
                       optimizer="adagrad", batch_size=a.batch_size, checkpoint_every=0, threads=1,
                       epochs=1, tables="hash", embedding_init=None, early_stop_patience=None)  # fmt: skip

    # 1. learning rate on validation (full data, seed 0)
    lr_rows = []
    for lr in (float(x) for x in a.lr_grid.split(",")):
        spec = SweepSpec(
            "data", {"train_rows": (a.rows,)}, (0,), TrainConfig(**{**base.to_dict(), "lr": lr})
        )
        (row,) = run_sweep(spec, work / f"lr{lr}", data=data, show_progress=False)
        lr_rows.append({"lr": lr, "valid_ne": row["valid_ne"]})
        print(f"lr {lr}: valid NE {row['valid_ne']:.4f}", flush=True)
    best = min(lr_rows, key=lambda r: r["valid_ne"])
    lrs = [r["lr"] for r in lr_rows]
    at_edge = best["lr"] in (min(lrs), max(lrs))
    base = TrainConfig(**{**base.to_dict(), "lr": best["lr"]})

    # 2. data sweep; 3. parameter sweep
    sizes = tuple(sorted({round(a.rows / 2**k) for k in range(6)}))
    dims = tuple(int(x) for x in a.param_dims.split(","))
    wanted = a.sweeps.split(",")
    sweeps = []
    skipped: dict[str, dict[str, str]] = {"data": {}, "params": {}}
    if "data" in wanted:
        rows_d = run_sweep(
            SweepSpec("data", {"train_rows": sizes}, seeds, base), work / "data", data=data,
            on_skip=lambda r, why: skipped["data"].__setitem__(r, why),
        )  # fmt: skip
        sweeps.append(("data", rows_d, "train_samples"))
    if "params" in wanted:
        rows_p = run_sweep(
            SweepSpec("params", {"dim": dims}, seeds, base), work / "params", data=data,
            on_skip=lambda r, why: skipped["params"].__setitem__(r, why),
        )  # fmt: skip
        sweeps.append(("params", rows_p, "params_total"))

    plots = a.out.parent / f"{a.out.stem}_plots"
    results = {name: _analyse(name, rows, x, a.bootstrap, bayes, plots, skipped.get(name, {}))
               for name, rows, x in sweeps}  # fmt: skip
    goals = _goals(results, bayes)
    doc = {
        "benchmark": "scaling laws (power law + constant) on planted-truth synthetic CTR",
        "command": "python " + " ".join(shlex.quote(x) for x in sys.argv),
        "date": dt.date.today().isoformat(), "machine": describe(), "quick": a.quick, "seeds": list(seeds),
        "data": {"dir": str(data_dir), "rows": a.rows, "max_cardinality": a.max_cardinality,
                 "interaction_std": a.interaction_std, "data_seed": a.data_seed, "bayes_test_ne": bayes,
                 "valid_rows": len(data.valid), "test_rows": len(data.test)},
        "training": {"optimizer": "adagrad (fused embeddings, Adagrad MLPs)", "batch_size": a.batch_size,
                     "epochs": 1, "data_model": a.data_model, "param_dims": dims, "lr_selection": lr_rows,
                     "lr": best["lr"], "lr_at_grid_edge": at_edge},
        "results": results, "goals": goals, "plots": str(plots), "wall_s": time.time() - t_start,
    }  # fmt: skip
    write_json(a.out, doc)
    print(f"goals: {goals}\n-> {a.out} ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
