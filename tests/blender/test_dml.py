"""Deep metric learning: retrieval metrics against brute force, training on a tiny planted
problem, batch mixing with a synthetic pool, determinism, and the paired-difference interval."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from embedlab.blender import dml
from embedlab.blender.dml import (
    DMLConfig,
    EmbeddingNet,
    LabeledImages,
    evaluate,
    init_model,
    paired_difference,
    retrieval_metrics,
    train_dml,
)

torch.set_num_threads(1)

COLOURS = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
ROWS = (9, 23)  # blob centre rows; classes differ vertically so horizontal flips keep labels


def _blobs(combos: list[tuple[int, int]], n: int, seed: int, first_label: int = 10):
    """One class per (colour, row) combo: a jittered Gaussian blob on strong pixel noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    xs, ys = [], []
    for label, (c, r) in enumerate(combos):
        cy = ROWS[r] + torch.randint(-2, 3, (n,), generator=g)
        cx = 16 + torch.randint(-6, 7, (n,), generator=g)
        d2 = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
        img = torch.exp(-d2 / 18)[:, None] * COLOURS[c][None, :, None, None] * 0.8
        img = img + 0.5 * torch.randn(n, 3, 32, 32, generator=g)
        xs.append(img.clamp(-1, 1))
        ys.append(torch.full((n,), first_label + label))
    return LabeledImages(torch.cat(xs), torch.cat(ys))


@pytest.fixture(scope="module")
def problem() -> tuple[LabeledImages, LabeledImages]:
    """4 training classes and 4 *different* validation classes (zero-shot), 40 images each."""
    train = _blobs([(0, 0), (1, 1), (2, 0), (3, 1)], 40, seed=0)
    val = _blobs([(0, 1), (1, 0), (2, 1), (3, 0)], 40, seed=1, first_label=100)
    return train, val


def _small_cfg(**kw) -> DMLConfig:
    base = dict(iterations=10, eval_every=5, batch_size=16, m_per_class=4)
    return DMLConfig(**{**base, **kw})


# ------------------------------------------------------------------------------ LabeledImages


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.zeros(4, 3, 8), torch.zeros(4, dtype=torch.long), "N, 3, H, W"),
        (torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), "N, 3, H, W"),
        (torch.zeros(4, 3, 8, 8), torch.zeros(5, dtype=torch.long), "4 images but 5 labels"),
        (torch.zeros(4, 3, 8, 8, dtype=torch.float64), torch.zeros(4, dtype=torch.long), "float32"),
        (torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.int32), "int64"),
        (torch.zeros(4, 3, 8, 8), torch.zeros(4, 1, dtype=torch.long), "1-d"),
        (torch.full((4, 3, 8, 8), math.nan), torch.zeros(4, dtype=torch.long), "NaN"),
        (torch.full((4, 3, 8, 8), 1.5), torch.zeros(4, dtype=torch.long), r"\[-1, 1\]"),
    ],
)
def test_labeled_images_rejects_bad_input(x, y, match) -> None:
    with pytest.raises(ValueError, match=match):
        LabeledImages(x, y)


def test_labeled_images_accepts_valid_input() -> None:
    d = LabeledImages(torch.zeros(2, 3, 4, 4), torch.tensor([7, -3]))
    assert len(d) == 2


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kw",
    [{"loss": "triplet"}, {"select_metric": "NMI"}, {"synthetic_fraction": 1.5}, {"iterations": 0}],
)
def test_config_rejects_bad_values(kw) -> None:
    with pytest.raises(ValueError):
        DMLConfig(**kw)


# ------------------------------------------------------------------------------------- model


def test_embedding_net_shape_norm_and_size() -> None:
    net = EmbeddingNet(64)
    assert sum(p.numel() for p in net.parameters()) == 249_440  # as documented
    out = net(torch.zeros(3, 3, 32, 32).uniform_(-1, 1))
    assert out.shape == (3, 64)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


# -------------------------------------------------------------------------------- evaluation


