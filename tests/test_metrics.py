import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from mlsec_lessons import metrics as m


def test_source_worked_example():
    # 1000 attempts, 50 successes -> ASR 5 %, MRS 0.95; 19 of 20 components protected -> SC 95 %.
    asr = m.asr_from_counts(50, 1000)
    assert asr == 0.05 and m.model_robustness_score(asr) == pytest.approx(0.95)
    y = np.zeros(1000, int)
    adv = np.r_[np.ones(50, int), np.zeros(950, int)]
    assert m.attack_success_rate(y, y, adv) == pytest.approx(0.05)
    inventory = {f"c{i}": {"control": i != 7} for i in range(20)}
    assert m.security_coverage(inventory) == pytest.approx(0.95)
    # PL 2 %: an attack with TPR 0.52 at FPR 0.50.
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    guess = np.r_[np.ones(52), np.zeros(48), np.ones(50), np.zeros(50)].astype(bool)
    assert m.membership_advantage(member, guess) == pytest.approx(0.02)


def test_asr_ignores_samples_that_were_already_wrong():
    y = np.array([0, 1, 2, 3, 4])
    clean = np.array([0, 1, 2, 3, 0])   # last one already wrong
    adv = np.array([1, 1, 2, 3, 0])     # one real flip, and the wrong one stays wrong
    assert m.attack_success_rate(y, clean, adv) == pytest.approx(1 / 4)


def test_asr_differs_from_the_sources_formula_when_the_attack_fixes_mistakes():
    y = np.array([0, 0, 0, 0])
    clean = np.array([0, 0, 1, 1])      # clean accuracy 0.5
    adv = np.array([1, 0, 0, 0])        # one flip, two "fixes": adversarial accuracy 0.75
    assert m.attack_success_rate(y, clean, adv) == pytest.approx(0.5)
    assert m.source_attack_success_rate(0.5, 0.75) == pytest.approx(-0.5)


def test_asr_accepts_probabilities_and_rejects_logits():
    y = np.array([0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert m.attack_success_rate(y, probs, probs[:, ::-1]) == 1.0
    with pytest.raises(ValueError, match="outside \\[0, 1\\].*logits"):
        m.attack_success_rate(y, probs * 5, probs)


def test_targeted_asr_counts_only_eligible_samples():
    y = np.array([0, 1, 2, 5])
    clean = np.array([0, 1, 9, 5])      # third is wrong; fourth is already the target class
    adv = np.array([5, 1, 5, 5])
    assert m.targeted_attack_success_rate(y, clean, adv, [5, 5, 5, 5]) == pytest.approx(0.5)


@pytest.mark.parametrize("call, match", [
    (lambda: m.attack_success_rate([], [], []), "empty"),
    (lambda: m.attack_success_rate([0, 1], [0], [0, 1]), "has 1 samples but y_true has 2"),
    (lambda: m.attack_success_rate([0, 1], [1, 0], [0, 1]), "undefined"),
    (lambda: m.attack_success_rate([0, 1], [[1.2, -0.2], [0, 1]], [0, 1]), "outside"),
    (lambda: m.attack_success_rate([0.5, 1], [0, 1], [0, 1]), "integer class labels"),
    (lambda: m.model_robustness_score(1.5), "asr"),
    (lambda: m.asr_from_counts(5, 0), "attempts"),
    (lambda: m.asr_from_counts(11, 10), "successes"),
    (lambda: m.privacy_loss([1, 1], [0.5, 0.4]), "both members and non-members"),
    (lambda: m.privacy_loss([1, 0], [0.5]), "shape"),
    (lambda: m.membership_advantage([1, 0], [2, 0]), "0/1"),
    (lambda: m.security_coverage({}), "non-empty"),
    (lambda: m.security_coverage({"api": {}}), "no controls"),
    (lambda: m.security_coverage({"api": {"auth": "yes"}}), "True or False"),
    (lambda: m.security_coverage({"api": {"auth": True}}, level="team"), "level"),
    (lambda: m.dp_advantage_bound(-1), "epsilon"),
    (lambda: m.robustness_curve(None, None, np.zeros(2), [0, 1], [0.2, 0.1]), "increasing"),
    (lambda: m.robustness_curve(None, None, np.zeros(2), [0, 1], [-0.1]), "non-negative"),
    (lambda: m.robustness_curve(None, None, np.zeros(3), [0, 1], [0.1]), "x has 3 samples"),
])
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_privacy_loss_matches_the_roc_oracle():
    rng = np.random.default_rng(0)
    member = rng.random(400) < 0.5
    score = rng.normal(size=400) + 0.7 * member
    score[::7] = np.round(score[::7], 1)  # ties must not be split
    fpr, tpr, _ = roc_curve(member, score)
    assert m.privacy_loss(member, score) == pytest.approx(np.max(tpr - fpr))
    assert m.privacy_loss(member, np.zeros(400)) == 0.0


def test_dp_bound_and_its_inverse():
    for eps, delta in [(0.1, 0), (1.0, 1e-5), (3.0, 0)]:
        adv = m.dp_advantage_bound(eps, delta)
        assert 0 < adv < 1
        assert m.epsilon_from_advantage(adv, delta) == pytest.approx(eps, rel=1e-9)
    assert m.dp_advantage_bound(0) == 0.0
    assert m.epsilon_from_advantage(0.02) == pytest.approx(2 * np.arctanh(0.02))


def test_security_coverage_levels():
    inv = {"data": {"access control": True, "provenance": False}, "api": {"auth": True, "tls": True}}
    assert m.security_coverage(inv) == 0.5
    assert m.security_coverage(inv, level="control") == 0.75


def test_robustness_curve_calls_the_attack_per_eps():
    x = np.linspace(-1, 1, 200)[:, None]
    y = (x[:, 0] > 0).astype(int)
    predict = lambda v: (v[:, 0] > 0).astype(int)                     # noqa: E731
    attack = lambda v, t, e: v - e * np.where(t == 1, 1, -1)[:, None]  # push towards the boundary  # noqa: E731
    curve = m.robustness_curve(predict, attack, x, y, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(curve.accuracy, [1.0, 0.5, 0.0], atol=0.01)
    assert list(curve.eps) == [0.0, 0.5, 1.0]


def test_robustness_curve_is_frozen_and_shows_one_row_per_eps():
    x = np.array([[0.5], [-0.2]])
    curve = m.robustness_curve(lambda v: (v[:, 0] > 0).astype(int), lambda v, t, e: v, x, [1, 0], [0.0, 0.1])
    assert isinstance(curve, m.RobustnessCurve)
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.accuracy = np.ones(2)
    frame = curve.to_frame()
    assert list(frame.columns) == ["eps", "accuracy"]
    assert frame["eps"].tolist() == [0.0, 0.1] and frame["accuracy"].tolist() == [1.0, 1.0]


def test_compare_asr_definitions_is_frozen_and_shows_its_fields():
    r = m.compare_asr_definitions([0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0])
    assert isinstance(r, m.AsrComparison)
    assert (r.clean_accuracy, r.accuracy_under_attack, r.flipped, r.fixed) == (0.5, 0.75, 1, 2)
    assert r.source_asr == pytest.approx(-0.5) and r.standard_asr == pytest.approx(0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.standard_asr = 0.0
    frame = r.to_frame()
    assert list(frame.columns) == ["clean_accuracy", "accuracy_under_attack", "flipped", "fixed",
                                   "source_asr", "standard_asr"]
    assert frame.shape == (1, 6) and frame.loc[0, "fixed"] == 2
