"""Validation sweep of classifier-stage choices for puCL + nnPU fine-tuning (no test data).

10,000 images of the Fashion-MNIST *training* set (a permutation seeded ``1000 + seed``) are
held out with their true binary labels as a validation split; the PU split (``--labeled``
positives) is drawn from the other 50,000. One puCL pretraining per (seed, pretraining
epochs) is cached in ``--work``; each variant re-runs only the classifier stage from it
(``PUClassifier.refit``; 10 nnPU fine-tuning epochs, plain batches, prior threshold unless a
knob says otherwise). Knobs (prototypes, not library options):

* ``ft_lr`` / ``ft_wd``: Adam learning rate / weight decay of the fine-tuning stage
  (Kiryo et al.'s nnPU uses weight decay 5e-3);
* ``ema``: the fine-tuned weights are an exponential moving average (decay per step);
* ``distpu``: the Dist-PU label-distribution loss (Zhao et al. 2022, one histogram bin:
  ``(1 - mean_P s) + |mean_U s - π| / (2π)``, ``s = σ(logit)``) with this entropy weight on the
  unlabeled scores, instead of the nnPU risk;
* ``mild``: fine-tuning on augmented views (random resized crop of area fraction
  ``[mild, 1]``, flips, ±5° rotation, 5% translation, light jitter and noise);
* ``ft``: fine-tuning epochs; ``rs``: the classifier stage's random seed (ensemble members);
* ``e2e``: nnPU end to end instead (``epochs``, ``wd``).

Every variant's validation logits are saved in ``--work`` so ensembles of variants can be
scored afterwards (``--ensemble NAME,NAME,...``: mean of the members' thresholded logits).

Usage::

    python benchmarks/pu_validation.py --seed 0 --out benchmarks/results/pu_validation_s0.json \\
        --variants '{"base": {}, "distpu": {"distpu": 0.0}}'
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from embedlab.io import write_json  # noqa: E402
from embedlab.machine import describe  # noqa: E402
from embedlab.pu.classifier import PUClassifier, binary_metrics  # noqa: E402
from embedlab.pu.data import FMNIST_I, FMNIST_II, binarize, load_fashion_mnist, pu_split  # noqa: E402


class DistPULoss(torch.nn.Module):
    """Dist-PU's one-bin label-distribution loss plus entropy minimisation on U (prototype)."""

    def __init__(self, prior: float, entropy: float = 0.0) -> None:
        super().__init__()
        self.prior, self.entropy, self.last_risk = prior, entropy, None

    def forward(self, logits: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(logits.reshape(-1))
        p = labeled.bool()
        u = ~p
        zero = s.sum() * 0
        loss = ((1 - s[p]).mean() if p.any() else zero) + (
            (s[u].mean() - self.prior).abs() / (2 * self.prior) if u.any() else zero
        )
        if self.entropy:
            su = s[u].clamp(1e-6, 1 - 1e-6)
            loss = loss + self.entropy * (-(su * su.log() + (1 - su) * (1 - su).log())).mean()
        self.last_risk = float(loss.detach())
        return loss


class Sweep(PUClassifier):
    """``PUClassifier`` with the prototype knobs of the module doc (``knobs``)."""

    knobs: dict[str, Any] = {}

    def _optimizer(self, params, epochs):  # noqa: ANN001, ANN202
        opt, sched = super()._optimizer(params, epochs)
        if not getattr(self, "_ft", False):
            return opt, sched
        lr, wd = self.knobs.get("ft_lr", self.lr), self.knobs.get("ft_wd", self.weight_decay)
        opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr * 0.01)
        if self.knobs.get("ema"):
            mods = [self.encoder_, self.head_]
            self._ema = [copy.deepcopy(m) for m in mods]
            d, step = self.knobs["ema"], opt.step

            def ema_step(*a, **k):  # noqa: ANN002, ANN003, ANN202
                r = step(*a, **k)
                with torch.no_grad():
                    for m, e in zip(mods, self._ema):
                        for pe, pm in zip(e.state_dict().values(), m.state_dict().values()):
                            if pe.dtype.is_floating_point:
                                pe.mul_(d).add_(pm, alpha=1 - d)
                            else:
                                pe.copy_(pm)
                return r

            opt.step = ema_step
        return opt, sched

    def _augment(self, x):  # noqa: ANN001, ANN202
        if getattr(self, "_ft", False) and self.knobs.get("mild"):
            from embedlab.pu.augment import ImageAugment

            return ImageAugment(scale=(self.knobs["mild"], 1.0), rotate_deg=5.0, translate=0.05, brightness=0.1,
                                contrast=0.1, noise=0.01)(x, self._gen)  # fmt: skip
        return super()._augment(x)

    def _train_end_to_end(self, x, targets, dev, risk, epochs, stage, augment=False, extra=None):  # noqa: ANN001, ANN202
        self._ft = stage == "finetune"
        if self._ft and risk is not None and self.knobs.get("distpu") is not None:
            risk = DistPULoss(float(self.prior), self.knobs["distpu"])
        aug = augment or bool(self.knobs.get("mild"))
        super()._train_end_to_end(x, targets, dev, risk, epochs, stage, aug, extra)
        if self._ft and self.knobs.get("ema"):
            self.encoder_.load_state_dict(self._ema[0].state_dict())
            self.head_.load_state_dict(self._ema[1].state_dict())
        self._ft = False


