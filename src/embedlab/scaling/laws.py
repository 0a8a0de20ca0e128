"""Power law plus constant, fitted soundly, with bootstrap intervals.

"Understanding Scaling Laws for Recommendation Models" (Ardalani et al., 2022) models the
normalized entropy of a DLRM as ``Q(x) = a * x**(-alpha) + c`` in one resource ``x`` (training
samples, parameters or training FLOPs): a power law that saturates at an irreducible
constant ``c``. The paper's fitting procedure is not public; what we chose:

* **Loss in log space**: residuals ``log y - log f(x)``, i.e. relative errors, so every
  point counts alike whatever its scale (NE values of a sweep differ by a few percent, the
  reducible part ``y - c`` by orders of magnitude).
* **Initial guess by profiling the constant**: for each ``c`` on a grid below ``min(y)``,
  ``log(y - c) = log a - alpha log x`` is an ordinary linear regression; the best ``c`` by the
  log-space loss seeds the nonlinear fit. This avoids the local minima and overflow a
  blind ``curve_fit`` start runs into.
* **Bounded nonlinear least squares** (SciPy ``least_squares``, trust-region reflective):
  ``a > 0``, ``0 <= alpha <= 5``, ``0 <= c <= min(y)``. ``x`` is divided by its geometric mean
  ``x_ref`` inside the fit (``a`` is reported in the units of ``x``); this keeps the problem
  well conditioned for FLOP counts of 1e15.
* **Intervals by case bootstrap**: the runs are resampled with replacement (a resample
  needs at least three distinct ``x``), each resample refitted from the full fit; intervals
  are percentiles. A prediction carries two intervals: ``band`` for the fitted curve (the
  uncertainty of the law) and ``run`` for one new run, which adds a resampled residual to
  each bootstrap curve (run-to-run noise, e.g. seeds).
* **Diagnostics**: relative residuals, their RMS and maximum, the log-space R^2 and a
  Wald-Wolfowitz runs test on the residual signs in ``x`` order (few runs = the curve
  bends where the law does not: a wrong functional form, not noise).

The joint law ``L(N, D) = c + a N**(-alpha) + b D**(-beta)`` (:func:`fit_joint`) is fitted the
same way, seeded by a grid over the exponents with non-negative least squares for ``a, b``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

ALPHA_MAX = 5.0
LEVEL = 0.95


def power_law(x: np.ndarray | float, a: float, alpha: float, c: float) -> np.ndarray:
    """``a * x**(-alpha) + c``."""
    return a * np.power(np.asarray(x, dtype=np.float64), -alpha) + c


def joint_law(
    n: np.ndarray | float,
    d: np.ndarray | float,
    a: float,
    alpha: float,
    b: float,
    beta: float,
    c: float,
) -> np.ndarray:
    """``c + a * n**(-alpha) + b * d**(-beta)``."""
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    return c + a * np.power(n, -alpha) + b * np.power(d, -beta)


def _check_xy(
    x: Sequence[float], y: Sequence[float], min_distinct: int
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("a power law needs x > 0 and y > 0")
    if np.unique(x).size < min_distinct:
        raise ValueError(f"need at least {min_distinct} distinct x values, got {np.unique(x).size}")
    return x, y


def runs_test(residuals: Sequence[float]) -> dict[str, float]:
    """Wald-Wolfowitz runs test on the signs of ``residuals`` (in the order given).

    Returns the number of sign runs, the number expected under independent signs, and the
    two-sided normal-approximation p-value (1.0 when a sign class is empty).
    """
    s = np.sign(np.asarray(residuals, dtype=np.float64))
    s = s[s != 0]
    n1, n2 = int(np.sum(s > 0)), int(np.sum(s < 0))
    runs = int(1 + np.sum(s[1:] != s[:-1])) if s.size else 0
    if n1 == 0 or n2 == 0:
        return {"runs": float(runs), "expected": float(runs), "p_value": 1.0}
    n = n1 + n2
    mean = 2.0 * n1 * n2 / n + 1.0
    var = 2.0 * n1 * n2 * (2.0 * n1 * n2 - n) / (n * n * (n - 1.0)) if n > 1 else 0.0
    if var <= 0:
        return {"runs": float(runs), "expected": mean, "p_value": 1.0}
    z = (runs - mean) / math.sqrt(var)
    return {
        "runs": float(runs),
        "expected": mean,
        "p_value": float(math.erfc(abs(z) / math.sqrt(2))),
    }


def diagnostics(x: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Relative residuals ``(y - pred) / pred`` in ``x`` order and summary statistics."""
    order = np.argsort(x, kind="stable")
    rel = (y - pred) / pred
    logres = np.log(y) - np.log(pred)
    ss_tot = float(np.sum((np.log(y) - np.log(y).mean()) ** 2))
    r2 = 1.0 - float(np.sum(logres**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "relative_residuals": [float(v) for v in rel[order]],
        "rms_relative_residual": float(np.sqrt(np.mean(rel**2))),
        "max_abs_relative_residual": float(np.max(np.abs(rel))),
        "r2_log": r2,
        "runs_test": runs_test(rel[order]),
    }


# --------------------------------------------------------------------------- one axis


@dataclass
class PowerLawFit:
    """A fitted ``y = a * x**(-alpha) + c`` with bootstrap intervals and diagnostics.

    ``a_ref`` is the coefficient at ``x / x_ref``; :attr:`a` converts it to the units of
    ``x``. ``boot`` holds the bootstrap parameters ``(a_ref, alpha, c)`` and ``log_residuals``
    the full fit's residuals (both used for prediction intervals).
    """

    a_ref: float
    alpha: float
    c: float
    x_ref: float
    n: int
    x_name: str = "x"
    y_name: str = "y"
    level: float = LEVEL
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    x_range: tuple[float, float] = (0.0, 0.0)
    boot: list[tuple[float, float, float]] = field(default_factory=list)
    log_residuals: list[float] = field(default_factory=list)

    kind = "power_law"

    @property
    def a(self) -> float:
        return float(self.a_ref * self.x_ref**self.alpha)

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return power_law(
            np.asarray(x, dtype=np.float64) / self.x_ref, self.a_ref, self.alpha, self.c
        )

    def predict(
        self, x: np.ndarray | float, level: float | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """Point prediction at ``x`` with the curve's band and a new run's interval."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        curves = (
            np.stack([power_law(x / self.x_ref, *b) for b in self.boot])
            if self.boot
            else self(x)[None, :]
        )
        return _intervals(self(x), curves, self.log_residuals, level or self.level, seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            kind=self.kind, a=self.a, formula=f"{self.y_name} = a * {self.x_name}^(-alpha) + c"
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLawFit:
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["intervals"] = {k: tuple(v) for k, v in keep.get("intervals", {}).items()}
        keep["boot"] = [tuple(b) for b in keep.get("boot", [])]
        keep["x_range"] = tuple(keep.get("x_range", (0.0, 0.0)))
        return cls(**keep)


def _intervals(
    point: np.ndarray, curves: np.ndarray, log_res: Sequence[float], level: float, seed: int
) -> dict[str, Any]:
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    band = np.percentile(curves, [lo_q, hi_q], axis=0)
    res = np.asarray(log_res, dtype=np.float64)
    if res.size:
        rng = np.random.default_rng(seed)
        noise = np.exp(rng.choice(res, size=curves.shape))
        run = np.percentile(curves * noise, [lo_q, hi_q], axis=0)
    else:
        run = band
    return {
        "prediction": point.tolist(),
        "band": [band[0].tolist(), band[1].tolist()],
        "run": [run[0].tolist(), run[1].tolist()],
        "level": level,
    }


def _profile_start(u: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Best ``(a_ref, alpha, c)`` over a grid of constants, each an OLS in log space."""
    ymin = float(y.min())
    lu = np.log(u)
    best, best_loss = None, np.inf
    fracs = np.concatenate([[0.0], 1.0 - np.geomspace(1e-4, 1.0, 60)[::-1][:-1], [1.0 - 1e-6]])
    for q in np.unique(np.clip(fracs, 0.0, 1.0 - 1e-9)):
        c = ymin * q
        r = np.log(y - c + 1e-300)
        if np.ptp(lu) == 0:
            continue
        slope, icpt = np.polyfit(lu, r, 1)
        alpha = float(np.clip(-slope, 0.0, ALPHA_MAX))
        a = float(np.exp(np.mean(r + alpha * lu)))
        pred = power_law(u, a, alpha, c)
        loss = float(np.sum((np.log(y) - np.log(pred)) ** 2))
        if loss < best_loss:
            best, best_loss = (a, alpha, c), loss
    assert best is not None
    return best


def _refine(
    u: np.ndarray, y: np.ndarray, start: tuple[float, float, float]
) -> tuple[float, float, float]:
    ymin = float(y.min())
    lo = np.array([-50.0, 0.0, 0.0])
    hi = np.array([50.0, ALPHA_MAX, ymin])
    p0 = np.array([math.log(max(start[0], 1e-300)), start[1], start[2]])
    p0 = np.clip(p0, lo + 1e-12, hi - 1e-12 * max(ymin, 1.0))

    def resid(p: np.ndarray) -> np.ndarray:
        return np.log(y) - np.log(np.exp(p[0]) * np.power(u, -p[1]) + p[2])

    r = optimize.least_squares(resid, p0, bounds=(lo, hi), method="trf", x_scale="jac",
                               xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000)  # fmt: skip
    cand = (float(math.exp(r.x[0])), float(r.x[1]), float(r.x[2]))
    loss = lambda p: float(np.sum((np.log(y) - np.log(power_law(u, *p))) ** 2))  # noqa: E731
    return cand if loss(cand) <= loss(start) else start


def _fit_once(
    u: np.ndarray, y: np.ndarray, start: tuple[float, float, float] | None = None
) -> tuple[float, float, float]:
    p = _profile_start(u, y) if start is None else start
    return _refine(u, y, p)


def _resamples(
    n: int, n_boot: int, seed: int, ok: Callable[[np.ndarray], bool]
) -> list[np.ndarray]:
    """Up to ``n_boot`` case-bootstrap index sets of ``n`` runs that pass ``ok``."""
    rng = np.random.default_rng(seed)
    out, tries = [], 0
    while len(out) < n_boot and tries < 20 * n_boot:
        tries += 1
        idx = rng.integers(0, n, n)
        if ok(idx):
            out.append(idx)
    return out


def _percentile_intervals(
    cols: dict[str, np.ndarray], level: float
) -> dict[str, tuple[float, float]]:
    """Central ``level`` percentile interval of each bootstrap column."""
    qs = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    return {k: tuple(float(v) for v in np.percentile(col, qs)) for k, col in cols.items()}


def fit_power_law(
    x: Sequence[float],
    y: Sequence[float],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = LEVEL,
    x_name: str = "x",
    y_name: str = "y",
) -> PowerLawFit:
    """Fit ``y = a * x**(-alpha) + c`` as the module doc says (``bootstrap=0``: no intervals)."""
    x, y = _check_xy(x, y, 3)
    x_ref = float(np.exp(np.mean(np.log(x))))
    u = x / x_ref
    a, alpha, c = _fit_once(u, y)
    boot: list[tuple[float, float, float]] = []
    for idx in _resamples(x.size, bootstrap, seed, lambda i: np.unique(x[i]).size >= 3):
        try:
            boot.append(_fit_once(u[idx], y[idx]))
        except (ValueError, np.linalg.LinAlgError):
            continue
    intervals: dict[str, tuple[float, float]] = {}
    if boot:
        b = np.asarray(boot)
        cols = {"a": b[:, 0] * x_ref ** b[:, 1], "alpha": b[:, 1], "c": b[:, 2]}
        intervals = _percentile_intervals(cols, level)
    pred = power_law(u, a, alpha, c)
    return PowerLawFit(
        a_ref=a, alpha=alpha, c=c, x_ref=x_ref, n=int(x.size), x_name=x_name, y_name=y_name,
        level=level, intervals=intervals, diagnostics=diagnostics(x, y, pred),
        x_range=(float(x.min()), float(x.max())), boot=boot,
        log_residuals=[float(v) for v in np.log(y) - np.log(pred)],
    )  # fmt: skip


# --------------------------------------------------------------------------- joint


@dataclass
class JointFit:
    """A fitted ``y = c + a * (n/n_ref)**(-alpha) + b * (d/d_ref)**(-beta)``.

    Coefficients are stored at the reference scales (geometric means); :meth:`coefficients`
    gives them in the units of ``n`` and ``d``.
    """

    a_ref: float
    alpha: float
    b_ref: float
    beta: float
    c: float
    n_ref: float
    d_ref: float
    n: int
    n_name: str = "n"
    d_name: str = "d"
    y_name: str = "y"
    level: float = LEVEL
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    boot: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    log_residuals: list[float] = field(default_factory=list)

    kind = "joint"

    def coefficients(self) -> dict[str, float]:
        return {
            "a": float(self.a_ref * self.n_ref**self.alpha),
            "b": float(self.b_ref * self.d_ref**self.beta),
        }

    def __call__(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return joint_law(np.asarray(n) / self.n_ref, np.asarray(d) / self.d_ref,
                         self.a_ref, self.alpha, self.b_ref, self.beta, self.c)  # fmt: skip

    def predict(self, n: np.ndarray | float, d: np.ndarray | float, level: float | None = None,
                seed: int = 0) -> dict[str, Any]:  # fmt: skip
        n = np.atleast_1d(np.asarray(n, dtype=np.float64))
        d = np.atleast_1d(np.asarray(d, dtype=np.float64))
        un, ud = n / self.n_ref, d / self.d_ref
        curves = (
            np.stack([joint_law(un, ud, *b) for b in self.boot])
            if self.boot
            else self(n, d)[None, :]
        )
        return _intervals(self(n, d), curves, self.log_residuals, level or self.level, seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(kind=self.kind, **self.coefficients(),
                 formula=f"{self.y_name} = c + a * {self.n_name}^(-alpha) + b * {self.d_name}^(-beta)")  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JointFit:
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["intervals"] = {k: tuple(v) for k, v in keep.get("intervals", {}).items()}
        keep["boot"] = [tuple(b) for b in keep.get("boot", [])]
        return cls(**keep)


def _joint_once(un: np.ndarray, ud: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    ymin = float(y.min())
    best, best_loss = None, np.inf
    grid = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
    for alpha in grid:
        for beta in grid:
            for q in (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.995):
                c = q * ymin
                A = np.stack([np.power(un, -alpha), np.power(ud, -beta)], axis=1)
                coef, _ = optimize.nnls(A, y - c)
                p = (max(coef[0], 1e-12), alpha, max(coef[1], 1e-12), beta, c)
                pred = joint_law(un, ud, *p)
                if np.any(pred <= 0):
                    continue
                loss = float(np.sum((np.log(y) - np.log(pred)) ** 2))
                if loss < best_loss:
                    best, best_loss = p, loss
    assert best is not None
    lo = np.array([-50.0, 0.0, -50.0, 0.0, 0.0])
    hi = np.array([50.0, ALPHA_MAX, 50.0, ALPHA_MAX, ymin])
    p0 = np.clip(np.array([math.log(best[0]), best[1], math.log(best[2]), best[3], best[4]]),
                 lo + 1e-9, hi - 1e-9)  # fmt: skip

    def resid(p: np.ndarray) -> np.ndarray:
        return np.log(y) - np.log(
            joint_law(un, ud, math.exp(p[0]), p[1], math.exp(p[2]), p[3], p[4])
        )

    r = optimize.least_squares(resid, p0, bounds=(lo, hi), method="trf", x_scale="jac",
                               xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=4000)  # fmt: skip
    cand = (math.exp(r.x[0]), float(r.x[1]), math.exp(r.x[2]), float(r.x[3]), float(r.x[4]))
    cand_loss = float(np.sum(resid(r.x) ** 2))
    return cand if cand_loss <= best_loss else best


def fit_joint(
    n: Sequence[float],
    d: Sequence[float],
    y: Sequence[float],
    *,
    bootstrap: int = 300,
    seed: int = 0,
    level: float = LEVEL,
    names: tuple[str, str, str] = ("n", "d", "y"),
) -> JointFit:
    """Fit ``y = c + a n**(-alpha) + b d**(-beta)`` (each axis needs >= 2 distinct values)."""
    n_arr, y_arr = _check_xy(n, y, 2)
    d_arr, _ = _check_xy(d, y, 2)
    if n_arr.size < 6:
        raise ValueError(f"a joint fit has 5 parameters; need at least 6 runs, got {n_arr.size}")
    n_ref = float(np.exp(np.mean(np.log(n_arr))))
    d_ref = float(np.exp(np.mean(np.log(d_arr))))
    un, ud = n_arr / n_ref, d_arr / d_ref
    p = _joint_once(un, ud, y_arr)
    both = lambda i: np.unique(n_arr[i]).size >= 2 and np.unique(d_arr[i]).size >= 2  # noqa: E731
    boot = [
        _joint_once(un[i], ud[i], y_arr[i]) for i in _resamples(y_arr.size, bootstrap, seed, both)
    ]
    intervals: dict[str, tuple[float, float]] = {}
    if boot:
        b = np.asarray(boot)
        cols = {"a": b[:, 0] * n_ref ** b[:, 1], "alpha": b[:, 1], "b": b[:, 2] * d_ref ** b[:, 3],
                "beta": b[:, 3], "c": b[:, 4]}  # fmt: skip
        intervals = _percentile_intervals(cols, level)
    pred = joint_law(un, ud, *p)
    return JointFit(
        a_ref=p[0], alpha=p[1], b_ref=p[2], beta=p[3], c=p[4], n_ref=n_ref, d_ref=d_ref,
        n=int(y_arr.size), n_name=names[0], d_name=names[1], y_name=names[2], level=level,
        intervals=intervals, diagnostics=diagnostics(un * ud, y_arr, pred), boot=boot,
        log_residuals=[float(v) for v in np.log(y_arr) - np.log(pred)],
    )  # fmt: skip


# --------------------------------------------------------------------------- checks


def extrapolation_check(
    x: Sequence[float], y: Sequence[float], *, fit_fraction: float = 2 / 3, bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Fit on the runs at the smallest ``fit_fraction`` of the distinct ``x`` values and
    predict the rest: relative errors of the prediction against each held-out run and
    against the held-out mean per ``x``."""
    x_arr, y_arr = _check_xy(x, y, 4)
    xs = np.unique(x_arr)
    k = max(3, int(math.floor(fit_fraction * xs.size + 1e-9)))
    if k >= xs.size:
        raise ValueError(f"{xs.size} distinct x values leave none to hold out")
    inside = x_arr <= xs[k - 1]
    fit = fit_power_law(x_arr[inside], y_arr[inside], bootstrap=bootstrap, seed=seed)
    held = xs[k:]
    pred = fit.predict(held, seed=seed)
    rows = []
    for i, xv in enumerate(held):
        ys = y_arr[x_arr == xv]
        p = pred["prediction"][i]
        rows.append({
            "x": float(xv), "prediction": p, "measured_mean": float(ys.mean()),
            "relative_error_mean": float((p - ys.mean()) / ys.mean()),
            "max_abs_relative_error_run": float(np.max(np.abs((p - ys) / ys))),
            "band": [pred["band"][0][i], pred["band"][1][i]],
            "run": [pred["run"][0][i], pred["run"][1][i]],
            "covered_by_run_interval": bool(np.all((ys >= pred["run"][0][i]) & (ys <= pred["run"][1][i]))),
        })  # fmt: skip
    return {
        "fit_on_x_max": float(xs[k - 1]),
        "fit": {"a": fit.a, "alpha": fit.alpha, "c": fit.c, "intervals": fit.intervals},
        "held_out": rows,
        "max_abs_relative_error_mean": max(abs(r["relative_error_mean"]) for r in rows),
        "max_abs_relative_error_run": max(r["max_abs_relative_error_run"] for r in rows),
    }


__all__ = [
    "JointFit",
    "PowerLawFit",
    "diagnostics",
    "extrapolation_check",
    "fit_joint",
    "fit_power_law",
    "joint_law",
    "power_law",
    "runs_test",
]
