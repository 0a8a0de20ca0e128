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
* **A parameter on a bound is not identified**: when the fit ends on a bound (most often
  ``c = min y``: the curve has flattened inside the data, so the data only say the floor is
  at or below the best run; or ``alpha`` at its cap of 5), the bound, not the data, set the
  value. The fit lists it in ``at_bound`` (``identified`` is false), reports the value only
  as the bound it sits on and claims no interval for it: such a fit is not a scaling law.
* **Intervals by case bootstrap**: the runs are resampled with replacement (a resample
  needs at least three distinct ``x``), each resample refitted from scratch; intervals are
  percentiles. Refits that fail are counted (``bootstrap.failed``), never silently dropped:
  the percentiles are widened to what they would be whatever the failed refits had
  returned (worst case on each side), and when more than ``(1 - level) / 2`` of the refits
  fail no interval is claimed at all (the failures alone could fill a tail). An interval
  end where more than that share of refits sits on a bound is open (``None``): the bound,
  not the data, would set it. A prediction carries two intervals: ``band`` for the fitted
  curve (the uncertainty of the law) and ``run`` for one new run, which adds a resampled
  residual to each bootstrap curve (run-to-run noise, e.g. seeds).
* **Diagnostics**: relative residuals, their RMS and maximum, the log-space R^2 and a
  Wald-Wolfowitz runs test on the residual signs in ``x`` order (few runs = the curve
  bends where the law does not: a wrong functional form, not noise).

The joint law ``L(N, D) = c + a N**(-alpha) + b D**(-beta)`` (:func:`fit_joint`) is fitted the
same way, seeded by a grid over the exponents with non-negative least squares for ``a, b``.
Two variables have no single order, so its runs test is done once per axis (residuals
ordered by that axis, ties by the other), and its held-out check
(:func:`joint_extrapolation_check`) fits the runs inside the largest value of both axes
and predicts the outer frontier (the runs at the largest ``N`` or the largest ``D``).
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


# --------------------------------------------------------------------------- bootstrap

#: A parameter within this fraction of its bound's range of the bound sits on it.
BOUND_RTOL = 1e-5


