import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from mlsec_lessons import metrics
from mlsec_lessons.privacy_attacks import membership as mi
from mlsec_lessons.privacy_attacks.shadows import half_masks, model_logits, train_shadow_models


def test_loss_scores_match_keras_cross_entropy():
    import keras

    rng = np.random.default_rng(0)
    logits, y = (rng.normal(size=(50, 4)) * 3).astype(np.float32), rng.integers(0, 4, 50)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(y, logits)
    np.testing.assert_allclose(-mi.loss_scores(logits, y), np.asarray(want), rtol=1e-4, atol=1e-6)  # Keras: float32


def test_logit_confidence_is_the_logit_of_the_softmax_and_stays_finite():
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p[np.arange(40), y]
    np.testing.assert_allclose(mi.logit_confidence(logits, y), np.log(py / (1 - py)), rtol=1e-9)
    # p_y rounds to 1.0 here; the logit-space formula still gives the exact answer (60)
    assert mi.logit_confidence([[60.0, 0.0]], [0])[0] == pytest.approx(60.0)


def test_report_agrees_with_sklearn_and_the_privacy_loss_metric():
    rng = np.random.default_rng(2)
    truth = rng.random(4000) < 0.5
    score = rng.normal(size=4000) + 0.5 * truth
    r = mi.attack_report(truth, score)
    assert r["auc"] == pytest.approx(roc_auc_score(truth, score))
    assert r["advantage"] == pytest.approx(metrics.privacy_loss(truth, score))
    assert r["balanced accuracy"] == pytest.approx((1 + r["advantage"]) / 2)
    fpr, tpr, _ = roc_curve(truth, score)
    assert r["tpr@1%"] == pytest.approx(tpr[fpr <= 0.01].max())
    assert r["tpr@0.1%"] <= r["tpr@1%"]


def test_tpr_at_fpr_counts_only_thresholds_within_the_fpr():
    # the top score is a non-member: at FPR 0 nothing can be flagged
    assert mi.tpr_at_fpr([0, 1, 1, 0], [0.9, 0.8, 0.7, 0.1], fpr=0.0) == 0.0
    assert mi.tpr_at_fpr([0, 1, 1, 0], [0.9, 0.8, 0.7, 0.1], fpr=0.5) == 1.0


@pytest.mark.parametrize("bad, match", [
    (dict(is_member=[1, 1, 1], score=[0.1, 0.2, 0.3]), "both members and non-members"),
    (dict(is_member=[1, 0], score=[0.1]), "score must have shape"),
    (dict(is_member=[1, 2], score=[0.1, 0.2]), "is_member must hold"),
    (dict(is_member=[1, 0], score=[np.nan, 0.2]), "NaN"),
])
def test_report_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        mi.attack_report(**bad)


def test_bad_fpr_and_logits_are_named():
    with pytest.raises(ValueError, match="fpr"):
        mi.tpr_at_fpr([1, 0], [1.0, 0.0], fpr=2)
    with pytest.raises(ValueError, match="y must hold integer labels"):
        mi.loss_scores([[0.0, 1.0]], [3])


def test_half_masks_give_every_model_exactly_half():
    m = half_masks(16, 101, seed=3)
    assert (m.sum(1) == 50).all()
    assert 0.3 < m.mean(0).mean() < 0.7


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_model_logits_reproduce_the_probabilities_of_each_family():
    from scipy.special import softmax
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier

    x, y = load_iris(return_X_y=True)
    for model in (MLPClassifier((8,), max_iter=50, random_state=0), GaussianNB(), LogisticRegression(max_iter=500)):
        model.fit(x, y)
        np.testing.assert_allclose(softmax(model_logits(model, x), axis=1), model.predict_proba(x), atol=1e-6)
    binary = LogisticRegression().fit(x, y == 0)
    np.testing.assert_allclose(softmax(model_logits(binary, x), axis=1), binary.predict_proba(x), atol=1e-9)


def test_shadow_models_are_cached_and_reloaded(fresh_cache):
    from sklearn.linear_model import LogisticRegression

    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    first = train_shadow_models(LogisticRegression(), x, y, n_models=3)
    again = train_shadow_models(LogisticRegression(), x, y, n_models=3)
    other = train_shadow_models(LogisticRegression(C=0.1), x, y, n_models=3)
    assert not first.provenance.from_cache and again.provenance.from_cache and not other.provenance.from_cache
    np.testing.assert_array_equal(first.logits, again.logits)
    np.testing.assert_array_equal(first.in_mask, again.in_mask)


def test_art_black_box_finds_an_overfit_model_and_not_a_coin():
    """ART's learned attack on an unpruned decision tree, which is always right (and certain) on its members."""
    from art.estimators.classification.scikitlearn import SklearnClassifier
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    mem, non = order[:600], order[600:1200]
    tree = DecisionTreeClassifier(random_state=0).fit(x[mem], y[mem])  # memorises its training set
    truth, score = mi.art_black_box_scores(SklearnClassifier(tree), x[mem], y[mem], x[non], y[non], seed=0)
    assert truth.sum() == 300 and (~truth).sum() == 300
    assert mi.attack_report(truth, score)["auc"] > 0.6
    # the same attack on labels that carry no membership information: near chance
    shuffled = rng.permutation(truth)
    assert abs(mi.attack_report(shuffled, score)["auc"] - 0.5) < 0.1
