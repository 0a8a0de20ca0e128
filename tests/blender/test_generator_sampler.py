"""The conditional generator (training, resume, saving) and the guided sampler."""

from __future__ import annotations

import pytest
import torch

from embedlab.blender.generator import (
    ConditionalGenerator,
    GeneratorConfig,
    drop_conditions,
    load_generator,
    make_scheduler,
    train_generator,
)
from embedlab.blender.sampler import SamplerConfig, UNet2DConditionEps, UNet2DEps, blender_sample
from embedlab.errors import UserError

TINY = dict(channels=(8, 16), sample_size=16, iterations=6, batch_size=4, checkpoint_every=3)


def _data(n=12, size=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return x, torch.arange(n) % 3, torch.rand(n, 4, generator=g) < 0.3


def test_train_resume_matches_uninterrupted(tmp_path):
    x, y, a = _data()
    cfg = GeneratorConfig(**TINY)
    full = train_generator(x, y, a, cfg, tmp_path / "full", resume=False)
    half = GeneratorConfig(**{**TINY, "iterations": 3})
    train_generator(x, y, a, half, tmp_path / "part", resume=False)
    # continue the 3-iteration checkpoint to 6 (same config apart from the length)
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    import json

    ck["config"] = json.dumps(cfg.to_json(), sort_keys=True)
    torch.save(ck, tmp_path / "part" / "checkpoint.pt")
    resumed = train_generator(x, y, a, cfg, tmp_path / "part", resume=True)
    for p, q in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q)
    loaded = load_generator(tmp_path / "full")
    for p, q in zip(full.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(p, q)


def test_resume_with_other_config_is_refused(tmp_path):
    x, y, a = _data()
    train_generator(x, y, a, GeneratorConfig(**TINY), tmp_path, resume=False)
    with pytest.raises(UserError, match="another generator config"):
        train_generator(x, y, a, GeneratorConfig(**{**TINY, "lr": 0.5}), tmp_path)
    with pytest.raises(UserError):
        load_generator(tmp_path / "nothing")


def test_training_lowers_the_loss(tmp_path):
    x, y, a = _data(n=32)
    cfg = GeneratorConfig(**{**TINY, "iterations": 150, "batch_size": 16, "checkpoint_every": 150})
    train_generator(x, y, a, cfg, tmp_path, resume=False)
    import json

    losses = json.loads((tmp_path / "generator.json").read_text())["meta"]["loss_per_50"]
    assert losses[-1] < 0.7 * losses[0]


def test_condition_dropout_rates():
    cfg = GeneratorConfig(p_null=0.1, p_drop_attribute=0.3)
    cls = torch.zeros(20000, dtype=torch.long)
    attrs = torch.ones(20000, 4, dtype=torch.bool)
    c, a = drop_conditions(cls, attrs, cfg, torch.Generator().manual_seed(0))
    null = c < 0
    assert abs(null.float().mean().item() - 0.1) < 0.01
    assert a[null].sum() == 0
    assert abs(a[~null].mean().item() - 0.7) < 0.01


def _model():
    torch.manual_seed(0)
    return ConditionalGenerator(GeneratorConfig(**TINY)).eval()


def _conds(m, k=2):
    null = m.condition(torch.tensor([-1]), torch.zeros(1, 4))
    anchor = m.condition(torch.tensor([1]), torch.zeros(1, 4))
    prompts = torch.stack(
        [m.condition(torch.tensor([1]), torch.eye(4)[i : i + 1]) for i in range(k)]
    )
    return null.detach(), anchor.detach(), prompts.detach()


def test_one_prompt_mean_with_anchor_is_classifier_free_guidance():
    """eps_null + s(eps_k - eps_null) + s(eps_p - eps_k) = eps_null + s(eps_p - eps_null)."""
    m = _model()
    null, anchor, prompts = _conds(m, 1)
    sch = make_scheduler(m.cfg, "ddim")
    a = blender_sample(m, sch, (3, 3, 16, 16), null, prompts, SamplerConfig(op="mean", steps=4, attr_scale=2.0, class_scale=2.0),
                       anchor=anchor, generator=torch.Generator().manual_seed(5))  # fmt: skip
    b = blender_sample(m, sch, (3, 3, 16, 16), null, prompts, SamplerConfig(op="mean", steps=4, attr_scale=2.0, residual_base="null"),
                       generator=torch.Generator().manual_seed(5))  # fmt: skip
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_operators_window_and_seed_change_the_sample():
    m = _model()
    null, anchor, prompts = _conds(m, 3)
    sch = make_scheduler(m.cfg, "ddim")

    def run(seed=1, **kw):
        return blender_sample(m, sch, (2, 3, 16, 16), null, prompts, SamplerConfig(steps=4, **kw), anchor=anchor,
                              generator=torch.Generator().manual_seed(seed))  # fmt: skip

    base = run(op="union")
    assert torch.equal(base, run(op="union"))
    assert not torch.equal(base, run(seed=2, op="union"))
    assert not torch.allclose(base, run(op="mean"))
    assert not torch.allclose(base, run(op="union", window=(0.0, 0.5)))
    assert run(op="blend").shape == (2, 3, 16, 16)
    with pytest.raises(UserError):
        SamplerConfig(op="xor")
    with pytest.raises(UserError):
        SamplerConfig(window=(0.5, 0.5))
    with pytest.raises(UserError, match="granularity"):
        SamplerConfig(op="intersection", op_options={"granularty": "location"})
    with pytest.raises(UserError, match="anchor"):
        blender_sample(m, sch, (2, 3, 16, 16), null, prompts, SamplerConfig(steps=2))
    with pytest.raises(UserError, match="without the anchor term"):  # it used to add it anyway
        blender_sample(m, sch, (2, 3, 16, 16), null, prompts, SamplerConfig(steps=2, residual_base="null"),
                       anchor=anchor)  # fmt: skip


def test_adapters_for_plain_diffusers_unets():
    from diffusers import UNet2DConditionModel, UNet2DModel

    sch = make_scheduler(GeneratorConfig(**TINY), "ddim")
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=8,
                       num_class_embeds=4).eval()  # fmt: skip
    g = torch.Generator().manual_seed(0)
    xs, t = torch.randn(2, 3, 16, 16, generator=g), torch.tensor([500, 500])
    with torch.no_grad():
        # the adapter feeds the condition as the UNet's class labels, and the label matters
        e = UNet2DEps(unet).eps(xs, t, torch.tensor([1, 2]))
        assert torch.equal(e, unet(xs, t, class_labels=torch.tensor([1, 2])).sample)
        assert not torch.allclose(e, UNet2DEps(unet).eps(xs, t, torch.tensor([3, 3])))
    x = blender_sample(UNet2DEps(unet), sch, (2, 3, 16, 16), torch.tensor([3]), torch.tensor([[0], [1]]),
                       SamplerConfig(steps=2, residual_base="null"))  # fmt: skip
    assert x.shape == (2, 3, 16, 16) and torch.isfinite(x).all()
    cu = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                              down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8,
                              norm_num_groups=8, attention_head_dim=2).eval()  # fmt: skip
    text = torch.randn(
        3, 1, 5, 8, generator=torch.Generator().manual_seed(0)
    )  # null + 2 prompts, 5 tokens
    zs, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([300, 300])
    with torch.no_grad():
        hid = text[1:, 0]  # (2, 5, 8): one prompt per sample
        e = UNet2DConditionEps(cu).eps(zs, t, hid)
        assert torch.equal(e, cu(zs, t, encoder_hidden_states=hid).sample)
        assert not torch.allclose(e, UNet2DConditionEps(cu).eps(zs, t, hid.flip(0)))
    z = blender_sample(UNet2DConditionEps(cu), sch, (2, 4, 8, 8), text[0], text[1:],
                       SamplerConfig(op="intersection", steps=2, residual_base="null"))  # fmt: skip
    assert z.shape == (2, 4, 8, 8) and torch.isfinite(z).all()


