"""Families of planted-truth click logs in the Criteo TSV layout, for judging defaults.

:mod:`embedlab.data.synth` is *one* generator; defaults fitted to it need not hold on its
neighbours. A :class:`FamilySpec` describes a family of click logs by what real logs vary
(cardinalities, Zipf exponents, click rate, strength of per-id effects, of pairwise
interactions and of the dense signal, size, share of test ids never seen in training), and
:func:`generate_family` writes ``train.txt``, ``valid.txt`` and ``test.txt`` in time order
(Criteo Kaggle layout: label, 13 integers, 26 hexadecimal ids) with the true click
probability of every row, so the Bayes-optimal test AUC / logloss / NE are exact.

The model of a family (our choices; nothing here was fitted to a learner):

* **Ids.** Field ``f`` has ``card_f`` ids, drawn by rank from a truncated Zipf law with
  exponent ``s_f``; rank ``r`` is written as a 32-bit hash of ``(seed, f, r)`` in 8 hex
  digits, so ids look like Criteo's and collide only as 32-bit hashes do. With probability
  ``fresh`` a (row, field) instead takes a *fresh* id, born at the row's time and used only
  by the rows near it (``fresh_span`` rows): the rows at the end of the log, the test split,
  then carry ids no training row has, in about the share ``fresh`` (plus the tail of the
  Zipf law that training missed). Every field is missing (empty) in ``missing`` of rows.
* **Dense.** 13 Poisson counts with per-field means in ``[0.5, 50]``, scaled per row by a
  log-normal activity factor; 5% empty by default (an empty integer field reads as 0).
* **Truth.** ``logit = b + id_effect * A + interaction * I + dense_signal * L`` with
  ``A = sum_f a_f[id]`` (per-id effects, N(0,1) per id), ``I = sum over n_pairs random field
  pairs <u_f[id], u_g[id]>`` (hidden ``pair_dim``-dim N(0,1) vectors), ``L = w . log1p(x)``;
  each of ``A``, ``I``, ``L`` is standardized on the rows, and ``b`` solves for the click
  rate. Per-id parameters are a hash of ``(seed, field, id)``, so they exist for every id
  without tables (10M-id fields cost nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embedlab.data.criteo import NUM_DENSE, NUM_SPARSE
from embedlab.errors import UserError
from embedlab.io import atomic_open, ensure_dir, read_json, write_json

FAMILY_FORMAT = "embedlab-ctr-family/v1"


@dataclass(frozen=True)
class FamilySpec:
    """One family of click logs (see the module doc); ``rows`` counts all three splits."""

    name: str
    rows: int = 400_000
    valid_frac: float = 0.0625
    test_frac: float = 0.125
    click_rate: float = 0.25
    card_range: tuple[int, int] = (10, 5_000)
    zipf_range: tuple[float, float] = (0.7, 1.3)
    id_effect: float = 1.0
    interaction: float = 1.0
    n_pairs: int = 12
    pair_dim: int = 8
    dense_signal: float = 0.5
    fresh: float = 0.0
    fresh_span: int = 2_000
    missing: float = 0.02
    dense_missing: float = 0.05

    def __post_init__(self) -> None:
        if self.rows < 1000:
            raise UserError(f"family {self.name}: rows must be >= 1000, got {self.rows}")
        if not 0 < self.click_rate < 1:
            raise UserError(f"family {self.name}: click rate must be in (0, 1)")
        lo, hi = self.card_range
        if not 1 <= lo <= hi < 2**31:
            raise UserError(f"family {self.name}: bad cardinality range {self.card_range}")
        for k in ("fresh", "missing", "dense_missing"):
            if not 0 <= getattr(self, k) < 1:
                raise UserError(f"family {self.name}: {k} must be in [0, 1)")

    @property
    def split_rows(self) -> tuple[int, int, int]:
        n_test = int(round(self.rows * self.test_frac))
        n_valid = int(round(self.rows * self.valid_frac))
        return self.rows - n_valid - n_test, n_valid, n_test

    def to_dict(self) -> dict:
        return asdict(self)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (a bijection with good avalanche)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _hash(seed: int, tag: int, field: int, ids: np.ndarray, k: int = 0) -> np.ndarray:
    with np.errstate(over="ignore"):
        base = _mix(np.array([(seed * 1_000_003 + tag) * 131 + field * 17 + k], dtype=np.uint64))
        return _mix(ids.astype(np.uint64) ^ base[0])


def _normal(seed: int, tag: int, field: int, ids: np.ndarray, k: int = 0) -> np.ndarray:
    """A standard normal per id, a pure function of ``(seed, tag, field, id, k)``."""
    h1 = _hash(seed, tag, field, ids, 2 * k)
    h2 = _hash(seed, tag, field, ids, 2 * k + 1)
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


def _zipf_ranks(rng: np.random.Generator, n: int, card: int, s: float) -> np.ndarray:
    """``n`` ranks in ``[0, card)`` with P(r) proportional to ``(r + 1) ** -s``."""
    if card <= 2_000_000:
        w = np.arange(1, card + 1, dtype=np.float64) ** -s
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        return np.minimum(np.searchsorted(cdf, rng.random(n)), card - 1).astype(np.int64)
    # continuous inverse CDF of x^-s on [1, card + 1) (large tables: no O(card) arrays)
    u = rng.random(n)
    a, b = 1.0, card + 1.0
    if abs(s - 1.0) < 1e-9:
        x = a * (b / a) ** u
    else:
        e = 1.0 - s
        x = (a**e + u * (b**e - a**e)) ** (1.0 / e)
    return np.minimum(np.floor(x) - 1, card - 1).astype(np.int64)


@dataclass(frozen=True)
class _Fields:
    cards: np.ndarray
    zipf: np.ndarray
    pairs: np.ndarray
    dense_mean: np.ndarray
    dense_w: np.ndarray


def _fields(spec: FamilySpec, seed: int) -> _Fields:
    rng = np.random.default_rng([seed, 7])
    lo, hi = spec.card_range
    cards = np.exp(rng.uniform(math.log(lo), math.log(hi), NUM_SPARSE)).round().astype(np.int64)
    cards[np.argmin(cards)], cards[np.argmax(cards)] = lo, hi  # the range's ends occur
    zipf = rng.uniform(*spec.zipf_range, NUM_SPARSE)
    all_pairs = np.array([(i, j) for i in range(NUM_SPARSE) for j in range(i + 1, NUM_SPARSE)])
    pairs = all_pairs[rng.choice(len(all_pairs), size=min(spec.n_pairs, len(all_pairs)), replace=False)]
    dense_mean = np.exp(rng.uniform(math.log(0.5), math.log(50.0), NUM_DENSE))
    dense_w = rng.normal(size=NUM_DENSE)
    return _Fields(cards, zipf, pairs, dense_mean, dense_w)


def _sample(spec: FamilySpec, seed: int, f: _Fields) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(raw dense [N, 13], ids [N, 26], logit parts [N, 3])``; ``-1`` marks an empty field."""
    n = spec.rows
    rng = np.random.default_rng([seed, 11])
    activity = np.exp(rng.normal(0.0, 0.7, n))
    raw = rng.poisson(np.outer(activity, f.dense_mean)).astype(np.int64)
    raw[rng.random(raw.shape) < spec.dense_missing] = -1
    ids = np.empty((n, NUM_SPARSE), dtype=np.int64)  # internal id; fresh ids above 2**40
    row = np.arange(n, dtype=np.int64)
    for j in range(NUM_SPARSE):
        r = _zipf_ranks(rng, n, int(f.cards[j]), float(f.zipf[j]))
        if spec.fresh > 0:
            fresh = rng.random(n) < spec.fresh
            # fresh ids: born at the row's time, shared by about fresh * fresh_span rows
            born = (row + rng.integers(0, spec.fresh_span, n)) // spec.fresh_span
            slot = rng.integers(0, max(1, int(spec.fresh * spec.fresh_span / 4)), n)
            r = np.where(fresh, (1 << 40) + born * (1 << 20) + slot, r)
        r[rng.random(n) < spec.missing] = -1
        ids[:, j] = r
    present = ids >= 0
    a = np.zeros(n)
    for j in range(NUM_SPARSE):
        a += np.where(present[:, j], _normal(seed, 1, j, np.maximum(ids[:, j], 0)), 0.0)
    inter = np.zeros(n)
    for i, j in f.pairs:
        both = present[:, i] & present[:, j]
        dot = np.zeros(n)
        for k in range(spec.pair_dim):
            dot += _normal(seed, 2, i, np.maximum(ids[:, i], 0), k) * _normal(seed, 2, j, np.maximum(ids[:, j], 0), k)
        inter += np.where(both, dot, 0.0)
    lin = np.log1p(np.maximum(raw, 0)) @ f.dense_w
    parts = np.stack([a, inter, lin], axis=1)
    return raw, ids, parts


