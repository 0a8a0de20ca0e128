"""The one KEY=VALUE parser and its typed coercion, as every capability uses it."""

from __future__ import annotations

import pytest

from embedlab.errors import UserError
from embedlab.options import coerce_options, dataclass_options, parse_options


def test_user_error_is_a_value_error():
    # library callers catch the standard exception; nothing of the CLI is needed
    assert issubclass(UserError, ValueError)
    from embedlab.blender.sampler import SamplerConfig

    with pytest.raises(ValueError, match="steps must be"):
        SamplerConfig(steps=0)


def test_parse_splits_pairs_and_refuses_malformed():
    assert parse_options(" a = 1 ,b=x=y,, ", "demo") == {"a": "1", "b": "x=y"}
    assert parse_options(None) == {} and parse_options("  ") == {}
    with pytest.raises(UserError, match=r"^demo options: 'a' is not KEY=VALUE$"):
        parse_options("a", "demo")
    with pytest.raises(UserError, match="is not KEY=VALUE"):
        parse_options("=3", "demo")
    with pytest.raises(UserError, match="a is given twice"):
        parse_options("a=1,a=2", "demo")


def test_coerce_by_default_type():
    schema = {"n": 3, "x": 0.5, "on": True, "name": "a", "free": None, "t": float}
    got = coerce_options("demo", {"n": "4", "x": "1e-3", "on": "off", "name": "7",
                                  "free": "2", "t": "3"}, schema)  # fmt: skip
    assert got == {"n": 4, "x": 0.001, "on": False, "name": "7", "free": 2.0, "t": 3.0}
    assert type(got["n"]) is int and type(got["t"]) is float
    assert coerce_options("demo", {"free": "min"}, schema) == {"free": "min"}
    for key, bad in [("n", "4.5"), ("x", "nan"), ("on", "maybe"), ("n", "four")]:
        with pytest.raises(UserError, match=rf"^demo option {key}: bad value '{bad}' \(expected"):
            coerce_options("demo", {key: bad}, schema)
    with pytest.raises(UserError, match=r"^demo takes no option zz; valid: n, x, on"):
        coerce_options("demo", {"zz": "1"}, schema)


@pytest.mark.parametrize(
    "build, text, message",
    [
        ("optimizer", "exponent=abc", "optimizer 'cf-sgd' option exponent: bad value 'abc'"),
        ("scheme", "cycles=2.5", "scheme option cycles: bad value '2.5'"),
        ("fgd", "gate=perhaps", "fgd option gate: bad value 'perhaps'"),
        ("operator", "rescale=perhaps", "operator 'union' option rescale: bad value 'perhaps'"),
        ("strategy", "window=x", "full-retrain option window: bad value 'x'"),
    ],
)
def test_every_capability_uses_the_one_parser(build, text, message):
    """One error style for the four option consumers (each message was different before)."""
    opts = parse_options(text, build)
    with pytest.raises(UserError, match=message):
        if build == "optimizer":
            from embedlab.optim.registry import get_optimizer

            get_optimizer("cf-sgd").coerce_options(opts)
        elif build == "scheme":
            from embedlab.growth.schedule import GrowthSchedule

            GrowthSchedule.from_options("growth-pruning", opts)
        elif build == "fgd":
            from embedlab.online.fgd import FGDConfig

            FGDConfig.from_options(opts)
        elif build == "operator":
            from embedlab.blender.sampler import SamplerConfig

            SamplerConfig(op="union", op_options=opts)
        else:
            from embedlab.online.strategies import _take_options

            _take_options("full-retrain", opts, {"window": 4})


def test_typed_values_reach_the_consumers():
    from embedlab.blender.sampler import SamplerConfig
    from embedlab.growth.schedule import GrowthSchedule
    from embedlab.online.fgd import FGDConfig

    cfg = SamplerConfig(op="union", op_options=parse_options("rescale=false,granularity=location"))
    assert cfg.op_options == {"rescale": False, "granularity": "location"}
    assert FGDConfig.from_options({"lags": "5", "gate": "no"}) == FGDConfig(lags=5, gate=False)
    assert GrowthSchedule.from_options("prune-only", {"cycles": "2"}).cycles == 2


def test_dataclass_options_reads_optional_annotations():
    from dataclasses import dataclass

    @dataclass
    class C:
        a: int | None = None
        b: str = "x"

    assert dataclass_options(C, "c", {"a": "3"}) == {"a": 3}
    with pytest.raises(UserError, match="c option a: bad value '3.5'"):
        dataclass_options(C, "c", {"a": "3.5"})
