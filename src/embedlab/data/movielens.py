"""MovieLens-100k as a CTR task: 100,000 ratings of 1,682 movies by 943 users.

The data (GroupLens, via RecBole's atomic files ``ml-100k.{inter,user,item}``) may not be
redistributed, so it is never part of this repository: :func:`fetch_movielens` takes the
three files out of the ``recbole==1.2.1`` wheel (which ships them) with ``pip download``
into a cache folder, once. ``$EMBEDLAB_MOVIELENS_DIR`` may name a folder that already
holds the three files (for offline use).

Our choices:

* **Label**: a rating of 4 or 5 is a click (``rating >= 4``, 55.4% of rows).
* **Split**: interactions sorted by timestamp (stable, ties keep file order); the first 80%
  train, the next 10% valid, the last 10% test. Every train timestamp is <= every valid
  one <= every test one, so models are always evaluated on the future.
* **Sparse features**, one table each, ids contiguous ``0..k-1`` over the *side tables*
  (all users, all items; ids carry no labels so there is no leakage), table size ``k``;
  ``-1`` marks a missing value (an empty bag): ``user_id``, ``item_id``, ``age_bucket``
  (age decade, ``age // 10``), ``gender``, ``occupation``, ``zip_prefix`` (first two
  characters of the zip code), ``genres`` (multi-hot bag ``[N, L]`` padded with ``-1``)
  and ``release_year`` (a token; missing for item 267).
* **Dense features** (float32): ``age`` (``age / 100``), ``release_year``
  (``(year - 1900) / 100``, 0 when missing) and ``year_missing`` (0/1).
* ``extra`` of every split keeps ``timestamp`` (int64 seconds), ``user`` and ``item``
  (the original MovieLens ids, int64) for baselines and online-learning experiments.
* **History features** (``load_movielens(history=True)``, the default; six more dense
  columns after the three above, :data:`HISTORY_DENSE_NAMES`). For a rating by user ``u``
  of item ``i`` at second ``t``, over *all* interactions (every split) of ``u`` (resp.
  ``i``) with a timestamp **strictly earlier** than ``t`` -- ``n`` of them, ``k`` positive,
  ratings summing to ``s``:

  - ``user_hist_count`` / ``item_hist_count``: ``log1p(n)``;
  - ``user_hist_rate`` / ``item_hist_rate``: ``(k + a * g) / (n + a)``, the earlier
    positive rate shrunk toward ``g`` with ``a`` = :data:`HISTORY_PSEUDO` = 5
    pseudo-observations;
  - ``user_hist_rating`` / ``item_hist_rating``: ``(s + a * m) / (n + a) / 5``, the
    earlier mean rating shrunk toward ``m``, scaled to ``[0, 1]``.

  ``g`` and ``m`` are constants: the positive rate and the mean rating of the *training*
  split (0.5509 and 3.518 on MovieLens-100k), recorded in ``info["history"]``. A row with
  no earlier rating gets ``n = 0``, the rate ``g`` and the mean rating ``m / 5``. Rows
  tied at the same second do not see each other (a user rates many movies within one
  second; which came first is unknown). ``a = 5`` was checked with logistic regression on
  the validation split: 2, 5, 10 and 20 were within 0.003 AUC.

  *Why this is not leakage*: a row's features use only interactions that happened
  before it, exactly what a deployed recommender has in its logs when it scores that
  request; never the row's own label, never a later or simultaneous one. The smoothing
  constants come from the training split only. The features are **prequential**: a
  valid or test row sees the labels of *earlier* valid/test rows, as online serving
  would (the log keeps growing after training ends); the model itself is still trained
  on the training split only and never updated. This is what makes the features useful
  here: ~85% of valid/test rows come from users who are not in the training split at
  all, so their id embeddings are untrained, but ~97% of those rows have earlier
  ratings of the same user. ``history=False`` gives the three-dense-feature schema.

  The default ``history=True`` was chosen on the validation split by
  ``benchmarks/movielens.py``: DLRM validation AUC 0.732 with the history features
  against 0.697 without (see ``benchmarks/results/movielens.json``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedlab.data.criteo import default_cache_root
from embedlab.data.registry import CTRData, register_data, split_by_position
from embedlab.data.schema import CTRArrays, CTRSchema, SparseFeature
from embedlab.errors import UserError

RECBOLE_PIN = "recbole==1.2.1"
WHEEL_DIR = "recbole/dataset_example/ml-100k"
FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
ENV_DIR = "EMBEDLAB_MOVIELENS_DIR"
DENSE_NAMES = ("age", "release_year", "year_missing")
#: Causal history features (dense, after :data:`DENSE_NAMES` when ``history=True``).
HISTORY_DENSE_NAMES = (
    "user_hist_count", "user_hist_rate", "user_hist_rating",
    "item_hist_count", "item_hist_rate", "item_hist_rating",
)  # fmt: skip
#: Pseudo-observations at the prior that shrink the history rates and mean ratings.
HISTORY_PSEUDO = 5.0
MAX_RATING = 5.0
VALID_FRAC = TEST_FRAC = 0.1
SPARSE_NAMES = (
    "user_id", "item_id", "age_bucket", "gender", "occupation", "zip_prefix", "genres",
    "release_year",
)  # fmt: skip
_INTER_COLS = ("user_id", "item_id", "rating", "timestamp")
_USER_COLS = ("user_id", "age", "gender", "occupation", "zip_code")
_ITEM_COLS = ("item_id", "release_year", "class")
_PIP_TIMEOUT_S = 600


# --------------------------------------------------------------------------- fetching


def fetch_movielens(cache_root: str | Path | None = None) -> Path:
    """The folder holding ``ml-100k.{inter,user,item}``, fetched into the cache if needed.

    ``$EMBEDLAB_MOVIELENS_DIR``, when set, is used as is (it must hold the files). Otherwise
    the folder is ``<cache_root>/movielens/ml-100k`` (``cache_root`` defaults to
    ``$EMBEDLAB_CACHE`` or ``~/.cache/embedlab``); a missing one is filled from the
    ``recbole==1.2.1`` wheel and renamed into place only when complete.
    """
    env = os.environ.get(ENV_DIR)
    if env:
        return check_folder(env, f"${ENV_DIR}")
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    final = root / "movielens" / "ml-100k"
    if _is_complete(final):
        return final
    try:
        _fetch_into(final)
    except (OSError, subprocess.SubprocessError, zipfile.BadZipFile) as e:
        raise UserError(
            f"could not fetch MovieLens-100k from the {RECBOLE_PIN} wheel: {e}"
        ) from None
    return final


def check_folder(path: str | Path, what: str = "MovieLens folder") -> Path:
    """``path`` if it holds the three MovieLens files, else a :class:`UserError`."""
    p = Path(path)
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise UserError(f"{what} {p} lacks {', '.join(missing)}")
    return p


def _is_complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FILES)


def _fetch_into(final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ml-100k.", dir=final.parent) as tmp:
        wheel = _download_wheel(Path(tmp) / "wheel")
        staged = Path(tmp) / "ml-100k"
        staged.mkdir()
        _extract(wheel, staged)
        if final.exists():  # an incomplete leftover (complete ones returned earlier)
            shutil.rmtree(final)
        try:
            os.rename(staged, final)
        except OSError:
            if not _is_complete(final):  # else a concurrent fetch finished first
                raise


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", RECBOLE_PIN, "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(
            f"could not fetch MovieLens-100k from the {RECBOLE_PIN} wheel: "
            f"pip download timed out after {_PIP_TIMEOUT_S}s (set ${ENV_DIR} to a folder "
            f"with {', '.join(FILES)} to work offline)"
        ) from None
    wheels = sorted(dest.glob("recbole-*.whl")) if dest.is_dir() else []
    if proc.returncode != 0 or not wheels:
        raise UserError(
            f"could not fetch MovieLens-100k from the {RECBOLE_PIN} wheel: "
            f"{_last_error_line(proc)} (set ${ENV_DIR} to a folder with {', '.join(FILES)} "
            "to work offline)"
        )
    return wheels[0]


def _last_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if not ln.startswith("WARNING")]
    if errors:
        return errors[-1]
    return f"pip download exited with code {proc.returncode} and no wheel"


def _extract(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in FILES:
            member = f"{WHEEL_DIR}/{f}"
            if member not in names:
                raise UserError(f"could not fetch MovieLens-100k: {wheel.name} has no {member}")
            with z.open(member) as src, open(dest / f, "wb") as out:
                shutil.copyfileobj(src, out)


# --------------------------------------------------------------------------- parsing


def read_atomic(path: Path, required: tuple[str, ...]) -> dict[str, list[str]]:
    """A RecBole atomic file (TSV, ``name:type`` header) as columns of strings.

    Only the ``required`` columns are returned; a missing column or a line with the wrong
    number of fields is a :class:`UserError` naming the file (and line).
    """
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split("\t")
            names = [h.split(":", 1)[0] for h in header]
            missing = [c for c in required if c not in names]
            if missing:
                raise UserError(f"{path}: header lacks column(s) {', '.join(missing)}")
            pos = [names.index(c) for c in required]
            cols: dict[str, list[str]] = {c: [] for c in required}
            for lineno, line in enumerate(f, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                fields = line.split("\t")
                if len(fields) != len(names):
                    raise UserError(
                        f"{path}:{lineno}: expected {len(names)} tab-separated fields, "
                        f"got {len(fields)}"
                    )
                for c, i in zip(required, pos, strict=True):
                    cols[c].append(fields[i].strip())
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason})") from None
    if not cols[required[0]]:
        raise UserError(f"{path}: no rows")
    return cols


def _to_int(s: str) -> int | None:
    try:
        return int(float(s))
    except ValueError:
        return None


def _ints(values: list[str], path: Path, column: str) -> np.ndarray:
    """Whole numbers (``"3"`` or ``"3.0"``) as int64; anything else is a UserError."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        x = _to_int(v)
        if x is None:
            raise UserError(f"{path}: column {column!r} row {i + 1}: not a number: {v!r}")
        out[i] = x
    return out


