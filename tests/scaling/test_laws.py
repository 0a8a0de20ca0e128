"""Power-law-plus-constant fits: recovery of known laws, intervals, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.scaling.laws import (
    JointFit,
    PowerLawFit,
    extrapolation_check,
    fit_joint,
    fit_power_law,
    power_law,
    runs_test,
)

X = np.geomspace(1e4, 3.2e5, 6).repeat(2)


@pytest.mark.parametrize(
    "a,alpha,c", [(2.5, 0.3, 0.6), (40.0, 0.7, 0.45), (0.8, 0.1, 0.0), (1e3, 1.2, 0.7)]
)
def test_noiseless_curves_are_recovered(a, alpha, c):
    fit = fit_power_law(X, power_law(X, a, alpha, c), bootstrap=0)
    assert fit.alpha == pytest.approx(alpha, rel=1e-5)
    assert fit.a == pytest.approx(a, rel=1e-4)
    assert fit.c == pytest.approx(c, abs=1e-6)
    assert fit.diagnostics["max_abs_relative_residual"] < 1e-8


def test_large_x_scales_are_well_conditioned():
    x = np.geomspace(1e12, 1e16, 7)  # FLOP counts
    fit = fit_power_law(x, power_law(x, 50.0, 0.2, 0.5), bootstrap=0)
    assert fit.alpha == pytest.approx(0.2, rel=1e-5) and fit.c == pytest.approx(0.5, rel=1e-5)


def test_noisy_fit_intervals_cover_the_truth_and_predictions_carry_bands():
    rng = np.random.default_rng(3)
    y = power_law(X, 2.5, 0.3, 0.6) * (1 + 0.002 * rng.standard_normal(X.size))
    fit = fit_power_law(X, y, bootstrap=300, seed=1)
    for name, true in (("alpha", 0.3), ("c", 0.6)):
        lo, hi = fit.intervals[name]
        assert lo <= true <= hi, (name, lo, hi)
    assert abs(fit.c - 0.6) < 0.03
    p = fit.predict([3.2e5, 1e7])
    for i in range(2):
        assert p["band"][0][i] <= p["prediction"][i] <= p["band"][1][i]
        assert (
            p["run"][0][i] <= p["band"][0][i] + 1e-12 and p["run"][1][i] >= p["band"][1][i] - 1e-12
        )
    # the band widens away from the data
    width = lambda i: p["band"][1][i] - p["band"][0][i]  # noqa: E731
    assert width(1) > width(0)


def test_fit_round_trips_through_its_dict():
    y = power_law(X, 2.5, 0.3, 0.6) * (1 + 0.001 * np.sin(np.arange(X.size)))
    fit = fit_power_law(X, y, bootstrap=20)
    back = PowerLawFit.from_dict(fit.to_dict())
    assert back.predict(1e6) == fit.predict(1e6)
    assert back.a == pytest.approx(fit.a) and back.intervals == fit.intervals


def test_joint_law_is_recovered():
    n, d = np.meshgrid(np.geomspace(1e3, 1e5, 5), np.geomspace(1e4, 1e6, 4))
    n, d = n.ravel(), d.ravel()
    y = 0.6 + 3 * n**-0.4 + 10 * d**-0.3
    fit = fit_joint(n, d, y, bootstrap=10)
    co = fit.coefficients()
    assert fit.alpha == pytest.approx(0.4, rel=1e-4) and fit.beta == pytest.approx(0.3, rel=1e-4)
    assert co["a"] == pytest.approx(3, rel=1e-3) and co["b"] == pytest.approx(10, rel=1e-3)
    assert fit.c == pytest.approx(0.6, abs=1e-5)
    back = JointFit.from_dict(fit.to_dict())
    assert back(1e6, 1e7) == pytest.approx(fit(1e6, 1e7))


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([1, 1, 2, 2], [1, 1, 0.5, 0.5])
    with pytest.raises(ValueError, match="x > 0"):
        fit_power_law([0, 1, 2], [1, 0.5, 0.4])
    with pytest.raises(ValueError, match="finite"):
        fit_power_law([1, 2, 3], [1, np.nan, 0.4])
    with pytest.raises(ValueError, match="length"):
        fit_power_law([1, 2, 3], [1, 0.5])
    with pytest.raises(ValueError, match="6 runs"):
        fit_joint([1, 2, 3], [1, 2, 3], [1, 0.5, 0.4])


def test_runs_test_flags_systematic_signs():
    alternating = runs_test([1, -1] * 6)
    blocks = runs_test([1] * 6 + [-1] * 6)
    assert alternating["runs"] == 12 and blocks["runs"] == 2
    assert blocks["p_value"] < 0.01 and runs_test([1, -1, -1, 1, 1, -1, 1, -1])["p_value"] > 0.2
    assert runs_test([1, 1, 1])["p_value"] == 1.0


def test_curvature_the_law_cannot_follow_shows_in_the_diagnostics():
    x = np.geomspace(1, 1e4, 12)
    y = 1.0 + 0.5 * np.exp(-x / 300)  # not a power law
    fit = fit_power_law(x, y, bootstrap=0)
    good = fit_power_law(x, power_law(x, 2, 0.5, 1.0), bootstrap=0)
    assert (
        fit.diagnostics["rms_relative_residual"] > 100 * good.diagnostics["rms_relative_residual"]
    )


def test_extrapolation_check_holds_out_the_largest_third():
    y = power_law(X, 2.5, 0.3, 0.6)
    r = extrapolation_check(X, y, bootstrap=10)
    assert r["fit_on_x_max"] == pytest.approx(np.unique(X)[3])
    assert [h["x"] for h in r["held_out"]] == pytest.approx(list(np.unique(X)[4:]))
    assert r["max_abs_relative_error_mean"] < 1e-6


# --------------------------------------------------------------- parameters on a bound

FLAT_X = np.geomspace(1e4, 3.2e5, 6).repeat(2)
# a curve that has flattened inside the data (exponential, not a power law), with noise:
# the best law puts its constant on the cap c <= min(y)
FLAT_Y = 0.78 + 0.05 * np.exp(-FLAT_X / 5e3) + 1e-4 * np.random.default_rng(0).standard_normal(12)


def test_a_constant_on_its_cap_is_not_identified_and_claims_no_interval():
    fit = fit_power_law(FLAT_X, FLAT_Y, bootstrap=100)
    assert fit.c == pytest.approx(FLAT_Y.min(), rel=1e-9)  # c = min y: the cap, not the data
    assert fit.at_bound == ["c"] and fit.identified is False
    assert "c" not in fit.intervals and set(fit.intervals) == {"a", "alpha"}
    d = fit.to_dict()
    assert d["identified"] is False and d["at_bound"] == ["c"]
    back = PowerLawFit.from_dict(d)
    assert back.at_bound == ["c"] and not back.identified
    # most refits sit on the same cap: the bootstrap says so too
    assert fit.bootstrap.at_bound_fraction["c"][1] > 0.5


def test_an_exponent_on_its_cap_is_not_identified():
    y = power_law(FLAT_X, 1e40, 8.0, 0.7)  # steeper than the cap alpha <= 5
    fit = fit_power_law(FLAT_X, y, bootstrap=30)
    assert fit.alpha == pytest.approx(5.0) and "alpha" in fit.at_bound and not fit.identified
    assert "alpha" not in fit.intervals


def test_an_identified_law_has_no_bound_and_all_intervals():
    rng = np.random.default_rng(3)
    y = power_law(X, 2.5, 0.3, 0.6) * (1 + 0.002 * rng.standard_normal(X.size))
    fit = fit_power_law(X, y, bootstrap=100, seed=1)
    assert fit.at_bound == [] and fit.identified
    assert set(fit.intervals) == {"a", "alpha", "c"}
    assert all(v is not None for iv in fit.intervals.values() for v in iv)
    assert fit.bootstrap.failed == 0 and fit.bootstrap.fitted == 100


def test_an_interval_end_where_refits_pile_on_a_bound_is_open():
    from embedlab.scaling.laws import BootstrapSummary, _bootstrap_intervals

    col = np.linspace(1.0, 5.0, 200)
    upper = col >= 4.8  # 5% of refits on the upper bound: more than the 2.5% tail
    s = BootstrapSummary(requested=200, drawn=200, fitted=200)
    iv = _bootstrap_intervals({"alpha": col}, {"alpha": (np.zeros(200, bool), upper)}, 0.95, s, [])
    assert iv["alpha"][1] is None and iv["alpha"][0] == pytest.approx(np.quantile(col, 0.025))
    assert s.at_bound_fraction["alpha"] == (0.0, pytest.approx(0.05, abs=0.006))


# --------------------------------------------------------------- failed bootstrap refits


def _failing_every(k: int, real):
    calls = {"n": 0}

    def refit(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 1 and calls["n"] % k == 0:  # the first call is the full fit
            raise ValueError("singular resample")
        return real(*args, **kw)

    return refit, calls


def test_failed_refits_are_counted_and_many_failures_withhold_the_intervals(monkeypatch):
    import embedlab.scaling.laws as laws

    refit, calls = _failing_every(3, laws._fit_once)
    monkeypatch.setattr(laws, "_fit_once", refit)
    y = power_law(X, 2.5, 0.3, 0.6) * (1 + 0.002 * np.random.default_rng(3).standard_normal(X.size))
    fit = laws.fit_power_law(X, y, bootstrap=60, seed=1)
    b = fit.bootstrap
    assert b.drawn == 60 and b.failed == 20 and b.fitted == 40 == len(fit.boot)
    assert b.errors == ["ValueError: singular resample"]
    # a third failed: they alone could fill a 2.5% tail, so no interval is claimed
    assert fit.intervals == {} and b.intervals.startswith("withheld: 20 of 60")
    p = fit.predict(1e6)
    assert p["band"] is None and p["run"] is None


def test_a_few_failed_refits_widen_the_intervals_to_the_worst_case(monkeypatch):
    import embedlab.scaling.laws as laws

    y = power_law(X, 2.5, 0.3, 0.6) * (1 + 0.002 * np.random.default_rng(3).standard_normal(X.size))
    clean = laws.fit_power_law(X, y, bootstrap=400, seed=1)
    refit, _ = _failing_every(200, laws._fit_once)  # calls 200 and 400: 2 of 400 refits fail
    monkeypatch.setattr(laws, "_fit_once", refit)
    fit = laws.fit_power_law(X, y, bootstrap=400, seed=1)
    assert fit.bootstrap.failed == 2 and fit.bootstrap.fitted == 398
    f = 2 / 400
    alphas = np.asarray([bb[1] for bb in fit.boot])
    lo, hi = np.quantile(alphas, [(0.025 - f) / (1 - f), 0.975 / (1 - f)])
    assert fit.intervals["alpha"] == pytest.approx((lo, hi))
    # wider than the percentile interval of the same successful refits
    plain = np.quantile(alphas, [0.025, 0.975])
    assert lo < plain[0] and hi > plain[1]
    assert "widened for 2 failed of 400" in fit.bootstrap.intervals
    assert clean.bootstrap.failed == 0


def test_a_joint_fit_counts_failed_refits_instead_of_crashing(monkeypatch):
    import embedlab.scaling.laws as laws

    n, d = np.meshgrid(np.geomspace(1e3, 1e5, 4), np.geomspace(1e4, 1e6, 3))
    n, d = n.ravel(), d.ravel()
    y = 0.6 + 3 * n**-0.4 + 10 * d**-0.3
    refit, _ = _failing_every(2, laws._joint_once)
    monkeypatch.setattr(laws, "_joint_once", refit)
    fit = laws.fit_joint(n, d, y, bootstrap=10)
    assert fit.bootstrap.failed == 5 and fit.bootstrap.fitted == 5 and fit.intervals == {}


# --------------------------------------------------------------- joint law: held-out check


def _grid(nn: int, nd: int) -> tuple[np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(1e3, 1e5, nn), np.geomspace(1e4, 1e6, nd))
    return n.ravel(), d.ravel()


def test_joint_runs_test_is_done_along_each_axis():
    n, d = _grid(5, 6)
    y = 0.6 + 3 * n**-0.4 + 0.3 * np.exp(-d / 1e5)  # a power law in n, not in d
    fit = fit_joint(n, d, y, bootstrap=0, names=("params", "samples", "ne"))
    tests = fit.diagnostics["runs_test_by_axis"]
    assert set(tests) == {"params", "samples"} and "runs_test" not in fit.diagnostics
    assert tests["samples"]["p_value"] < 1e-3  # the misfit along d shows as long sign runs
    assert tests["params"]["p_value"] > 0.05


def test_joint_holdout_fits_inside_and_predicts_the_outer_frontier():
    from embedlab.scaling.laws import joint_extrapolation_check

    n, d = _grid(5, 4)
    y = 0.6 + 3 * n**-0.4 + 10 * d**-0.3
    r = joint_extrapolation_check(n, d, y, bootstrap=10, names=("n", "d", "y"))
    assert r["fitted_runs"] == 12  # 4 x 3 inside the largest n and d
    held = {(h["n"], h["d"]) for h in r["held_out"]}
    assert held == {(a, b) for a, b in zip(n, d) if a == n.max() or b == d.max()}
    assert len(held) == 8 and r["max_abs_relative_error"] < 1e-5
    with pytest.raises(ValueError, match="only 4 runs lie inside"):
        joint_extrapolation_check(*_grid(3, 3), np.linspace(1, 0.5, 9))
