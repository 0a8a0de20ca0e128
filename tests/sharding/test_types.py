from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedlab.errors import UserError
from embedlab.sharding.types import (
    PLANS_FORMAT,
    TASKS_FORMAT,
    Plan,
    Shard,
    Table,
    Task,
    load_plans,
    load_tasks,
    save_plans,
    save_tasks,
)

SPEC_TASK = {
    "format": TASKS_FORMAT,
    "tasks": [{
        "name": "dlrm50-d4-000", "num_devices": 4, "device_memory_bytes": 5368709120, "batch_size": 65536,
        "tables": [{"name": "t0", "rows": 1200000, "dim": 16, "pooling_factor": 12.5, "bytes_per_element": 2,
                    "index_distribution": {"kind": "zipf", "alpha": 1.05},
                    "reuse_bins": [0.61, 0.12, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02, 0.01, 0.01, 0.01, 0, 0, 0, 0, 0, 0],
                    "future_key": "ignored"}],
    }],
}  # fmt: skip


def test_spec_example_reads_and_round_trips(tmp_path):
    p = tmp_path / "tasks.json"
    p.write_text(json.dumps(SPEC_TASK))
    (task,) = load_tasks(p)
    assert task.tables[0].size_bytes == 1200000 * 16 * 2 and task.tables[0].alpha == 1.05
    save_tasks(tmp_path / "again.json", [task])
    assert load_tasks(tmp_path / "again.json") == [task]
    plan = Plan(task.name, "size_lookup_greedy", (Shard("t0", 1, 0, 16),), 0.004, 18.2)
    plan.validate(task)
    save_plans(tmp_path / "plans.json", [plan])
    doc = json.loads((tmp_path / "plans.json").read_text())
    assert doc["format"] == PLANS_FORMAT and doc["plans"][0]["shards"][0] == {
        "table": "t0",
        "device": 1,
        "column_offset": 0,
        "columns": 16,
    }
    assert load_plans(tmp_path / "plans.json") == [plan]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("format"), "expected format"),
        (
            lambda d: d["tasks"][0]["tables"][0].pop("rows"),
            "task 'dlrm50-d4-000', table 't0', key 'rows': missing",
        ),
        (lambda d: d["tasks"][0]["tables"][0].update(rows=-3), "key 'rows': must be >= 1"),
        (lambda d: d["tasks"][0]["tables"][0].update(dim="16"), "key 'dim': expected int"),
        (lambda d: d["tasks"][0]["tables"][0].update(bytes_per_element=8), "must be 2 or 4"),
        (lambda d: d["tasks"][0]["tables"][0].update(reuse_bins=[0.5]), "needs 17 values"),
        (
            lambda d: d["tasks"][0]["tables"][0].update(index_distribution={"kind": "pareto"}),
            "kind must be one of",
        ),
        (
            lambda d: d["tasks"][0]["tables"].append(dict(d["tasks"][0]["tables"][0])),
            "duplicate table name",
        ),
        (lambda d: d["tasks"][0].update(num_devices=0), "key 'num_devices': must be >= 1"),
        (lambda d: d["tasks"][0].update(batch_size=True), "expected int"),
    ],
)
def test_bad_task_files_name_task_table_and_key(tmp_path, mutate, message):
    doc = json.loads(json.dumps(SPEC_TASK))
    mutate(doc)
    p = tmp_path / "tasks.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=message):
        load_tasks(p)


def _task(**kw) -> Task:
    base = dict(name="x", num_devices=2, device_memory_bytes=10**6, batch_size=8,
                tables=(Table("a", 100, 8, 2.0), Table("b", 50, 4, 1.0)))  # fmt: skip
    base.update(kw)
    return Task(**base)


@pytest.mark.parametrize(
    "shards, message",
    [
        ((Shard("a", 0, 0, 8),), "table 'b': columns do not cover"),
        ((Shard("a", 0, 0, 8), Shard("b", 0, 0, 4), Shard("b", 1, 0, 4)), "exactly once"),
        ((Shard("a", 0, 0, 4), Shard("a", 1, 5, 3), Shard("b", 0, 0, 4)), "exactly once"),
        ((Shard("a", 2, 0, 8), Shard("b", 0, 0, 4)), "not in \\[0, 2\\)"),
        ((Shard("a", 0, 0, 8), Shard("zz", 0, 0, 4)), "not in the task"),
    ],
)
def test_plan_validation(shards, message):
    with pytest.raises(UserError, match=message):
        Plan("x", "p", shards).validate(_task())


def test_plan_memory_limit():
    task = _task(device_memory_bytes=3500)
    Plan("x", "p", (Shard("a", 0, 0, 8), Shard("b", 1, 0, 4))).validate(task)
    with pytest.raises(UserError, match="device 0 holds 4000 bytes"):
        Plan("x", "p", (Shard("a", 0, 0, 8), Shard("b", 0, 0, 4))).validate(task)


tables = st.builds(
    Table, name=st.text("abc", min_size=1, max_size=6), rows=st.integers(1, 10**7), dim=st.integers(1, 256),
    pooling_factor=st.floats(0, 100), bytes_per_element=st.sampled_from([2, 4]),
    index_distribution=st.sampled_from([{"kind": "uniform"}, {"kind": "zipf", "alpha": 1.1}]),
    reuse_bins=st.none() | st.lists(st.floats(0, 1), min_size=17, max_size=17).map(tuple),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(tables, min_size=1, max_size=8, unique_by=lambda t: t.name), st.integers(1, 8))
def test_json_round_trip_is_lossless(tmp_path_factory, ts, d):
    task = Task("t", d, 10**12, 64, tuple(ts))
    p = tmp_path_factory.mktemp("rt") / "tasks.json"
    save_tasks(p, [task])
    assert load_tasks(p) == [task]