def _solve_bias(z: np.ndarray, rate: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(z + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def true_probabilities(spec: FamilySpec, parts: np.ndarray) -> np.ndarray:
    """Click probabilities from the standardized logit parts (see the module doc)."""
    std = parts.std(axis=0)
    std[std == 0] = 1.0
    z = (parts - parts.mean(axis=0)) / std @ np.array([spec.id_effect, spec.interaction, spec.dense_signal])
    return 1.0 / (1.0 + np.exp(-(z + _solve_bias(z, spec.click_rate))))


def generate_family(
    spec: FamilySpec, seed: int, out: str | Path, progress: Callable[[str], None] | None = None
) -> dict:
    """Write the family's three TSV splits, ``probs.npy`` (true test probabilities) and
    ``meta.json`` (spec, seed, Bayes metrics, unseen-id share) into ``out``; returns the meta.

    A folder whose ``meta.json`` holds the same spec and seed is reused as it is.
    """
    from embedlab.data.synth import bayes_metrics

    out = ensure_dir(out)
    meta_path = out / "meta.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if meta.get("spec") == _jsonable(spec.to_dict()) and meta.get("seed") == seed:
            return meta
    f = _fields(spec, seed)
    raw, ids, parts = _sample(spec, seed, f)
    p = true_probabilities(spec, parts)
    y = (np.random.default_rng([seed, 13]).random(spec.rows) < p).astype(np.int64)
    hexes = np.empty(ids.shape, dtype=np.uint64)
    for j in range(NUM_SPARSE):
        hexes[:, j] = _hash(seed, 3, j, np.maximum(ids[:, j], 0)) & np.uint64(0xFFFFFFFF)
    n_tr, n_va, n_te = spec.split_rows
    bounds = {"train": (0, n_tr), "valid": (n_tr, n_tr + n_va), "test": (n_tr + n_va, spec.rows)}
    for split, (a, b) in bounds.items():
        if progress is not None:
            progress(split)
        _write_tsv(out / f"{split}.txt", y[a:b], raw[a:b], hexes[a:b], ids[a:b] < 0)
    a, b = bounds["test"]
    np.save(out / "probs.npy", p[a:b])
    train_ids = [np.unique(hexes[:n_tr, j][ids[:n_tr, j] >= 0]) for j in range(NUM_SPARSE)]
    te_present = ids[a:b] >= 0
    unseen = sum(int(np.sum(~np.isin(hexes[a:b, j][te_present[:, j]], train_ids[j])))
                 for j in range(NUM_SPARSE))  # fmt: skip
    meta = {
        "format": FAMILY_FORMAT,
        "spec": _jsonable(spec.to_dict()),
        "seed": seed,
        "rows": {"train": n_tr, "valid": n_va, "test": n_te},
        "click_rate": {k: float(y[s:e].mean()) for k, (s, e) in bounds.items()},
        "cardinalities": f.cards.tolist(),
        "train_distinct_ids": [len(s) for s in train_ids],
        "test_unseen_id_share": unseen / max(int(te_present.sum()), 1),
        **{f"bayes_test_{k}": v for k, v in bayes_metrics(p[a:b], y[a:b]).items()},
    }
    write_json(meta_path, meta)
    return meta


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d))


def _write_tsv(path: Path, y: np.ndarray, raw: np.ndarray, hexes: np.ndarray, empty: np.ndarray) -> None:
    dense = np.where(raw < 0, "", raw.astype(str))
    sparse = np.char.mod("%08x", hexes.astype(np.int64))
    sparse = np.where(empty, "", sparse)
    cols = np.concatenate([y.astype(str)[:, None], dense, sparse], axis=1)
    with atomic_open(path) as fh:
        for a in range(0, len(cols), 50_000):
            fh.write("".join("\t".join(r) + "\n" for r in cols[a : a + 50_000].tolist()))


def read_family(folder: str | Path) -> dict:
    """``meta.json`` of a generated family (a clear error when the folder is not one)."""
    p = Path(folder) / "meta.json"
    if not p.is_file():
        raise UserError(f"{folder} is not a generated family (no meta.json)")
    meta = read_json(p)
    if meta.get("format") != FAMILY_FORMAT:
        raise UserError(f"{p}: not a {FAMILY_FORMAT} folder")
    return meta


__all__ = ["FamilySpec", "generate_family", "read_family", "true_probabilities"]
