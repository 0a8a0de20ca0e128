"""The FGD generator: zero start, G(0) = 0, the meta-objective finds the right step."""

from __future__ import annotations

import pytest
import torch

from embedlab.errors import UserError
from embedlab.online.fgd import CoordinateGenerator, FGDConfig, FutureStepGenerator


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_generator_starts_at_zero_and_maps_zero_to_zero(kind: str) -> None:
    g = CoordinateGenerator(3, 8, kind)
    x = torch.randn(50, 3)
    assert torch.equal(g(x), torch.zeros(50))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_()
    assert torch.equal(g(torch.zeros(4, 3)), torch.zeros(4))
    assert not torch.allclose(g(x), torch.zeros(50))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_meta_steps_learn_the_step_to_the_next_optimum(kind: str) -> None:
    """Quadratic next-period loss 0.5 ||theta - theta*||^2 with theta* = base + 0.7 u_t -
    0.2 u_{t-1}: the learned step approaches that, from the loss gradient alone."""
    torch.manual_seed(0)
    shapes = [(40, 4), (16,)]
    gen = FutureStepGenerator(
        FGDConfig(lags=2, generator=kind, meta_lr=0.05), ["embedding", "dense"]
    )
    window = [[torch.randn(s) for s in shapes] for _ in range(2)]  # oldest first
    target = [0.7 * n - 0.2 * o for o, n in zip(window[0], window[1], strict=True)]
    loss = lambda step: sum(float(((s - t) ** 2).sum()) for s, t in zip(step, target, strict=True))  # noqa: E731
    with torch.no_grad():
        start = loss(gen.step(window))
    for _ in range(300):
        gen.meta_step(window, lambda step: [s - t for s, t in zip(step, target, strict=True)])
    with torch.no_grad():
        end = loss(gen.step(window))
    assert end < 0.02 * start
    if kind == "linear":
        for w in gen.coefficients().values():
            assert w == pytest.approx([0.7, -0.2], abs=0.05)


def test_generator_ignores_all_zero_tensors() -> None:
    gen = FutureStepGenerator(FGDConfig(lags=1), ["dense"])
    with torch.no_grad():
        gen.nets["dense"].skip.weight.fill_(1.0)
    out = gen.step([[torch.zeros(3)]])
    assert torch.equal(out[0], torch.zeros(3))


def test_options_parse_and_errors() -> None:
    cfg = FGDConfig.from_options({"lags": 2.0, "gate": "false", "generator": "mlp", "scale": "1.5"})
    assert (cfg.lags, cfg.gate, cfg.generator, cfg.scale) == (2, False, "mlp", 1.5)
    assert FGDConfig.from_options({"gate": 1.0}).gate is True
    assert FGDConfig.from_options({"gate": 0.0}).gate is False
    for bad in ({"lags": 2.7}, {"lags": float("inf")}, {"scale": float("nan")}, {"meta_lr": "x"}):
        with pytest.raises(UserError, match="bad value"):
            FGDConfig.from_options(bad)
    with pytest.raises(UserError, match="takes no option"):
        FGDConfig.from_options({"lag": 2})
    with pytest.raises(UserError, match="bad value"):
        FGDConfig.from_options({"gate": "maybe"})
    with pytest.raises(UserError, match="generator"):
        FGDConfig(generator="transformer")
    with pytest.raises(UserError, match="meta_fraction"):
        FGDConfig(meta_fraction=0.0)
