"""PUClassifier: scikit-learn conventions, input errors, and that each method learns."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from sklearn.base import clone

from embedlab.errors import UserError
from embedlab.pu.classifier import PUClassifier, binary_metrics
from embedlab.pu.data import load_fashion_mnist, pu_split, read_idx


def _tabular(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    x = rng.normal(0, 1, (n, 6)) + 2.5 * y[:, None] * np.r_[1, 1, 0, 0, 0, 0]
    lab = np.zeros(n, dtype=int)
    lab[rng.choice(np.flatnonzero(y == 1), 60, replace=False)] = 1
    return x.astype(np.float32), y, lab


def test_package_exports_the_public_api():
    import embedlab.pu as pu

    assert pu.PUClassifier is PUClassifier
    missing = [name for name in pu.__all__ if not hasattr(pu, name)]
    assert not missing, missing


def test_sklearn_conventions():
    clf = PUClassifier(method="nnpu", prior=0.3, epochs=2)
    params = clf.get_params()
    assert params["method"] == "nnpu" and params["prior"] == 0.3
    c2 = clone(clf)
    assert c2.get_params() == params and not hasattr(c2, "encoder_")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 6), dtype=np.float32))


@pytest.mark.parametrize("method", ["pucl", "punce", "nnpu", "upu", "pn"])
def test_methods_learn_a_separable_tabular_problem(method):
    x, y, lab = _tabular()
    clf = PUClassifier(method=method, prior=0.35, epochs=15, batch_size=128, probe_epochs=50)
    clf.fit(x, y if method == "pn" else lab)
    m = binary_metrics(y, clf.decision_function(x))
    assert m["auc"] > 0.85, m
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 2) and np.allclose(proba.sum(1), 1)
    assert set(np.unique(clf.predict(x))) <= {0, 1}
    if method in ("pucl", "punce"):
        assert clf.pseudo_labels_.shape == (len(x),)


@pytest.mark.parametrize("method", ["punce", "nnpu"])
def test_random_state_makes_a_fit_repeatable(method):
    """Same data, parameters and seed (and thread count): the same model, bit for bit; another
    seed, another model."""
    x, _, lab = _tabular(300)
    params = dict(method=method, prior=0.35, epochs=2, batch_size=64, probe_epochs=5)
    if method == "punce":
        params["finetune_epochs"] = 1  # pretraining, puPL, probe and fine-tuning all seeded
    a, b, c = (PUClassifier(random_state=s, **params).fit(x, lab) for s in (3, 3, 4))
    assert np.array_equal(a.decision_function(x), b.decision_function(x))
    assert not np.allclose(a.decision_function(x), c.decision_function(x))


@pytest.mark.parametrize("space", ["projection", "backbone"])
def test_cluster_spaces(space):
    x, y, lab = _tabular()
    clf = PUClassifier(
        method="pucl", epochs=10, batch_size=128, probe_epochs=30, cluster_space=space
    ).fit(x, lab)
    assert binary_metrics(y, clf.decision_function(x))["auc"] > 0.8
    with pytest.raises(ValueError, match="cluster_space"):
        PUClassifier(cluster_space="head").fit(x, lab)


def test_nnpu_probe_on_contrastive_features():
    x, y, lab = _tabular()
    clf = PUClassifier(
        method="pucl", probe="nnpu", prior=0.35, epochs=10, batch_size=128, probe_epochs=50
    ).fit(x, lab)
    assert binary_metrics(y, clf.decision_function(x))["auc"] > 0.85
    with pytest.raises(ValueError, match="probe 'nnpu' needs prior"):
        PUClassifier(method="pucl", probe="nnpu").fit(x, lab)


@pytest.mark.parametrize("probe", ["pupl", "nnpu"])
def test_finetuning_and_overclustering(probe):
    x, y, lab = _tabular()
    clf = PUClassifier(method="pucl", probe=probe, prior=0.35, epochs=8, batch_size=128, cluster_k=6,
                       finetune_epochs=8).fit(x, lab)  # fmt: skip
    assert clf.finetuned_ and clf.pseudo_labels_.shape == (len(x),)
    assert binary_metrics(y, clf.decision_function(x))["auc"] > 0.85
    # the fine-tuned encoder is what predicts: changing it changes the scores
    before = clf.decision_function(x[:20])
    for p in clf.encoder_.parameters():
        p.data.add_(0.5)
    assert not np.allclose(before, clf.decision_function(x[:20]))
    with pytest.raises(ValueError, match="cluster_k"):
        PUClassifier(cluster_k=1).fit(x, lab)
    with pytest.raises(ValueError, match="finetune_epochs"):
        PUClassifier(finetune_epochs=-1).fit(x, lab)


def test_refit_equals_a_fresh_fit_with_the_new_parameters():
    x, y, lab = _tabular(300)
    kw = dict(method="pucl", prior=0.35, epochs=3, batch_size=64, probe_epochs=5)
    fresh = PUClassifier(**kw, cluster_k=4, finetune_epochs=2).fit(x, lab)
    reused = PUClassifier(**kw).fit(x, lab)
    first = reused.decision_function(x)
    reused.set_params(cluster_k=4, finetune_epochs=2).refit(x, lab)
    assert np.allclose(fresh.decision_function(x), reused.decision_function(x), atol=1e-5)
    assert not np.allclose(first, reused.decision_function(x))
    # back to the frozen probe: the encoder is the pretrained one again, not the fine-tuned one
    reused.set_params(cluster_k=2, finetune_epochs=0).refit(x, lab)
    assert np.allclose(first, reused.decision_function(x), atol=1e-5)
    with pytest.raises(ValueError, match="contrastive"):
        PUClassifier(method="nnpu", prior=0.35, epochs=1).fit(x, lab).refit(x, lab)


def test_simclr_refit_with_new_labels_equals_a_fresh_fit_and_label_reading_pretraining_refuses():
    x, y, lab = _tabular(300)
    lab2 = np.zeros_like(lab)
    lab2[np.flatnonzero(y == 1)[:20]] = 1  # another labeled set
    kw = dict(prior=0.35, epochs=2, batch_size=64, probe_epochs=5)
    fresh = PUClassifier(method="simclr", **kw).fit(x, lab2)
    reused = PUClassifier(method="simclr", **kw).fit(x, lab)
    first = reused.decision_function(x)
    reused.set_params(prior=0.4).refit(x, lab2)
    assert np.allclose(fresh.decision_function(x), reused.decision_function(x), atol=1e-5)
    assert not np.allclose(first, reused.decision_function(x))
    with pytest.raises(ValueError, match="pretrained on"):
        reused.refit(x + 1.0, lab2)  # other X
    pucl = PUClassifier(method="pucl", **kw).fit(x, lab)
    with pytest.raises(ValueError, match="X and y that 'pucl'"):
        pucl.refit(x, lab2)
    pucl.refit(x, lab)  # the same data is fine
    punce = PUClassifier(method="punce", **kw).fit(x, lab)
    with pytest.raises(ValueError, match="and prior"):
        punce.set_params(prior=0.3).refit(x, lab)


@pytest.mark.parametrize("kw", [dict(method="nnpu"), dict(method="pucl")])
def test_selftraining_labels_the_confident_unlabeled_and_continues_training(kw):
    x, y, lab = _tabular()
    common = dict(prior=0.35, epochs=8, batch_size=128, probe_epochs=30, **kw)
    teacher = PUClassifier(**common).fit(x, lab)
    student = PUClassifier(**common, selftrain_epochs=4, selftrain_keep=0.7).fit(x, lab)
    t = student.selftrain_labels_
    u = lab == 0
    assert (t[lab == 1] == 1).all()
    assert abs((t[u] < 0).mean() - 0.3) < 0.01  # the least confident 30% of each predicted class
    # the kept labels are the teacher's own predictions
    pred = (teacher.decision_function(x) > 0).astype(int)
    kept = u & (t >= 0)
    assert (t[kept] == pred[kept]).all()
    assert student.finetuned_  # a probe teacher gets a student head on the encoder
    assert binary_metrics(y, student.decision_function(x))["auc"] > 0.85
    assert not np.allclose(teacher.decision_function(x), student.decision_function(x))
    with pytest.raises(ValueError, match="selftrain_keep"):
        PUClassifier(**common, selftrain_epochs=1, selftrain_keep=0).fit(x, lab)
    with pytest.raises(ValueError, match="selftrain_epochs"):
        PUClassifier(**common, selftrain_epochs=-1).fit(x, lab)


@pytest.mark.parametrize(
    "kw", [dict(method="nnpu"), dict(method="pucl", probe="nnpu", finetune_epochs=2)]
)
def test_an_ensemble_averages_its_members_and_member_zero_is_the_single_fit(kw):
    x, y, lab = _tabular(300)
    common = dict(prior=0.35, epochs=3, batch_size=64, probe_epochs=5, **kw)
    single = PUClassifier(**common).fit(x, lab)
    ens = PUClassifier(**common, ensemble=3).fit(x, lab)
    xt = ens._check_x(x, fitting=False)
    members = []
    for enc, head in zip(ens.encoder_.members, ens.head_.heads):
        enc.eval()
        with torch.no_grad():
            members.append(head(enc(xt)).squeeze(1).double().numpy())
    assert np.allclose(members[0], single.decision_function(x), atol=1e-5)
    assert np.allclose(np.mean(members, 0), ens.decision_function(x), atol=1e-5)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # members differ
    assert len(ens.history_) == len(single.history_) + 2 * (common.get("finetune_epochs") or 3)
    if kw["method"] == "pucl":  # refit goes back to one pretrained encoder
        ens.set_params(ensemble=1).refit(x, lab)
        assert np.allclose(ens.decision_function(x), single.decision_function(x), atol=1e-5)
    with pytest.raises(ValueError, match="ensemble must be"):
        PUClassifier(**common, ensemble=0).fit(x, lab)


def test_ensemble_errors():
    x, y, lab = _tabular(200)
    with pytest.raises(ValueError, match="finetune_epochs > 0"):
        PUClassifier(method="pucl", epochs=1, ensemble=2).fit(x, lab)
    with pytest.raises(ValueError, match="cannot be combined"):
        PUClassifier(method="nnpu", prior=0.35, epochs=1, ensemble=2, selftrain_epochs=1).fit(
            x, lab
        )


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("kw", "crash_at"),
    [
        (dict(method="pucl", probe="nnpu", cluster_k=3, finetune_epochs=2), ("pretrain", 2)),
        (dict(method="pucl", probe="nnpu", cluster_k=3, finetune_epochs=2), ("finetune", 1)),
        (dict(method="nnpu"), ("end_to_end", 1)),
        (
            dict(method="pucl", probe="nnpu", finetune_epochs=2, selftrain_epochs=2),
            ("selftrain", 1),
        ),
        (dict(method="nnpu", selftrain_epochs=2), ("selftrain", 1)),
        (dict(method="pucl", probe="nnpu", finetune_epochs=2, ensemble=3), ("finetune#1", 1)),
        (dict(method="pucl", probe="nnpu", finetune_epochs=2, ensemble=2), ("finetune", 2)),
        (dict(method="nnpu", ensemble=2), ("end_to_end#1", 2)),
    ],
)
def test_a_crashed_fit_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, kw, crash_at):
    x, y, lab = _tabular(300)
    common = dict(prior=0.35, epochs=3, batch_size=64, probe_epochs=5, **kw)
    whole = PUClassifier(**common, checkpoint=str(tmp_path / "a.pt")).fit(x, lab)
    save = PUClassifier._save_stage

    def crashing(self, stage, epoch, *a):
        save(self, stage, epoch, *a)
        if (stage, epoch) == crash_at:
            raise _Crash

    monkeypatch.setattr(PUClassifier, "_save_stage", crashing)
    with pytest.raises(_Crash):
        PUClassifier(**common, checkpoint=str(tmp_path / "b.pt")).fit(x, lab)
    monkeypatch.setattr(PUClassifier, "_save_stage", save)
    resumed = PUClassifier(**common, checkpoint=str(tmp_path / "b.pt"), verbose=True).fit(x, lab)
    assert resumed.history_ == pytest.approx(whole.history_, abs=1e-6)
    assert np.allclose(resumed.decision_function(x), whole.decision_function(x), atol=1e-5)
    # another fit must not pick up this checkpoint
    with pytest.raises(ValueError, match="another fit"):
        PUClassifier(**{**common, "epochs": 4}, checkpoint=str(tmp_path / "b.pt")).fit(x, lab)
    with pytest.raises(ValueError, match="another fit"):
        PUClassifier(**common, checkpoint=str(tmp_path / "b.pt")).fit(x, 1 - lab)


def test_pu_batches_hold_labeled_positives_and_cover_the_unlabeled_once():
    clf = PUClassifier(batch_size=64, positives_per_batch=16)
    clf._gen = __import__("torch").Generator().manual_seed(0)
    labeled = np.zeros(1000, dtype=bool)
    labeled[:5] = True
    batches = [b.numpy() for b in clf._pu_batches(labeled)]
    assert all(len(b) == 64 and labeled[b].sum() == 5 for b in batches)  # capped at the 5 there are
    u = np.concatenate([b[~labeled[b]] for b in batches])
    assert len(u) == len(set(u.tolist())) > 995 - 59  # each unlabeled sample at most once
    labeled[:200] = True
    batches = [b.numpy() for b in clf._pu_batches(labeled)]
    assert all(labeled[b].sum() == 16 for b in batches)
    clf.set_params(positives_per_batch=0)
    assert sum(len(b) for b in clf._pu_batches(labeled)) == 960  # plain shuffled batches


def test_nnpu_learns_with_very_few_labeled_positives():
    x, y, _ = _tabular(1200)
    lab = np.zeros(len(y), dtype=int)
    lab[np.flatnonzero(y == 1)[:6]] = 1
    clf = PUClassifier(
        method="nnpu", prior=0.4, epochs=10, batch_size=256, positives_per_batch=6
    ).fit(x, lab)
    assert binary_metrics(y, clf.decision_function(x))["auc"] > 0.85
    with pytest.raises(ValueError, match="positives_per_batch"):
        PUClassifier(method="nnpu", prior=0.4, positives_per_batch=-1).fit(x, lab)
    # a small batch caps the positives at half of it
    clf = PUClassifier(batch_size=16, positives_per_batch=32)
    clf._gen = __import__("torch").Generator().manual_seed(0)
    lab = np.zeros(200, dtype=bool)
    lab[:50] = True
    assert {int(lab[b].sum()) for b in clf._pu_batches(lab)} == {8}


def test_input_errors():
    x, y, lab = _tabular(300)
    with pytest.raises(ValueError, match="no labeled positive"):
        PUClassifier(epochs=1).fit(x, np.zeros(300))
    with pytest.raises(ValueError, match="one label per sample"):
        PUClassifier(epochs=1).fit(x, lab[:50])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PUClassifier(epochs=1).fit(bad, lab)
    with pytest.raises(ValueError, match="needs prior"):
        PUClassifier(method="nnpu").fit(x, lab)
    with pytest.raises(ValueError, match="unknown method"):
        PUClassifier(method="vpu").fit(x, lab)
    with pytest.raises(ValueError, match="1 \\(labeled positive\\) or 0"):
        PUClassifier(epochs=1).fit(x, np.full(300, 2))
    clf = PUClassifier(method="nnpu", prior=0.3, epochs=1).fit(x, lab)
    with pytest.raises(ValueError, match="X has 5 features, but PUClassifier is expecting 6"):
        clf.predict(np.zeros((3, 5), dtype=np.float32))  # scikit-learn's message for rows


def test_images_run_through_lenet():
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28)).astype(np.float32)
    lab = np.zeros(64, dtype=int)
    lab[:8] = 1
    clf = PUClassifier(method="pucl", epochs=1, batch_size=32, probe_epochs=2).fit(x, lab)
    assert clf.decision_function(x).shape == (64,)
    with pytest.raises(
        ValueError,
        match=r"sample shape \(32, 32\), the model was fitted on images of shape \(1, 28, 28\)",
    ):
        clf.predict(np.zeros((2, 32, 32), dtype=np.float32))


def test_pu_split_is_balanced_over_positive_classes():
    y = np.repeat(np.arange(10), 100)
    s = pu_split(y, (1, 4, 7), 31, seed=0)
    assert s.labeled.sum() == 31
    assert sorted(np.bincount(y[s.labeled], minlength=10)[[1, 4, 7]].tolist()) == [10, 10, 11]
    assert s.prior == pytest.approx((300 - 31) / (1000 - 31))
    with pytest.raises(UserError, match="--labeled"):
        pu_split(y, (1,), 101)


def test_idx_reader_and_missing_fashion_mnist(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in imgs.shape)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + imgs.tobytes())
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), imgs)
    with pytest.raises(UserError, match=f"looked in: {tmp_path}"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("method", ["nnpu", "pucl"])
def test_prior_threshold_calls_the_prior_share_of_the_unlabeled_positive(method):
    x, y, lab = _tabular(800, seed=3)
    u = lab == 0
    prior = float(y[u].mean())
    kw = dict(prior=prior, epochs=4, batch_size=128, probe_epochs=20, random_state=1)
    if method == "pucl":
        kw["probe"] = "nnpu"
    plain = PUClassifier(method=method, **kw).fit(x, lab)
    shifted = PUClassifier(method=method, threshold="prior", **kw).fit(x, lab)
    assert plain.threshold_ == 0.0 and shifted.threshold_ != 0.0
    # the same model (same seed), only the decision threshold moves
    np.testing.assert_allclose(
        shifted.decision_function(x),
        plain.decision_function(x) - shifted.threshold_,
        rtol=1e-6,
        atol=1e-6,
    )
    share = float(shifted.predict(x[u]).mean())
    assert abs(share - prior) <= 1.0 / u.sum() + 1e-9
    # refit keeps the rule
    if method == "pucl":
        shifted.set_params(probe_epochs=10).refit(x, lab)
        assert abs(float(shifted.predict(x[u]).mean()) - prior) <= 1.0 / u.sum() + 1e-9


def test_prior_threshold_errors():
    x, y, lab = _tabular(200)
    with pytest.raises(ValueError, match="'zero' or 'prior'"):
        PUClassifier(method="nnpu", prior=0.3, threshold="best").fit(x, lab)
    with pytest.raises(ValueError, match="needs prior"):
        PUClassifier(method="pucl", threshold="prior").fit(x, lab)
    with pytest.raises(ValueError, match="method 'pn'"):
        PUClassifier(method="pn", prior=0.3, threshold="prior").fit(x, y)
