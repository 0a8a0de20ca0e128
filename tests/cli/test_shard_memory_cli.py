"""``shard gen-tasks --optimizer``, infeasible tasks at the command line, and NeuroShard's
pre-training without ``--comm``."""

from __future__ import annotations

import json

import pytest
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)

from embedlab.sharding.types import Table, Task, load_tasks, save_tasks


def test_gen_tasks_optimizer_round_trips(tmp_path, capsys):
    base = [
        "shard",
        "gen-tasks",
        "--family",
        "dreamshard",
        "--tables",
        "5",
        "--devices",
        "2",
        "--count",
        "2",
    ]
    code, out, err = run(
        [*base, "--optimizer", "rowwise_adagrad", "--out", str(tmp_path / "r.json")], capsys
    )
    assert code in (0, None), err
    assert "rowwise_adagrad state" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [t["optimizer"] for t in doc["tasks"]] == ["rowwise_adagrad"] * 2
    tasks = load_tasks(tmp_path / "r.json")
    assert [t.optimizer for t in tasks] == ["rowwise_adagrad"] * 2
    save_tasks(tmp_path / "again.json", tasks)
    assert json.loads((tmp_path / "again.json").read_text()) == doc
    # default: no key, the same tables as before
    code, _, _ = run([*base, "--out", str(tmp_path / "n.json")], capsys)
    plain = json.loads((tmp_path / "n.json").read_text())
    assert all("optimizer" not in t for t in plain["tasks"])
    assert [t["tables"] for t in plain["tasks"]] == [t["tables"] for t in doc["tasks"]]
    code, _, err = run([*base, "--optimizer", "lamb", "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2 and "optimizer" in err and "adam" in err and len(err.strip().splitlines()) == 1


def test_neuroshard_family_redraws_with_optimizer_state(tmp_path, capsys):
    """The family's rule (total <= (4D - 1) GiB, each table <= 4 GiB) counts the state."""
    from embedlab.sharding.generator import GIB, gen_tasks

    for t in gen_tasks("neuroshard", 30, 2, 3, seed=1, optimizer="adam"):
        need = [x.rows * x.dim * (x.bytes_per_element + 8) for x in t.tables]
        assert t.optimizer == "adam" and sum(need) <= 7 * GIB and max(need) <= 4 * GIB
    assert gen_tasks("neuroshard", 30, 2, 3, seed=1) == gen_tasks(
        "neuroshard", 30, 2, 3, seed=1, optimizer=None
    )


@pytest.mark.parametrize(
    "planner", ["size_lookup_greedy", "round_robin", "dreamshard", "neuroshard", "torchrec"]
)
def test_plan_on_an_infeasible_task_is_one_line_exit_2(tmp_path, capsys, planner):
    # weights fit easily; weights + Adam state of 'big' (dim 4: NeuroShard cannot halve it) fit nowhere
    tables = (Table("small", 100, 8, 1.0, 4), Table("big", 4000, 4, 2.0, 4))
    save_tasks(tmp_path / "t.json", [Task("tight", 2, 4000 * 4 * 4 * 2, 64, tables, "adam")])
    code, out, err = run(["shard", "plan", "--tasks", str(tmp_path / "t.json"), "--planner", planner,
                          "--out", str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "infeasible" in err or "no placement" in err
    assert "'big'" in err and "adam" in err
    assert not (tmp_path / "p.json").exists()


def test_pretrain_neuroshard_without_comm_reads_its_own_model(tmp_path, capsys):
    """No --comm: the all-to-all model comes from NeuroShard's own shipped model (it used to
    read DreamShard's model.json and die with KeyError: 'comm_model'). A zero budget
    measures nothing, so the run stops at the one-line error about too few samples."""
    code, _, err = run(["shard", "pretrain", "neuroshard", "--out", str(tmp_path / "n"), "--budget-s", "0",
                        "--samples", "5", "--batch-size", "32"], capsys)  # fmt: skip
    assert code == 2, err
    errors = [
        line for line in err.splitlines() if "error" in line.lower()
    ]  # (a progress bar precedes it)
    assert len(errors) == 1 and "at least 5 measured shards" in errors[0], err
    assert "KeyError" not in err
