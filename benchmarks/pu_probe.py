"""One-seed probe of the PU chain on Fashion-MNIST-I (1000 labeled positives): which methods
and which clustering space work, before the full sweep of ``benchmarks/pu.py``.

Trains PN (20 epochs), nnPU (40), then puCL, SimCLR and puNCE (100 epochs each, LeNet, batch
512, Adam + cosine), and for each contrastive model clusters (puPL) in both spaces (backbone
features, projection-head outputs) with both initialisations, fitting the linear probe on
each set of pseudo-labels. Stops starting new methods after ``BUDGET`` seconds. Meant for a
GPU (``device`` is CUDA when available); reads Fashion-MNIST from ``.gpu/data`` (the Debian
package's IDX files copied there) and writes ``$OUT/pu_gpu.json``.

Usage (the result in ``benchmarks/results/pu_probe.json`` came from one H200)::

    OUT=/tmp/out python benchmarks/pu_probe.py
"""

import json
import os
import sys
import time

sys.path.insert(0, "src")
import torch

from embedlab.pu.classifier import PUClassifier, binary_metrics
from embedlab.pu.cluster import pu_kmeans
from embedlab.pu.data import FMNIST_I, binarize, load_fashion_mnist, pu_split

QUICK = os.environ.get("QUICK") == "1"
OUT = os.environ.get("OUT", "/tmp/pu_gpu_out")
os.makedirs(OUT, exist_ok=True)
dev = "cuda" if torch.cuda.is_available() else "cpu"
print("device", dev, torch.__version__, flush=True)
d = load_fashion_mnist(os.environ.get("FMNIST_DIR", ".gpu/data"))
xtr, ytr = d.x_train, d.y_train
if QUICK:
    xtr, ytr = xtr[:3000], ytr[:3000]
s = pu_split(ytr, FMNIST_I, 1000 if not QUICK else 100, seed=0)
yt = binarize(d.y_test, FMNIST_I)
T0 = time.time()
BUDGET = 400 if not QUICK else 1e9
res = {}


def save():
    with open(os.path.join(OUT, "pu_gpu.json"), "w") as f:
        json.dump(
            {
                "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
                "torch": torch.__version__,
                "labeled": int(s.labeled.sum()),
                "prior": s.prior,
                "results": res,
            },
            f,
            indent=1,
        )


def evaluate_spaces(clf):
    """Cluster + probe in both spaces and both inits from one pretrained model."""
    out = {}
    xt = torch.from_numpy(xtr[:, None])
    u = ~s.labeled
    for space in ("backbone", "projection"):
        clf.cluster_space = clf.cluster_space_ = space  # predict reads the fitted attribute
        f = clf._features(xt, torch.device(dev))
        for init in ("reference", "kmeans++"):
            c = pu_kmeans(f, s.labeled, init=init, normalize=False)
            clf.cluster_init = init
            clf.head_ = clf._fit_probe(f, c.labels, torch.device(dev))
            m = binary_metrics(yt, clf.decision_function(d.x_test))
            m["pseudo_acc_U"] = float((c.labels[u] == s.y_true[u]).mean())
            out[f"{space}/{init}"] = m
            print("   ", space, init, {k: round(v, 4) for k, v in m.items()}, flush=True)
    return out


plan = [("pn", 20), ("nnpu", 40), ("pucl", 100), ("simclr", 100), ("punce", 100)]
if QUICK:
    plan = [(m, 1) for m, _ in plan]
for method, epochs in plan:
    if time.time() - T0 > BUDGET:
        print("budget reached; skipping", method, flush=True)
        continue
    t = time.time()
    clf = PUClassifier(
        method=method, epochs=epochs, batch_size=512, prior=s.prior, device=dev, probe_epochs=100
    )
    clf.fit(xtr, s.y_true if method == "pn" else s.pu_labels)
    fit_s = time.time() - t
    entry = {"epochs": epochs, "fit_s": fit_s, "loss": clf.history_}
    if method in ("pucl", "simclr", "punce"):
        entry["by_space"] = evaluate_spaces(clf)
    else:
        entry["test"] = binary_metrics(yt, clf.decision_function(d.x_test))
        print("   ", entry["test"], flush=True)
    res[method] = entry
    print(method, epochs, "epochs", round(fit_s), "s", flush=True)
    save()
print("total", round(time.time() - T0), "s")
