"""PU learning on Fashion-MNIST: puCL/puNCE/SimCLR + puPL against nnPU, uPU and supervised PN.

F-MNIST-I (positives {1, 4, 7}, prior 0.3) and F-MNIST-II (the complement, prior 0.7), with
100, 500, 1000 and 3000 labeled positives (the reference's single-data split); methods
``pucl``, ``punce``, ``simclr`` (each + puPL clustering + linear probe), ``nnpu``, ``upu`` and
``pn`` (all labels, the upper reference); seeds 0, 1, 2; a fixed number of epochs for every
method (no model selection on the test split; the last epoch's model is scored). Priors
given to puNCE/nnPU/uPU: the true share of positives in the unlabeled set. Reported per
(dataset, labeled, method): test accuracy, AUC, F1 (mean ± sd), pseudo-label accuracy on the
unlabeled set, wall time. Every run is cached in ``--work`` (a crashed sweep resumes).

Usage::

    .venv/bin/python benchmarks/pu.py --out benchmarks/results/pu.json            # everything
    .venv/bin/python benchmarks/pu.py --datasets I --labeled 1000 --methods pucl nnpu pn --seeds 0
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

from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.pu.classifier import METHODS, PUClassifier, binary_metrics  # noqa: E402
from embedlab.pu.data import FMNIST_I, FMNIST_II, binarize, load_fashion_mnist, pu_split  # noqa: E402

SPLITS = {"I": FMNIST_I, "II": FMNIST_II}


def one_run(
    data: Any, split_name: str, n_labeled: int, method: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    out = Path(args.work) / f"{split_name}-{n_labeled}-{method}-s{seed}-e{args.epochs}.json"
    if out.is_file():
        return read_json(out)
    pos = SPLITS[split_name]
    split = pu_split(data.y_train, pos, n_labeled, seed=seed)
    clf = PUClassifier(method=method, encoder=args.encoder, prior=split.prior, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, random_state=seed)  # fmt: skip
    t0 = time.perf_counter()
    clf.fit(data.x_train, split.y_true if method == "pn" else split.pu_labels)
    wall = time.perf_counter() - t0
    m = binary_metrics(binarize(data.y_test, pos), clf.decision_function(data.x_test))
    if hasattr(clf, "pseudo_labels_"):
        u = ~split.labeled
        m["pseudo_label_accuracy"] = float((clf.pseudo_labels_[u] == split.y_true[u]).mean())
    m.update({"wall_s": wall, "prior": split.prior, "loss_per_epoch": clf.history_})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, m)
    return m


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["I", "II"], choices=list(SPLITS))
    ap.add_argument("--labeled", type=int, nargs="+", default=[100, 500, 1000, 3000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--encoder", default="lenet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--work", default="benchmarks/.work/pu")
    ap.add_argument("--out", default="benchmarks/results/pu.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist(args.data_dir)
    t0 = time.perf_counter()
    rows = []
    for ds in args.datasets:
        for n in args.labeled:
            for method in args.methods:
                runs = [one_run(data, ds, n, method, s, args) for s in args.seeds]
                row: dict[str, Any] = {
                    "dataset": f"F-MNIST-{ds}",
                    "labeled": n,
                    "method": method,
                    "seeds": args.seeds,
                }
                for k in ("accuracy", "auc", "f1", "pseudo_label_accuracy", "wall_s"):
                    vals = [r[k] for r in runs if k in r]
                    if vals:
                        row[k] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                  "values": vals}  # fmt: skip
                rows.append(row)
                print(f"F-MNIST-{ds} {n:5d} {method:7s} acc {row['accuracy']['mean']:.4f}±{row['accuracy']['sd']:.4f} "
                      f"auc {row['auc']['mean']:.4f} ({row['wall_s']['mean']:.0f}s/run)", flush=True)  # fmt: skip
                write_json(args.out, _doc(args, rows, t0, complete=False))
    doc = _doc(args, rows, t0, complete=True)
    write_json(args.out, doc)
    return doc


def _doc(
    args: argparse.Namespace, rows: list[dict[str, Any]], t0: float, complete: bool
) -> dict[str, Any]:
    return {
        "benchmark": "PU learning on Fashion-MNIST", "complete": complete,
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
        "settings": vars(args), "selection": "fixed epochs; the last epoch's model is scored; no choice on test",
        "results": rows, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
