"""Attributed Animal Silhouettes: a metric-learning problem where every attribute is known.

BLENDER's own setting (Stable Diffusion 1.5 on CUB-200 / Cars-196) cannot be run here: no
weights, no datasets. What its claims need is a problem where (a) a class has attributes
that vary within it, (b) the real training images cover few attribute *combinations*, and
(c) each attribute can be scored exactly in a generated image. This module builds one.

**Base images.** The 10,000 28x28 animal silhouettes of the MIT-licensed
``animal-shape-mnist`` wheel (10 classes: bear, bird, cat, cow, dog, elephant, giraffe,
horse, sheep, zebra). The wheel pickles numpy arrays; we load them with an unpickler that
admits exactly the three numpy names such a pickle needs and refuses anything else (no
arbitrary code runs). 284 within-class duplicate groups are removed (duplicates inflate
Recall@1), as are near-empty silhouettes (bounding box under 8 px). Each silhouette is
cropped to its bounding box and resized (aspect kept) to a longest side of 26 px, centred
in 32x32 -- or 15 px for the ``small`` attribute.

**Attributes** (RGB in [-1, 1], black background), each with an exact rule-based detector:

=========  =====================================  ==========================================
name       rendering                              detector (``detect_attributes``)
=========  =====================================  ==========================================
tint       foreground red (1, -0.6, -0.6)          mean green of foreground pixels < 0.2
           instead of white                       (white: 1.0, red: -0.6)
stripes    background rows ``y % 4 < 2`` of the    background mean of stripe rows minus other
           inner 28x28 set to grey 0              rows > 0.5 (1.0 when striped)
frame      the 2-px border blue (-1, -1, 1)       mean blue of border pixels > 0
small      longest side 15 px instead of 26       foreground bounding box longest side <= 20
                                                  (rows/columns with >= 2 foreground pixels)
=========  =====================================  ==========================================

The foreground is the inner pixels whose red channel exceeds 0.3 (white and red both have
red 1; the grey stripes have 0). On real renders every detector is exact (tested).

**Splits.** Classes are partitioned (``ClassPartition``) into training classes (generator
and embedding see only these), validation classes (checkpoint choice) and test classes
(zero-shot evaluation). Real *training* images have *partial support*: each carries at
most one attribute (none with probability ``p_none``); validation and test images carry
uniformly random combinations (each attribute independently with probability 1/2). An
embedding must become attribute-invariant with few combinations to learn from -- the gap
BLENDER's intra-class synthesis targets. ``oracle_images`` renders random combinations on
the real training silhouettes: the ceiling for any generator.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embedlab.errors import UserError

CLASS_NAMES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
ATTRIBUTES = ("tint", "stripes", "frame", "small")
SIZE = 32
BIG, SMALL = 26, 15
TINT_RGB = (1.0, -0.6, -0.6)
FRAME_RGB = (-1.0, -1.0, 1.0)
STRIPE_VALUE = 0.0
BORDER = 2
FG_THRESHOLD = 0.3
SMALL_MAX_SIDE = 20
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype")}  # fmt: skip


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the data file")
        return super().find_class(module, name)


def _data_dir(folder: str | Path | None) -> Path:
    if folder is not None:
        return Path(folder)
    try:
        return Path(str(resources.files("animal_shape_mnist") / "data" / "Animal Shape"))
    except ModuleNotFoundError:
        raise UserError(
            "the animal-shape-mnist package is not installed (pip install animal-shape-mnist==0.39)"
        ) from None


def load_animal_shapes(folder: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The raw silhouettes (N, 28, 28) uint8 and labels (N,) int64 from the wheel (or a
    folder holding its two ``.gz`` files), loaded without unpickling arbitrary objects."""
    d = _data_dir(folder)
    files = d / "animal_data_version_3.gz", d / "animal_label_version_3.gz"
    for f in files:
        if not f.is_file():
            raise UserError(f"animal silhouettes not found: looked for {f}")
    out = []
    for f in files:
        with gzip.open(f) as fh:
            out.append(np.asarray(_NumpyOnlyUnpickler(fh).load()))
    x, y = out
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
        raise UserError(f"unexpected silhouette arrays {x.shape} / {y.shape} in {d}")
    return x.astype(np.uint8), y.astype(np.int64)


