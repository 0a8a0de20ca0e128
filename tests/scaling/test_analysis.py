from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.scaling.analysis import resolve_column


def test_a_real_column_wins_over_an_alias_of_the_same_name() -> None:
    rows = [{"run_id": "a", "params": 1.0e6, "ne": 0.8}]
    assert resolve_column(rows, "params") == "params"


def test_an_alias_applies_when_its_target_exists() -> None:
    rows = [{"run_id": "a", "params_total": 1.0e6, "train_samples": 5.0e5, "ne": 0.8}]
    assert resolve_column(rows, "params") == "params_total"
    assert resolve_column(rows, "data") == "train_samples"


def test_the_error_lists_only_names_that_resolve() -> None:
    rows = [{"run_id": "a", "params": 1.0e6, "ne": 0.8}]
    with pytest.raises(UserError) as e:
        resolve_column(rows, "flops")
    valid = str(e.value).split("valid: ")[1].split(", ")
    assert sorted(valid) == ["ne", "params"]  # no alias whose column is missing
    for name in valid:
        assert resolve_column(rows, name) in rows[0]


def _rows(grid: str, xs, ys, prefix: str) -> list[dict]:
    return [{"run_id": f"{prefix}{i}", "grid": grid, "params_total": float(x), "test_ne": float(y)}
            for i, (x, y) in enumerate(zip(xs, ys))]  # fmt: skip


XS = [1e4, 2e4, 4e4, 8e4, 1.6e5, 3.2e5]


def _law(x: float) -> float:
    return 2.5 * x**-0.3 + 0.6


def test_runs_of_different_grids_are_refused_in_one_line() -> None:
    from embedlab.scaling.analysis import fit_runs

    rows = _rows("gaaaa", XS, [_law(x) for x in XS], "a") + _rows("gbbbb", XS, [_law(x) + 0.05 for x in XS], "b")
    with pytest.raises(UserError) as e:
        fit_runs(rows, "params", bootstrap=0)
    msg = str(e.value)
    assert "\n" not in msg and "different grids" in msg
    assert "gaaaa (6 runs)" in msg and "gbbbb (6 runs)" in msg and "--grid-id" in msg
    fit, doc = fit_runs(rows, "params", bootstrap=0, grid="gbbbb")
    assert doc["runs"] == [f"b{i}" for i in range(6)] and doc["grid"] == ["gbbbb"]
    assert fit.c == pytest.approx(0.65, rel=1e-6)
    with pytest.raises(UserError, match="no run of grid 'gcccc'"):
        fit_runs(rows, "params", bootstrap=0, grid="gcccc")


def test_runs_that_share_a_grid_fit_together() -> None:
    from embedlab.scaling.analysis import select_grid

    # the runs of a smaller grid, all contained in a larger one: every row carries the larger
    rows = _rows("gsmall;gbig", XS[:3], [0.9] * 3, "s") + _rows("gbig", XS[3:], [0.8] * 3, "t")
    assert select_grid(rows) == rows
    assert [r["run_id"] for r in select_grid(rows, "gsmall")] == ["s0", "s1", "s2"]
    # a run no recorded grid contains does not mix silently
    with pytest.raises(UserError, match=r"no recorded grid \(1 runs\)"):
        select_grid([*rows, {"run_id": "old", "grid": "", "params_total": 1.0, "test_ne": 0.9}])


def test_a_fit_with_its_constant_on_the_cap_makes_no_reference_claim() -> None:
    import numpy as np

    from embedlab.scaling.analysis import fit_runs

    x = np.geomspace(1e4, 3.2e5, 6).repeat(2)
    y = 0.78 + 0.05 * np.exp(-x / 5e3) + 1e-4 * np.random.default_rng(0).standard_normal(12)
    rows = [{"run_id": str(i), "params_total": float(a), "test_ne": float(b), "bayes_test_ne": 0.75}
            for i, (a, b) in enumerate(zip(x, y))]  # fmt: skip
    fit, doc = fit_runs(rows, "params", bootstrap=50)
    assert doc["identified"] is False and doc["at_bound"] == ["c"] and "c" not in doc["intervals"]
    ref = doc["reference"]
    assert ref["c_identified"] is False
    assert ref["c_relative_error"] is None and ref["c_interval_covers"] is None


def test_a_joint_fit_document_carries_its_held_out_frontier_check() -> None:
    import numpy as np

    from embedlab.scaling.analysis import fit_runs

    n, d = (g.ravel() for g in np.meshgrid(np.geomspace(1e3, 1e5, 4), np.geomspace(1e4, 1e6, 4)))
    rows = [{"run_id": f"r{i}", "params_total": float(a), "train_samples": float(b),
             "test_ne": float(0.6 + 3 * a**-0.4 + 10 * b**-0.3)} for i, (a, b) in enumerate(zip(n, d))]  # fmt: skip
    fit, doc = fit_runs(rows, "params,samples", bootstrap=5)
    h = doc["holdout"]
    assert h["fitted_runs"] == 9 and len(h["held_out"]) == 7  # 3 x 3 inside; the L-shaped edge out
    assert h["max_abs_relative_error"] < 1e-5
    assert set(fit.diagnostics["runs_test_by_axis"]) == {"params_total", "train_samples"}
