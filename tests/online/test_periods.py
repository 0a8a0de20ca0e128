"""Time-ordered periods: calendar cutting, merging, the drifting planted-truth stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedlab.data.schema import CTRArrays
from embedlab.errors import UserError
from embedlab.online.periods import (
    DriftConfig,
    PeriodStream,
    drift_shape,
    movielens_stream,
    period_index,
    split_periods,
    synth_stream,
)
from embedlab.train.metrics import normalized_entropy

DAY = 86_400


def test_weeks_start_on_monday() -> None:
    # 1997-09-20 was a Saturday; its week starts on Monday 1997-09-15.
    sat = int(np.datetime64("1997-09-20T10:00:00", "s").astype(np.int64))
    ts = np.array([sat, sat + DAY, sat + 2 * DAY, sat + 9 * DAY])  # Sat, Sun, Mon, next Mon
    idx, labels = period_index(ts, "week")
    assert idx.tolist() == [0, 0, 1, 2]
    assert labels[:3] == ["1997-09-15", "1997-09-22", "1997-09-29"]


def test_months_are_30_days_from_the_first_day() -> None:
    t0 = 1_000_000_000
    idx, labels = period_index(np.array([t0, t0 + 29 * DAY, t0 + 31 * DAY]), "month")
    assert idx.tolist() == [0, 0, 1] and len(labels) == 2


def test_bad_period_is_user_error() -> None:
    with pytest.raises(UserError, match="unknown period"):
        period_index(np.array([0]), "fortnight")


def test_small_periods_join_the_next_and_the_tail_joins_the_last() -> None:
    n = 10
    a = CTRArrays(np.zeros((n, 1), np.float32), [np.arange(n)], np.zeros(n, np.float32))
    idx = np.array([0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    parts, names = split_periods(a, idx, ["a", "b", "c", "d", "e"], min_rows=3)
    assert [len(p) for p in parts] == [4, 3, 3]  # {0,1}, {2}, {3,4 (tail)}
    assert names == ["a", "c", "d"]
    assert np.concatenate([p.sparse[0] for p in parts]).tolist() == list(range(n))


def test_drift_shapes() -> None:
    assert drift_shape("none", 5, 10) == 0.0
    assert drift_shape("smooth", 0, 11) == 0.0 and drift_shape("smooth", 10, 11) == 1.0
    assert [drift_shape("abrupt", t, 10) for t in (4, 5)] == [0.0, 1.0]
    assert drift_shape("periodic", 0, 8) == pytest.approx(0.0)
    assert drift_shape("periodic", 1, 8) == pytest.approx(1.0)  # two cycles over 8 periods


def test_synth_stream_keeps_exact_bayes_and_moves_the_truth() -> None:
    cfg = DriftConfig(periods=4, rows=3000, drift="smooth", drift_scale=1.5, cap=50, seed=3)
    s = synth_stream(cfg)
    assert len(s) == 4 and s.rows() == [3000] * 4
    for p, b in zip(s.periods, s.bayes, strict=True):
        assert b["ne"] == pytest.approx(
            normalized_entropy(p.labels.astype(float), p.extra["p_true"])
        )
    assert [b["drift_angle"] for b in s.bayes] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    # The same rows are scored differently as the teacher turns; the scale is kept.
    same = synth_stream(DriftConfig(**{**cfg.__dict__, "drift": "none"}))
    assert np.array_equal(s.periods[0].extra["p_true"], same.periods[0].extra["p_true"])
    assert not np.allclose(s.periods[3].extra["p_true"], same.periods[3].extra["p_true"])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert logit(s.periods[3].extra["p_true"]).std() == pytest.approx(
        logit(same.periods[3].extra["p_true"]).std(), rel=0.25
    )
    # Reproducible.
    again = synth_stream(cfg)
    assert np.array_equal(again.periods[2].labels, s.periods[2].labels)


def test_bad_drift_config_is_user_error() -> None:
    with pytest.raises(UserError, match="unknown drift"):
        DriftConfig(drift="wobbly")
    with pytest.raises(UserError, match="periods"):
        DriftConfig(periods=2)


def test_stream_needs_three_periods() -> None:
    a = CTRArrays(np.zeros((2, 1), np.float32), [np.arange(2)], np.zeros(2, np.float32))
    with pytest.raises(UserError, match="at least 3"):
        PeriodStream("x", None, [a, a], ["a", "b"])  # type: ignore[arg-type]


def _fake_movielens(folder: Path, weeks: int = 5, per_week: int = 30) -> Path:
    folder.mkdir(parents=True)
    (folder / "ml-100k.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        + "".join(f"{u}\t{20 + u}\t{'MF'[u % 2]}\tother\t{10000 + u}\n" for u in range(1, 7))
    )
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\tMovie {i}\t{1980 + i}\tDrama\n" for i in range(1, 9))
    )
    rng = np.random.default_rng(0)
    start = int(np.datetime64("1997-09-22", "s").astype(np.int64))  # a Monday
    rows = []
    for w in range(weeks):
        for _ in range(per_week):
            rows.append((rng.integers(1, 7), rng.integers(1, 9), rng.integers(1, 6),
                         start + w * 7 * DAY + int(rng.integers(0, 7 * DAY))))  # fmt: skip
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    )
    return folder


def test_movielens_weeks_in_time_order(tmp_path: Path) -> None:
    folder = _fake_movielens(tmp_path / "ml")
    s = movielens_stream("week", data_dir=folder, min_rows=10)
    assert len(s) == 5 and sum(s.rows()) == 150
    assert s.labels[0] == "1997-09-22"
    ends = [int(p.extra["timestamp"].max()) for p in s.periods]
    starts = [int(p.extra["timestamp"].min()) for p in s.periods]
    assert all(e < s2 for e, s2 in zip(ends, starts[1:]))
    assert s.schema.num_dense == 9 and s.bayes is None
