import numpy as np
import pytest
from scipy.stats import norm

from mlsec_lessons.privacy_attacks import lira
from mlsec_lessons.privacy_attacks.membership import attack_report
from mlsec_lessons.privacy_attacks.shadows import ShadowSet, train_shadow_models


def _synthetic(n_models=17, n=3000, gap=1.0, seed=0):
    """Records with very different typical scores (easy and hard ones); training adds ``gap``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 4, n)  # per-record difficulty: a global threshold mostly sees this
    inside = rng.random((n_models, n)) < 0.5
    scores = base + gap * inside + rng.normal(0, 0.5, (n_models, n))
    return scores, inside


def _loop_online(target, shadow, inside):
    """The same statistic, one record at a time, straight from the definition (global variance)."""
    resid_in = np.concatenate([shadow[inside[:, i], i] - shadow[inside[:, i], i].mean() for i in range(len(target))])
    resid_out = np.concatenate([shadow[~inside[:, i], i] - shadow[~inside[:, i], i].mean() for i in range(len(target))])
    out = []
    for i, s in enumerate(target):
        mu_in, mu_out = shadow[inside[:, i], i].mean(), shadow[~inside[:, i], i].mean()
        out.append(norm.logpdf(s, mu_in, resid_in.std()) - norm.logpdf(s, mu_out, resid_out.std()))
    return np.array(out)


def test_online_matches_a_per_record_loop():
    scores, inside = _synthetic(n=200)
    got = lira.lira_online(scores[0], scores[1:], inside[1:])
    np.testing.assert_allclose(got, _loop_online(scores[0], scores[1:], inside[1:]), rtol=1e-9, atol=1e-9)


def test_offline_is_a_one_sided_test_against_the_out_gaussian():
    scores, inside = _synthetic(n=200)
    got = lira.lira_offline(scores[0], scores[1:], inside[1:], fix_variance=False)
    i = 7
    out = scores[1:][~inside[1:, i], i]
    assert got[i] == pytest.approx(-norm.logsf(scores[0, i], out.mean(), out.std()))


def test_per_record_calibration_beats_a_global_threshold_at_low_fpr():
    scores, inside = _synthetic()
    loss = attack_report(inside[0], scores[0])
    online = attack_report(inside[0], lira.lira_online(scores[0], scores[1:], inside[1:]))
    offline = attack_report(inside[0], lira.lira_offline(scores[0], scores[1:], inside[1:]))
    assert online["tpr@1%"] > 5 * max(loss["tpr@1%"], 0.01)
    assert offline["tpr@1%"] > 3 * max(loss["tpr@1%"], 0.01)
    assert online["auc"] > loss["auc"] + 0.1


def test_no_signal_means_chance():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1, (17, 4000))
    inside = rng.random((17, 4000)) < 0.5
    r = attack_report(inside[0], lira.lira_online(scores[0], scores[1:], inside[1:]))
    assert abs(r["auc"] - 0.5) < 0.03


def test_records_without_out_shadows_are_refused():
    scores = np.zeros((3, 2))
    inside = np.array([[True, False], [True, True], [True, False]])
    with pytest.raises(ValueError, match="no shadow model trained without them"):
        lira.lira_offline(scores[0], scores[1:], inside[1:])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="shadow_scores must have shape"):
        lira.lira_online([0.0, 1.0], [[0.0]], [[True]])
    with pytest.raises(ValueError, match="attack must be"):
        lira.leave_one_out(ShadowSet(np.zeros((2, 2, 2)), np.eye(2, dtype=bool), np.zeros(2, int)), "bogus")


def test_lira_on_real_shadow_models_finds_members_a_global_threshold_misses():
    """17 small MLPs on digits (one target, 16 shadows, in turn): LiRA's TPR at 1% FPR beats the loss attack."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    shadows = train_shadow_models(MLPClassifier((32,), alpha=0.0, learning_rate_init=0.01, max_iter=200),
                                  x[:800] / 16, y[:800], n_models=17, seed=0, cache=False)
    assert shadows.accuracy_by_membership()["members"] > shadows.accuracy_by_membership()["non-members"]
    reports = {a: attack_report(*lira.leave_one_out(shadows, a)) for a in ("loss", "offline", "online")}
    assert reports["online"]["tpr@1%"] > 2 * reports["loss"]["tpr@1%"]
    assert reports["offline"]["tpr@1%"] > reports["loss"]["tpr@1%"]
    assert reports["online"]["auc"] > 0.55
    # the same scores judged against a random membership labelling: chance
    member, score = lira.leave_one_out(shadows, "online")
    shuffled = np.random.default_rng(0).permutation(member)
    assert abs(attack_report(shuffled, score)["auc"] - 0.5) < 0.03


def test_dp_sgd_front_trains_with_lesson_04s_trainer_and_accountant():
    from sklearn.base import clone

    from mlsec_lessons.privacy import accounting
    from mlsec_lessons.privacy_attacks.shadows import DPSGDClassifier, model_logits

    rng = np.random.default_rng(0)
    x, y = rng.random((128, 6)).astype(np.float32), np.arange(128) % 3
    clf = clone(DPSGDClassifier(hidden=(8,), noise_multiplier=1.0, batch_size=32, epochs=2)).fit(x, y)
    assert model_logits(clf, x).shape == (128, 3)
    assert clf.epsilon_ == pytest.approx(accounting.epsilon(1.0, 32 / 128, 2 * 4, 1e-5))
    assert np.isinf(DPSGDClassifier(hidden=(8,), noise_multiplier=0.0, batch_size=32, epochs=1).fit(x, y).epsilon_)
    with pytest.raises(ValueError, match="labels 0..n_classes-1"):
        DPSGDClassifier(epochs=1).fit(x, y + 1)


def test_in_out_gaussians_are_each_records_in_and_out_samples():
    scores, inside = _synthetic(n=50)
    own = lira.in_out_gaussians(scores, inside, fix_variance=False)
    for i in (0, 17, 49):
        a, b = scores[inside[:, i], i], scores[~inside[:, i], i]
        assert (own["n_in"][i], own["n_out"][i]) == (len(a), len(b))
        assert own["mu_in"][i] == pytest.approx(a.mean()) and own["sd_in"][i] == pytest.approx(a.std())
        assert own["mu_out"][i] == pytest.approx(b.mean()) and own["sd_out"][i] == pytest.approx(b.std())
    # shared variance: one sd per side, and exactly the Gaussians lira_online scores with
    shared = lira.in_out_gaussians(scores[1:], inside[1:])
    assert np.ptp(shared["sd_in"]) == 0 and np.ptp(shared["sd_out"]) == 0
    ratio = (norm.logpdf(scores[0], shared["mu_in"], shared["sd_in"])
             - norm.logpdf(scores[0], shared["mu_out"], shared["sd_out"]))
    np.testing.assert_allclose(ratio, lira.lira_online(scores[0], scores[1:], inside[1:]), rtol=1e-12)
    with pytest.raises(ValueError, match="shadow_scores must have shape"):
        lira.in_out_gaussians([1.0, 2.0], [True, False])
    with pytest.raises(ValueError, match="shadow_in must have the shape"):
        lira.in_out_gaussians(scores, inside[:, :3])
