from __future__ import annotations

import json

import pytest
from cli_run import run  # tests/cli is on pytest's pythonpath (pyproject)

from embedlab.sharding.types import Table, Task, load_plans, save_tasks


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


def test_eval_measures_plans_and_reports_ratios(tmp_path, capsys):
    tasks = [
        Task("e", 2, 10**8, 64, tuple(Table(f"x{i}", 1000 * (i + 1), 8, 2.0) for i in range(4)))
    ]
    save_tasks(tmp_path / "tasks.json", tasks)
    run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "size_greedy",
         "--out", str(tmp_path / "plans.json")], capsys)  # fmt: skip
    code, out, _ = run(["shard", "eval", "--tasks", str(tmp_path / "tasks.json"), "--plans", str(tmp_path / "plans.json"),
                        "--batch-size", "64", "--repeats", "2", "--out", str(tmp_path / "costs.json")], capsys)  # fmt: skip
    assert code in (0, None) and "of estimate" in out
    (row,) = json.loads((tmp_path / "costs.json").read_text())["costs"]
    assert row["ratio_to_best"] == 1.0 and row["balanced_estimate_ms"] > 0
    assert row["ratio_to_estimate"] == pytest.approx(row["total_ms"] / row["balanced_estimate_ms"])
    assert row["total_ms"] == max(
        d["input_comm_ms"] + d["fwd_ms"] + d["fwd_comm_ms"] + d["bwd_comm_ms"] + d["bwd_ms"]
        for d in row["devices"]
    )


def test_eval_with_comm_model_and_budget(tmp_path, capsys):
    from embedlab.sharding.comm import CommModel

    tasks = [Task("e", 2, 10**8, 64, tuple(Table(f"x{i}", 500, 8, 2.0) for i in range(3)))]
    save_tasks(tmp_path / "tasks.json", tasks)
    run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "round_robin",
         "--out", str(tmp_path / "plans.json")], capsys)  # fmt: skip
    CommModel(0.25, 1e-6, "test").save(tmp_path / "comm.json")
    base = ["shard", "eval", "--tasks", str(tmp_path / "tasks.json"), "--plans", str(tmp_path / "plans.json"),
            "--batch-size", "32", "--repeats", "2", "--out", str(tmp_path / "costs.json")]  # fmt: skip
    code, out, _ = run([*base, "--comm", str(tmp_path / "comm.json")], capsys)
    assert code in (0, None), out
    (row,) = json.loads((tmp_path / "costs.json").read_text())["costs"]
    assert all(d["fwd_comm_ms"] > 0.25 and d["bwd_comm_ms"] > 0.25 for d in row["devices"])
    assert row["comm"]["alpha_ms"] == 0.25
    assert row["balanced_estimate_ms"] > 0.5  # the estimate counts the least comm (2 alpha at least)
    assert not row["input_counted"]  # a model without an input line leaves it out, and says so
    assert set(row["total_by_statistic"]) == {"round_min_median", "min", "median"}
    code, _, err = run([*base, "--budget-s", "0"], capsys)
    assert code == 2 and "measurement budget" in err


def test_shard_run_two_processes_with_a_column_wise_plan(tmp_path):
    """`shard run` launches torchrun, trains the sharded DLRM and reports measured vs predicted."""
    import os
    import subprocess
    import sys

    from embedlab.sharding.types import Plan, Shard, save_plans

    task = Task(
        "r",
        2,
        10**8,
        64,
        (Table("a", 500, 8, 3.0), Table("b", 800, 16, 1.0, 2), Table("c", 300, 8, 2.0)),
    )
    save_tasks(tmp_path / "tasks.json", [task])
    plan = Plan(
        "r",
        "manual",
        (Shard("a", 0, 0, 8), Shard("b", 1, 0, 8), Shard("b", 0, 8, 8), Shard("c", 1, 0, 8)),
    )
    save_plans(tmp_path / "plans.json", [plan])
    r = subprocess.run([sys.executable, "-m", "embedlab", "shard", "run", "--task", str(tmp_path / "tasks.json"),
                        "--plan", str(tmp_path / "plans.json"), "--steps", "3", "--warmup", "1", "--batch-size", "64",
                        "--repeats", "2", "--out", str(tmp_path / "run.json")],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "measured plan cost" in r.stdout and "CostMeter prediction" in r.stdout
    doc = json.loads((tmp_path / "run.json").read_text())
    assert (
        doc["nproc"] == 2
        and doc["backend"] == "gloo"
        and [x["rank"] for x in doc["ranks"]] == [0, 1]
    )
    for rank in doc["ranks"]:
        assert rank["fwd_compute_ms"] > 0 and rank["bwd_compute_ms"] > 0 and rank["fwd_comm_ms"] > 0
        assert rank["input_dist_ms"] > 0
        assert rank["embedding_ms"] == pytest.approx(
            rank["input_dist_ms"]
            + rank["fwd_compute_ms"]
            + rank["fwd_comm_ms"]
            + rank["bwd_comm_ms"]
            + rank["bwd_compute_ms"]
        )
    assert doc["measured_embedding_ms"] == max(x["embedding_ms"] for x in doc["ranks"])
    assert doc["predicted"]["total_ms"] > 0 and doc["comm_model"]["backend"] == "gloo-cpu"
    assert doc["predicted"]["input_counted"] and doc["predicted"]["devices"][0]["input_comm_ms"] > 0


def test_shard_run_argument_errors(tmp_path, capsys):
    task = Task("r", 2, 10**8, 64, (Table("a", 500, 8, 3.0), Table("c", 300, 8, 2.0)))
    save_tasks(tmp_path / "tasks.json", [task])
    run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "round_robin", "--out",
         str(tmp_path / "p.json")], capsys)  # fmt: skip
    base = ["shard", "run", "--task", str(tmp_path / "tasks.json"), "--plan", str(tmp_path / "p.json"),
            "--out", str(tmp_path / "o.json")]  # fmt: skip
    code, _, err = run([*base, "--nproc", "3"], capsys)
    assert code == 2 and "run it with --nproc 2" in err
    code, _, err = run([*base, "--batch-size", "63"], capsys)
    assert code == 2 and "does not split evenly" in err
    code, _, err = run([*base, "--name", "nope"], capsys)
    assert code == 2 and "no task 'nope'" in err
    code, _, err = run([*base, "--planner", "torchrec"], capsys)
    assert code == 2 and "no plan for task 'r' by 'torchrec'" in err