@dataclass(frozen=True)
class Vocab:
    """Contiguous ids ``0..k-1`` for the sorted distinct values of one feature."""

    values: tuple

    @classmethod
    def of(cls, values) -> Vocab:
        return cls(tuple(sorted({v for v in values if v is not None})))

    @property
    def size(self) -> int:
        return len(self.values)

    def encode(self, values) -> np.ndarray:
        index = {v: i for i, v in enumerate(self.values)}
        return np.array([index.get(v, -1) if v is not None else -1 for v in values], np.int64)


def _bags(tokens: list[list[str]], vocab: Vocab) -> np.ndarray:
    """Multi-hot bags ``[n, L]`` (``L`` = the longest bag, at least 1) padded with ``-1``."""
    width = max(1, max((len(t) for t in tokens), default=0))
    out = np.full((len(tokens), width), -1, dtype=np.int64)
    for i, t in enumerate(tokens):
        ids = vocab.encode(t)
        out[i, : len(ids)] = ids
    return out


@dataclass
class _Side:
    """Per-user or per-item features, one row per contiguous id."""

    raw_ids: np.ndarray  # original MovieLens ids, sorted; row r has contiguous id r
    sparse: dict[str, np.ndarray]
    dense: dict[str, np.ndarray]
    sizes: dict[str, int]


