"""PUClassifier keeps scikit-learn's estimator contract: ``check_estimator``, randomness, score,
fitted state, and a model file that predicts as the fitted model does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from embedlab.errors import UserError
from embedlab.pu.classifier import PUClassifier
from embedlab.pu.metrics import lee_liu_score
from embedlab.pu.model_file import load_model, save_model
from embedlab.pu.validation import PUInputError

#: Checks of scikit-learn 1.9's ``check_estimator`` this estimator is expected to fail, and why.
#: Every other check of the suite runs and passes (about 56 per configuration, a few seconds),
#: except check_array_api_input, which scikit-learn itself skips unless SCIPY_ARRAY_API is set
#: (the estimator computes in torch on NumPy input; it does not take array-API arrays).
EXPECTED_FAILED = {
    "check_classifiers_classes": "PU labels must be numbers (1 labeled positive, 0 unlabeled; any "
    "two numbers, the larger labeled): with string labels the order says nothing about which "
    "class is the labeled one, so strings are refused with a ValueError",
}

#: Run at another tolerance (``test_sklearn_check_estimator``): a float32 network sends a batch
#: and a single row through different matrix kernels, so their logits can differ in the last
#: bit (2.4e-7 seen, above the check's 1e-7); whether it shows depends on the weights drawn.
#: Checked here at float32 precision instead.
FLOAT32_TOLERANCE = ("check_methods_subset_invariance",)

#: The smallest fits that still learn the checks' blobs (check_classifiers_train asks 0.83
#: accuracy): the contrastive chain (puCL, puPL, probe) and a PU risk trained end to end.
FAST = [
    PUClassifier(method="pucl", epochs=1, batch_size=64, probe_epochs=20),
    PUClassifier(method="nnpu", prior=0.5, epochs=1, batch_size=64),
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit repeatable fits
    yield
    torch.set_num_threads(threads)


@parametrize_with_checks(FAST, expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_check_estimator(estimator, check):
    if check.func.__name__ in FLOAT32_TOLERANCE:
        _subset_invariance_at_float32(estimator)
    else:
        check(estimator)


def _subset_invariance_at_float32(estimator):
    """scikit-learn's check_methods_subset_invariance with rtol 1e-5 instead of 1e-7."""
    from sklearn.base import clone

    rng = np.random.RandomState(0)
    x = (3 * rng.uniform(size=(20, 3))).astype(np.float32)
    y = (x[:, 0] > 1.5).astype(int)
    clf = clone(estimator).fit(x, y)
    for method in ("predict", "predict_proba", "decision_function"):
        whole = getattr(clf, method)(x)
        rows = np.concatenate([getattr(clf, method)(x[i : i + 1]) for i in range(len(x))])
        np.testing.assert_allclose(rows, whole, rtol=1e-5, atol=1e-6, err_msg=method)


def _tabular(n=600, seed=0, n_labeled=60):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    x = rng.normal(0, 1, (n, 6)) + 2.5 * y[:, None] * np.r_[1, 1, 0, 0, 0, 0]
    lab = np.zeros(n, dtype=int)
    lab[rng.choice(np.flatnonzero(y == 1), n_labeled, replace=False)] = 1
    return x.astype(np.float32), y, lab


def test_user_mistakes_are_user_errors_and_value_errors():
    x, _, lab = _tabular(200)
    with pytest.raises(PUInputError, match="unknown method") as e:
        PUClassifier(method="vpu").fit(x, lab)
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)
    with pytest.raises(PUInputError, match="unknown encoder"):
        PUClassifier(encoder="vit").fit(x, lab)
    with pytest.raises(PUInputError, match="Only binary"):
        PUClassifier().fit(x, np.arange(200) % 3)


def test_two_numeric_labels_larger_is_labeled_and_predict_returns_them():
    x, _, lab = _tabular(300)
    kw = dict(method="nnpu", prior=0.35, epochs=2, batch_size=64)
    a = PUClassifier(**kw).fit(x, lab)
    b = PUClassifier(**kw).fit(x, np.where(lab == 1, 1, -1))  # nnPU's convention
    assert np.array_equal(a.decision_function(x), b.decision_function(x))
    assert b.classes_.tolist() == [-1, 1] and set(b.predict(x).tolist()) == {-1, 1}
    assert np.array_equal(b.predict(x) == 1, a.predict(x) == 1)


