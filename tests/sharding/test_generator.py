from __future__ import annotations

import numpy as np
import pytest

from embedlab.errors import UserError
from embedlab.sharding.generator import GIB, gen_tasks, pool_statistics, split_pool, table_pool
from embedlab.sharding.planners import plan_all
from embedlab.sharding.workload import draw_bags, rank_to_row, reuse_histogram


def test_pool_is_seeded_heavy_tailed_and_has_the_dataset_mean_pooling():
    pool = table_pool()
    assert len(pool) == 856 and pool == table_pool()
    assert np.mean([t.pooling_factor for t in pool]) == pytest.approx(15.8, abs=1e-3)
    rows = np.array([t.rows for t in pool])
    assert rows.min() >= 100 and rows.max() / np.median(rows) > 50
    assert table_pool(seed=1) != pool


def test_splits_are_disjoint_and_cover_the_pool():
    pool = table_pool()
    parts = split_pool(pool)
    names = {k: {t.name for t in v} for k, v in parts.items()}
    assert set(parts) == {"train", "valid", "test"}
    assert len(names["train"]) == len(pool) // 2
    assert not names["train"] & names["valid"] and not names["train"] & names["test"]
    assert not names["valid"] & names["test"]
    assert names["train"] | names["valid"] | names["test"] == {t.name for t in pool}


@pytest.mark.parametrize("family", ["dreamshard", "autoshard", "neuroshard"])
def test_families_are_valid_and_plannable(family):
    tasks = gen_tasks(family, 20, 4, 3, seed=1)
    assert len({t.name for t in tasks}) == 3
    for t in tasks:
        assert len(t.tables) == 20 and t.num_devices == 4
        if family == "neuroshard":
            assert all(tb.bytes_per_element == 4 for tb in t.tables)
            assert sum(tb.size_bytes for tb in t.tables) <= 15 * GIB
        else:
            assert all(tb.bytes_per_element == 2 for tb in t.tables)
    plan_all(tasks, "size_lookup_greedy")


@pytest.mark.parametrize("family", ["dreamshard", "autoshard", "neuroshard"])
def test_train_valid_and_test_tasks_use_disjoint_tables(family):
    def names(split: str) -> set[str]:
        return {tb.name.split("_")[0] for t in gen_tasks(family, 40, 4, 5, split=split) for tb in t.tables}

    tr, va, te = names("train"), names("valid"), names("test")
    assert not tr & te and not tr & va and not va & te


def test_bad_family_and_sizes():
    with pytest.raises(UserError, match="valid: autoshard"):
        gen_tasks("bogus", 10, 2, 1)
    with pytest.raises(UserError, match="without replacement"):
        gen_tasks("dreamshard", 500, 2, 1)
    with pytest.raises(UserError, match="--devices"):
        gen_tasks("dreamshard", 10, 0, 1)


def test_workload_follows_the_spec():
    t = table_pool()[0]
    bags = draw_bags(t, 4096, np.random.default_rng(0))
    assert len(bags.offsets) == 4097 and bags.offsets[-1] == len(bags.indices)
    assert abs(bags.lengths.mean() - t.pooling_factor) < 0.2 * t.pooling_factor + 0.2
    assert bags.indices.min() >= 0 and bags.indices.max() < t.rows
    assert rank_to_row(np.array([1, 2, 3]), 1000).tolist() == [
        0,
        2654435761 % 1000,
        (2 * 2654435761) % 1000,
    ]


def test_reuse_histogram_bins():
    idx = np.array([5] + [6] * 2 + [7] * 3 + [8] * 40000)
    h = reuse_histogram(idx)
    assert len(h) == 17 and sum(h) == pytest.approx(1.0)
    assert (
        h[0] == h[1] == h[2] == h[16] == pytest.approx(0.25)
    )  # counts 1, 2, 3 in (2,4], 40000 > 32768


def test_pool_statistics_runs_on_a_small_pool():
    s = pool_statistics(table_pool(20), batch_size=1024)
    assert s["tables"] == 20 and s["accesses_per_distinct"] >= 1.0
