"""Randomized smoothing (Cohen et al., 2019): CERTIFY's formula, its abstentions, and ART's certify beside it."""
import numpy as np
import pytest
from scipy.stats import norm

from mlsec_lessons.defenses import smoothing
from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.privacy_attacks.auditing import clopper_pearson


class Stub:
    """A base classifier that answers ``answer(x_noisy)`` (class indices), with Keras' ``predict`` signature."""

    output_shape = (None, 10)

    def __init__(self, answer):
        self.answer = answer

    def predict(self, x, batch_size=None, verbose=0):
        return np.eye(10)[self.answer(x)]


ALWAYS_3 = Stub(lambda x: np.full(len(x), 3))
COIN = Stub(lambda x: np.where(x[:, 0] > 0, 1, 2))   # the sign of the noise on pixel 0: 1 or 2, half each


@pytest.mark.parametrize("n", [50, 1000])
@pytest.mark.parametrize("sigma", [0.25, 0.5])
def test_radius_is_sigma_times_phi_inverse_of_the_clopper_pearson_bound(n, sigma):
    cert = smoothing.certify(ALWAYS_3, np.zeros((3, 8, 8, 1)), sigma, n0=10, n=n, alpha=0.001)
    p_lower = clopper_pearson(n, n, alpha=0.002)[0]          # one-sided at alpha = two-sided at 2 alpha
    assert p_lower == pytest.approx(0.001 ** (1 / n))         # all n samples agree: (1 - pA)^... closed form
    assert cert.prediction.tolist() == [3, 3, 3]
    np.testing.assert_allclose(cert.p_lower, p_lower)
    np.testing.assert_allclose(cert.radius, sigma * norm.ppf(p_lower))
    assert (cert.sigma, cert.n0, cert.n, cert.alpha) == (sigma, 10, n, 0.001)


def test_any_alpha_in_zero_one_gives_the_one_sided_bound():
    # the one-sided bound at alpha is the lower end of the two-sided interval at 2 alpha, which exists only for
    # alpha < 1/2: certify must not refuse alpha >= 1/2 with the two-sided interval's error
    for alpha in (0.3, 0.6):
        cert = smoothing.certify(ALWAYS_3, np.zeros((1, 4)), 0.5, n0=10, n=20, alpha=alpha)
        assert cert.p_lower[0] == pytest.approx(alpha ** (1 / 20))
    assert smoothing.certify(ALWAYS_3, np.zeros((1, 4)), 0.5, n0=10, n=20, alpha=0.3).p_lower[0] == pytest.approx(
        clopper_pearson(20, 20, alpha=0.6)[0])


def test_radius_grows_with_n_and_sigma():
    x = np.zeros((1, 4))
    r = {(s, n): smoothing.certify(ALWAYS_3, x, s, n=n).radius[0] for s in (0.25, 0.5) for n in (100, 10_000)}
    assert r[0.25, 100] < r[0.25, 10_000] and r[0.5, 100] == pytest.approx(2 * r[0.25, 100])


def test_abstains_when_the_bound_is_not_above_one_half():
    cert = smoothing.certify(COIN, np.zeros((4, 4)), 0.5, n0=50, n=500, seed=0)
    assert (cert.prediction == smoothing.ABSTAIN).all() and (cert.radius == 0).all()
    assert (cert.p_lower <= 0.5).all()
    assert (cert.accuracy_at([1, 2, 1, 2], [0.0]) == 0).all()


def test_certified_accuracy_counts_correct_and_large_enough_radii():
    cert = smoothing.Certificate(np.array([0, 1, -1, 2]), np.array([0.3, 0.1, 0.0, 0.6]), np.zeros(4),
                                 0.25, 100, 1000, 0.001)
    np.testing.assert_allclose(cert.accuracy_at([0, 1, 0, 0], [0.0, 0.2, 0.5]), [0.5, 0.25, 0.0])


