"""Defenses, each evaluated by an attack that knows about it."""
import dataclasses

import numpy as np
import pytest

from mlsec_lessons import attacks, data, models
from mlsec_lessons.defenses import adversarial_train, art_adversarial_training, detection, evaluation
from mlsec_lessons.defenses import preprocessing as pre
from mlsec_lessons.errors import InvalidParameterError

EPS = 0.1


@pytest.fixture(scope="module")
def clean_model(small_cnn):
    return small_cnn


@pytest.fixture(scope="module")
def robust_model(digits):
    return adversarial_train(digits, method="pgd", eps=EPS, steps=5, epochs=12, seed=0, cache=False).model


def _pgd_acc(model, x, y, eps=EPS):
    return models.accuracy(model, attacks.pgd(model, x, y, eps, steps=20, eps_step=eps / 8, seed=0), y)


# --------------------------------------------------------------------------- adversarial training
def test_pgd_training_beats_clean_training_under_pgd(digits, clean_model, robust_model):
    x, y = digits.x_test, digits.y_test
    clean_pgd, robust_pgd = _pgd_acc(clean_model, x, y), _pgd_acc(robust_model, x, y)
    assert robust_pgd > clean_pgd + 0.2, (robust_pgd, clean_pgd)
    assert robust_pgd > 0.7
    assert models.accuracy(robust_model, x, y) > 0.9  # still useful on clean inputs


def test_fast_fgsm_rs_training_is_robust_too(digits, clean_model):
    fast = adversarial_train(digits, method="fgsm_rs", eps=EPS, epochs=10, seed=0, cache=False).model
    assert _pgd_acc(fast, digits.x_test, digits.y_test) > _pgd_acc(clean_model, digits.x_test, digits.y_test) + 0.15


