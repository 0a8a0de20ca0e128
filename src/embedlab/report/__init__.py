"""The HTML report of ``embedlab reproduce`` and its matplotlib plots."""

from embedlab._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "render": "embedlab.report.html",
        "line_plot": "embedlab.report.plots",
        "bar_plot": "embedlab.report.plots",
    },
)