def test_deadline_stops_early_and_is_recorded(tmp_path):
    import json

    x, y, a = _data()
    cfg = GeneratorConfig(**{**TINY, "iterations": 8, "checkpoint_every": 5})
    train_generator(x, y, a, cfg, tmp_path, resume=False, deadline_s=0.0, device="cpu")
    meta = json.loads((tmp_path / "generator.json").read_text())["meta"]
    assert meta["iterations"] == 1 and meta["stopped_at_deadline"] is True
    assert meta["device"] == "cpu"
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["iterations"] == 1  # the stop is checkpointed: a rerun without deadline continues
    train_generator(x, y, a, cfg, tmp_path, resume=True, deadline_s=None)
    meta = json.loads((tmp_path / "generator.json").read_text())["meta"]
    assert meta["iterations"] == 8 and meta["stopped_at_deadline"] is False


@pytest.mark.parametrize(
    "name",
    ["DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "UniPCMultistepScheduler",
     "LMSDiscreteScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"],
)  # fmt: skip
def test_every_diffusers_scheduler_the_docs_name_samples(name):
    import diffusers

    m = _model()
    null, anchor, prompts = _conds(m, 2)
    sch = getattr(diffusers, name)(num_train_timesteps=m.cfg.train_timesteps)
    if name == "DPMSolverMultistepScheduler":
        sch = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=m.cfg.train_timesteps,
                                                    algorithm_type="dpmsolver++")  # fmt: skip

    def run(gen):
        # 4 steps: diffusers' PNDM cannot set 3 (its PLMS warm-up needs more)
        return blender_sample(m, sch, (2, 3, 16, 16), null, prompts, SamplerConfig(op="union", steps=4),
                              anchor=anchor, generator=gen)  # fmt: skip

    a = run(torch.Generator().manual_seed(3))
    assert a.shape == (2, 3, 16, 16) and torch.isfinite(a).all()
    torch.testing.assert_close(a, run(torch.Generator().manual_seed(3)))  # seeded: repeatable
    assert not torch.allclose(run(None), run(None))  # no generator: fresh noise each call, not seed 0
    clips = bool(sch.config.get("clip_sample", False))
    assert (a.abs().max() <= 1.0) or not clips


def test_output_is_clamped_only_where_the_scheduler_clips():
    from diffusers import DDIMScheduler

    m = _model()
    null, anchor, prompts = _conds(m, 1)
    big = SamplerConfig(op="mean", steps=3, attr_scale=50.0, class_scale=50.0)  # drives x out of range

    def run(clip):
        sch = DDIMScheduler(num_train_timesteps=m.cfg.train_timesteps, clip_sample=clip)
        return blender_sample(m, sch, (2, 3, 16, 16), null, prompts, big, anchor=anchor,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip

    assert run(True).abs().max() <= 1.0
    assert run(False).abs().max() > 1.0
