"""What frozen contrastive features allow on a PU split: the ceiling behind puPL.

For each seed: pretrain one contrastive model (``PUClassifier``, LeNet, Adam + cosine), then on
its frozen, L2-normalised features of the training set report

* the pseudo-label accuracy on the unlabeled set of the paper's two-cluster puPL and of
  over-clustering (``pu_overcluster``) for each ``--k``, with the best labeling any rule could
  give those k clusters (each cluster's majority true label: a ceiling for cluster labeling);
* per original class, the share of its unlabeled samples put on the positive side;
* a *diagnostic* ceiling: logistic regression trained with the true binary labels of the
  training set on the frozen features, scored on the test set (uses labels no PU method has).

Both clustering spaces (projection head, backbone) are reported. Nothing is selected on test.

Usage::

    .venv/bin/python benchmarks/pu_features.py --seeds 0 1 2 --out benchmarks/results/pu_features.json
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.pu.classifier import PUClassifier  # noqa: E402
from embedlab.pu.cluster import l2_normalize, pu_kmeans, pu_overcluster  # noqa: E402
from embedlab.pu.data import FMNIST_I, FMNIST_II, binarize, load_fashion_mnist, pu_split  # noqa: E402

SPLITS = {"I": FMNIST_I, "II": FMNIST_II}


def analyse(feats: np.ndarray, feats_test: np.ndarray, split: Any, y_class: np.ndarray, y_test: np.ndarray,
            ks: list[int], seed: int) -> dict[str, Any]:  # fmt: skip
    from sklearn.linear_model import LogisticRegression

    lab, yt = split.labeled, split.y_true
    u = ~lab
    x = l2_normalize(feats)
    out: dict[str, Any] = {}
    two = pu_kmeans(x, lab, normalize=False)
    out["pupl_2"] = {"pseudo_label_accuracy": float((two.labels[u] == yt[u]).mean())}
    for k in ks:
        cl = pu_overcluster(x, lab, k, normalize=False, seed=seed)
        assign = ((cl.centers**2).sum(1)[None] - 2 * x @ cl.centers.T).argmin(1)  # its clusters
        maj = np.array(
            [yt[assign == j].mean() >= 0.5 if (assign == j).any() else 0 for j in range(k)]
        )
        out[f"overcluster_{k}"] = {
            "pseudo_label_accuracy": float((cl.labels[u] == yt[u]).mean()),
            "majority_label_ceiling": float((maj[assign][u] == yt[u]).mean()),
            "positive_share_unlabeled": float(cl.labels[u].mean()),
            "positive_side_by_class": {int(c): float(cl.labels[u & (y_class == c)].mean()) for c in np.unique(y_class)},
        }  # fmt: skip
    out["positive_side_by_class_pupl_2"] = {int(c): float(two.labels[u & (y_class == c)].mean())
                                            for c in np.unique(y_class)}  # fmt: skip
    lr = LogisticRegression(max_iter=3000).fit(x, yt)
    out["linear_true_labels_test_accuracy"] = float(lr.score(l2_normalize(feats_test), y_test))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="I", choices=list(SPLITS))
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--method", default="pucl", choices=["pucl", "simclr"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--k", type=int, nargs="+", default=[4, 6, 10, 16, 24, 40])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/results/pu_features.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist(args.data_dir)
    pos = SPLITS[args.dataset]
    y_test = binarize(data.y_test, pos)
    t0 = time.perf_counter()
    runs = []
    for seed in args.seeds:
        split = pu_split(data.y_train, pos, args.labeled, seed=seed)
        clf = PUClassifier(
            method=args.method, encoder="lenet", epochs=args.epochs, random_state=seed
        )
        clf.fit(data.x_train, split.pu_labels)
        row: dict[str, Any] = {"seed": seed}
        for space in ("projection", "backbone"):
            clf.cluster_space = space
            f_tr = clf._features(torch.from_numpy(data.x_train[:, None]), torch.device("cpu"))
            f_te = clf._features(torch.from_numpy(data.x_test[:, None]), torch.device("cpu"))
            row[space] = analyse(f_tr, f_te, split, data.y_train, y_test, args.k, seed)
        runs.append(row)
        p = row["projection"]
        print(f"seed {seed}: projection puPL-2 {p['pupl_2']['pseudo_label_accuracy']:.4f}, "
              f"k=10 {p.get('overcluster_10', {}).get('pseudo_label_accuracy', float('nan')):.4f}, "
              f"linear on true labels {p['linear_true_labels_test_accuracy']:.4f}", flush=True)  # fmt: skip
        doc = {"benchmark": "PU: what frozen contrastive features allow", "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
               "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(), "settings": vars(args),
               "runs": runs, "wall_s": time.perf_counter() - t0}  # fmt: skip
        write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
