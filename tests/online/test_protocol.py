"""The prequential protocol: outputs, exact resume, config checks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedlab.cli.main import main
from embedlab.errors import UserError
from embedlab.online.periods import DriftConfig
from embedlab.online.protocol import OnlineConfig, read_periods, run_online

DRIFT = DriftConfig(periods=6, rows=1000, cap=30, drift="periodic", seed=1)


def test_run_writes_per_period_lines_and_means(tmp_path: Path) -> None:
    cfg = OnlineConfig(strategy="batch-update", drift=DRIFT)
    m = run_online(cfg, tmp_path / "r", show_progress=False)
    lines = [json.loads(x) for x in (tmp_path / "r" / "periods.jsonl").read_text().splitlines()]
    assert [r["period"] for r in lines] == list(range(6))
    evaluated = lines[1:]
    assert m["periods_evaluated"] == 5
    assert m["mean_next_period_ne"] == pytest.approx(np.mean([r["ne"] for r in evaluated]))
    assert m["mean_next_period_auc"] == pytest.approx(np.mean([r["auc"] for r in evaluated]))
    assert all(r["ne"] > r["bayes_ne"] - 0.05 for r in evaluated)
    assert "update_rows" not in lines[-1]  # nothing to serve after the last period
    assert (tmp_path / "r" / "online.png").stat().st_size > 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["strategy"] == "batch-update"


@pytest.mark.parametrize(
    "strategy,opts",
    [
        ("fgd", {"lags": 2, "gate": False}),
        ("fgd", {"lags": 1}),
        ("recency-weighted", {}),
        ("extrapolate", {}),
    ],
)
def test_resume_after_a_crash_ends_like_an_uninterrupted_run(
    tmp_path: Path, strategy: str, opts: dict
) -> None:
    cfg = OnlineConfig(strategy=strategy, strategy_options=opts, drift=DRIFT)
    full = run_online(cfg, tmp_path / "full", show_progress=False)
    assert run_online(cfg, tmp_path / "crash", show_progress=False, stop_after=3) == {}
    assert not (tmp_path / "crash" / "metrics.json").exists()
    # A crash after the lines of period 3 were written but before its checkpoint.
    lines = tmp_path / "crash" / "periods.jsonl"
    lines.write_text(lines.read_text() + json.dumps({"period": 3, "ne": -1.0, "auc": 0.0}) + "\n")
    resumed = run_online(cfg, tmp_path / "crash", show_progress=False)
    assert resumed["mean_next_period_ne"] == full["mean_next_period_ne"]
    assert [r["ne"] for r in read_periods(tmp_path / "crash")] == [
        r["ne"] for r in read_periods(tmp_path / "full")
    ]


def test_a_refused_config_leaves_the_folder_usable(tmp_path: Path) -> None:
    bad = OnlineConfig(strategy="fgd", strategy_options={"lags": 1.5}, drift=DRIFT)
    with pytest.raises(UserError, match="fgd option lags"):
        run_online(bad, tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r" / "config.json").exists()
    run_online(OnlineConfig(strategy="fgd", drift=DRIFT), tmp_path / "r", show_progress=False)


def test_one_class_periods_give_nan_auc_not_a_crash() -> None:
    from embedlab.online.protocol import summarize

    m = summarize([{"period": 1, "auc": float("nan"), "ne": 1.0, "logloss": 0.1}])
    assert np.isnan(m["mean_next_period_auc"]) and m["mean_next_period_ne"] == 1.0


def test_another_config_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    run_online(OnlineConfig(strategy="static", drift=DRIFT), tmp_path / "r", show_progress=False)
    with pytest.raises(UserError, match="another config"):
        run_online(
            OnlineConfig(strategy="static", drift=DRIFT, lr=0.05),
            tmp_path / "r",
            show_progress=False,
        )


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_runs_several_strategies_and_plots_them(tmp_path: Path, capsys) -> None:
    code, out, err = run(["online", "run", "--strategy", "batch-update,extrapolate", "--periods", "4", "--rows", "600",
                          "--cap", "20", "--out", tmp_path / "o", "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    assert "batch-update: next-period AUC" in out
    assert (tmp_path / "o" / "online.png").exists() and (
        tmp_path / "o" / "extrapolate" / "metrics.json"
    ).exists()
    code, _, err = run(["online", "plot", tmp_path / "o" / "batch-update", tmp_path / "o" / "extrapolate",
                        "--out", tmp_path / "p.png"], capsys)  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--strategy", "nope"], "unknown strategy"),
        (["--strategy", "fgd", "--strategy-options", "bogus=1"], "takes no option"),
        (["--drift", "wobbly"], "unknown drift"),
        (["--data", "criteo"], "unknown online data"),
        (["--seed", "-1"], "seed must be"),
        (["--threads", "0"], "threads must be"),
        (["--strategy", "recency-weighted", "--strategy-options", "window=inf"], "bad value"),
        (["--strategy", "fgd", "--strategy-options", "meta_lr=nan"], "bad value"),
        (
            ["--strategy", "fgd", "--strategy-options", "lags"],
            "strategy options: 'lags' is not KEY=VALUE",
        ),
    ],
)
def test_cli_mistakes_end_in_one_line_and_exit_2(
    tmp_path: Path, args: list[str], msg: str, capsys
) -> None:
    code, _, err = run(
        ["online", "run", *args, "--periods", "4", "--rows", "300", "--out", tmp_path / "x"], capsys
    )
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1
