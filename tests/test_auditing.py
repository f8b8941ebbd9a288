import dataclasses

import numpy as np
import pytest
from scipy.stats import binomtest

from mlsec_lessons import metrics
from mlsec_lessons.privacy_attacks import auditing as au


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (17, 1000), (500, 1000)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    want = binomtest(k, n).proportion_ci(0.95, method="exact")
    lo, hi = au.clopper_pearson(k, n, 0.05)
    assert float(lo) == pytest.approx(want.low, abs=1e-12) and float(hi) == pytest.approx(want.high, abs=1e-12)


def test_bound_from_counts_uses_the_far_ends_of_the_intervals():
    tp, fn, fp, tn = 90, 10, 5, 95
    lo, _ = au.clopper_pearson(tp, 100)
    _, hi = au.clopper_pearson(fp, 100)
    want = max(np.log(lo / hi), np.log((1 - hi) / (1 - lo)))
    assert au.epsilon_lower_bound(tp, fn, fp, tn) == pytest.approx(want)
    # without intervals the "bound" is larger, and a perfect run claims infinity
    assert au.epsilon_lower_bound(tp, fn, fp, tn, alpha=None) > want
    assert au.epsilon_lower_bound(50, 0, 0, 50, alpha=None) == np.inf
    assert np.isfinite(au.epsilon_lower_bound(50, 0, 0, 50))
    # more trials prove more
    assert au.epsilon_lower_bound(500, 0, 0, 500) > au.epsilon_lower_bound(50, 0, 0, 50)