def test_adversarial_training_caches_its_weights(digits, fresh_cache):
    first = adversarial_train(digits, "logistic", method="fgsm_rs", epochs=1)
    again = adversarial_train(digits, "logistic", method="fgsm_rs", epochs=1)
    other = adversarial_train(digits, "logistic", method="fgsm_rs", epochs=1, eps=0.2)
    assert not first.provenance.from_cache and again.provenance.from_cache and not other.provenance.from_cache
    assert first.provenance.seconds > 0 and again.provenance.seconds == 0.0
    assert len({first.provenance.cache_path, other.provenance.cache_path}) == 2
    assert not hasattr(first.model, "from_cache")  # the record says it; nothing is patched onto the model
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_adversarial_training_leaves_the_global_random_state_alone(digits):
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    adversarial_train(digits, "logistic", method="fgsm_rs", epochs=1, cache=False)
    assert np.random.rand() == expected


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="trades"), "method must be one of"),
    (dict(eps=-0.1), "eps must be"),
    (dict(steps=0), "steps must be"),
    (dict(epochs=0), "epochs must be"),
    (dict(learning_rate=0), "learning_rate must be in"),
])
def test_adversarial_training_bad_arguments(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        adversarial_train(digits, **kwargs)


def test_adversarial_training_needs_a_valid_range():
    with pytest.raises(ValueError, match="clip=None"):
        adversarial_train(data.load_breast_cancer())


def test_art_adversarial_trainer_fit_returns_none_and_trains_in_place(digits):
    model = models.build("small_cnn", digits.input_shape, digits.n_classes)
    before = [w.copy() for w in model.get_weights()]
    clf, returned = art_adversarial_training(model, digits, eps=EPS, epochs=1, batch_size=256)
    assert returned is None  # the source's `robust_model = trainer.fit(...)` keeps None
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    acc = np.mean(np.argmax(clf.predict(digits.x_test), axis=1) == digits.y_test)
    assert acc > 0.3  # one short epoch: trained, if not well


# --------------------------------------------------------------------------- preprocessing
def test_source_noise_defense_gives_no_protection(digits, clean_model):
    x, y = digits.x_test[:300], digits.y_test[:300]
    result = pre.evaluate_preprocessing(clean_model, pre.gaussian_noise(0.01), x, y, EPS, steps=20, eps_step=EPS / 8)
    assert abs(result.non_adaptive - _pgd_acc(clean_model, x, y)) < 0.05
    assert result.clean > 0.9


def test_the_non_adaptive_examples_may_be_given_once_for_many_defenses(digits, clean_model):
    x, y = digits.x_test[:100], digits.y_test[:100]
    settings = dict(steps=10, eps_step=0.03)
    computed = pre.evaluate_preprocessing(clean_model, pre.spatial_smoothing(3), x, y, 0.15, **settings)
    x_pgd = attacks.pgd(clean_model, x, y, 0.15, seed=0, **settings)   # the same attack, done once outside
    given = pre.evaluate_preprocessing(clean_model, pre.spatial_smoothing(3), x, y, 0.15, x_non_adaptive=x_pgd,
                                       **settings)
    assert given == computed
    with pytest.raises(InvalidParameterError, match="x_non_adaptive has shape"):
        pre.evaluate_preprocessing(clean_model, pre.spatial_smoothing(3), x, y, 0.15, x_non_adaptive=x_pgd[:5],
                                   **settings)


def test_bpda_breaks_spatial_smoothing(digits, clean_model):
    x, y = digits.x_test[:300], digits.y_test[:300]
    result = pre.evaluate_preprocessing(clean_model, pre.spatial_smoothing(3), x, y, 0.15, steps=30, eps_step=0.02)
    assert result.adaptive < result.non_adaptive - 0.05, result
    assert (result.eps, result.norm, result.steps, result.eot_samples, result.n) == (0.15, "inf", 30, 1, 300)
    assert list(result.to_frame(index="median").index) == ["median"]


def test_bpda_attacks_feature_squeezing_at_least_as_well(digits, clean_model):
    x, y = digits.x_test[:300], digits.y_test[:300]
    result = pre.evaluate_preprocessing(clean_model, pre.feature_squeezing(1), x, y, 0.2, steps=30, eps_step=0.025)
    assert result.adaptive <= result.non_adaptive + 0.02, result
    assert result.adaptive < result.clean - 0.3


def test_eot_gradient_estimates_the_expected_gradient(digits, clean_model):
    x, y = digits.x_test[:50], digits.y_test[:50]
    noise = pre.gaussian_noise(0.3)
    draws = [attacks.input_gradient(clean_model, pre.transform(noise, x), y) for _ in range(200)]
    expected = np.mean(draws, axis=0)

    def cosine(a, b):
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        return np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12))

    one = attacks.input_gradient(clean_model, pre.transform(noise, x), y)
    eot = np.mean([attacks.input_gradient(clean_model, pre.transform(noise, x), y) for _ in range(20)], axis=0)
    assert cosine(eot, expected) > cosine(one, expected) + 0.1


def test_preprocessors_are_arts_and_validate():
    x = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(pre.transform(pre.feature_squeezing(1), x), (x >= 0.5).astype(np.float32))
    noisy = pre.transform(pre.gaussian_noise(0.1), x)
    assert noisy.min() >= 0 and noisy.max() <= 1 and not np.array_equal(noisy, x)
    with pytest.raises(ValueError, match="bit_depth"):
        pre.feature_squeezing(0)
    with pytest.raises(ValueError, match="sigma"):
        pre.gaussian_noise(-1)
    with pytest.raises(ValueError, match="eot_samples"):
        pre.adaptive_pgd(None, pre.feature_squeezing(1), x, [0], 0.1, steps=1, eot_samples=0)


# --------------------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def detector(digits, clean_model):
    x_adv = attacks.pgd(clean_model, digits.x_train, digits.y_train, 0.15, steps=20, eps_step=0.02, seed=0)
    return detection.AdversarialDetector(epochs=6).fit(*detection.detection_data(digits.x_train, x_adv))


