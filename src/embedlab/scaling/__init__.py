"""Scaling laws for DLRMs: sweeps over parameters, data and compute, power-law and joint
fits with intervals and diagnostics, FLOP counts, plots."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "PowerLawFit": "embedlab.scaling.laws",
        "JointFit": "embedlab.scaling.laws",
        "fit_power_law": "embedlab.scaling.laws",
        "fit_joint": "embedlab.scaling.laws",
        "power_law": "embedlab.scaling.laws",
        "extrapolation_check": "embedlab.scaling.laws",
        "fit_runs": "embedlab.scaling.analysis",
        "load_fit": "embedlab.scaling.analysis",
        "save_fit": "embedlab.scaling.analysis",
        "SweepSpec": "embedlab.scaling.sweep",
        "run_sweep": "embedlab.scaling.sweep",
        "read_runs_csv": "embedlab.scaling.sweep",
        "DLRMFlops": "embedlab.scaling.flops",
        "dlrm_flops": "embedlab.scaling.flops",
        "plot_fit": "embedlab.scaling.plot",
    },
)