# --- randomness -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pucl", "nnpu"])
def test_fit_leaves_torch_global_rng_alone(method):
    x, _, lab = _tabular(200)
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    clf = PUClassifier(method=method, prior=0.35, epochs=1, batch_size=64, probe_epochs=2)
    clf.fit(x, lab)
    assert torch.equal(torch.random.get_rng_state(), before)
    if method == "pucl":
        clf.set_params(finetune_epochs=1).refit(x, lab)
        assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("method", ["pucl", "nnpu"])
def test_random_state_none_is_fresh_randomness_and_an_int_repeats(method):
    x, _, lab = _tabular(200)
    kw = dict(method=method, prior=0.35, epochs=1, batch_size=64, probe_epochs=2)
    n1, n2 = (PUClassifier(random_state=None, **kw).fit(x, lab) for _ in range(2))
    assert n1.seed_ != n2.seed_
    assert not np.allclose(n1.decision_function(x), n2.decision_function(x))
    a, b = (PUClassifier(random_state=5, **kw).fit(x, lab) for _ in range(2))
    assert a.seed_ == b.seed_ == 5
    assert np.array_equal(a.decision_function(x), b.decision_function(x))
    # a None fit is reproduced by its recorded seed
    again = PUClassifier(random_state=n1.seed_, **kw).fit(x, lab)
    assert np.array_equal(again.decision_function(x), n1.decision_function(x))
    # a RandomState instance draws the seed from it
    r1 = PUClassifier(random_state=np.random.RandomState(7), **kw).fit(x, lab)
    r2 = PUClassifier(random_state=np.random.RandomState(7), **kw).fit(x, lab)
    assert r1.seed_ == r2.seed_ and np.array_equal(r1.decision_function(x), r2.decision_function(x))


def test_a_crashed_fit_with_random_state_none_resumes_with_its_own_seed(tmp_path, monkeypatch):
    x, _, lab = _tabular(200)
    kw = dict(method="pucl", probe="nnpu", prior=0.35, epochs=2, finetune_epochs=1, batch_size=64,
              random_state=None, checkpoint=str(tmp_path / "ck.pt"))  # fmt: skip
    save = PUClassifier._save_stage

    def crashing(self, stage, epoch, *a):
        save(self, stage, epoch, *a)
        if (stage, epoch) == ("pretrain", 1):
            raise KeyboardInterrupt

    monkeypatch.setattr(PUClassifier, "_save_stage", crashing)
    with pytest.raises(KeyboardInterrupt):
        PUClassifier(**kw).fit(x, lab)
    monkeypatch.setattr(PUClassifier, "_save_stage", save)
    resumed = PUClassifier(**kw).fit(x, lab)
    whole = PUClassifier(**{**kw, "random_state": resumed.seed_, "checkpoint": None}).fit(x, lab)
    assert resumed.history_ == pytest.approx(whole.history_, abs=1e-6)
    assert np.allclose(resumed.decision_function(x), whole.decision_function(x), atol=1e-5)


# --- score --------------------------------------------------------------------------


