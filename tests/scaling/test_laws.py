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
