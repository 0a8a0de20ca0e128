from __future__ import annotations

import numpy as np
import pytest

from embedlab.data.criteo import ID_SPACE, criteo_schema, load_split
from embedlab.data.families import FamilySpec, generate_family, read_family
from embedlab.errors import UserError
from embedlab.train.metrics import auc


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    spec = FamilySpec("t", rows=20_000, click_rate=0.1, card_range=(5, 3_000), fresh=0.2, fresh_span=500)
    out = tmp_path_factory.mktemp("fam")
    return spec, out, generate_family(spec, 4, out)


def test_family_files_follow_the_criteo_layout_and_the_spec(fam):
    spec, out, meta = fam
    n_tr, n_va, n_te = spec.split_rows
    assert meta["rows"] == {"train": n_tr, "valid": n_va, "test": n_te}
    schema = criteo_schema([ID_SPACE] * 26)
    arr, stats = load_split(out / "train.txt", schema, strict=True)
    assert len(arr) == n_tr and stats.skipped == 0
    assert abs(meta["click_rate"]["train"] - 0.1) < 0.02
    assert min(meta["cardinalities"]) == 5 and max(meta["cardinalities"]) == 3_000
    # ids are 32-bit hashes, not small integers
    assert max(int(c.max()) for c in arr.sparse) > 2**20


def test_fresh_ids_make_test_ids_unseen_in_training(fam):
    _, _, meta = fam
    assert 0.1 < meta["test_unseen_id_share"] < 0.4


def test_bayes_limit_is_the_auc_of_the_true_probabilities(fam):
    _, out, meta = fam
    p = np.load(out / "probs.npy")
    arr, _ = load_split(out / "test.txt", criteo_schema([ID_SPACE] * 26))
    assert auc(np.asarray(arr.labels), p) == pytest.approx(meta["bayes_test_auc"])
    assert meta["bayes_test_auc"] > 0.6


def test_same_spec_and_seed_reuse_the_folder_and_another_seed_differs(fam, tmp_path):
    spec, out, meta = fam
    mtime = (out / "train.txt").stat().st_mtime_ns
    assert generate_family(spec, 4, out) == meta
    assert (out / "train.txt").stat().st_mtime_ns == mtime
    other = generate_family(spec, 5, tmp_path)
    assert other["bayes_test_auc"] != meta["bayes_test_auc"]
    assert read_family(out)["seed"] == 4


def test_bad_specs_and_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="click rate"):
        FamilySpec("x", click_rate=1.5)
    with pytest.raises(UserError, match="no meta.json"):
        read_family(tmp_path)