def test_detector_catches_plain_pgd_but_not_an_adaptive_attacker(digits, clean_model, detector):
    x, y = digits.x_test, digits.y_test
    plain = detection.evaluate_detection(clean_model, detector, x, y,
                                         attacks.pgd(clean_model, x, y, 0.15, steps=30, eps_step=0.02, seed=1))
    assert plain.tpr > 0.9 and plain.fpr < 0.1, plain
    rates = detector.rates(x, attacks.pgd(clean_model, x, y, 0.15, steps=30, eps_step=0.02, seed=1))
    assert (rates.tpr, rates.fpr) == (plain.tpr, plain.fpr)  # the same flags, counted the same way
    assert list(rates.to_frame().columns) == ["tpr", "fpr"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rates.tpr = 1.0
    adaptive = detection.evaluate_detection(
        clean_model, detector, x, y, detection.detector_aware_pgd(clean_model, detector, x, y, 0.15, steps=30, eps_step=0.02,
                                                        seed=1))
    assert adaptive.tpr < 0.3, adaptive
    assert adaptive.undetected_success > plain.undetected_success + 0.4


def test_detector_comes_from_the_cache_the_second_time(digits, fresh_cache):
    x_clean = digits.x_train[:200]
    X, y = detection.detection_data(x_clean, np.clip(x_clean + 0.15 * np.sign(x_clean - 0.5), 0, 1))
    first = detection.AdversarialDetector(epochs=2, seed=0).fit(X, y)
    again = detection.AdversarialDetector(epochs=2, seed=0).fit(X, y)
    assert not first.fitted_.provenance.from_cache and again.fitted_.provenance.from_cache
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))
    other = detection.AdversarialDetector(epochs=2, seed=0).fit(X[::-1], y[::-1])  # other data: trains
    assert not other.fitted_.provenance.from_cache
    assert not detection.AdversarialDetector(epochs=2, seed=0, cache=False).fit(X, y).fitted_.provenance.from_cache


def test_detector_is_an_estimator(digits):
    det = detection.AdversarialDetector(epochs=0, threshold=2.0)  # the constructor only stores
    assert det.epochs == 0 and not hasattr(det, "model_")
    with pytest.raises(ValueError, match="not fitted"):
        det.predict(digits.x_test[:2])
    X, y = detection.detection_data(digits.x_test[:20], digits.x_test[:20])
    with pytest.raises(ValueError, match="epochs"):
        det.fit(X, y)
    with pytest.raises(ValueError, match="both labels"):
        detection.AdversarialDetector().fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="same input shape"):
        detection.detection_data(digits.x_test[:2], np.zeros((2, 3)))


# --------------------------------------------------------------------------- evaluation
def test_autoattack_is_at_least_as_strong_as_pgd_and_states_its_setting(digits, robust_model):
    result = evaluation.autoattack(robust_model, digits.x_test, digits.y_test, EPS, n=60, steps=10)
    assert (result.eps, result.norm, result.n, result.steps) == (EPS, "inf", 60, 10)
    idx = result.indices
    np.testing.assert_array_equal(idx, evaluation.fixed_subset(len(digits.x_test), 60, seed=0))
    x, y = digits.x_test[idx], digits.y_test[idx]
    assert np.abs(result.x_adv.astype(np.float64) - x).max() <= EPS * (1 + 1e-4)
    assert result.robust_accuracy <= _pgd_acc(robust_model, x, y) + 0.05
    assert result.robust_accuracy < result.clean_accuracy
    frame = result.to_frame()
    assert frame.shape[0] == 1 and {"robust_accuracy", "eps", "norm", "n", "steps"} <= set(frame.columns)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.eps = 0.5


def test_fixed_subset_validates():
    assert len(set(evaluation.fixed_subset(100, 30, seed=1))) == 30
    with pytest.raises(ValueError, match="larger than"):
        evaluation.fixed_subset(10, 11)
