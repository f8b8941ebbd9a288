"""Plain FGSM adversarial training (zero start, one step of eps) and the epoch curve that shows its overfitting."""
import dataclasses

import keras
import numpy as np
import pytest

from mlsec_lessons import attacks, models
from mlsec_lessons.defenses import adversarial_train
from mlsec_lessons.defenses import adversarial_training as at
from mlsec_lessons.reproducibility import seeded


# --------------------------------------------------------------------------- the schedule
@pytest.mark.parametrize("method, expected", [
    ("fgsm", (False, 1, 0.2)),       # Goodfellow: from x, one step of eps, whatever steps/eps_step say
    ("fgsm_rs", (True, 1, 0.25)),    # Wong et al.: from a random start, one step of 1.25 eps
    ("pgd", (True, 5, 0.03)),
])
def test_attack_schedule(method, expected):
    random_start, steps, eps_step = at.attack_schedule(method, 0.2, steps=5, eps_step=0.03)
    assert (random_start, steps) == expected[:2] and eps_step == pytest.approx(expected[2])


def test_fgsm_training_starts_at_x_and_fgsm_rs_does_not(digits, monkeypatch):
    draws = []
    real = at.sample_ball
    monkeypatch.setattr(at, "sample_ball", lambda *a, **k: draws.append(1) or real(*a, **k))
    adversarial_train(digits, "logistic", method="fgsm", eps=0.1, epochs=1, batch_size=512, cache=False)
    assert draws == []
    adversarial_train(digits, "logistic", method="fgsm_rs", eps=0.1, epochs=1, batch_size=512, cache=False)
    assert len(draws) == int(np.ceil(len(digits.x_train) / 512))


def test_one_fgsm_training_step_is_one_adam_step_on_attacks_fgsm(digits):
    """The oracle: the compiled step with method="fgsm" trains on exactly what attacks.fgsm crafts."""
    n, eps, lr = 64, 0.2, 1e-2
    small = dataclasses.replace(digits, x_train=digits.x_train[:n], y_train=digits.y_train[:n])
    trained = adversarial_train(small, "logistic", method="fgsm", eps=eps, epochs=1, batch_size=n,
                                learning_rate=lr, seed=3, cache=False).model

    with seeded(3):  # cached_fit builds under the same seed: the same initial weights
        model = models.build("logistic", small.input_shape, small.n_classes)
    x_adv = attacks.fgsm(model, small.x_train, small.y_train, eps, bounds=small.clip)
    assert np.abs(x_adv - small.x_train).max() == pytest.approx(eps)
    optimizer = keras.optimizers.Adam(lr)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x_adv, small.y_train)
    for ours, oracle in zip(trained.get_weights(), model.get_weights()):
        np.testing.assert_allclose(ours, oracle, rtol=1e-5, atol=1e-6)


def test_fgsm_and_fgsm_rs_train_different_models(digits):
    kw = dict(eps=0.2, epochs=1, batch_size=256, cache=False)
    a = adversarial_train(digits, "logistic", method="fgsm", **kw).model.get_weights()
    b = adversarial_train(digits, "logistic", method="fgsm_rs", **kw).model.get_weights()
    assert not np.allclose(a[0], b[0])


def test_the_method_is_in_the_cache_key(digits, fresh_cache):
    kw = dict(eps=0.2, epochs=1, batch_size=256)
    fgsm = adversarial_train(digits, "logistic", method="fgsm", **kw)
    rs = adversarial_train(digits, "logistic", method="fgsm_rs", **kw)
    again = adversarial_train(digits, "logistic", method="fgsm", **kw)
    assert fgsm.provenance.cache_path != rs.provenance.cache_path and not rs.provenance.from_cache
    assert again.provenance.from_cache and again.provenance.cache_path == fgsm.provenance.cache_path


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, message", [
    (dict(method="FGSM"), "method must be one of"),
    (dict(method="fgsm", eps=-0.1), "eps must be"),
    (dict(method="fgsm", on_epoch_end=lambda e, m: None), "cache=False"),              # a cache hit has no epochs
    (dict(method="fgsm", on_epoch_end="print", cache=False), "must be a callable"),
])
def test_adversarial_training_rejects(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        adversarial_train(digits, "logistic", epochs=1, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="trades"), "method must be one of"),
    (dict(pgd_steps=0), "pgd_steps must be"),
    (dict(y_val=np.zeros(3, int)), "same length"),
])
def test_robustness_by_epoch_rejects(digits, kwargs, message):
    args = {"x_val": digits.x_test[:5], "y_val": digits.y_test[:5], **kwargs}
    with pytest.raises(ValueError, match=message):
        at.robustness_by_epoch(digits, args.pop("x_val"), args.pop("y_val"), "logistic", epochs=1, **args)


def test_on_epoch_end_sees_every_epoch_and_the_model_in_training(digits):
    seen = []
    fitted = adversarial_train(digits, "logistic", method="fgsm", epochs=3, batch_size=512, cache=False,
                               on_epoch_end=lambda epoch, model: seen.append((epoch, model.get_weights()[0].copy())))
    assert [e for e, _ in seen] == [0, 1, 2]
    assert not np.array_equal(seen[0][1], seen[1][1])                   # the weights move between epochs
    np.testing.assert_array_equal(seen[-1][1], fitted.model.get_weights()[0])


# --------------------------------------------------------------------------- the curve, measured
def test_robustness_by_epoch_is_cached_and_framed(digits, fresh_cache):
    kw = dict(method="fgsm", eps=0.2, epochs=2, batch_size=512, pgd_steps=3)
    first, prov = at.robustness_by_epoch(digits, digits.x_test[:50], digits.y_test[:50], "logistic", **kw)
    again, prov_again = at.robustness_by_epoch(digits, digits.x_test[:50], digits.y_test[:50], "logistic", **kw)
    assert not prov.from_cache and prov_again.from_cache
    np.testing.assert_array_equal(first.pgd, again.pgd)
    frame = first.to_frame()
    assert list(frame.index) == [1, 2] and list(frame.columns) == ["clean", "FGSM", "PGD-3", "FGSM - PGD"]
    np.testing.assert_allclose(frame["FGSM - PGD"], first.fgsm - first.pgd)
    # the last point is the trained model's: the same attacks on adversarial_train's model agree
    model = adversarial_train(digits, "logistic", cache=False, **{k: v for k, v in kw.items() if k != "pgd_steps"}).model
    x, y = digits.x_test[:50], digits.y_test[:50]
    assert first.fgsm[-1] == pytest.approx(models.accuracy(model, attacks.fgsm(model, x, y, 0.2), y))
    assert first.pgd[-1] == pytest.approx(models.accuracy(model, attacks.pgd(model, x, y, 0.2, steps=3, seed=0), y))


def test_plain_fgsm_training_beats_fgsm_and_not_pgd(digits):
    """A small real run of the lesson's setting (eps 0.3): FGSM accuracy climbs away from PGD accuracy."""
    curve, _ = at.robustness_by_epoch(digits, digits.x_test[:100], digits.y_test[:100], method="fgsm", eps=0.3,
                                      epochs=12, pgd_steps=5, learning_rate=3e-3, seed=0, cache=False)
    assert curve.clean[-3:].mean() >= 0.8                          # it learnt the digits
    assert curve.pgd[-3:].mean() <= 0.25                           # PGD still breaks it
    gap = curve.fgsm - curve.pgd
    assert gap[-3:].mean() >= 0.15 and gap[-3:].mean() > gap[:2].mean() + 0.08, gap   # the gap opens with training
