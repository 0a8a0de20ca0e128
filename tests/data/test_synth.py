from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from embedlab.data.criteo import iter_chunks
from embedlab.data.registry import load_data
from embedlab.data.synth import SynthConfig, Teacher, generate, read_meta, synth_schema
from embedlab.errors import UserError


def _raw_from_tsv(path):
    """Raw dense ints (-1 missing) and ids (-1 missing) straight from the TSV text."""
    raw, ids, y = [], [], []
    for ln in path.read_text().splitlines():
        f = ln.split("\t")
        y.append(float(f[0]))
        raw.append([int(v) if v else -1 for v in f[1:14]])
        ids.append([int(v, 16) if v else -1 for v in f[14:]])
    return np.array(raw), np.array(ids), np.array(y)


def test_bayes_metrics_match_direct_computation(synth_dir, small_cfg):
    meta = read_meta(synth_dir)
    raw, ids, y = _raw_from_tsv(synth_dir / "test.tsv")
    p = Teacher.build(small_cfg).probability(raw, ids)
    assert meta["bayes_test_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert meta["bayes_test_logloss"] == pytest.approx(log_loss(y, p), abs=1e-6)
    base = y.mean()
    h = -(base * np.log(base) + (1 - base) * np.log(1 - base))
    assert meta["bayes_test_ne"] == pytest.approx(log_loss(y, p) / h, abs=1e-6)
    assert 0.5 < meta["bayes_test_auc"] < 1.0


def test_deterministic_and_nested_across_sizes(tmp_path, synth_dir, small_cfg):
    small = SynthConfig(**{**small_cfg.__dict__, "rows": 3000})
    generate(small, tmp_path / "a")
    big_train = (synth_dir / "train.tsv").read_text().splitlines()
    small_train = (tmp_path / "a" / "train.tsv").read_text().splitlines()
    assert small_train == big_train[:3000]  # first rows of a larger set are the smaller set
    assert (tmp_path / "a" / "test.tsv").read_text() == (synth_dir / "test.tsv").read_text()
    other = SynthConfig(**{**small_cfg.__dict__, "seed": 4})
    generate(other, tmp_path / "b")
    assert (tmp_path / "b" / "test.tsv").read_text() != (synth_dir / "test.tsv").read_text()


def test_files_follow_criteo_layout(synth_dir):
    meta = json.loads((synth_dir / "meta.json").read_text())
    schema = synth_schema(meta)
    chunk = next(iter_chunks(synth_dir / "valid.tsv", schema, strict=True))
    assert len(chunk) == 2000
    assert 0.1 < chunk.labels.mean() < 0.4  # base CTR 0.25
    for col, size in zip(chunk.sparse, schema.table_sizes):
        assert col.max() < size


def test_zipf_makes_heavy_head(synth_dir):
    data = load_data("synth", data_dir=synth_dir)
    col = np.asarray(data.train.sparse[2])  # 300 ids
    counts = np.bincount(col[col >= 0])
    top = np.sort(counts)[::-1]
    assert top[:30].sum() > 0.4 * top.sum()


def test_drift_days_written_with_per_day_bayes(tmp_path, small_cfg):
    cfg = SynthConfig(**{**small_cfg.__dict__, "rows": 500, "days": 4, "drift": "abrupt"})
    meta = generate(cfg, tmp_path)
    assert sorted(meta["files"]) == [f"day_{d:03d}" for d in range(4)]
    deltas = [meta["bayes"][f"day_{d:03d}"]["drift_delta"] for d in range(4)]
    assert deltas[0] == deltas[1] == 0 and deltas[2] == deltas[3] > 0


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"rows": 0}, "rows must be positive"),
        ({"drift": "wobbly"}, "unknown drift"),
        ({"base_ctr": 1.5}, "base_ctr"),
        ({"cardinalities": (5, 5)}, "26 cardinalities"),
    ],
)
def test_bad_config(kw, msg):
    with pytest.raises(UserError, match=msg):
        SynthConfig(**kw)


def test_not_a_synth_folder(tmp_path):
    with pytest.raises(UserError, match="not a synthetic data folder"):
        load_data("synth", data_dir=tmp_path)


def test_tiny_test_split_gives_nan_not_crash(tmp_path, small_cfg):
    meta = generate(SynthConfig(**{**small_cfg.__dict__, "rows": 200, "test_rows": 1}), tmp_path)
    assert math.isnan(meta["bayes_test_ne"])  # one row: constant labels, NE undefined
    saved = json.loads((tmp_path / "meta.json").read_text())  # strict JSON: NaN written as null
    assert saved["bayes_test_auc"] is None


def test_regenerating_removes_old_layout(tmp_path, small_cfg):
    generate(SynthConfig(**{**small_cfg.__dict__, "rows": 300, "days": 2}), tmp_path)
    generate(SynthConfig(**{**small_cfg.__dict__, "rows": 300}), tmp_path)
    assert not list(tmp_path.glob("day_*.tsv"))
    assert read_meta(tmp_path)["config"]["rows"] == 300
