"""``PUClassifier``: a scikit-learn-style estimator for positive-unlabeled learning.

``fit(X, y)`` takes ``y = 1`` for labeled positives and ``y = 0`` for unlabeled samples (for
``method="pn"``, the supervised reference, ``y`` are true binary labels; any two numeric labels
work, the larger one being the labeled positive, ``classes_[1]``). ``X`` is images
(``[N, H, W]`` or ``[N, C, H, W]``, values in ``[0, 1]``) or tabular rows (``[N, d]``,
standardised inside with the training mean and standard deviation).

scikit-learn conventions (``check_estimator`` runs in ``tests/pu/test_sklearn_conventions.py``;
the checks it is expected to fail are listed there with the reason): parameters are only stored
by ``__init__`` and read by ``fit``; everything ``predict`` uses is fitted state with a trailing
underscore (``cluster_space_``, ``threshold_``, ...), so ``set_params`` changes nothing until the
next ``fit`` / ``refit``. ``random_state=None`` draws a fresh seed per fit (kept in ``seed_``),
an int repeats the fit bit for bit (same thread count); the fit forks torch's global RNG and
leaves it as it was. ``score`` is Lee & Liu's PU criterion, not accuracy
(:mod:`~embedlab.pu.metrics`). Invalid parameters or data raise
:class:`~embedlab.pu.validation.PUInputError`, a ``ValueError`` and a
:class:`~embedlab.errors.UserError`. :mod:`~embedlab.pu.model_file` stores a fitted model.

Methods (``embedlab pu methods``):

* ``pucl`` / ``punce`` / ``simclr``: contrastive pretraining of the encoder with a projection
  head on two augmented views per sample (:class:`~embedlab.pu.losses.PUContrastiveLoss`,
  :class:`~embedlab.pu.losses.PUNCELoss` with ``prior``, or NT-Xent, which ignores the
  labels); then PU-aware clustering (:func:`~embedlab.pu.cluster.pu_kmeans`, puPL) of the
  L2-normalised projection-head outputs of the training set into pseudo-labels
  (``cluster_space="projection"``, our default; ``"backbone"`` clusters the encoder's
  features as the reference does). Chosen by the pseudo-label accuracy on the unlabeled
  training set in ``benchmarks/pu_probe.py`` (F-MNIST-I, 1000 labeled, one seed, 100 epochs):
  0.863 in projection space against 0.610 in backbone space for puCL (SimCLR 0.751 / 0.572);
  the reference clusters backbone features after 300 epochs of LARS pretraining, and
  after our 100 it split the classes poorly; then a linear
  probe (logistic regression by Adam on the frozen normalised features) fitted to the
  pseudo-labels (``probe="pupl"``), or with the nnPU risk on the PU labels themselves
  (``probe="nnpu"``, needs ``prior``; the reference offers both).
* Our extensions for the contrastive methods, both opt-in and measured in
  ``benchmarks/pu.py``: ``cluster_k > 2`` replaces the two-cluster puPL by over-clustering
  (:func:`~embedlab.pu.cluster.pu_overcluster`: k clusters, each labeled by its rate of
  labeled positives; for positive classes made of several sub-classes), and
  ``finetune_epochs > 0`` trains the pretrained encoder and a fresh linear output end to end
  with the probe's loss (pseudo-label cross-entropy, or the nnPU risk with ``probe="nnpu"``)
  instead of a frozen linear probe. Why (``benchmarks/results/pu_features.json``: F-MNIST-I,
  1,000 labeled, 20 pretraining epochs, seed 0): a linear classifier trained with the *true*
  labels on the frozen puCL features reaches only 0.892 (projection) / 0.902 (backbone) test
  accuracy, and the ten clusters put every coat with the pullovers and shirts (k = 10
  pseudo-labels 0.858, equal to the best labeling of those clusters); frozen features cap
  every probe. Fine-tuning sees no augmentation: with the pretraining augmentations, nnPU
  fine-tuning reached 0.897 against 0.924 without (one seed, an ad-hoc check outside the
  benchmarks). Measured with 3 seeds (``benchmarks/results/pu_extensions.json``): test
  accuracy 0.775 (two-cluster puPL + probe), 0.854 (k = 10 + probe), 0.855 (k = 10 +
  fine-tuning on the pseudo-labels), 0.911 (nnPU fine-tuning), against nnPU 0.901 (0.910
  with plain batches) and supervised 0.957.
* Self-training (ours, opt-in, every PU method): ``selftrain_epochs > 0`` adds a last stage
  in which the fitted model labels the unlabeled samples by the sign of its logit, keeps the
  ``selftrain_keep`` (0.8) most confident share of each predicted class plus the labeled
  positives, and trains on them with binary cross-entropy on augmented views (a noisy
  student; ``selftrain_augment=False`` for clean views). Measured on F-MNIST-I, 1,000
  labeled, 3 seeds, one H200 (``benchmarks/results/pu_gpu_selftrain.json``): it does not
  help -- puCL + nnPU fine-tuning 0.911 -> 0.907 (paired -0.004, 95% [-0.015, +0.006]),
  nnPU 0.901 -> 0.902; AUC rises slightly (0.967 -> 0.969). Kept as an option, off by default.
* Decision threshold (ours, opt-in, every PU method): ``threshold="prior"`` moves the
  threshold on the logit to the ``1 - prior`` quantile of the unlabeled training samples'
  logits (``threshold_``), so the model calls the prior's share of the unlabeled set
  positive; ``"zero"`` (default) keeps the logit's sign. A PU risk with few labeled positives
  leaves the logit's zero off (in all 24 benchmark runs below the threshold came out at +0.35 to +1.81);
  the prior is known to these methods anyway. Training is unchanged, so the same fit gives
  both (``benchmarks/results/pu_prior_threshold_I1000.json``, F-MNIST-I, 1,000 labeled, 3
  seeds, paired 95% intervals): puCL + nnPU fine-tuning 0.911 -> 0.917 (+0.006 [+0.002,
  +0.010]), the same with plain batches 0.917 -> 0.920 (+0.003 [-0.003, +0.009]), nnPU 0.901
  -> 0.909 (+0.008 [+0.007, +0.009]), nnPU with plain batches 0.910 -> 0.914; with 100
  labeled (``pu_prior_threshold_I100.json``) puCL + nnPU fine-tuning 0.852 -> 0.877 (+0.025
  [+0.015, +0.036]) and nnPU 0.802 -> 0.855 (+0.054 [+0.039, +0.068]); on F-MNIST-II, 1,000
  labeled (``pu_prior_threshold_II1000.json``) 0.874 -> 0.884 (+0.009 [+0.004, +0.015]) and
  0.858 -> 0.857 (-0.001 [-0.014, +0.013]). It never hurt significantly; it stays opt-in so
  that ``threshold="zero"`` keeps the logit's own meaning.
* Ensembles (ours, opt-in, every method that trains an encoder): ``ensemble=K`` trains K
  members in the classifier stage and averages their logits (the prior threshold is then
  taken on the average). For the contrastive methods the members are K fine-tunings of the
  one pretrained encoder (fresh heads, their own data order; needs ``finetune_epochs > 0``);
  for ``nnpu`` / ``upu`` / ``pn`` K models trained end to end from their own
  initialisations. Member 0 is the single fit, so ``ensemble=1`` is unchanged. Measured in
  ``benchmarks/results/pu_ensemble_*.json`` (see docs/pu.md; 5 members, 3 seeds, plain
  batches and the prior threshold, F-MNIST-I, 1,000 labeled): puCL + nnPU fine-tuning 0.920
  -> 0.926 (paired +0.005 [+0.002, +0.008]), nnPU 0.914 -> 0.929 (+0.014 [+0.005, +0.024]).
  The nnPU members start from their own initialisations, the puCL members from one
  pretrained encoder; the ensemble helps nnPU about three times as much, and with ensembles
  the recipe no longer beats nnPU (-0.003 [-0.012, +0.005]).
  On F-MNIST-II (1,000 labeled, 32 positives per batch): 0.884 -> 0.891 and 0.857 -> 0.882;
  the recipe keeps +0.009 [-0.012, +0.030] in accuracy and +0.011 [+0.001, +0.020] in AUC.
* Tried on a validation split and not adopted (``benchmarks/pu_validation.py``: 10,000
  training images held out with their labels, F-MNIST-I, 1,000 labeled, seeds 0 and 1;
  ``pu_validation_s*.json``). For puCL + nnPU fine-tuning (plain batches, prior threshold),
  three fine-tuning seeds of one pretraining gave 0.914-0.917 on seed 0. Within that spread
  or barely above it: fine-tuning learning rate 3e-4 (0.915), weight decay 5e-3 (0.919), an
  EMA of the weights (0.919), and the Dist-PU label-distribution loss instead of the nnPU
  risk (0.918; with entropy weight 0.01 / 0.03: 0.922 / 0.920; on seed 1 0.930-0.931
  against 0.925-0.930 for the nnPU fine-tunings, and a lower AUC). Worse: augmented views
  during fine-tuning, even mild ones (0.894-0.907). No better: 60 pretraining epochs
  instead of 20 (0.915, 0.918).
* ``nnpu`` / ``upu``: encoder and a linear output trained end to end with the non-negative
  (or unbiased) PU risk (:class:`~embedlab.pu.losses.PURiskLoss`); need ``prior``, the share
  of positives among the unlabeled samples. Every PU-risk stage (these, and fine-tuning with
  ``probe="nnpu"``) draws batches with at least ``positives_per_batch`` (32) labeled
  positives, as VPU and Dist-PU do with separate P and U loaders; ``0`` gives the
  reference's plain shuffled batches, with which nnPU on F-MNIST at 100 labeled positives
  predicted one class for every test image (``benchmarks/results/pu_gpu_grid.json``).
* ``pn``: encoder and linear output trained with binary cross-entropy on true labels.

Choices where the reference differs (documented, CPU budget): Adam with cosine decay
instead of LARS; a fixed number of epochs (no model selection on test data); the linear
probe is a single logit with the logistic loss (the reference uses two-class
cross-entropy, the same model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from embedlab.pu.losses import PURiskLoss
from embedlab.pu.validation import PUInputError, check_x, check_y


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # contrastive | risk | supervised
    needs_prior: bool
    description: str
    #: pretraining reads neither ``y`` nor the prior (SimCLR): ``refit`` may take new labels
    label_free_pretraining: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "pucl",
            "contrastive",
            False,
            "puCL pretraining + puPL clustering + linear probe (prior-free)",
        ),
        Method(
            "punce",
            "contrastive",
            True,
            "puNCE pretraining (prior) + puPL clustering + linear probe",
        ),
        Method(
            "simclr",
            "contrastive",
            False,
            "SimCLR pretraining (labels unused) + puPL clustering + linear probe",
            label_free_pretraining=True,
        ),
        Method("nnpu", "risk", True, "non-negative PU risk, end to end (Kiryo et al. 2017)"),
        Method("upu", "risk", True, "unbiased PU risk, end to end (du Plessis et al.)"),
        Method(
            "pn",
            "supervised",
            False,
            "supervised binary cross-entropy on true labels (upper reference)",
        ),
    )
}


def _encoder(kind: str, x_shape: tuple[int, ...]) -> nn.Module:
    from embedlab.pu.encoders import LeNet, MLPEncoder, SmallResNet

    if kind == "lenet":
        return LeNet(x_shape[1])
    if kind == "resnet":
        return SmallResNet(x_shape[1])
    if kind == "mlp":
        return MLPEncoder(x_shape[1])
    from embedlab.errors import unknown_name

    raise PUInputError(str(unknown_name("encoder", kind, ("auto", "lenet", "resnet", "mlp"))))


#: Training stages in fit order (a checkpoint of a later stage means the earlier ones finished).
_STAGE_ORDER = {"pretrain": 0, "finetune": 1, "end_to_end": 1, "selftrain": 2}


def _forked_rng(dev: torch.device) -> Any:
    """``torch.random.fork_rng`` over the CPU generator and, on a CUDA device, that device's:
    a fit may seed and draw from the global generators without changing the caller's state."""
    devices = []
    if dev.type == "cuda":
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices)