def test_lee_liu_score_values():
    y_pu = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    # recall on the labeled 3/4, predicted positive 5/10: (3/4)^2 / (1/2)
    assert lee_liu_score(y_pu, pred) == pytest.approx(1.125)
    assert lee_liu_score(y_pu, np.zeros(10, dtype=int)) == 0.0
    w = np.array([2, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # weights: recall 4/5, positive rate 6/11
    assert lee_liu_score(y_pu, pred, w) == pytest.approx((4 / 5) ** 2 / (6 / 11))
    with pytest.raises(PUInputError, match="labeled positives"):
        lee_liu_score(np.zeros(10), pred)


def test_score_is_the_pu_criterion_on_the_predictions():
    x, _, lab = _tabular(300)
    clf = PUClassifier(method="nnpu", prior=0.35, epochs=2, batch_size=64).fit(x, lab)
    assert clf.score(x, lab) == pytest.approx(lee_liu_score(lab, clf.predict(x)))


def test_grid_search_prefers_the_model_that_finds_hidden_positives():
    """nnPU with the true prior (0.35 of the unlabeled set is positive) against a prior of 0.02,
    which calls nearly every unlabeled sample negative. Accuracy against PU labels picks 0.02;
    the default score must pick 0.35."""
    x, y, lab = _tabular(600)
    grid = {"prior": [0.02, 0.35]}
    est = PUClassifier(method="nnpu", epochs=5, batch_size=128)
    by_acc = GridSearchCV(est, grid, cv=3, scoring="accuracy").fit(x, lab)
    assert by_acc.best_params_["prior"] == 0.02  # the failure the default score must avoid
    gs = GridSearchCV(est, grid, cv=3).fit(x, lab)
    assert gs.best_params_["prior"] == 0.35
    # and 0.35 does find the hidden positives: recall on them
    hidden = (y == 1) & (lab == 0)
    assert gs.best_estimator_.predict(x[hidden]).mean() > 0.8
    assert by_acc.best_estimator_.predict(x[hidden]).mean() < 0.5


# --- fitted state -----------------------------------------------------------------


def test_set_params_without_refit_does_not_change_predictions():
    x, _, lab = _tabular(300)
    clf = PUClassifier(
        method="pucl", epochs=2, batch_size=64, probe_epochs=5, cluster_space="projection"
    )
    clf.fit(x, lab)
    before = clf.decision_function(x)
    assert clf.cluster_space_ == "projection"
    clf.set_params(cluster_space="backbone", threshold="prior", prior=0.3)
    assert np.array_equal(clf.decision_function(x), before)
    clf.refit(x, lab)  # now the new parameters apply
    assert clf.cluster_space_ == "backbone"
    assert not np.allclose(clf.decision_function(x), before)


def test_refit_notices_a_change_in_any_row():
    x, _, lab = _tabular(300)
    clf = PUClassifier(method="pucl", epochs=1, batch_size=64, probe_epochs=2).fit(x, lab)
    x2 = x.copy()
    x2[1, 3] += 0.5  # row 1: the old check hashed rows 0, 97, 194, ... only
    with pytest.raises(PUInputError, match="pretrained on"):
        clf.refit(x2, lab)
    clf.refit(x.copy(), lab)  # equal data is accepted


# --- model file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(method="pucl", cluster_space="backbone", threshold="prior", prior=0.35),
        dict(method="pucl", probe="nnpu", prior=0.35, finetune_epochs=1, ensemble=2),
        dict(method="nnpu", prior=0.35),
    ],
)
def test_a_saved_model_predicts_as_the_fitted_one(tmp_path, kw):
    x, _, lab = _tabular(300)
    clf = PUClassifier(epochs=1, batch_size=64, probe_epochs=3, **kw).fit(x, lab)
    save_model(clf, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert np.array_equal(back.decision_function(x), clf.decision_function(x))
    assert np.array_equal(back.predict(x), clf.predict(x))
    assert back.get_params() == clf.get_params() and back.threshold_ == clf.threshold_
    if kw["method"] == "pucl" and "ensemble" not in kw:  # the pretrained encoder travels too
        clf.set_params(cluster_k=3).refit(x, lab)
        back.set_params(cluster_k=3).refit(x, lab)
        assert np.allclose(back.decision_function(x), clf.decision_function(x), atol=1e-6)


def test_model_file_errors(tmp_path):
    with pytest.raises(PUInputError, match="not found"):
        load_model(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(PUInputError, match="not a PU model file"):
        load_model(tmp_path / "bad.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(PUInputError, match="not a PU model file"):
        load_model(tmp_path / "other.pt")
    torch.save({"format": "embedlab-pu-model", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(PUInputError, match="version 99 is not supported"):
        load_model(tmp_path / "future.pt")