def test_predict_answers_the_majority_and_abstains_on_a_tie():
    assert smoothing.predict(ALWAYS_3, np.zeros((2, 4)), 0.25, n=100).tolist() == [3, 3]
    assert (smoothing.predict(COIN, np.zeros((3, 4)), 0.25, n=100) == smoothing.ABSTAIN).all()


@pytest.mark.parametrize("kwargs", [dict(sigma=0.0), dict(sigma=-1.0), dict(n0=0), dict(n=0), dict(alpha=0.0),
                                    dict(alpha=1.0)])
def test_bad_arguments_are_named(kwargs):
    args = dict(sigma=0.25) | kwargs
    sigma = args.pop("sigma")
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        smoothing.certify(ALWAYS_3, np.zeros((1, 4)), sigma, **args)


def test_same_seed_same_certificate():
    x = np.random.default_rng(0).uniform(size=(3, 4))
    a, b = (smoothing.certify(COIN, x, 0.5, n=200, seed=1) for _ in range(2))
    np.testing.assert_array_equal(a.p_lower, b.p_lower)


def test_agrees_with_arts_randomized_smoothing(digits):
    """ART's ``TensorFlowV2RandomizedSmoothing.certify`` on the same base model, sigma, n and alpha."""
    from art.estimators.certification.randomized_smoothing import TensorFlowV2RandomizedSmoothing

    class ARTSmoothing(TensorFlowV2RandomizedSmoothing):
        # ART's bound calls statsmodels' proportion_confint(method="beta"), the same Clopper-Pearson
        # bound; statsmodels is not in the course's environment
        def _lower_confidence_bound(self, n_class_samples, n_total_samples):
            return float(clopper_pearson(n_class_samples, n_total_samples, alpha=2 * self.alpha)[0])

    sigma, n, alpha = 0.25, 1000, 0.001
    base = smoothing.train_noisy(digits, sigma, epochs=15).model
    x, y = digits.x_test[:30], digits.y_test[:30]
    ours = smoothing.certify(base, x, sigma, n0=100, n=n, alpha=alpha, seed=0)
    art = ARTSmoothing(base, nb_classes=digits.n_classes, input_shape=digits.input_shape, scale=sigma, alpha=alpha,
                       sample_size=100)
    np.random.seed(0)                                         # ART draws its noise from numpy's global generator
    art_pred, art_radius = art.certify(x, n=n, batch_size=1000)
    both = (ours.prediction != smoothing.ABSTAIN) & (art_pred != -1)
    assert both.mean() >= 0.8 and np.mean(ours.prediction != art_pred) <= 0.1
    np.testing.assert_array_equal(ours.prediction[both], art_pred[both])
    # Monte-Carlo noise: n = 1000 samples move pA by a few thousandths, the radius by a few hundredths
    diff = np.abs(ours.radius[both] - art_radius[both])
    assert diff.mean() <= 0.05 and diff.max() <= 0.2, diff
    assert np.mean(ours.prediction == y) == pytest.approx(np.mean(art_pred == y), abs=0.1)


def test_noise_counts_takes_its_randomness_as_seed():
    x = np.zeros((4, 64))
    same = [smoothing.noise_counts(COIN, x, 0.5, 200, seed=7) for _ in range(2)]
    np.testing.assert_array_equal(*same)                       # one int, the same noise
    gen = np.random.default_rng(7)
    first, second = (smoothing.noise_counts(COIN, x, 0.5, 200, seed=gen) for _ in range(2))
    assert not np.array_equal(first, second)                   # one Generator, fresh noise on each call
    assert (first.sum(axis=1) == 200).all() and set(np.flatnonzero(first.sum(axis=0))) == {1, 2}


@pytest.mark.parametrize("bad", [dict(sigma=0.0), dict(sigma=-1.0), dict(n=0), dict(n=2.5), dict(seed="0")])
def test_noise_counts_refuses_bad_settings(bad):
    args = dict(sigma=0.5, n=10, seed=0) | bad
    with pytest.raises((InvalidParameterError, TypeError)):
        smoothing.noise_counts(COIN, np.zeros((2, 64)), args.pop("sigma"), args.pop("n"), **args)