def test_point_bound_is_at_least_the_advantage_bound_of_lesson_01():
    """Both DP inequalities together say at least as much as their sum, the advantage bound."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        tp, fp = rng.integers(1, 100, 2)
        delta = rng.choice([0.0, 0.01])
        mine = au.epsilon_lower_bound(int(tp), 100 - int(tp), int(fp), 100 - int(fp), delta=delta, alpha=None)
        lesson01 = metrics.epsilon_from_advantage(max(0.0, (tp - fp) / 100), delta)
        assert mine >= lesson01 - 1e-12


def _randomized_response(eps, n, rng):
    """The tight eps-DP mechanism: a member says 1 w.p. e^eps / (1 + e^eps), a non-member w.p. 1 / (1 + e^eps)."""
    member = rng.permutation(np.arange(n) < n // 2)
    p = np.where(member, np.exp(eps) / (1 + np.exp(eps)), 1 / (1 + np.exp(eps)))
    return member, (rng.random(n) < p).astype(float)


def test_audit_of_an_exact_eps_mechanism_is_valid_and_nearly_tight():
    rng = np.random.default_rng(0)
    bounds = [au.audit(*_randomized_response(1.0, 4000, rng), seed=i).epsilon_lower_bound for i in range(60)]
    assert np.mean(np.array(bounds) > 1.0) <= 0.05 + 0.05  # holds with 95% confidence (+ slack for 60 runs)
    assert np.median(bounds) > 0.7  # and randomized response is tight, so the audit comes close


def test_canary_audit_positive_for_a_plain_model_and_below_eps_for_a_dp_one():
    from sklearn.naive_bayes import GaussianNB

    from mlsec_lessons.privacy import dp_models

    d = dp_models.load_breast_cancer_public()
    x, y = d.x_train[:150], d.y_train[:150]
    canary = np.ones(x.shape[1])  # every measurement at its public maximum, labelled benign (1)
    plain = au.audit(*au.canary_trials(GaussianNB(), x, y, canary, 1, n_trials=400, seed=0))
    assert plain.epsilon_lower_bound > 2.5  # a plain model has no finite epsilon; the audit shows it
    eps = 1.0
    member, score = au.canary_trials(dp_models.make_model("gaussian_nb", eps, x.shape[1]), x, y, canary, 1,
                                     n_trials=300, seed=0)
    dp = au.audit(member, score)
    assert dp.epsilon_lower_bound <= eps


def test_threshold_is_chosen_on_other_trials_than_the_bound():
    rng = np.random.default_rng(3)
    member = rng.random(200) < 0.5
    score = rng.normal(size=200)  # no signal: an honest audit proves nothing
    assert au.audit(member, score).epsilon_lower_bound < 0.5
    r = au.audit(member, score)
    assert r.tp + r.fn + r.fp + r.tn == 100


def test_audit_result_is_frozen_and_shows_its_fields():
    rng = np.random.default_rng(5)
    member = np.arange(200) < 100
    r = au.audit(member, member + rng.normal(0, 0.3, 200))
    assert isinstance(r, au.AuditResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.epsilon_lower_bound = 10.0  # an audit's result is a record of what was proved, not a draft
    frame = r.to_frame()
    assert list(frame.columns) == ["epsilon_lower_bound", "threshold", "tp", "fn", "fp", "tn"]
    assert frame.shape == (1, 6) and frame.loc[0, "tp"] == r.tp
    assert frame.loc[0, "epsilon_lower_bound"] == pytest.approx(r.epsilon_lower_bound)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tp=-1, fn=1, fp=1, tn=1), "non-negative integers"),
    (dict(tp=0, fn=0, fp=1, tn=1), "at least one member trial"),
    (dict(tp=1, fn=1, fp=1, tn=1, delta=1.5), "delta"),
    (dict(tp=1, fn=1, fp=1, tn=1, alpha=0), "alpha"),
])
def test_bad_counts_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        au.epsilon_lower_bound(**kwargs)


def test_bad_trials_are_named():
    from sklearn.naive_bayes import GaussianNB

    with pytest.raises(ValueError, match="n_trials"):
        au.canary_trials(GaussianNB(), np.zeros((4, 2)), [0, 1, 0, 1], [0.0, 0.0], 1, n_trials=3)
    with pytest.raises(ValueError, match="x_canary"):
        au.canary_trials(GaussianNB(), np.zeros((4, 2)), [0, 1, 0, 1], [0.0], 1)
    with pytest.raises(ValueError, match="fit_fraction"):
        au.audit([1, 0, 1, 0], [1.0, 0.0, 1.0, 0.0], fit_fraction=1.0)


def test_ceiling_is_the_perfect_attacks_bound_and_grows_with_the_trials():
    ceilings = [au.epsilon_ceiling(n, n) for n in (10, 100, 1000, 10_000)]
    assert ceilings == sorted(ceilings) and np.isfinite(ceilings).all()
    assert au.epsilon_ceiling(100, 100) == pytest.approx(au.epsilon_lower_bound(100, 0, 0, 100))
    # no count of an imperfect attack on the same trials proves more
    rng = np.random.default_rng(4)
    for tp, fp in rng.integers(0, 101, (40, 2)):
        assert au.epsilon_lower_bound(int(tp), 100 - int(tp), int(fp), 100 - int(fp)) <= au.epsilon_ceiling(100, 100)


def test_dp_roc_cap_is_the_hypothesis_testing_region():
    fpr = np.geomspace(1e-5, 1, 50)
    np.testing.assert_allclose(au.dp_roc_cap(fpr, 0.0), fpr)              # eps = 0: only chance
    assert np.all(au.dp_roc_cap(fpr, np.inf) == 1)                         # no guarantee, no cap
    low = au.dp_roc_cap(1e-4, 2.0, 1e-5)
    assert low == pytest.approx(np.exp(2.0) * 1e-4 + 1e-5)                       # TPR <= e^eps FPR + delta
    assert au.dp_roc_cap(0.9, 2.0) == pytest.approx(1 - np.exp(-2.0) * 0.1)  # the swapped inequality
    assert np.all(np.diff(au.dp_roc_cap(fpr, 1.5, 1e-3)) >= 0)
    # randomized response is eps-DP and tight: its one ROC point lies on the cap
    eps = 1.3
    tpr_rr, fpr_rr = np.exp(eps) / (1 + np.exp(eps)), 1 / (1 + np.exp(eps))
    assert au.dp_roc_cap(fpr_rr, eps) == pytest.approx(tpr_rr)
    # the audit inverts it: a point on the cap proves (almost) its epsilon with raw rates
    n = 10**6
    assert au.epsilon_lower_bound(round(tpr_rr * n), round((1 - tpr_rr) * n), round(fpr_rr * n),
                                        round((1 - fpr_rr) * n), alpha=None) == pytest.approx(eps, abs=1e-4)
    for bad, match in [({"fpr": 1.5, "epsilon": 1.0}, "fpr must lie"), ({"fpr": 0.1, "epsilon": -1.0}, "epsilon"),
                       ({"fpr": 0.1, "epsilon": 1.0, "delta": 1.0}, "delta")]:
        with pytest.raises(ValueError, match=match):
            au.dp_roc_cap(**bad)