def _users(path: Path) -> _Side:
    cols = read_atomic(path, _USER_COLS)
    raw = _ints(cols["user_id"], path, "user_id")
    _check_unique(raw, path, "user_id")
    order = np.argsort(raw, kind="stable")
    raw = raw[order]
    take = lambda c: [cols[c][i] for i in order]  # noqa: E731
    ages = [_to_int(a) for a in take("age")]
    buckets = [a // 10 if a is not None else None for a in ages]
    zips = [z[:2].upper() if z else None for z in take("zip_code")]
    genders = [g or None for g in take("gender")]
    occupations = [o or None for o in take("occupation")]
    vocabs = {
        "age_bucket": Vocab.of(buckets),
        "gender": Vocab.of(genders),
        "occupation": Vocab.of(occupations),
        "zip_prefix": Vocab.of(zips),
    }
    values = {
        "age_bucket": buckets,
        "gender": genders,
        "occupation": occupations,
        "zip_prefix": zips,
    }
    sparse = {k: v.encode(values[k]) for k, v in vocabs.items()}
    age = np.array([a / 100.0 if a is not None else 0.0 for a in ages], dtype=np.float32)
    sizes = {"user_id": len(raw), **{k: v.size for k, v in vocabs.items()}}
    return _Side(raw, sparse, {"age": age}, sizes)


def _items(path: Path) -> _Side:
    cols = read_atomic(path, _ITEM_COLS)
    raw = _ints(cols["item_id"], path, "item_id")
    _check_unique(raw, path, "item_id")
    order = np.argsort(raw, kind="stable")
    raw = raw[order]
    years = [_year(cols["release_year"][i]) for i in order]
    genres = [cols["class"][i].split() for i in order]
    genre_vocab = Vocab.of(g for gs in genres for g in gs)
    year_vocab = Vocab.of(years)
    sparse = {"genres": _bags(genres, genre_vocab), "release_year": year_vocab.encode(years)}
    dense = {
        "release_year": np.array(
            [(y - 1900) / 100.0 if y is not None else 0.0 for y in years], dtype=np.float32
        ),
        "year_missing": np.array([y is None for y in years], dtype=np.float32),
    }
    sizes = {
        "item_id": len(raw),
        "genres": max(genre_vocab.size, 1),
        "release_year": max(year_vocab.size, 1),
    }
    return _Side(raw, sparse, dense, sizes)


def _year(s: str) -> int | None:
    y = _to_int(s)
    return y if y is not None and 1800 <= y <= 2100 else None


def _check_unique(raw: np.ndarray, path: Path, column: str) -> None:
    uniq, counts = np.unique(raw, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{path}: {column} {int(uniq[counts > 1][0])} appears more than once")


def _lookup(raw_ids: np.ndarray, wanted: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Contiguous ids of ``wanted`` in the sorted ``raw_ids`` (unknown ids: UserError)."""
    pos = np.searchsorted(raw_ids, wanted)
    pos_c = np.minimum(pos, len(raw_ids) - 1)
    bad = raw_ids[pos_c] != wanted
    if bad.any():
        raise UserError(f"{path}: {what} {int(wanted[bad][0])} is not in the {what} side table")
    return pos_c.astype(np.int64)


# --------------------------------------------------------------------------- loading


def movielens_schema(sizes: dict[str, int], history: bool = False) -> CTRSchema:
    """The schema given the table size of each sparse feature (``history``: 6 more dense)."""
    return CTRSchema(
        dense_names=DENSE_NAMES + (HISTORY_DENSE_NAMES if history else ()),
        sparse=tuple(
            SparseFeature(n, int(sizes[n]), multi_hot=n == "genres") for n in SPARSE_NAMES
        ),
    )


def build_arrays(folder: str | Path) -> tuple[CTRSchema, CTRArrays]:
    """All interactions of ``folder`` in time order as one :class:`CTRArrays` (no history)."""
    schema, arrays, _ = _build(folder)
    return schema, arrays


def _build(folder: str | Path) -> tuple[CTRSchema, CTRArrays, np.ndarray]:
    """:func:`build_arrays` plus the raw ratings (float64, same row order)."""
    folder = check_folder(folder)
    inter_path, user_path, item_path = (folder / f for f in FILES)
    users, items = _users(user_path), _items(item_path)
    cols = read_atomic(inter_path, _INTER_COLS)
    raw_u = _ints(cols["user_id"], inter_path, "user_id")
    raw_i = _ints(cols["item_id"], inter_path, "item_id")
    ts = _ints(cols["timestamp"], inter_path, "timestamp")
    try:
        rating = np.array(cols["rating"], dtype=np.float64)
    except ValueError:
        raise UserError(f"{inter_path}: column 'rating' has a value that is not a number") from None
    if not np.isfinite(rating).all():
        raise UserError(f"{inter_path}: column 'rating' has a value that is not finite")
    order = np.argsort(ts, kind="stable")
    raw_u, raw_i, ts, rating = raw_u[order], raw_i[order], ts[order], rating[order]
    u = _lookup(users.raw_ids, raw_u, inter_path, "user_id")
    i = _lookup(items.raw_ids, raw_i, inter_path, "item_id")
    per_row = {"user_id": u, "item_id": i}
    per_row.update({k: v[u] for k, v in users.sparse.items()})
    per_row.update({k: v[i] for k, v in items.sparse.items()})
    dense = np.stack(
        [users.dense["age"][u], items.dense["release_year"][i], items.dense["year_missing"][i]],
        axis=1,
    ).astype(np.float32)
    arrays = CTRArrays(
        dense=dense,
        sparse=[per_row[n] for n in SPARSE_NAMES],
        labels=(rating >= 4).astype(np.float32),
        extra={"timestamp": ts, "user": raw_u, "item": raw_i},
    )
    return movielens_schema({**users.sizes, **items.sizes}), arrays, rating


# --------------------------------------------------------------------------- history


def prior_sums(
    group: np.ndarray, ts: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many rows of its ``group`` have a strictly smaller ``ts``, and the sums
    of ``values`` (``[N, k]``) over those rows.

    Vectorized: rows are sorted by ``(group, ts)``; exclusive cumulative sums are read at
    the start of the row's block of equal ``(group, ts)`` (so rows tied at the same
    timestamp do not see each other) minus the start of its group. Row order is free.
    Returns ``(counts [N] int64, sums [N, k] float64)``.
    """
    group = np.asarray(group)
    ts = np.asarray(ts)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n = len(group)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, v.shape[1]))
    order = np.lexsort((ts, group))
    g, t = group[order], ts[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    new_block = new_group.copy()
    new_block[1:] |= t[1:] != t[:-1]
    idx = np.arange(n)
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    block_start = np.maximum.accumulate(np.where(new_block, idx, 0))
    csum = np.zeros((n + 1, v.shape[1]))
    np.cumsum(v[order], axis=0, out=csum[1:])
    counts = np.empty(n, dtype=np.int64)
    sums = np.empty((n, v.shape[1]))
    counts[order] = block_start - group_start
    sums[order] = csum[block_start] - csum[group_start]
    return counts, sums


def history_features(
    user: np.ndarray,
    item: np.ndarray,
    ts: np.ndarray,
    rating: np.ndarray,
    prior_rate: float,
    prior_rating: float,
    pseudo: float = HISTORY_PSEUDO,
) -> np.ndarray:
    """The :data:`HISTORY_DENSE_NAMES` columns (``[N, 6]`` float32), see the module docstring.

    Each row sees only rows of the same user (item) with a strictly earlier timestamp; a
    rating is positive when ``>= 4``. Rates and mean ratings are shrunk toward
    ``prior_rate`` / ``prior_rating`` with ``pseudo`` pseudo-observations.
    """
    rating = np.asarray(rating, dtype=np.float64)
    values = np.stack([(rating >= 4).astype(np.float64), rating], axis=1)
    cols = []
    for key in (user, item):
        n, s = prior_sums(key, ts, values)
        denom = n + pseudo
        cols += [
            np.log1p(n),
            (s[:, 0] + pseudo * prior_rate) / denom,
            (s[:, 1] + pseudo * prior_rating) / denom / MAX_RATING,
        ]
    return np.stack(cols, axis=1).astype(np.float32)


def _split_info(parts: dict[str, CTRArrays]) -> dict:
    info: dict = {}
    for name, a in parts.items():
        ts = a.extra["timestamp"]
        info[name] = {
            "rows": len(a),
            "positive_rate": float(a.labels.mean(dtype=np.float64)),
            "first_timestamp": int(ts[0]),
            "last_timestamp": int(ts[-1]),
        }
    return info


@register_data("movielens")
def load_movielens(
    cache_root: str | Path | None = None,
    data_dir: str | Path | None = None,
    history: bool = True,
    **_: object,
) -> CTRData:
    """MovieLens-100k split by time 80/10/10 (see the module docstring for the choices).

    ``data_dir`` names a folder with ``ml-100k.{inter,user,item}``; without it the files
    come from ``$EMBEDLAB_MOVIELENS_DIR`` or are fetched once into the cache. ``history``
    (default on) appends the six causal history features :data:`HISTORY_DENSE_NAMES` to
    the dense features; ``history=False`` gives the three-dense-feature schema.
    """
    if not isinstance(history, bool):
        raise UserError(f"movielens: history must be true or false, got {history!r}")
    folder = check_folder(data_dir) if data_dir is not None else fetch_movielens(cache_root)
    schema, arrays, rating = _build(folder)
    train, valid, test = split_by_position(arrays, valid_frac=VALID_FRAC, test_frac=TEST_FRAC)
    info: dict = {}
    if history:
        n_train = len(train)
        prior_rate = float(arrays.labels[:n_train].mean(dtype=np.float64))
        prior_rating = float(rating[:n_train].mean())
        hist = history_features(
            arrays.extra["user"], arrays.extra["item"], arrays.extra["timestamp"], rating,
            prior_rate, prior_rating,
        )  # fmt: skip
        arrays = CTRArrays(
            dense=np.concatenate([arrays.dense, hist], axis=1),
            sparse=arrays.sparse,
            labels=arrays.labels,
            extra=arrays.extra,
        )
        schema = movielens_schema(
            dict(zip(schema.sparse_names, schema.table_sizes, strict=True)), history=True
        )
        train, valid, test = split_by_position(arrays, valid_frac=VALID_FRAC, test_frac=TEST_FRAC)
        info["history"] = {
            "features": list(HISTORY_DENSE_NAMES),
            "prior_rate": prior_rate,
            "prior_rating": prior_rating,
            "pseudo_count": HISTORY_PSEUDO,
            "visibility": "same user/item, strictly earlier timestamp, all splits (prequential)",
        }
    else:
        info["history"] = None
    info.update(
        {
            "source": str(folder),
            "rows": len(arrays),
            "users": int(len(np.unique(arrays.extra["user"]))),
            "items": int(len(np.unique(arrays.extra["item"]))),
            "table_sizes": dict(zip(schema.sparse_names, schema.table_sizes, strict=True)),
            "dense_names": list(schema.dense_names),
            "positive_rate": float(arrays.labels.mean(dtype=np.float64)),
            "label": "rating >= 4",
            "split": "time order 80/10/10",
            "splits": _split_info({"train": train, "valid": valid, "test": test}),
        }
    )
    return CTRData("movielens", schema, train, valid, test, info)
