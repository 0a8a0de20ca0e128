"""Operator scores, the class judge, diversity, and the prompt designs."""

from __future__ import annotations

import pytest
import torch

from embedlab.blender.data import ClassPartition, make_splits, oracle_images
from embedlab.blender.fidelity import (
    diversity,
    intersection_scores,
    train_class_judge,
    union_scores,
)
from embedlab.blender.generator import ConditionalGenerator, GeneratorConfig
from embedlab.blender.sampler import SamplerConfig
from embedlab.blender.synth import class_only_prompts, generate, intersection_prompts, union_prompts
from embedlab.errors import UserError


def test_union_scores_by_hand():
    det = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    uni = torch.tensor([[1, 1, 0, 0]] * 4, dtype=torch.bool)
    s = union_scores(det, uni)
    assert s == {"any": 0.5, "all": 0.25, "coverage": (0.5 + 1.0) / 4, "leak": 0.25}


def test_intersection_scores_by_hand():
    det = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=torch.bool)
    uni = torch.tensor([[1, 1, 1, 0]] * 4, dtype=torch.bool)
    shared = torch.tensor([[1, 0, 0, 0]] * 4, dtype=torch.bool)
    s = intersection_scores(det, uni, shared)
    assert s == {"shared": 0.75, "private": 0.25, "precision": 0.5, "leak": 0.25}


def test_prompt_designs():
    g = torch.Generator().manual_seed(0)
    cls = torch.arange(200) % 5
    u = union_prompts(cls, 4, 2, g)
    assert u.prompts.shape == (2, 200, 4) and (u.prompts.sum(2) == 1).all()
    assert (u.union.sum(1) == 2).all() and not u.shared.any()
    i = intersection_prompts(cls, 4, 3, 1, g)
    assert (
        (i.prompts.sum(2) == 2).all()
        and (i.shared.sum(1) == 1).all()
        and (i.union.sum(1) == 4).all()
    )
    c = class_only_prompts(cls, 4)
    assert c.prompts.sum() == 0
    with pytest.raises(UserError):
        intersection_prompts(cls, 4, 3, 2, g)
    with pytest.raises(UserError):
        union_prompts(cls, 4, 5, g)


def test_generate_shapes_and_determinism():
    torch.manual_seed(0)
    m = ConditionalGenerator(GeneratorConfig(channels=(8, 16), sample_size=16)).eval()
    d = union_prompts(torch.tensor([0, 1, 2]), 4, 2, torch.Generator().manual_seed(0))
    a = generate(m, d, SamplerConfig(steps=2), seed=3, chunk=2)
    assert a.shape == (3, 3, 16, 16)
    assert torch.equal(a, generate(m, d, SamplerConfig(steps=2), seed=3, chunk=2))


def test_class_judge_and_diversity_on_real_renders():
    torch.set_num_threads(1)
    sp = make_splits(ClassPartition.from_seed(0), seed=0)
    o = oracle_images(sp.train, 2000, seed=0)
    judge = train_class_judge(o.x, o.y, epochs=3)
    assert judge.val_accuracy > 0.4  # 5 classes: chance is 0.2
    test_acc = judge.accuracy(sp.train.x[:500], sp.train.y[:500])
    assert test_acc > 0.4
    div_real = diversity(sp.train.x[:600], sp.train.y[:600], judge)
    div_oracle = diversity(o.x[:600], o.y[:600], judge)
    assert div_real["combinations_per_class"] <= 5  # partial support: none or one attribute
    assert div_oracle["combinations_per_class"] > 10


def test_wilson_and_newcombe_intervals_match_published_values():
    from embedlab.blender.fidelity import rate_difference_interval, wilson_interval

    low, high = wilson_interval(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = wilson_interval(0.0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    # Newcombe (1998), Statistics in Medicine 17, example (a): 56/70 - 48/80
    d = rate_difference_interval(56 / 70, 70, 48 / 80, 80)
    assert round(d["diff"], 4) == 0.2
    assert (round(d["ci_low"], 4), round(d["ci_high"], 4)) == (0.0524, 0.3339)
    with pytest.raises(ValueError):
        wilson_interval(1.2, 10)
