from __future__ import annotations

import json

import pytest

from embedlab.cli.main import main
from embedlab.sharding.types import Table, Task, load_plans, save_tasks


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_plan_command_writes_valid_plans(tmp_path, capsys):
    tasks = [
        Task(f"t{k}", 2, 10**6, 16, tuple(Table(f"x{i}", 100 + i, 8, 1.0 + i) for i in range(5)))
        for k in range(3)
    ]
    save_tasks(tmp_path / "tasks.json", tasks)
    code, out, _ = run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "size_lookup_greedy",
                        "--out", str(tmp_path / "plans.json")], capsys)  # fmt: skip
    assert code in (0, None) and "3 plans" in out
    plans = load_plans(tmp_path / "plans.json")
    for task, plan in zip(tasks, plans):
        plan.validate(task)


def test_planners_listed(capsys):
    code, out, _ = run(["shard", "planners"], capsys)
    assert code in (0, None) and "size_lookup_greedy" in out.split()


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"format": "other", "tasks": []}, "expected format"),
        (
            {"format": "embedlab.sharding-tasks/v1", "tasks": [{"name": "a"}]},
            "task 'a', key 'tables': missing",
        ),
    ],
)
def test_bad_task_file_one_line_exit_2(tmp_path, capsys, doc, message):
    (tmp_path / "t.json").write_text(json.dumps(doc))
    code, _, err = run(["shard", "plan", "--tasks", str(tmp_path / "t.json"), "--planner", "random", "--out",
                        str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_planner_and_missing_file(tmp_path, capsys):
    code, _, err = run(["shard", "plan", "--tasks", str(tmp_path / "none.json"), "--planner", "random", "--out",
                        str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code == 2 and "file not found" in err
    save_tasks(tmp_path / "t.json", [Task("a", 1, 100, 1, (Table("x", 1, 1, 1.0),))])
    code, _, err = run(["shard", "plan", "--tasks", str(tmp_path / "t.json"), "--planner", "smart", "--out",
                        str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code == 2 and "unknown planner 'smart'" in err