@dataclass
class BootstrapSummary:
    """What the case bootstrap did: resamples asked for, drawn (resamples that fail the
    design check, e.g. too few distinct ``x``, are redrawn up to a limit), refitted and
    failed, the first distinct failure messages, the share of refits on each bound of each
    parameter (``[lower, upper]``) and how the intervals were formed."""

    requested: int = 0
    drawn: int = 0
    fitted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    at_bound_fraction: dict[str, tuple[float, float]] = field(default_factory=dict)
    intervals: str = "none"

    @property
    def failed_fraction(self) -> float:
        return self.failed / self.drawn if self.drawn else 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> BootstrapSummary:
        d = dict(d or {})
        d["at_bound_fraction"] = {k: tuple(v) for k, v in d.get("at_bound_fraction", {}).items()}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _on_bounds(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (lower, upper) of values on their bounds, elementwise."""
    tol = BOUND_RTOL * (hi - lo)
    return values <= lo + tol, values >= hi - tol


def _at_bound(names: Sequence[str], values: Sequence[float], lo: Sequence[float],
              hi: Sequence[float]) -> list[str]:  # fmt: skip
    low, up = _on_bounds(np.asarray(values, float), np.asarray(lo, float), np.asarray(hi, float))
    return [n for n, a, b in zip(names, low, up) if a or b]


def _bootstrap(
    refit: Callable[[np.ndarray], tuple[float, ...]],
    n: int,
    n_boot: int,
    seed: int,
    ok: Callable[[np.ndarray], bool],
) -> tuple[list[tuple[float, ...]], list[np.ndarray], BootstrapSummary]:
    """Refit ``n_boot`` case resamples; failures (``ValueError``, ``ArithmeticError``,
    ``LinAlgError``) are counted with their message, not dropped silently."""
    summary = BootstrapSummary(requested=n_boot)
    boot: list[tuple[float, ...]] = []
    used: list[np.ndarray] = []
    for idx in _resamples(n, n_boot, seed, ok):
        summary.drawn += 1
        try:
            boot.append(tuple(float(v) for v in refit(idx)))
            used.append(idx)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
            summary.failed += 1
            msg = f"{type(e).__name__}: {e}"
            if msg not in summary.errors and len(summary.errors) < 5:
                summary.errors.append(msg)
    summary.fitted = len(boot)
    return boot, used, summary


def _quantile_levels(level: float, failed_fraction: float) -> tuple[float, float] | None:
    """Percentile levels (in [0, 1]) over the successful refits that bound the central
    ``level`` interval of *all* refits whatever the failed ones returned, or ``None`` when
    the failures could fill a whole tail (``failed_fraction > (1 - level) / 2``)."""
    tail, f = (1 - level) / 2, failed_fraction
    if f > tail:
        return None
    return max(0.0, (tail - f) / (1 - f)), min(1.0, (1 - tail) / (1 - f))


def _bootstrap_intervals(
    cols: dict[str, np.ndarray],
    sides: dict[str, tuple[np.ndarray, np.ndarray]],
    level: float,
    summary: BootstrapSummary,
    skip: Sequence[str],
) -> dict[str, tuple[float | None, float | None]]:
    """Intervals of each column (not those in ``skip``: parameters the full fit left on a
    bound), widened for failed refits; an end where more than the tail share of refits sits
    on a bound is ``None`` (open)."""
    if not cols or next(iter(cols.values())).size == 0:
        summary.intervals = "none: no refit succeeded" if summary.drawn else "none"
        return {}
    summary.at_bound_fraction = {
        k: (float(np.mean(lo)), float(np.mean(hi))) for k, (lo, hi) in sides.items()
    }
    q = _quantile_levels(level, summary.failed_fraction)
    if q is None:
        summary.intervals = (f"withheld: {summary.failed} of {summary.drawn} refits failed, more "
                             f"than the {(1 - level) / 2:.1%} tail share")  # fmt: skip
        return {}
    summary.intervals = (
        "percentile" if summary.failed == 0
        else f"percentile, widened for {summary.failed} failed of {summary.drawn} refits"
    )  # fmt: skip
    tail = (1 - level) / 2
    out: dict[str, tuple[float | None, float | None]] = {}
    for k, col in cols.items():
        if k in skip:
            continue
        lo, hi = (float(v) for v in np.quantile(col, q))
        on_lo, on_hi = summary.at_bound_fraction.get(k, (0.0, 0.0))
        out[k] = (None if on_lo > tail else lo, None if on_hi > tail else hi)
    return out


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


# --------------------------------------------------------------------------- one axis


@dataclass
class PowerLawFit:
    """A fitted ``y = a * x**(-alpha) + c`` with bootstrap intervals and diagnostics.

    ``a_ref`` is the coefficient at ``x / x_ref``; :attr:`a` converts it to the units of
    ``x``. ``boot`` holds the bootstrap parameters ``(a_ref, alpha, c)`` and ``log_residuals``
    the full fit's residuals (both used for prediction intervals). ``at_bound`` names the
    parameters the fit left on a bound (not identified: no interval, and the fit is not a
    law); ``bootstrap`` says how many refits failed and how the intervals were formed.
    """

    a_ref: float
    alpha: float
    c: float
    x_ref: float
    n: int
    x_name: str = "x"
    y_name: str = "y"
    level: float = LEVEL
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    x_range: tuple[float, float] = (0.0, 0.0)
    boot: list[tuple[float, float, float]] = field(default_factory=list)
    log_residuals: list[float] = field(default_factory=list)
    at_bound: list[str] = field(default_factory=list)
    bootstrap: BootstrapSummary = field(default_factory=BootstrapSummary)

    kind = "power_law"

    @property
    def a(self) -> float:
        return float(self.a_ref * self.x_ref**self.alpha)

    @property
    def identified(self) -> bool:
        """Whether every parameter is set by the data (none on a bound)."""
        return not self.at_bound

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return power_law(
            np.asarray(x, dtype=np.float64) / self.x_ref, self.a_ref, self.alpha, self.c
        )

    def predict(
        self, x: np.ndarray | float, level: float | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """Point prediction at ``x`` with the curve's band and a new run's interval (both
        ``None`` when too many bootstrap refits failed to claim one)."""
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        curves = (
            np.stack([power_law(x / self.x_ref, *b) for b in self.boot])
            if self.boot
            else self(x)[None, :]
        )
        return _intervals(self(x), curves, self.log_residuals, level or self.level, seed,
                          self.bootstrap.failed_fraction)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            kind=self.kind, a=self.a, identified=self.identified,
            formula=f"{self.y_name} = a * {self.x_name}^(-alpha) + c",
        )  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PowerLawFit:
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["intervals"] = {k: tuple(v) for k, v in keep.get("intervals", {}).items()}
        keep["boot"] = [tuple(b) for b in keep.get("boot", [])]
        keep["x_range"] = tuple(keep.get("x_range", (0.0, 0.0)))
        keep["bootstrap"] = BootstrapSummary.from_dict(keep.get("bootstrap"))
        return cls(**keep)


def _intervals(
    point: np.ndarray, curves: np.ndarray, log_res: Sequence[float], level: float, seed: int,
    failed_fraction: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    q = _quantile_levels(level, failed_fraction)
    if q is None:
        return {"prediction": point.tolist(), "band": None, "run": None, "level": level}
    band = np.quantile(curves, q, axis=0)
    res = np.asarray(log_res, dtype=np.float64)
    if res.size:
        rng = np.random.default_rng(seed)
        noise = np.exp(rng.choice(res, size=curves.shape))
        run = np.quantile(curves * noise, q, axis=0)
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
    if np.ptp(lu) == 0:
        raise ValueError("all x are equal")
    best, best_loss = None, np.inf
    fracs = np.concatenate([[0.0], 1.0 - np.geomspace(1e-4, 1.0, 60)[::-1][:-1], [1.0 - 1e-6]])
    for q in np.unique(np.clip(fracs, 0.0, 1.0 - 1e-9)):
        c = ymin * q
        r = np.log(y - c + 1e-300)
        slope, icpt = np.polyfit(lu, r, 1)
        alpha = float(np.clip(-slope, 0.0, ALPHA_MAX))
        a = float(np.exp(np.mean(r + alpha * lu)))
        pred = power_law(u, a, alpha, c)
        loss = float(np.sum((np.log(y) - np.log(pred)) ** 2))
        if loss < best_loss:
            best, best_loss = (a, alpha, c), loss
    if best is None:
        raise ValueError("no finite starting point (every candidate constant overflowed)")
    return best


def _box(y: np.ndarray, joint: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the fitted parameters (log coefficients, exponents, constant)."""
    ymin = float(y.min())
    if joint:
        return np.array([-50.0, 0.0, -50.0, 0.0, 0.0]), np.array([50.0, ALPHA_MAX, 50.0, ALPHA_MAX, ymin])
    return np.array([-50.0, 0.0, 0.0]), np.array([50.0, ALPHA_MAX, ymin])


def _refine(
    u: np.ndarray, y: np.ndarray, start: tuple[float, float, float]
) -> tuple[float, float, float]:
    ymin = float(y.min())
    lo, hi = _box(y)
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


def _log_params(p: Sequence[float], joint: bool = False) -> np.ndarray:
    """Parameters in the fit's coordinates (log coefficients) for the bound check."""
    if joint:
        return np.array([math.log(p[0]), p[1], math.log(p[2]), p[3], p[4]])
    return np.array([math.log(p[0]), p[1], p[2]])


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
    names = ("a", "alpha", "c")
    at_bound = _at_bound(names, _log_params((a, alpha, c)), *_box(y))
    boot, used, summary = _bootstrap(
        lambda i: _fit_once(u[i], y[i]), x.size, bootstrap, seed,
        lambda i: np.unique(x[i]).size >= 3,
    )  # fmt: skip
    b = np.asarray(boot, dtype=np.float64).reshape(-1, 3)
    cols = {"a": b[:, 0] * x_ref ** b[:, 1], "alpha": b[:, 1], "c": b[:, 2]}
    sides: dict[str, tuple[np.ndarray, np.ndarray]] = {k: (np.zeros(0, bool),) * 2 for k in names}
    if boot:
        boxes = [_box(y[i]) for i in used]
        lo, hi = np.stack([bx[0] for bx in boxes]), np.stack([bx[1] for bx in boxes])
        logp = np.stack([_log_params(p) for p in boot])
        on_lo, on_hi = _on_bounds(logp, lo, hi)
        sides = {k: (on_lo[:, j], on_hi[:, j]) for j, k in enumerate(names)}
    intervals = _bootstrap_intervals(cols, sides, level, summary, at_bound)
    pred = power_law(u, a, alpha, c)
    return PowerLawFit(
        a_ref=a, alpha=alpha, c=c, x_ref=x_ref, n=int(x.size), x_name=x_name, y_name=y_name,
        level=level, intervals=intervals, diagnostics=diagnostics(x, y, pred),
        x_range=(float(x.min()), float(x.max())), boot=boot,  # type: ignore[arg-type]
        log_residuals=[float(v) for v in np.log(y) - np.log(pred)],
        at_bound=at_bound, bootstrap=summary,
    )  # fmt: skip


# --------------------------------------------------------------------------- joint


def joint_diagnostics(
    n: np.ndarray, d: np.ndarray, y: np.ndarray, pred: np.ndarray, names: tuple[str, str]
) -> dict[str, Any]:
    """Relative residuals (in input order), their RMS and maximum, the log-space R^2, and a
    runs test per axis.

    Two variables have no single order (ordering by ``n * d``, as a product of scaled
    sizes, mixes runs that differ in both and means nothing). Under the null of independent
    residuals any order fixed by the design gives a valid runs test, so the test is run
    twice: residuals ordered by ``n`` (ties by ``d``), where a law that bends wrongly in
    ``n`` leaves long runs, and ordered by ``d`` (ties by ``n``).
    """
    rel = (y - pred) / pred
    logres = np.log(y) - np.log(pred)
    ss_tot = float(np.sum((np.log(y) - np.log(y).mean()) ** 2))
    by_n, by_d = np.lexsort((d, n)), np.lexsort((n, d))
    return {
        "relative_residuals": [float(v) for v in rel],
        "rms_relative_residual": float(np.sqrt(np.mean(rel**2))),
        "max_abs_relative_residual": float(np.max(np.abs(rel))),
        "r2_log": 1.0 - float(np.sum(logres**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "runs_test_by_axis": {names[0]: runs_test(rel[by_n]), names[1]: runs_test(rel[by_d])},
    }


@dataclass
class JointFit:
    """A fitted ``y = c + a * (n/n_ref)**(-alpha) + b * (d/d_ref)**(-beta)``.

    Coefficients are stored at the reference scales (geometric means); :meth:`coefficients`
    gives them in the units of ``n`` and ``d``. ``at_bound`` and ``bootstrap`` as in
    :class:`PowerLawFit`.
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
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    boot: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    log_residuals: list[float] = field(default_factory=list)
    at_bound: list[str] = field(default_factory=list)
    bootstrap: BootstrapSummary = field(default_factory=BootstrapSummary)

    kind = "joint"

    @property
    def identified(self) -> bool:
        return not self.at_bound

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
        return _intervals(self(n, d), curves, self.log_residuals, level or self.level, seed,
                          self.bootstrap.failed_fraction)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(kind=self.kind, identified=self.identified, **self.coefficients(),
                 formula=f"{self.y_name} = c + a * {self.n_name}^(-alpha) + b * {self.d_name}^(-beta)")  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JointFit:
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["intervals"] = {k: tuple(v) for k, v in keep.get("intervals", {}).items()}
        keep["boot"] = [tuple(b) for b in keep.get("boot", [])]
        keep["bootstrap"] = BootstrapSummary.from_dict(keep.get("bootstrap"))
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
    if best is None:
        raise ValueError("no starting point of the joint law predicts positive values")
    lo, hi = _box(y, joint=True)
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
    """Fit ``y = c + a n**(-alpha) + b d**(-beta)`` (each axis needs >= 2 distinct values);
    diagnostics by :func:`joint_diagnostics`."""
    n_arr, y_arr = _check_xy(n, y, 2)
    d_arr, _ = _check_xy(d, y, 2)
    if n_arr.size < 6:
        raise ValueError(f"a joint fit has 5 parameters; need at least 6 runs, got {n_arr.size}")
    n_ref = float(np.exp(np.mean(np.log(n_arr))))
    d_ref = float(np.exp(np.mean(np.log(d_arr))))
    un, ud = n_arr / n_ref, d_arr / d_ref
    p = _joint_once(un, ud, y_arr)
    pnames = ("a", "alpha", "b", "beta", "c")
    at_bound = _at_bound(pnames, _log_params(p, joint=True), *_box(y_arr, joint=True))
    both = lambda i: np.unique(n_arr[i]).size >= 2 and np.unique(d_arr[i]).size >= 2  # noqa: E731
    boot, used, summary = _bootstrap(
        lambda i: _joint_once(un[i], ud[i], y_arr[i]), y_arr.size, bootstrap, seed, both
    )
    b = np.asarray(boot, dtype=np.float64).reshape(-1, 5)
    cols = {"a": b[:, 0] * n_ref ** b[:, 1], "alpha": b[:, 1], "b": b[:, 2] * d_ref ** b[:, 3],
            "beta": b[:, 3], "c": b[:, 4]}  # fmt: skip
    sides: dict[str, tuple[np.ndarray, np.ndarray]] = {k: (np.zeros(0, bool),) * 2 for k in pnames}
    if boot:
        boxes = [_box(y_arr[i], joint=True) for i in used]
        lo, hi = np.stack([bx[0] for bx in boxes]), np.stack([bx[1] for bx in boxes])
        on_lo, on_hi = _on_bounds(np.stack([_log_params(q, joint=True) for q in boot]), lo, hi)
        sides = {k: (on_lo[:, j], on_hi[:, j]) for j, k in enumerate(pnames)}
    intervals = _bootstrap_intervals(cols, sides, level, summary, at_bound)
    pred = joint_law(un, ud, *p)
    return JointFit(
        a_ref=p[0], alpha=p[1], b_ref=p[2], beta=p[3], c=p[4], n_ref=n_ref, d_ref=d_ref,
        n=int(y_arr.size), n_name=names[0], d_name=names[1], y_name=names[2], level=level,
        intervals=intervals, diagnostics=joint_diagnostics(n_arr, d_arr, y_arr, pred, names[:2]),
        boot=boot, log_residuals=[float(v) for v in np.log(y_arr) - np.log(pred)],  # type: ignore[arg-type]
        at_bound=at_bound, bootstrap=summary,
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
        band = None if pred["band"] is None else [pred["band"][0][i], pred["band"][1][i]]
        run = None if pred["run"] is None else [pred["run"][0][i], pred["run"][1][i]]
        rows.append({
            "x": float(xv), "prediction": p, "measured_mean": float(ys.mean()),
            "relative_error_mean": float((p - ys.mean()) / ys.mean()),
            "max_abs_relative_error_run": float(np.max(np.abs((p - ys) / ys))), "band": band, "run": run,
            "covered_by_run_interval": None if run is None else bool(np.all((ys >= run[0]) & (ys <= run[1]))),
        })  # fmt: skip
    return {
        "fit_on_x_max": float(xs[k - 1]),
        "fit": fit_summary(fit),
        "held_out": rows,
        "max_abs_relative_error_mean": max(abs(r["relative_error_mean"]) for r in rows),
        "max_abs_relative_error_run": max(r["max_abs_relative_error_run"] for r in rows),
    }


def fit_summary(fit: PowerLawFit | JointFit) -> dict[str, Any]:
    """The reportable part of a fit: parameters, intervals, what sits on a bound, and the
    bootstrap's counts (no bootstrap samples)."""
    params = (
        {"a": fit.a, "alpha": fit.alpha, "c": fit.c}
        if isinstance(fit, PowerLawFit)
        else {**fit.coefficients(), "alpha": fit.alpha, "beta": fit.beta, "c": fit.c}
    )
    b = fit.bootstrap
    return {
        **params, "intervals": fit.intervals, "identified": fit.identified,
        "at_bound": list(fit.at_bound),
        "bootstrap": {"requested": b.requested, "drawn": b.drawn, "fitted": b.fitted,
                      "failed": b.failed, "errors": b.errors, "intervals": b.intervals,
                      "at_bound_fraction": b.at_bound_fraction},
    }  # fmt: skip


def joint_extrapolation_check(
    n: Sequence[float], d: Sequence[float], y: Sequence[float], *, bootstrap: int = 200,
    seed: int = 0, names: tuple[str, str, str] = ("n", "d", "y"),
) -> dict[str, Any]:  # fmt: skip
    """Held-out check of the joint law: fit the runs inside the largest value of *both*
    axes (``n < max n`` and ``d < max d``) and predict the outer frontier, the runs at the
    largest ``n`` or the largest ``d`` (on a full grid an L-shaped edge: extrapolation in
    ``n``, in ``d`` and in both at the corner).

    This is the two-variable form of :func:`extrapolation_check` (predict beyond what was
    fitted, in the direction a scaling law is used). Each axis needs at least 3 distinct
    values (2 left to fit) and the inside at least 6 runs (5 parameters).
    """
    n_arr, y_arr = _check_xy(n, y, 3)
    d_arr, _ = _check_xy(d, y, 3)
    inside = (n_arr < n_arr.max()) & (d_arr < d_arr.max())
    if inside.sum() < 6:
        raise ValueError(
            f"only {int(inside.sum())} runs lie inside the largest {names[0]} and {names[1]}; "
            "the joint law needs 6 to fit"
        )
    fit = fit_joint(n_arr[inside], d_arr[inside], y_arr[inside], bootstrap=bootstrap, seed=seed,
                    names=names)  # fmt: skip
    held = ~inside
    pred = fit.predict(n_arr[held], d_arr[held], seed=seed)
    rows = []
    for i, (nv, dv, yv) in enumerate(zip(n_arr[held], d_arr[held], y_arr[held])):
        p = pred["prediction"][i]
        run = None if pred["run"] is None else [pred["run"][0][i], pred["run"][1][i]]
        rows.append({
            names[0]: float(nv), names[1]: float(dv), "measured": float(yv), "prediction": p,
            "relative_error": float((p - yv) / yv), "run": run,
            "covered_by_run_interval": None if run is None else bool(run[0] <= yv <= run[1]),
        })  # fmt: skip
    return {
        "scheme": f"fit {names[0]} < {float(n_arr.max()):.6g} and {names[1]} < "
                  f"{float(d_arr.max()):.6g}; predict the rest",
        "fit": fit_summary(fit), "fitted_runs": int(inside.sum()), "held_out": rows,
        "max_abs_relative_error": max(abs(r["relative_error"]) for r in rows),
    }  # fmt: skip


__all__ = [
    "BootstrapSummary",
    "JointFit",
    "PowerLawFit",
    "diagnostics",
    "extrapolation_check",
    "fit_joint",
    "fit_power_law",
    "fit_summary",
    "joint_diagnostics",
    "joint_extrapolation_check",
    "joint_law",
    "power_law",
    "runs_test",
]
