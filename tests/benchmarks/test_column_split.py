"""The column-split check (benchmarks/sharding_column_split.py): the derived task and the
plan mapped back to the original task."""

from __future__ import annotations

import pytest

from benchmarks.sharding_column_split import merge_plan, split_task
from embedlab.errors import UserError
from embedlab.sharding.types import Plan, Shard, Table, Task


def _task() -> Task:
    # lookup work dim * pooling: a 64*4=256, b 32*10=320, c 12*50=600 (12/2 = 6 is not a
    # multiple of 4: not halvable), d 16*1=16
    tables = (Table("a", 100, 64, 4.0), Table("b", 200, 32, 10.0), Table("c", 300, 12, 50.0), Table("d", 50, 16, 1.0))
    return Task("cs", 3, 10**9, 512, tables)


def test_split_task_halves_the_largest_halvable_tables_only():
    task = _task()
    derived, chosen = split_task(task, 2)
    assert chosen == {"a", "b"}  # c has more work but cannot be halved
    by_name = {t.name: t for t in derived.tables}
    assert set(by_name) == {"a#col0", "a#col1", "b#col0", "b#col1", "c", "d"}
    assert by_name["a#col1"].dim == 32 and by_name["b#col0"].dim == 16
    assert by_name["b#col0"].rows == 200 and by_name["b#col0"].pooling_factor == 10.0
    assert sum(t.dim for t in derived.tables) == sum(t.dim for t in task.tables)
    assert split_task(task, 0)[0] == task


def test_merge_plan_gives_column_shards_or_one_whole_shard():
    task = _task()
    derived, chosen = split_task(task, 2)
    where = {"a#col0": 0, "a#col1": 2, "b#col0": 1, "b#col1": 1, "c": 0, "d": 2}
    dplan = Plan(derived.name, "x", tuple(Shard(t.name, where[t.name], 0, t.dim) for t in derived.tables))
    plan = merge_plan(task, dplan, chosen, "split")
    shards = sorted(plan.placement())
    assert ("a", 0, 0, 32) in shards and ("a", 2, 32, 32) in shards  # two column shards
    assert ("b", 1, 0, 32) in shards  # both halves on device 1: one whole shard
    assert len(shards) == 5


def test_merge_plan_is_checked_against_memory():
    task = _task()
    small = Task("cs", 3, task.table_bytes(task.tables[0]) - 1, 512, task.tables)
    derived, chosen = split_task(small, 1)
    dplan = Plan(derived.name, "x", tuple(Shard(t.name, 0, 0, t.dim) for t in derived.tables))
    with pytest.raises(UserError, match="more than"):
        merge_plan(small, dplan, chosen, "split")