def _stage_rank(stage: str) -> tuple[int, int]:
    """Order of a checkpointed stage; ``finetune#k`` / ``end_to_end#k`` is ensemble member k."""
    base, _, member = stage.partition("#")
    return _STAGE_ORDER[base], int(member or 0)


class PUClassifier(ClassifierMixin, BaseEstimator):
    """Positive-unlabeled classifier (see the module doc). Parameters are only stored here.

    Fitted attributes: ``classes_``, ``n_features_in_`` (and ``feature_names_in_``),
    ``input_shape_``, ``mean_`` / ``std_`` (rows), ``seed_``, ``encoder_kind_``, ``encoder_``,
    ``head_``, ``proj_`` (contrastive), ``finetuned_``, ``cluster_space_`` (the space the
    frozen probe reads; None for a head on the encoder), ``threshold_``, ``history_`` (loss per
    epoch); contrastive fits also ``pseudo_labels_``, ``pretrained_state_`` and
    ``pretrain_data_`` (for :meth:`refit`); self-training ``selftrain_labels_``."""

    def __init__(self, method: str = "pucl", encoder: str = "auto", prior: float | None = None, temperature: float = 0.5,
                 epochs: int = 20, batch_size: int = 512, lr: float = 1e-3, weight_decay: float = 1e-5,
                 cluster_init: str = "reference", clamp_labeled: bool = False, cluster_space: str = "projection",
                 probe: str = "pupl", probe_epochs: int = 100, cluster_k: int = 2, finetune_epochs: int = 0,
                 augment_noise: float = 0.1, device: str = "cpu", random_state: int | None = 0,
                 positives_per_batch: int = 32, selftrain_epochs: int = 0, selftrain_keep: float = 0.8,
                 selftrain_augment: bool = True, threshold: str = "zero", ensemble: int = 1, verbose: bool = False,
                 checkpoint: str | None = None) -> None:  # fmt: skip
        self.method = method
        self.encoder = encoder
        self.prior = prior
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.cluster_init = cluster_init
        self.clamp_labeled = clamp_labeled
        self.cluster_space = cluster_space
        self.probe = probe
        self.probe_epochs = probe_epochs
        self.cluster_k = cluster_k
        self.finetune_epochs = finetune_epochs
        self.augment_noise = augment_noise
        self.device = device
        self.random_state = random_state
        self.positives_per_batch = positives_per_batch
        self.selftrain_epochs = selftrain_epochs
        self.selftrain_keep = selftrain_keep
        self.selftrain_augment = selftrain_augment
        self.threshold = threshold
        self.ensemble = ensemble
        self.verbose = verbose
        self.checkpoint = checkpoint

    # --- input checks -------------------------------------------------------------

    def _check_x(self, X: Any, fitting: bool) -> torch.Tensor:
        """``X`` checked (:func:`~embedlab.pu.validation.check_x`) as a tensor; when predicting,
        its sample shape must be the fit's and rows are standardised with the fit's statistics."""
        x = check_x(self, X, fitting=fitting)
        if not fitting:
            if tuple(x.shape[1:]) != self.input_shape_:
                raise PUInputError(
                    f"X has sample shape {tuple(x.shape[1:])}, the model was fitted on {self.input_shape_}"
                )
            if x.ndim == 2:
                x = (x - self.mean_) / self.std_
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def _check_y(self, y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``y`` as 0/1 and the labels given (:func:`~embedlab.pu.validation.check_y`)."""
        return check_y(y, n, supervised=self.method == "pn")

    # --- fitting ------------------------------------------------------------------

    def _check_params(self) -> Method:
        if self.method not in METHODS:
            raise PUInputError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        spec = METHODS[self.method]
        if spec.needs_prior and (self.prior is None or not 0 < self.prior < 1):
            raise PUInputError(f"method {self.method!r} needs prior in (0, 1), got {self.prior}")
        if self.probe not in ("pupl", "nnpu"):
            raise PUInputError(f"probe must be 'pupl' or 'nnpu', got {self.probe!r}")
        if (
            spec.kind == "contrastive"
            and self.probe == "nnpu"
            and (self.prior is None or not 0 < self.prior < 1)
        ):
            raise PUInputError(f"probe 'nnpu' needs prior in (0, 1), got {self.prior}")
        if self.cluster_space not in ("backbone", "projection"):
            raise PUInputError(
                f"cluster_space must be 'backbone' or 'projection', got {self.cluster_space!r}"
            )
        for k in ("epochs", "batch_size", "probe_epochs"):
            if getattr(self, k) < 1:
                raise PUInputError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.cluster_k < 2:
            raise PUInputError(f"cluster_k must be >= 2, got {self.cluster_k}")
        from embedlab.pu.cluster import INITS

        if self.cluster_init not in INITS:
            raise PUInputError(
                f"cluster_init must be one of {', '.join(INITS)}; got {self.cluster_init!r}"
            )
        if not self.temperature > 0:
            raise PUInputError(f"temperature must be positive, got {self.temperature}")
        if self.finetune_epochs < 0:
            raise PUInputError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if self.positives_per_batch < 0:
            raise PUInputError(f"positives_per_batch must be >= 0, got {self.positives_per_batch}")
        if self.selftrain_epochs < 0:
            raise PUInputError(f"selftrain_epochs must be >= 0, got {self.selftrain_epochs}")
        if not 0 < self.selftrain_keep <= 1:
            raise PUInputError(f"selftrain_keep must be in (0, 1], got {self.selftrain_keep}")
        if self.ensemble < 1:
            raise PUInputError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.ensemble > 1 and spec.kind == "contrastive" and self.finetune_epochs == 0:
            raise PUInputError("ensemble > 1 needs trained encoders: set finetune_epochs > 0 "
                             "(members of a frozen probe would differ only by their start)")  # fmt: skip
        if self.ensemble > 1 and self.selftrain_epochs:
            raise PUInputError("ensemble > 1 and selftrain_epochs > 0 cannot be combined")
        if self.threshold not in ("zero", "prior"):
            raise PUInputError(f"threshold must be 'zero' or 'prior', got {self.threshold!r}")
        if self.threshold == "prior":
            if spec.kind == "supervised":
                raise PUInputError(
                    "threshold 'prior' is for PU methods (method 'pn' has no unlabeled set)"
                )
            if self.prior is None or not 0 < self.prior < 1:
                raise PUInputError(f"threshold 'prior' needs prior in (0, 1), got {self.prior}")
        return spec

    def fit(self, X: Any, y: Any) -> PUClassifier:
        """Fit on ``X`` with PU labels ``y`` (1 labeled positive, 0 unlabeled; true labels for
        ``method="pn"``); returns ``self``.

        Randomness (scikit-learn's convention): an int ``random_state`` makes the fit
        repeatable (same data, parameters and thread count: the same model bit for bit);
        ``None`` draws a fresh seed from the operating system on every fit; a NumPy
        ``RandomState`` draws the seed from it. The seed used is kept in ``seed_``. The fit
        runs under ``torch.random.fork_rng``: it seeds and uses torch's global generator (weight
        initialisation) inside the fork and leaves the caller's global RNG state as it was."""
        spec = self._check_params()
        x = self._check_x(X, fitting=True)
        yy, classes = self._check_y(y, len(x))
        if spec.kind == "contrastive" and self.cluster_k > len(x):
            raise PUInputError(
                f"cluster_k ({self.cluster_k}) must not exceed the number of samples ({len(x)})"
            )
        dev = torch.device(self.device)
        self.classes_ = classes
        with _forked_rng(dev):
            self._fit(spec, x, yy, dev)
        return self

    def _draw_seed(self) -> int:
        """The seed of a fit from ``random_state`` (see :meth:`fit`)."""
        rs = self.random_state
        if rs is None:  # fresh randomness: 31 bits of OS entropy (KMeans takes < 2**32)
            return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            return int(rs)
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, 2**31 - 1))
        raise PUInputError(f"random_state must be None, an int or a numpy RandomState, got {rs!r}")

    def _fit(self, spec: Method, x: torch.Tensor, yy: np.ndarray, dev: torch.device) -> None:
        self.input_shape_ = tuple(x.shape[1:])
        if x.dim() == 2:
            self.mean_ = x.mean(0).numpy()
            self.std_ = np.maximum(x.std(0).numpy(), 1e-6)
            x = (x - torch.from_numpy(self.mean_)) / torch.from_numpy(self.std_)
        self._ck_sig = None
        self.seed_ = self._draw_seed()
        if self.checkpoint:
            from embedlab.pu import checkpoint as ck

            self._ck_sig = ck.signature(self.get_params(), ck.fingerprint(x, yy))
            state = self._checkpoint_state()
            if state is not None and self.random_state is None and "seed" in state:
                self.seed_ = int(state["seed"])  # resuming a fit that drew its seed
        torch.manual_seed(self.seed_)  # inside fit's fork of the global RNG
        self._gen = torch.Generator().manual_seed(self.seed_)
        kind = self.encoder if self.encoder != "auto" else ("mlp" if x.dim() == 2 else "lenet")
        self.encoder_kind_ = kind
        self.encoder_ = _encoder(kind, tuple(x.shape)).to(dev)
        self.history_: list[float] = []
        labeled = torch.from_numpy(yy.astype(bool))
        if spec.kind == "contrastive":
            self._pretrain(x, labeled, dev)
            self.pretrain_data_ = self._pretrain_fingerprint(x, yy, spec)
            self.pretrained_state_ = {
                k: v.detach().clone() for k, v in self.encoder_.state_dict().items()
            }
            self._fit_classifier(x, yy, dev)
        else:
            self.finetuned_ = True
            self.cluster_space_ = None  # no clustering: the head reads the encoder's features
            self.head_ = nn.Linear(self.encoder_.feat_dim, 1).to(dev)
            risk = (
                PURiskLoss(float(self.prior), non_negative=self.method == "nnpu")
                if spec.kind == "risk"
                else None
            )
            self._train_members(x, yy, dev, risk, self.epochs, "end_to_end")
        if spec.kind != "supervised" and self.selftrain_epochs:
            self._selftrain(x, yy, dev)
        self._set_threshold(x, yy, dev)

    def refit(self, X: Any, y: Any) -> PUClassifier:
        """Redo the clustering and classifier stages of a fitted contrastive model from its
        pretrained encoder, with the current parameters (change them with ``set_params``:
        ``cluster_k``, ``finetune_epochs``, ``probe``, ...). Pretraining, the costly stage, is
        kept, so ``X`` must be the data it was fitted on, and so must ``y`` (and, for puNCE,
        the prior) where pretraining read them (a ``ValueError`` otherwise; the check hashes
        all of ``X``). SimCLR's pretraining reads no label: refitting it with new labels
        (another labeled set, another positive class) gives what a fresh ``fit`` would. Seeds
        and the global RNG are handled as in :meth:`fit` (``random_state=None``: a fresh seed)."""
        check_is_fitted(self, ["encoder_", "head_"])
        spec = self._check_params()
        if spec.kind != "contrastive" or not hasattr(self, "pretrained_state_"):
            raise PUInputError(
                "refit needs a model fitted with a contrastive method (pucl, punce, simclr)"
            )
        x = self._check_x(X, fitting=False)
        yy, classes = self._check_y(y, len(x))
        if self._pretrain_fingerprint(x, yy, spec) != getattr(self, "pretrain_data_", None):
            what = "X" if spec.label_free_pretraining else "X and y"
            if spec.needs_prior:
                what += " and prior"
            raise PUInputError(
                f"refit needs the {what} that {self.method!r} was pretrained on; use fit for new data"
            )
        self.classes_ = classes
        if isinstance(self.encoder_, EnsembleEncoder):  # a former ensemble fit
            self.encoder_ = self.encoder_.members[0]
        self.encoder_.load_state_dict(self.pretrained_state_)
        self._ck_sig = None  # a refit is not checkpointed (its stages are the short ones)
        dev = next(self.encoder_.parameters()).device
        self.seed_ = self._draw_seed()
        with _forked_rng(dev):
            self._fit_classifier(x, yy, dev)
            if self.selftrain_epochs:
                self._selftrain(x, yy, dev)
            self._set_threshold(x, yy, dev)
        return self

    def _pretrain_fingerprint(self, x: torch.Tensor, yy: np.ndarray, spec: Method) -> str:
        """What the pretraining read: ``X``, and ``y`` and the prior unless it is label-free."""
        from embedlab.pu import checkpoint as ck

        if spec.label_free_pretraining:
            return ck.fingerprint(x, np.zeros(len(x), dtype=np.int64))
        prior = repr(float(self.prior)) if spec.needs_prior else ""
        return ck.fingerprint(x, yy) + prior

    def _set_threshold(self, x: torch.Tensor, yy: np.ndarray, dev: torch.device) -> None:
        """``threshold_``, subtracted from the logit by :meth:`decision_function`: 0, or with
        ``threshold="prior"`` the ``1 - prior`` quantile of the unlabeled training samples'
        logits, so that the share of them called positive equals the prior (see the module doc)."""
        self.threshold_ = 0.0
        if self.threshold == "prior":
            scores = self._logits(x[torch.from_numpy(yy == 0)], dev)
            self.threshold_ = float(np.quantile(scores, 1.0 - float(self.prior)))

    def _fit_classifier(self, x: torch.Tensor, yy: np.ndarray, dev: torch.device) -> None:
        """puPL pseudo-labels, then the frozen probe or end-to-end fine-tuning (the module doc)."""
        from embedlab.pu.cluster import pu_kmeans, pu_overcluster

        seed = self.seed_
        torch.manual_seed(seed + 1)  # inside the caller's fork of the global RNG
        self._gen = torch.Generator().manual_seed(seed + 1)
        self.cluster_space_ = self.cluster_space  # what predict embeds with, fixed at fit
        feats = self._features(x, dev, self.cluster_space_)
        if self.cluster_k == 2:
            cl = pu_kmeans(feats, yy.astype(bool), init=self.cluster_init, clamp_labeled=self.clamp_labeled,
                           normalize=False, seed=seed)  # fmt: skip
        else:
            cl = pu_overcluster(feats, yy.astype(bool), self.cluster_k, clamp_labeled=self.clamp_labeled,
                                normalize=False, seed=seed)  # fmt: skip
        self.pseudo_labels_ = cl.labels
        nnpu = self.probe == "nnpu"
        self.finetuned_ = self.finetune_epochs > 0
        if self.finetuned_:
            self.head_ = nn.Linear(self.encoder_.feat_dim, 1).to(dev)
            risk = PURiskLoss(float(self.prior)) if nnpu else None
            self._train_members(
                x, yy if nnpu else cl.labels, dev, risk, self.finetune_epochs, "finetune"
            )
        elif nnpu:
            self.head_ = self._fit_probe(feats, yy, dev, risk_prior=float(self.prior))
        else:
            self.head_ = self._fit_probe(feats, cl.labels, dev)

    def _train_members(self, x: torch.Tensor, targets: np.ndarray, dev: torch.device,
                       risk: PURiskLoss | None, epochs: int, stage: str) -> None:  # fmt: skip
        """The classifier stage ``stage`` (``finetune`` or ``end_to_end``) for each of the
        ``ensemble`` members. Member 0 trains the encoder and head set up by the caller, so
        ``ensemble=1`` is the plain fit. Member ``k > 0`` starts again from the pretrained
        encoder (``finetune``) or from a fresh initialisation seeded ``seed + 7919 k``
        (``end_to_end``), with a fresh head and its own data order; its checkpoint stage is
        ``STAGE#k`` and carries the finished members, so a crash loses at most one epoch.
        The fitted model averages the members' logits (:class:`EnsembleEncoder`,
        :class:`EnsembleHead`)."""
        seed = self.seed_
        state = self._checkpoint_state()
        done: list[dict[str, Any]] = []
        if state is not None and state["stage"].partition("#")[0] == stage:
            done = list(state["extra"].get("members", []))
        encoders, heads = [], []
        for k in range(self.ensemble):
            if k > 0:
                torch.manual_seed(seed + 7919 * k)
                self._gen = torch.Generator().manual_seed(seed + 1 + 7919 * k)
                self.encoder_ = _encoder(self.encoder_kind_, (1, *self.input_shape_)).to(dev)
                if stage == "finetune":
                    self.encoder_.load_state_dict(self.pretrained_state_)
                self.head_ = nn.Linear(self.encoder_.feat_dim, 1).to(dev)
            if k < len(done):
                self.encoder_.load_state_dict(done[k]["encoder"])
                self.head_.load_state_dict(done[k]["head"])
            else:
                name = stage if k == 0 else f"{stage}#{k}"
                extra = {"members": done} if self.ensemble > 1 else None
                self._train_end_to_end(x, targets, dev, risk, epochs, name, extra=extra)
                if self.ensemble > 1:  # later members' checkpoints carry it
                    done.append({"encoder": {n: v.detach().clone() for n, v in self.encoder_.state_dict().items()},
                                 "head": {n: v.detach().clone() for n, v in self.head_.state_dict().items()}})  # fmt: skip
            encoders.append(self.encoder_)
            heads.append(self.head_)
        if self.ensemble > 1:
            self.encoder_ = EnsembleEncoder(encoders)
            self.head_ = EnsembleHead(heads)

    def _selftrain(self, x: torch.Tensor, yy: np.ndarray, dev: torch.device) -> None:
        """Self-training (ours, opt-in): the fitted model labels the unlabeled samples by
        the sign of its logit; the ``selftrain_keep`` most confident share of each predicted
        class (by |logit|) and every labeled positive (always 1) train encoder and head
        further with binary cross-entropy for ``selftrain_epochs``, on augmented views when
        ``selftrain_augment`` (a noisy student). The teacher is the model itself, before
        this stage; ``selftrain_labels_`` holds its labels (-1: not confident enough)."""
        state = self._checkpoint_state()
        if state is not None and state["stage"] == "selftrain":
            targets = state["extra"]["selftrain_labels"].numpy()
        else:
            scores = self._logits(x, dev)
            lab = yy.astype(bool)
            pred = (scores > 0).astype(np.int64)
            targets = np.where(lab, 1, -1).astype(np.int64)
            for c in (0, 1):
                idx = np.flatnonzero(~lab & (pred == c))
                k = int(round(self.selftrain_keep * len(idx)))
                keep = idx[np.argsort(-np.abs(scores[idx]), kind="stable")[:k]]
                targets[keep] = c
        self.selftrain_labels_ = targets
        if not self.finetuned_:  # the teacher was a probe on frozen features: a fresh head
            self.head_ = nn.Linear(self.encoder_.feat_dim, 1).to(dev)
            self.finetuned_ = True
        sel = np.flatnonzero(targets >= 0)
        self._train_end_to_end(x[torch.from_numpy(sel)], targets[sel], dev, None, self.selftrain_epochs,
                               "selftrain", augment=self.selftrain_augment,
                               extra={"selftrain_labels": torch.from_numpy(targets)})  # fmt: skip

    @torch.no_grad()
    def _logits(self, x: torch.Tensor, dev: torch.device) -> np.ndarray:
        """Positive-class logits of prepared inputs (eval mode; probe or fine-tuned head)."""
        self.encoder_.eval()
        self.head_.eval()
        probe = not self.finetuned_
        if probe:
            self.proj_.eval()
        out = []
        for i in range(0, len(x), 2048):
            xb = x[i : i + 2048].to(dev)
            h = self._embed(xb, self.cluster_space_) if probe else self.encoder_(xb)
            out.append(self.head_(h).squeeze(1).cpu())
        return torch.cat(out).double().numpy()

    def _checkpoint_state(self) -> dict[str, Any] | None:
        """The checkpoint of this fit (signature checked), or None."""
        if self._ck_sig is None:
            return None
        from embedlab.pu import checkpoint as ck

        state = ck.load(self.checkpoint)
        if state is not None and state["signature"] != self._ck_sig:
            raise PUInputError(f"checkpoint {self.checkpoint} belongs to another fit (other parameters or data); "
                             "delete it or choose another path")  # fmt: skip
        return state

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            from embedlab.pu.augment import ImageAugment

            return ImageAugment()(x, self._gen)
        from embedlab.pu.augment import FeatureNoise

        return FeatureNoise(self.augment_noise)(x, self._gen)

    def _batches(self, n: int):  # noqa: ANN202
        perm = torch.randperm(n, generator=self._gen)
        bs = min(self.batch_size, n)
        for i in range(0, n - bs + 1, bs):  # drop the last partial batch (BatchNorm needs > 1)
            yield perm[i : i + bs]

    def _pu_batches(self, labeled: np.ndarray):  # noqa: ANN202
        """Batches for the PU-risk stages: every batch holds ``max(natural share,
        positives_per_batch)`` labeled positives, at most half the batch (cycled through
        reshuffled passes, so they repeat within an epoch), and fills up with unlabeled
        samples; an epoch is one pass over the unlabeled set. The risk averages the labeled and the unlabeled part separately, so
        the mix does not bias it; without it a batch of 512 holds about one labeled positive
        when 100 of 60,000 are labeled, and nnPU learns to call everything negative.
        ``positives_per_batch=0`` gives plain shuffled batches (the reference's loader)."""
        if self.positives_per_batch == 0:
            yield from self._batches(len(labeled))
            return
        p_idx = torch.from_numpy(np.flatnonzero(labeled))
        u_idx = torch.from_numpy(np.flatnonzero(~labeled))
        n = len(labeled)
        bs = min(self.batch_size, n)
        n_p = min(
            max(round(bs * len(p_idx) / n), self.positives_per_batch), len(p_idx), max(bs // 2, 1)
        )
        n_u = bs - n_p
        if len(u_idx) < n_u:
            yield from self._batches(n)
            return
        u_perm = u_idx[torch.randperm(len(u_idx), generator=self._gen)]
        p_perm, p_at = p_idx[torch.randperm(len(p_idx), generator=self._gen)], 0
        for i in range(0, len(u_perm) - n_u + 1, n_u):
            if p_at + n_p > len(p_perm):
                p_perm, p_at = p_idx[torch.randperm(len(p_idx), generator=self._gen)], 0
            yield torch.cat([p_perm[p_at : p_at + n_p], u_perm[i : i + n_u]])
            p_at += n_p

    def _optimizer(self, params: Any, epochs: int) -> tuple[torch.optim.Optimizer, Any]:
        """Adam with a cosine decay over ``epochs`` to 1% of ``lr``."""
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=epochs, eta_min=self.lr * 0.01
        )
        return opt, sched

    def _run_stage(self, stage: str, epochs: int, modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                   sched: Any, one_epoch: Any, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Run ``one_epoch()`` (it returns the epoch's mean loss) ``epochs`` times with a
        progress bar (``verbose``), resuming from and writing to ``checkpoint`` when set."""
        from tqdm import tqdm

        start = self._resume(stage, epochs, modules, opt, sched)
        with tqdm(
            total=epochs, initial=start, desc=f"{self.method} {stage}", disable=not self.verbose
        ) as bar:
            for epoch in range(start, epochs):
                for m in modules.values():
                    m.train()
                loss = float(one_epoch())
                sched.step()
                self.history_.append(loss)
                self._save_stage(stage, epoch + 1, modules, opt, sched, extra)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")

    def _resume(self, stage: str, epochs: int, modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                sched: Any) -> int:  # fmt: skip
        """Epochs of ``stage`` already done according to the checkpoint (0 without one). A
        checkpoint of a later stage means this one finished: pretraining restores the
        pretrained weights stored with it; a finished classifier stage is skipped (the later
        stage restores the modules it continues from)."""
        state = self._checkpoint_state()
        if state is None:
            return 0
        if _stage_rank(state["stage"]) > _stage_rank(stage) and stage != "pretrain":
            return epochs
        if state["stage"] == stage:
            for k, m in modules.items():
                m.load_state_dict(state["modules"][k])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            self._gen.set_state(state["gen"])
            torch.set_rng_state(state["rng"])
            self.history_ = list(state["history"])
            return min(int(state["epoch"]), epochs)
        if stage == "pretrain" and state.get("pretrained"):  # any later stage of a contrastive fit
            self.encoder_.load_state_dict(state["pretrained"]["encoder"])
            self.proj_.load_state_dict(state["pretrained"]["proj"])
            self.history_ = list(state["history"][: self.epochs])
            return epochs
        return 0

    def _save_stage(self, stage: str, epoch: int, modules: dict[str, nn.Module], opt: torch.optim.Optimizer,
                    sched: Any, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        if self._ck_sig is None:
            return
        from embedlab.pu import checkpoint as ck

        pretrained = None
        if stage != "pretrain" and hasattr(self, "pretrained_state_"):
            pretrained = {"encoder": self.pretrained_state_, "proj": self.proj_.state_dict()}
        ck.save(self.checkpoint, {
            "signature": self._ck_sig, "stage": stage, "epoch": epoch,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": self._gen.get_state(),
            "rng": torch.get_rng_state(), "history": list(self.history_), "pretrained": pretrained,
            "extra": extra or {}, "seed": self.seed_,
        })  # fmt: skip

    def _pretrain(self, x: torch.Tensor, labeled: torch.Tensor, dev: torch.device) -> None:
        from embedlab.pu.encoders import projection_head
        from embedlab.pu.losses import NTXentLoss, PUContrastiveLoss, PUNCELoss

        loss_fn = {"pucl": lambda: PUContrastiveLoss(self.temperature), "simclr": lambda: NTXentLoss(self.temperature),
                   "punce": lambda: PUNCELoss(float(self.prior), self.temperature)}[self.method]()  # fmt: skip
        self.proj_ = projection_head(self.encoder_.feat_dim).to(dev)
        params = [*self.encoder_.parameters(), *self.proj_.parameters()]
        opt, sched = self._optimizer(params, self.epochs)

        def one_epoch() -> float:
            tot, nb = 0.0, 0
            for idx in self._batches(len(x)):
                xb = x[idx].to(dev)
                v1, v2 = self._augment(xb), self._augment(xb)
                z1, z2 = self.proj_(self.encoder_(v1)), self.proj_(self.encoder_(v2))
                loss = loss_fn(z1, z2, labeled[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot, nb = tot + float(loss.detach()), nb + 1
            return tot / max(nb, 1)

        self._run_stage(
            "pretrain",
            self.epochs,
            {"encoder": self.encoder_, "proj": self.proj_},
            opt,
            sched,
            one_epoch,
        )

    @torch.no_grad()
    def _features(self, x: torch.Tensor, dev: torch.device, space: str | None = None) -> np.ndarray:
        """Normalised features of prepared inputs in ``space`` (default: the ``cluster_space``
        parameter, as a fit uses them for clustering)."""
        space = self.cluster_space if space is None else space
        self.encoder_.eval()
        if hasattr(self, "proj_"):
            self.proj_.eval()
        out = [self._embed(x[i : i + 2048].to(dev), space).cpu() for i in range(0, len(x), 2048)]
        return torch.cat(out).numpy()

    def _embed(self, xb: torch.Tensor, space: str) -> torch.Tensor:
        """The normalised features the clustering and the probe use (eval mode): the
        projection head's outputs (``space="projection"``) or the encoder's (``"backbone"``)."""
        h = self.encoder_(xb)
        if space == "projection":
            h = self.proj_(h)
        return F.normalize(h, dim=1)

    def _fit_probe(self, feats: np.ndarray, labels: np.ndarray, dev: torch.device,
                   risk_prior: float | None = None) -> nn.Module:  # fmt: skip
        """Linear probe on frozen features: logistic loss on ``labels`` (pseudo-labels), or
        with ``risk_prior`` the nnPU risk on PU labels."""
        risk = PURiskLoss(risk_prior) if risk_prior is not None else None
        head = nn.Linear(feats.shape[1], 1).to(dev)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        f = torch.from_numpy(feats).to(dev)
        t = torch.from_numpy(labels.astype(np.float32)).to(dev)
        bs = 4096
        for _ in range(self.probe_epochs):
            perm = torch.randperm(len(f), generator=self._gen).to(dev)
            for i in range(0, len(f), bs):
                b = perm[i : i + bs]
                logit = head(f[b]).squeeze(1)
                if risk is not None:
                    loss = risk(logit, t[b] > 0.5)
                else:
                    loss = F.binary_cross_entropy_with_logits(logit, t[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return head

    def _train_end_to_end(self, x: torch.Tensor, targets: np.ndarray, dev: torch.device,
                          risk: PURiskLoss | None, epochs: int, stage: str, augment: bool = False,
                          extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Encoder and ``head_`` trained together: the PU risk on PU labels, or binary
        cross-entropy on ``targets`` (true or pseudo-labels) when ``risk`` is None."""
        params = [*self.encoder_.parameters(), *self.head_.parameters()]
        opt, sched = self._optimizer(params, epochs)
        y_t = torch.from_numpy(np.asarray(targets, dtype=np.int64))

        def one_epoch() -> float:
            tot, nb = 0.0, 0
            batches = (
                self._pu_batches(y_t.numpy() == 1) if risk is not None else self._batches(len(x))
            )
            for idx in batches:
                xb = x[idx].to(dev)
                if augment:
                    xb = self._augment(xb)
                logits = self.head_(self.encoder_(xb)).squeeze(1)
                if risk is not None:
                    loss = risk(logits, y_t[idx].bool().to(dev))
                else:
                    loss = F.binary_cross_entropy_with_logits(logits, y_t[idx].float().to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += risk.last_risk if risk is not None else float(loss.detach())
                nb += 1
            return tot / max(nb, 1)

        self._run_stage(stage, epochs, {"encoder": self.encoder_, "head": self.head_}, opt, sched, one_epoch,
                        extra)  # fmt: skip

    # --- prediction ---------------------------------------------------------------

    @torch.no_grad()
    def decision_function(self, X: Any) -> np.ndarray:
        """The positive-class logit of each sample, minus ``threshold_`` (0 unless
        ``threshold="prior"``): positive above 0."""
        check_is_fitted(self, ["encoder_", "head_"])
        x = self._check_x(X, fitting=False)
        return self._logits(x, next(self.head_.parameters()).device) - getattr(
            self, "threshold_", 0.0
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[1 - p, p]`` with ``p`` the logistic function of :meth:`decision_function` (a PU
        logit is not a calibrated probability)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.stack([1 - p, p], axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` (positive; 1 for 0/1 labels) where :meth:`decision_function` is above
        0, else ``classes_[0]``."""
        positive = self.decision_function(X) > 0  # checks that the model is fitted
        return self.classes_[positive.astype(np.int64)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Lee & Liu's (2003) PU criterion ``recall² / P(ŷ = 1)`` of the predictions on ``X``,
        with the recall taken on the labeled positives of the PU labels ``y`` (1 labeled
        positive, 0 unlabeled): :func:`~embedlab.pu.metrics.lee_liu_score`. It replaces
        scikit-learn's accuracy, which against PU labels counts every hidden positive found as
        an error and so makes ``GridSearchCV`` prefer models that call the unlabeled set
        negative. It equals ``precision · recall / P(y = 1)`` (higher is better, at most
        ``1 / P(y = 1)``), needs no prior, and is meant for held-out data (cross-validation).
        For ``method="pn"`` pass true labels: the same formula with the true recall."""
        from embedlab.pu.metrics import lee_liu_score

        pred = (self.decision_function(X) > 0).astype(np.int64)
        return lee_liu_score(np.asarray(y) == self.classes_[1], pred, sample_weight)

    def __sklearn_tags__(self):  # noqa: ANN204
        """Binary only (PU labels are 1 / 0): ``classifier_tags.multi_class = False``. An int
        ``random_state`` gives the same model bit for bit at a fixed thread count, so the
        estimator is not tagged non-deterministic."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class EnsembleEncoder(nn.Module):
    """The members' encoders side by side: their features concatenated."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.feat_dim = sum(int(m.feat_dim) for m in members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self.members], dim=1)


class EnsembleHead(nn.Module):
    """Each member's linear head on its slice of :class:`EnsembleEncoder`'s features; the
    output is the mean of the members' logits."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.dims = [int(h.in_features) for h in heads]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        parts = torch.split(h, self.dims, dim=1)
        return torch.stack([head(p) for head, p in zip(self.heads, parts)], 0).mean(0)


def binary_metrics(y_true: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Accuracy (threshold 0 on the logit), AUC and F1 of binary predictions."""
    from sklearn.metrics import f1_score, roc_auc_score

    y = np.asarray(y_true).astype(np.int64)
    pred = (np.asarray(score) > 0).astype(np.int64)
    auc = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else math.nan
    return {
        "accuracy": float((pred == y).mean()),
        "auc": auc,
        "f1": float(f1_score(y, pred, zero_division=0)),
    }


__all__ = ["METHODS", "EnsembleEncoder", "EnsembleHead", "Method", "PUClassifier", "binary_metrics"]