def _brute_force(emb: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Leave-one-out Recall@K and MAP@R by explicit loops over cosine similarities."""
    z = F.normalize(emb.double(), dim=1)
    sim = z @ z.T
    n = len(y)
    hits = {k: 0 for k in (1, 2, 4, 8)}
    ap_sum = 0.0
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -float(sim[i, j]))
        rel = [int(y[j] == y[i]) for j in others]
        for k in hits:
            hits[k] += int(any(rel[:k]))
        r = int((y == y[i]).sum()) - 1
        ap_sum += sum(sum(rel[: t + 1]) / (t + 1) for t in range(r) if rel[t]) / r
    out = {f"recall_at_{k}": hits[k] / n for k in hits}
    out["map_at_r"] = ap_sum / n
    return out


@pytest.mark.parametrize(
    "labels",
    [
        torch.randint(0, 5, (60,), generator=torch.Generator().manual_seed(0)),
        torch.arange(10).repeat_interleave(3),  # classes smaller than the 8 neighbours needed
    ],
    ids=["random-classes", "small-classes"],
)
def test_evaluate_matches_brute_force_leave_one_out(labels: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(len(labels), 3, 4, 4, generator=g) * 2 - 1
    y = labels * 1_000_003 - 7  # arbitrary, large, negative ids
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 6))
    model.train()
    got = evaluate(model, LabeledImages(x, y), batch_size=16)
    assert model.training  # mode restored
    with torch.no_grad():
        want = _brute_force(model.eval()(x), y)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert set(got) == {
        "recall_at_1",
        "recall_at_2",
        "recall_at_4",
        "recall_at_8",
        "map_at_r",
        "r_precision",
    }


def test_recall_is_monotone_in_k() -> None:
    g = torch.Generator().manual_seed(1)
    m = retrieval_metrics(
        torch.randn(200, 8, generator=g), torch.randint(0, 20, (200,), generator=g)
    )
    ks = [m[f"recall_at_{k}"] for k in (1, 2, 4, 8)]
    assert ks == sorted(ks)
    assert ks[0] < ks[-1]  # random embeddings: strictly better with more neighbours


def test_perfectly_separated_embedding_scores_one() -> None:
    g = torch.Generator().manual_seed(2)
    y = torch.arange(5).repeat_interleave(4)  # 5 classes of 4 (< 8 neighbours per class)
    emb = torch.eye(8)[y] + 0.01 * torch.randn(20, 8, generator=g)
    m = retrieval_metrics(emb, y)
    assert all(v == pytest.approx(1.0) for v in m.values()), m


# ---------------------------------------------------------------------------------- training


def test_training_improves_zero_shot_retrieval(problem) -> None:
    train, val = problem
    cfg = DMLConfig(iterations=60, eval_every=30, batch_size=32, m_per_class=8)
    before = evaluate(init_model(cfg), val)
    res = train_dml(train, val, cfg, progress=True)
    assert [h["iteration"] for h in res.history] == [30, 60]
    after = evaluate(res.load_model(), val)
    assert after == pytest.approx(res.best_val)  # the kept weights are the selected ones
    assert after["map_at_r"] > before["map_at_r"] + 0.2, (before, after)
    assert after["recall_at_1"] >= 0.9
    assert all(v.device.type == "cpu" for v in res.state_dict.values())


def test_multi_similarity_loss_trains(problem) -> None:
    train, val = problem
    cfg = _small_cfg(loss="multi_similarity", select_metric="precision_at_1", iterations=20)
    res = train_dml(train, val, cfg)
    assert len(res.history) == 4
    assert all(math.isfinite(h["loss"]) for h in res.history)
    best = max(res.history, key=lambda h: h["recall_at_1"])  # first maximum wins ties
    assert res.best_iteration == best["iteration"]


def test_same_seed_same_history_independent_of_global_rng(problem) -> None:
    train, val = problem
    cfg = _small_cfg(synthetic_fraction=0.5)
    torch.manual_seed(123)
    a = train_dml(train, val, cfg, synthetic=train)
    torch.manual_seed(999)
    b = train_dml(train, val, cfg, synthetic=train)
    c = train_dml(train, val, _small_cfg(synthetic_fraction=0.5, seed=1), synthetic=train)
    assert a.history == b.history
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.history != c.history


def _constant_pool(value: float, labels: torch.Tensor) -> LabeledImages:
    return LabeledImages(torch.full((len(labels), 3, 32, 32), value), labels)


def test_synthetic_share_of_each_batch(problem, monkeypatch) -> None:
    train, val = problem
    # Synthetic images are constant 0.5 (real ones are noisy), so they can be counted per batch;
    # the pool covers only 2 of the 4 real classes.
    syn = _constant_pool(0.5, torch.tensor([10, 12]).repeat_interleave(6))
    cfg = _small_cfg(iterations=6, batch_size=20, m_per_class=4, synthetic_fraction=0.4)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    step = dml._train_step

    def spy(model, loss_fn, miner, opt, x, y):
        batches.append((x.clone(), y.clone()))
        return step(model, loss_fn, miner, opt, x, y)

    monkeypatch.setattr(dml, "_train_step", spy)
    res = train_dml(train, val, cfg, synthetic=syn)
    assert len(batches) == 6
    for x, y in batches:
        assert x.shape[0] == 20
        is_syn = (x == 0.5).flatten(1).all(dim=1)
        assert int(is_syn.sum()) == 8  # round(20 * 0.4)
        assert set(y[is_syn].tolist()) == {0, 2}  # ids 10, 12 -> dense 0, 2; 4 each
        assert torch.bincount(y[is_syn]).tolist() == [4, 0, 4]
        assert len(set(y[~is_syn].tolist())) == 3  # 12 real = 3 classes x 4
    assert res.images_seen == {"real": 72, "synthetic": 48}

    real_only = train_dml(train, val, _small_cfg(iterations=6, batch_size=20))
    assert real_only.images_seen == {"real": 120, "synthetic": 0}


def test_synthetic_class_outside_real_classes_is_rejected(problem) -> None:
    train, val = problem
    syn = _constant_pool(0.0, torch.tensor([10, 99]))
    with pytest.raises(ValueError, match="absent from the real training set"):
        train_dml(train, val, _small_cfg(), synthetic=syn)


def test_class_pool_draws_balanced_batches() -> None:
    import numpy as np

    pool = dml._ClassPool(np.repeat(np.arange(6), [5, 5, 5, 5, 5, 2]))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), [5, 5, 5, 5, 5, 2])
    counts = np.bincount(labels[pool.draw(14, 4, rng)], minlength=6)
    assert sorted(counts.tolist()) == [0, 0, 2, 4, 4, 4]
    counts = np.bincount(labels[pool.draw(30, 4, rng)], minlength=6)  # more than 6 classes x 4
    assert counts.tolist() == [5] * 6


# --------------------------------------------------------------------------------------- stats


def test_paired_difference_by_hand() -> None:
    out = paired_difference([1, 2, 3, 4], [0, 0, 1, 1])  # d = 1, 2, 2, 3
    sd = math.sqrt(2 / 3)
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3} * sd / sqrt(4)
    assert out["n"] == 4 and out["df"] == 3
    assert out["mean"] == pytest.approx(2.0)
    assert out["sd"] == pytest.approx(sd)
    assert out["ci_low"] == pytest.approx(2.0 - half)
    assert out["ci_high"] == pytest.approx(2.0 + half)
    with pytest.raises(ValueError):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [0.0])