def test_shard_train_dreamshard_and_plan_with_model(tmp_path, capsys):
    tasks = [
        Task(
            f"d{k}",
            2,
            10**8,
            64,
            tuple(Table(f"d{k}x{i}", 300 + 50 * i, 8, 2.0, 2) for i in range(5)),
        )
        for k in range(2)
    ]
    save_tasks(tmp_path / "tasks.json", tasks)
    code, out, err = run(["shard", "train", "dreamshard", "--tasks", str(tmp_path / "tasks.json"), "--out", str(tmp_path / "ds"),
                          "--iterations", "1", "--rollout-tasks", "2", "--batch-size", "32", "--repeats", "2"], capsys)  # fmt: skip
    assert code in (0, None), err
    code, out, _ = run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "dreamshard", "--model",
                        str(tmp_path / "ds" / "model"), "--out", str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code in (0, None) and "2 plans by dreamshard" in out
    code, out, err = run(["shard", "train", "dreamshard", "--tasks", str(tmp_path / "tasks.json"), "--out", str(tmp_path / "ds"),
                          "--iterations", "1", "--rollout-tasks", "2", "--batch-size", "32", "--repeats", "2",
                          "--final-cost-steps", "5", "--final-plans", "2", "--resume"], capsys)  # fmt: skip
    assert code in (0, None), err
    assert "and 2 for the final fit" in out
    fit = json.loads((tmp_path / "ds" / "model" / "model.json").read_text())["meta"]["final_cost_fit"]
    assert fit["steps"] == 5 and fit["plans"] == 2 and fit["command"].startswith("embedlab ")  # the command line that ran it
    code, _, err = run(
        [
            "shard",
            "train",
            "neuroshard",
            "--tasks",
            str(tmp_path / "tasks.json"),
            "--out",
            str(tmp_path / "x"),
        ],
        capsys,
    )
    assert code == 2 and "unknown learned planner" in err
    code, _, err = run(["shard", "train", "autoshard", "--tasks", str(tmp_path / "tasks.json"), "--out", str(tmp_path / "a"),
                        "--final-cost-steps", "5", "--search-plans", "2", "--final-plans", "4"], capsys)  # fmt: skip
    assert code == 2 and "--search-plans, --final-cost-steps, --final-plans: not an option of autoshard training" in err
    code, _, err = run(["shard", "train", "dreamshard", "--tasks", str(tmp_path / "tasks.json"), "--out", str(tmp_path / "b"),
                        "--reward", "cost_head"], capsys)  # fmt: skip
    assert code == 2 and "--reward: not an option of dreamshard training" in err


@pytest.mark.parametrize("planner", ["autoshard", "neuroshard"])
def test_learned_planners_plan_with_their_shipped_models(tmp_path, capsys, planner):
    tasks = [
        Task("m", 4, 10**9, 64, tuple(Table(f"m{i}", 400 + 70 * i, 16, 4.0, 4) for i in range(12)))
    ]
    save_tasks(tmp_path / "tasks.json", tasks)
    code, out, err = run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", planner,
                          "--out", str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code in (0, None), err
    assert f"by {planner}" in out


def test_shard_pretrain_user_errors(tmp_path, capsys):
    base = ["shard", "pretrain", "neuroshard", "--out", str(tmp_path / "n")]
    code, _, err = run([*base, "--device-counts", "1,4"], capsys)
    assert code == 2 and "--device-counts" in err
    code, _, err = run(["shard", "pretrain", "dreamshard", "--out", str(tmp_path / "n")], capsys)
    assert code == 2 and "unknown pre-trained planner" in err


def test_plan_with_a_comm_model_for_the_target_devices(tmp_path, capsys):
    from embedlab.io import write_json
    from embedlab.sharding.comm import CommModel

    tasks = [Task(f"c{k}", 8, 10**9, 16, tuple(Table(f"x{i}", 100 + i, 8 * (1 + i % 3), 1.0 + i) for i in range(12)))
             for k in range(2)]  # fmt: skip
    save_tasks(tmp_path / "tasks.json", tasks)
    write_json(tmp_path / "comm8.json", CommModel(0.5, 2e-6, "gloo-cpu").to_json())
    code, out, _ = run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "dreamshard",
                        "--comm", str(tmp_path / "comm8.json"), "--out", str(tmp_path / "p.json")], capsys)  # fmt: skip
    assert code in (0, None) and "2 plans by dreamshard" in out
    for task, plan in zip(tasks, load_plans(tmp_path / "p.json")):
        plan.validate(task)
    code, _, err = run(["shard", "plan", "--tasks", str(tmp_path / "tasks.json"), "--planner", "size_greedy",
                        "--comm", str(tmp_path / "comm8.json"), "--out", str(tmp_path / "q.json")], capsys)  # fmt: skip
    assert code == 2 and "takes no --comm" in err and len(err.strip().splitlines()) == 1