def dedupe(x: np.ndarray, y: np.ndarray, min_side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """First copy of each byte-identical image, minus near-empty ones (bounding box < min_side)."""
    seen: set[bytes] = set()
    keep = []
    for i in range(len(x)):
        h = hashlib.blake2b(x[i].tobytes(), digest_size=16).digest()
        if h in seen:
            continue
        seen.add(h)
        fg = x[i] > 127
        if fg.any():
            rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
            if max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= min_side:
                keep.append(i)
    idx = np.asarray(keep, dtype=np.int64)
    return x[idx], y[idx]


def normalize_silhouettes(x: np.ndarray, side: int, size: int = SIZE) -> torch.Tensor:
    """Binary masks (N, size, size) as floats: each silhouette cropped to its bounding box,
    resized bilinearly (aspect kept) to a longest side of ``side`` px, thresholded at 1/2
    (hard edges keep every detector exact) and centred."""
    out = torch.zeros(len(x), size, size)
    for i, img in enumerate(x):
        fg = img > 127
        r, c = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        crop = torch.from_numpy(img[r[0] : r[-1] + 1, c[0] : c[-1] + 1].astype(np.float32) / 255.0)
        h, w = crop.shape
        s = side / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        m = F.interpolate(crop[None, None], size=(nh, nw), mode="bilinear", align_corners=False)[
            0, 0
        ]
        top, left = (size - nh) // 2, (size - nw) // 2
        out[i, top : top + nh, left : left + nw] = (m > 0.5).float()
    return out


@dataclass(frozen=True)
class Silhouettes:
    """Deduplicated base images: masks at both scales and labels."""

    big: torch.Tensor  # (N, 32, 32) binary masks, longest side 26
    small: torch.Tensor  # (N, 32, 32) binary masks, longest side 15
    y: torch.Tensor  # (N,) int64


@lru_cache(maxsize=2)
def silhouettes(folder: str | None = None) -> Silhouettes:
    """The deduplicated, normalised silhouettes (cached per process)."""
    x, y = dedupe(*load_animal_shapes(folder))
    big, small = normalize_silhouettes(x, BIG), normalize_silhouettes(x, SMALL)
    # Drop the few shapes whose thresholded masks break the scale detector (thin shapes).
    none = torch.zeros(len(x), len(ATTRIBUTES), dtype=torch.bool)
    ok = ~detect_attributes(render(big, small, none))[:, 3]
    ok &= detect_attributes(render(big, small, none.index_fill(1, torch.tensor([3]), True)))[:, 3]
    return Silhouettes(big[ok], small[ok], torch.from_numpy(y)[ok])


def render(big: torch.Tensor, small: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """RGB images (N, 3, 32, 32) in [-1, 1] of silhouettes with the given attribute rows
    (N, len(ATTRIBUTES)) bool, in the order of :data:`ATTRIBUTES`."""
    attrs = attrs.bool()
    n = len(attrs)
    tint, stripes, frame, is_small = (attrs[:, i] for i in range(len(ATTRIBUTES)))
    m = torch.where(is_small[:, None, None], small, big)[:, None]  # (N,1,H,W)
    bg = torch.full((n, 3, SIZE, SIZE), -1.0)
    rows = (
        (torch.arange(SIZE) % 4 < 2).float()[None, None, :, None].expand(n, 3, SIZE, SIZE).clone()
    )
    inner = _inner()
    stripe_px = (rows > 0) & inner & stripes[:, None, None, None]
    bg = torch.where(stripe_px, torch.full_like(bg, STRIPE_VALUE), bg)
    border = ~inner
    frame_px = border[None, None] & frame[:, None, None, None]
    bg = torch.where(frame_px, torch.tensor(FRAME_RGB)[None, :, None, None].expand_as(bg), bg)
    white = torch.ones(n, 3, 1, 1)
    fg = torch.where(tint[:, None, None, None], torch.tensor(TINT_RGB)[None, :, None, None], white)
    return bg * (1 - m) + fg * m


def _inner() -> torch.Tensor:
    """(32, 32) bool: the pixels inside the 2-px border."""
    inner = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    inner[BORDER:-BORDER, BORDER:-BORDER] = True
    return inner


def foreground_mask(x: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32) bool: inner pixels whose red channel exceeds the threshold."""
    return (x[:, 0] > FG_THRESHOLD) & _inner()


def detect_attributes(x: torch.Tensor) -> torch.Tensor:
    """The rule-based detectors (see the module doc): (N, len(ATTRIBUTES)) bool.

    An image without foreground pixels has neither ``tint`` nor ``small``."""
    x = x.float()
    n = len(x)
    fg = foreground_mask(x)
    has_fg = fg.flatten(1).any(1)
    count = fg.flatten(1).sum(1).clamp(min=1)
    green = (x[:, 1] * fg).flatten(1).sum(1) / count
    tint = has_fg & (green < 0.2)
    inner = _inner()
    bg = inner[None] & ~fg
    stripe_rows = (torch.arange(SIZE) % 4 < 2)[None, :, None].expand(n, SIZE, SIZE)
    lum = x.mean(1)
    on, off = bg & stripe_rows, bg & ~stripe_rows
    mean_on = (lum * on).flatten(1).sum(1) / on.flatten(1).sum(1).clamp(min=1)
    mean_off = (lum * off).flatten(1).sum(1) / off.flatten(1).sum(1).clamp(min=1)
    stripes = (mean_on - mean_off) > 0.5
    border = ~inner
    frame = x[:, 2][:, border].mean(1) > 0
    # rows/columns with at least 2 foreground pixels: a stray bright pixel in a generated
    # background does not stretch the bounding box (real renders are unaffected; tested)
    rows_any, cols_any = fg.sum(2) >= 2, fg.sum(1) >= 2
    idx = torch.arange(SIZE)
    h = (
        torch.where(rows_any, idx, -1).amax(1) - torch.where(rows_any, idx, SIZE).amin(1) + 1
    ).clamp(min=0)
    w = (
        torch.where(cols_any, idx, -1).amax(1) - torch.where(cols_any, idx, SIZE).amin(1) + 1
    ).clamp(min=0)
    small = has_fg & (torch.maximum(h, w) <= SMALL_MAX_SIDE)
    return torch.stack([tint, stripes, frame, small], 1)


# --- attribute assignments -------------------------------------------------------------


def partial_support(n: int, gen: torch.Generator, p_none: float = 0.2) -> torch.Tensor:
    """(n, A) bool rows with at most one attribute: none with probability ``p_none``, else
    one uniformly at random."""
    a = len(ATTRIBUTES)
    out = torch.zeros(n, a, dtype=torch.bool)
    which = torch.randint(0, a, (n,), generator=gen)
    some = torch.rand(n, generator=gen) >= p_none
    out[torch.arange(n)[some], which[some]] = True
    return out


def random_combinations(n: int, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """(n, A) bool rows, each attribute independently present with probability ``p``."""
    return torch.rand(n, len(ATTRIBUTES), generator=gen) < p


# --- splits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassPartition:
    """Disjoint class sets: training (generator and embedding), validation, test."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        all_ = [*self.train, *self.val, *self.test]
        if len(set(all_)) != len(all_) or not all(0 <= c < len(CLASS_NAMES) for c in all_):
            raise UserError(f"class partition must use disjoint classes 0..9, got {self}")
        if len(self.train) < 2 or len(self.val) < 2 or len(self.test) < 2:
            raise UserError("class partition needs at least 2 classes in each of train, val, test")

    @classmethod
    def from_seed(cls, seed: int, n_train: int = 5, n_val: int = 2) -> ClassPartition:
        """A random partition: ``n_train`` training, ``n_val`` validation, the rest test."""
        perm = torch.randperm(
            len(CLASS_NAMES), generator=torch.Generator().manual_seed(seed)
        ).tolist()
        return cls(tuple(sorted(perm[:n_train])), tuple(sorted(perm[n_train : n_train + n_val])),
                   tuple(sorted(perm[n_train + n_val :])))  # fmt: skip

    def to_json(self) -> dict[str, list[int]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}


@dataclass(frozen=True)
class AttributedImages:
    """Rendered images with their class labels and true attribute rows."""

    x: torch.Tensor  # (N, 3, 32, 32) float in [-1, 1]
    y: torch.Tensor  # (N,) int64
    attrs: torch.Tensor  # (N, A) bool
    base: torch.Tensor  # (N,) int64 index of the silhouette each image was rendered from

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class AASplits:
    """Real training images (partial support), validation and test images (all combinations)."""

    partition: ClassPartition
    train: AttributedImages
    val: AttributedImages
    test: AttributedImages


def _render_subset(s: Silhouettes, idx: torch.Tensor, attrs: torch.Tensor) -> AttributedImages:
    return AttributedImages(render(s.big[idx], s.small[idx], attrs), s.y[idx].clone(), attrs, idx)


def make_splits(partition: ClassPartition, seed: int = 0, p_none: float = 0.2,
                folder: str | None = None) -> AASplits:  # fmt: skip
    """Render the three splits of one class partition (deterministic in ``seed``)."""
    s = silhouettes(folder)
    gen = torch.Generator().manual_seed(seed)

    def pick(classes: tuple[int, ...]) -> torch.Tensor:
        return torch.nonzero(torch.isin(s.y, torch.tensor(classes))).flatten()

    tr, va, te = pick(partition.train), pick(partition.val), pick(partition.test)
    return AASplits(
        partition,
        _render_subset(s, tr, partial_support(len(tr), gen, p_none)),
        _render_subset(s, va, random_combinations(len(va), gen)),
        _render_subset(s, te, random_combinations(len(te), gen)),
    )


def oracle_images(
    train: AttributedImages, n: int, seed: int, folder: str | None = None
) -> AttributedImages:
    """``n`` re-renderings of the real training silhouettes with random attribute
    combinations (the ceiling a perfect generator could reach)."""
    s = silhouettes(folder)
    gen = torch.Generator().manual_seed(seed)
    pick = train.base[torch.randint(0, len(train), (n,), generator=gen)]
    return _render_subset(s, pick, random_combinations(n, gen))


def to_uint8_grid(x: torch.Tensor, nrow: int) -> np.ndarray:
    """A (H, W, 3) uint8 image grid of ``x`` (N, 3, h, w) in [-1, 1], 1-px gaps."""
    n, _, h, w = x.shape
    ncol = (n + nrow - 1) // nrow
    grid = torch.full((3, ncol * (h + 1) + 1, nrow * (w + 1) + 1), 0.5)
    img = ((x.clamp(-1, 1) + 1) / 2).float()
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = img[
            i
        ]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


__all__ = [
    "ATTRIBUTES",
    "CLASS_NAMES",
    "AASplits",
    "AttributedImages",
    "ClassPartition",
    "Silhouettes",
    "dedupe",
    "detect_attributes",
    "foreground_mask",
    "load_animal_shapes",
    "make_splits",
    "normalize_silhouettes",
    "oracle_images",
    "partial_support",
    "random_combinations",
    "render",
    "silhouettes",
    "to_uint8_grid",
]