def validation_split(data: Any, positives: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    perm = np.random.default_rng(1000 + seed).permutation(len(data.y_train))
    val, tr = perm[:10000], perm[10000:]
    return (
        data.x_train[tr],
        data.y_train[tr],
        data.x_train[val],
        binarize(data.y_train[val], positives),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", choices=["I", "II"], default="I")
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--pretrain-epochs", type=int, default=20)
    ap.add_argument("--variants", default='{"base": {}}', help="JSON: name -> knobs (module doc)")
    ap.add_argument(
        "--ensemble", default=None, help="comma-separated variant names to score as an ensemble"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="benchmarks/.work/pu-validation")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist()
    pos = {"I": FMNIST_I, "II": FMNIST_II}[args.dataset]
    xtr, ytr, xval, yval = validation_split(data, pos, args.seed)
    split = pu_split(ytr, pos, args.labeled, seed=args.seed)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {"results": {}}
    doc.update({"benchmark": "PU validation sweep (held-out training images)", "machine": describe(),
                "dataset": f"F-MNIST-{args.dataset}", "labeled": args.labeled, "seed": args.seed,
                "pretrain_epochs": args.pretrain_epochs})  # fmt: skip
    doc.setdefault("commands", []).append(" ".join(["python", *map(shlex.quote, sys.argv)]))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = None
    for name, kn in json.loads(args.variants).items():
        if name in doc["results"]:
            continue
        t0 = time.perf_counter()
        if kn.get("e2e"):
            clf = Sweep(method="nnpu", prior=split.prior, epochs=kn.get("epochs", 20), random_state=args.seed,
                        positives_per_batch=0, threshold="prior", weight_decay=kn.get("wd", 1e-5))  # fmt: skip
            clf.knobs = {}
            clf.fit(xtr, split.pu_labels)
        else:
            pk = (
                work / f"pre-{args.dataset}-{args.labeled}-s{args.seed}-e{args.pretrain_epochs}.pkl"
            )
            if base is None and pk.is_file():
                base = pickle.loads(pk.read_bytes())
            if base is None:
                base = Sweep(method="pucl", prior=split.prior, epochs=args.pretrain_epochs, random_state=args.seed,
                             probe="nnpu", finetune_epochs=kn.get("ft", 10), positives_per_batch=0,
                             threshold="prior")  # fmt: skip
                base.knobs = dict(kn)
                base.fit(xtr, split.pu_labels)
                g = base._gen
                del base._gen
                pk.write_bytes(pickle.dumps(base))
                base._gen = g
            else:
                base.knobs = dict(kn)
                base.set_params(
                    finetune_epochs=kn.get("ft", 10), random_state=kn.get("rs", args.seed)
                )
                base.refit(xtr, split.pu_labels)
            clf = base
        score = clf.decision_function(xval)
        m = binary_metrics(yval, score)
        m["accuracy_at_zero"] = binary_metrics(yval, score + clf.threshold_)["accuracy"]
        m["wall_s"] = time.perf_counter() - t0
        m["knobs"] = kn
        np.save(work / f"{out.stem}.{name}.npy", score)
        doc["results"][name] = m
        print(name, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}, flush=True)
        write_json(out, doc)
    if args.ensemble:
        names = args.ensemble.split(",")
        score = np.mean([np.load(work / f"{out.stem}.{n}.npy") for n in names], 0)
        doc.setdefault("ensembles", {})["+".join(names)] = binary_metrics(yval, score)
        print("ensemble", names, doc["ensembles"]["+".join(names)], flush=True)
        write_json(out, doc)


if __name__ == "__main__":
    main()
