"""MovieLens-100k loader: schema, label rule, time split, multi-hot genres, history, fetching.

All tests but one use a tiny fake folder in the real RecBole atomic-file format; the last
one runs on the real data only when it can be fetched (it skips offline).
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from embedlab.data import movielens as ml
from embedlab.data.registry import load_data
from embedlab.data.schema import CTRArrays, make_batch
from embedlab.errors import UserError

USER = """user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token
1\t24\tM\ttechnician\t85711
2\t53\tF\tother\t94043
3\t23\tM\twriter\t32067
4\t33\tF\tother\tT8H1N
"""

ITEM = """item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
1\tToy Story\t1995\tAnimation Children's Comedy
2\tGoldenEye\t1995\tAction Adventure Thriller
3\tFour Rooms\t1994\tThriller
4\tunkonwn\tunkonwn\tunknown
5\tCasablanca\t1942\tDrama Romance War
"""

# (user, item, rating, timestamp): 20 rows out of time order, with tied timestamps; user 4
# never rates anything (its id still gets a row in the table).
RATINGS = [
    (1, 1, 5, 900), (2, 3, 3, 100), (3, 2, 4, 500), (1, 4, 1, 300), (2, 5, 2, 700),
    (3, 1, 4, 500), (1, 2, 3, 200), (2, 1, 5, 1000), (3, 5, 1, 600), (1, 3, 4, 400),
    (2, 2, 5, 800), (3, 4, 2, 150), (1, 5, 3, 950), (2, 4, 4, 250), (3, 3, 5, 850),
    (1, 1, 2, 1100), (2, 2, 4, 1200), (3, 1, 3, 1300), (1, 5, 5, 1400), (2, 3, 1, 1500),
]  # fmt: skip
GENRE_COUNT = {1: 3, 2: 3, 3: 1, 4: 1, 5: 3}


def write_folder(path: Path, ratings=RATINGS, *, skip: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings
    )
    for name, text in (("ml-100k.inter", inter), ("ml-100k.user", USER), ("ml-100k.item", ITEM)):
        if name != skip:
            (path / name).write_text(text)
    return path


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = write_folder(tmp_path / "ml")
    monkeypatch.setenv("EMBEDLAB_MOVIELENS_DIR", str(folder))
    return folder


def all_rows(d) -> CTRArrays:
    return CTRArrays.concat([d.train, d.valid, d.test])


def test_schema_shapes(fake: Path) -> None:
    d = load_data("movielens")
    assert d.name == "movielens"
    assert d.schema.dense_names == ("age", "release_year", "year_missing") + ml.HISTORY_DENSE_NAMES
    assert d.schema.sparse_names == list(ml.SPARSE_NAMES)
    sizes = dict(zip(d.schema.sparse_names, d.schema.table_sizes, strict=True))
    assert sizes == {
        "user_id": 4, "item_id": 5, "age_bucket": 3, "gender": 2, "occupation": 3,
        "zip_prefix": 4, "genres": 10, "release_year": 3,
    }  # fmt: skip
    assert [f.name for f in d.schema.sparse if f.multi_hot] == ["genres"]
    for split in (d.train, d.valid, d.test):
        n = len(split)
        assert split.dense.shape == (n, 9) and split.dense.dtype == np.float32
        assert split.labels.dtype == np.float32
        for f, col in zip(d.schema.sparse, split.sparse, strict=True):
            assert col.dtype == np.int64
            assert col.ndim == (2 if f.multi_hot else 1)
            assert (col < f.num_embeddings).all() and (col >= -1).all()
        assert set(split.extra) == {"timestamp", "user", "item"}
        assert all(v.dtype == np.int64 and len(v) == n for v in split.extra.values())
    assert d.info["rows"] == 20 and d.info["users"] == 3 and d.info["items"] == 5


def test_label_rule_and_features(fake: Path) -> None:
    d = load_data("movielens")
    a = all_rows(d)
    rating = {(u, i, t): r for u, i, r, t in RATINGS}
    expected = [
        rating[(u, i, t)] >= 4
        for u, i, t in zip(a.extra["user"], a.extra["item"], a.extra["timestamp"], strict=True)
    ]
    np.testing.assert_array_equal(a.labels, np.array(expected, dtype=np.float32))
    # side features follow the raw ids
    users = a.extra["user"]
    np.testing.assert_allclose(
        a.dense[:, 0], np.where(users == 2, 0.53, np.where(users == 1, 0.24, 0.23)), rtol=1e-6
    )
    missing = a.extra["item"] == 4
    np.testing.assert_array_equal(a.dense[:, 2], missing.astype(np.float32))
    assert (a.dense[missing, 1] == 0).all()
    np.testing.assert_allclose(a.dense[a.extra["item"] == 5, 1], 0.42, rtol=1e-6)
    year_col = a.sparse[ml.SPARSE_NAMES.index("release_year")]
    assert (year_col[missing] == -1).all() and (year_col[~missing] >= 0).all()
    # user_id / item_id are contiguous ids in raw-id order
    np.testing.assert_array_equal(a.sparse[0], users - 1)
    np.testing.assert_array_equal(a.sparse[1], a.extra["item"] - 1)
    assert d.info["positive_rate"] == pytest.approx(np.mean([r >= 4 for _, _, r, _ in RATINGS]))


def test_time_order_split(fake: Path) -> None:
    d = load_data("movielens")
    assert (len(d.train), len(d.valid), len(d.test)) == (16, 2, 2)
    tr, va, te = (s.extra["timestamp"] for s in (d.train, d.valid, d.test))
    assert tr.max() <= va.min() and va.max() <= te.min()
    ts = all_rows(d).extra["timestamp"]
    assert (np.diff(ts) >= 0).all()
    # ties keep file order: (3, 2) comes before (3, 1) at timestamp 500
    a = all_rows(d)
    tied = ts == 500
    assert list(zip(a.extra["user"][tied], a.extra["item"][tied], strict=True)) == [(3, 2), (3, 1)]
    assert d.info["splits"]["test"]["last_timestamp"] == 1500


def test_genres_bag_lengths_in_kjt(fake: Path) -> None:
    d = load_data("movielens")
    a = d.train
    batch = make_batch(a, np.arange(len(a)), d.schema)
    kjt = batch.sparse
    lengths = kjt["genres"].lengths().numpy()
    np.testing.assert_array_equal(lengths, [GENRE_COUNT[int(i)] for i in a.extra["item"]])
    assert (kjt["user_id"].lengths().numpy() == 1).all()
    year_len = kjt["release_year"].lengths().numpy()
    np.testing.assert_array_equal(year_len, (a.extra["item"] != 4).astype(np.int64))
    assert batch.dense.shape == (len(a), 9) and batch.labels.shape == (len(a),)
    # the same genre ids come back for the same movie
    genres = a.sparse[ml.SPARSE_NAMES.index("genres")]
    ones = genres[a.extra["item"] == 1]
    assert (ones == ones[0]).all()


# --------------------------------------------------------------------------- history

# RATINGS plus two rows that make more ties: item 2 is rated by users 3 and 2 at timestamp
# 500 (user 3 also rates item 1 then), and user 2 rates items 3 and 4 at 1500.
TIED = RATINGS + [(2, 2, 5, 500), (2, 4, 1, 1500)]


def brute_history(ratings, n_train: int, pseudo: float = ml.HISTORY_PSEUDO) -> dict:
    """Expected history features per ``(user, item, timestamp)``, by a plain loop."""
    by_time = sorted(ratings, key=lambda r: r[3])  # stable, like the loader
    prior_rate = float(np.mean([r >= 4 for _, _, r, _ in by_time[:n_train]]))
    prior_rating = float(np.mean([r for _, _, r, _ in by_time[:n_train]]))
    out = {}
    for u, i, _, t in ratings:
        row = []
        for pos, key in ((0, u), (1, i)):
            past = [r for r in ratings if r[pos] == key and r[3] < t]
            n = len(past)
            k = sum(r[2] >= 4 for r in past)
            s = sum(r[2] for r in past)
            row += [
                np.log1p(n),
                (k + pseudo * prior_rate) / (n + pseudo),
                (s + pseudo * prior_rating) / (n + pseudo) / 5.0,
            ]
        out[(u, i, t)] = row
    return out


def test_history_matches_brute_force(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml", ratings=TIED)
    d = load_data("movielens", data_dir=folder)
    assert len({(u, i, t) for u, i, _, t in TIED}) == len(TIED)  # keys are unique
    a = all_rows(d)
    expected = brute_history(TIED, len(d.train))
    keys = zip(a.extra["user"], a.extra["item"], a.extra["timestamp"], strict=True)
    want = np.array([expected[(int(u), int(i), int(t))] for u, i, t in keys])
    np.testing.assert_allclose(a.dense[:, 3:], want, rtol=1e-6, atol=1e-7)
    h = d.info["history"]
    assert h["features"] == list(ml.HISTORY_DENSE_NAMES)
    assert h["prior_rate"] == pytest.approx(float(d.train.labels.mean(dtype=np.float64)))
    # the ties: rows at the same second do not see each other
    col = {n: j for j, n in enumerate(d.schema.dense_names)}
    at = lambda u, i, t: a.dense[  # noqa: E731
        (a.extra["user"] == u) & (a.extra["item"] == i) & (a.extra["timestamp"] == t)
    ][0]
    uc, ic = col["user_hist_count"], col["item_hist_count"]
    assert at(3, 2, 500)[uc] == at(3, 1, 500)[uc] == pytest.approx(np.log1p(1))  # only t=150
    assert at(3, 2, 500)[ic] == at(2, 2, 500)[ic] == pytest.approx(np.log1p(1))  # only t=200
    assert at(2, 3, 1500)[uc] == at(2, 4, 1500)[uc] == pytest.approx(np.log1p(7))
    # the very first rows of a user / an item see nothing: counts 0, rates at the prior
    first = at(2, 3, 100)
    assert first[uc] == 0 and first[ic] == 0
    assert first[col["user_hist_rate"]] == pytest.approx(h["prior_rate"])
    assert first[col["item_hist_rating"]] == pytest.approx(h["prior_rating"] / 5)


def test_history_false_gives_the_old_schema(fake: Path) -> None:
    old = load_data("movielens", history=False)
    new = load_data("movielens")
    assert old.schema.dense_names == ml.DENSE_NAMES == ("age", "release_year", "year_missing")
    assert old.schema.sparse == new.schema.sparse
    assert old.info["history"] is None and new.info["history"] is not None
    for s in ("train", "valid", "test"):
        o, n = old.split(s), new.split(s)
        assert o.dense.shape == (len(o), 3)
        np.testing.assert_array_equal(o.dense, n.dense[:, :3])
        np.testing.assert_array_equal(o.labels, n.labels)
        for a, b in zip(o.sparse, n.sparse, strict=True):
            np.testing.assert_array_equal(a, b)
        assert set(o.extra) == set(n.extra) == {"timestamp", "user", "item"}
    schema, arrays = ml.build_arrays(fake)
    assert schema == old.schema and arrays.dense.shape[1] == 3
    with pytest.raises(UserError, match="history"):
        load_data("movielens", history="yes")


def test_prior_sums_random_against_loop() -> None:
    rng = np.random.default_rng(0)
    n = 300
    group = rng.integers(0, 7, n)
    ts = rng.integers(0, 25, n)  # many ties
    vals = rng.normal(size=(n, 2))
    counts, sums = ml.prior_sums(group, ts, vals)
    for r in range(n):
        past = (group == group[r]) & (ts < ts[r])
        assert counts[r] == past.sum()
        np.testing.assert_allclose(sums[r], vals[past].sum(axis=0), atol=1e-9)
    c0, s0 = ml.prior_sums(group[:0], ts[:0], vals[:0])
    assert c0.shape == (0,) and s0.shape == (0, 2)


@pytest.mark.parametrize("skip", ml.FILES)
def test_missing_files_raise_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: str
) -> None:
    folder = write_folder(tmp_path / "ml", skip=skip)
    with pytest.raises(UserError, match=skip):
        load_data("movielens", data_dir=folder)
    monkeypatch.setenv("EMBEDLAB_MOVIELENS_DIR", str(folder))
    with pytest.raises(UserError, match="EMBEDLAB_MOVIELENS_DIR"):
        ml.fetch_movielens()


def test_bad_data_raises_user_error(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ml", ratings=RATINGS + [(9, 1, 5, 2000)])
    with pytest.raises(UserError, match="user_id 9"):
        load_data("movielens", data_dir=folder)
    (folder / "ml-100k.user").write_text("user_id:token\tgender:token\n1\tM\n")
    with pytest.raises(UserError, match="age"):
        load_data("movielens", data_dir=folder)


def _fake_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        src = write_folder(path.parent / "src")
        for f in ml.FILES:
            z.write(src / f, f"{ml.WHEEL_DIR}/{f}")
        z.writestr("recbole/__init__.py", "")


def test_fetch_extracts_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDLAB_MOVIELENS_DIR", raising=False)
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        _fake_wheel(dest / "recbole-1.2.1-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ml.subprocess, "run", fake_run)
    root = tmp_path / "cache"
    folder = ml.fetch_movielens(root)
    assert folder == root / "movielens" / "ml-100k"
    assert sorted(p.name for p in folder.iterdir()) == sorted(ml.FILES)
    assert [p.name for p in (root / "movielens").iterdir()] == ["ml-100k"]  # no temp left
    assert "recbole==1.2.1" in calls[0] and "--no-deps" in calls[0]
    assert ml.fetch_movielens(root) == folder and len(calls) == 1  # cached
    d = load_data("movielens", cache_root=root)
    assert len(d.train) == 16


def test_fetch_failure_is_user_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDLAB_MOVIELENS_DIR", raising=False)

    def failing_run(cmd, **kw):
        return subprocess.CompletedProcess(
            cmd,
            1,
            "",
            "WARNING: retrying\nERROR: No matching distribution found for recbole==1.2.1\n",
        )

    monkeypatch.setattr(ml.subprocess, "run", failing_run)
    root = tmp_path / "cache"
    with pytest.raises(UserError, match="could not fetch MovieLens-100k.*No matching distribution"):
        ml.fetch_movielens(root)
    assert list((root / "movielens").iterdir()) == []


def test_real_movielens_100k(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs only where the real data can be fetched (or is already cached)."""
    monkeypatch.delenv("EMBEDLAB_MOVIELENS_DIR", raising=False)
    try:
        ml.fetch_movielens()
    except UserError as e:
        pytest.skip(f"MovieLens-100k not available: {e}")
    d = load_data("movielens")
    a = all_rows(d)
    assert len(a) == 100_000
    assert (len(d.train), len(d.valid), len(d.test)) == (80_000, 10_000, 10_000)
    assert len(np.unique(a.extra["user"])) == 943
    assert len(np.unique(a.extra["item"])) == 1682
    assert float(a.labels.mean(dtype=np.float64)) == pytest.approx(0.5538, abs=1e-3)
    sizes = dict(zip(d.schema.sparse_names, d.schema.table_sizes, strict=True))
    assert sizes["user_id"] == 943 and sizes["item_id"] == 1682
    assert d.info["history"]["prior_rate"] == pytest.approx(0.5509, abs=1e-4)
    hist = a.dense[:, len(ml.DENSE_NAMES) :]
    assert hist.shape == (100_000, 6) and np.isfinite(hist).all()
