"""The reference attacks: as strong as ART's, inside the ball exactly, compiled once, strict on input."""
import keras
import numpy as np
import pytest

from mlsec_lessons import attacks, models


@pytest.fixture(scope="module")
def model(small_cnn):
    return small_cnn


def _l2(a, b):
    return np.sqrt(np.sum((a.astype(np.float64) - b.astype(np.float64)).reshape(len(a), -1) ** 2, axis=1))


def test_fgsm_matches_art(model, digits):
    x, y = digits.x_test, digits.y_test
    ours, theirs = attacks.fgsm(model, x, y, 0.1), attacks.art_fgsm(model, x, y, 0.1)
    acc_ours, acc_art = models.accuracy(model, ours, y), models.accuracy(model, theirs, y)
    assert acc_ours < models.accuracy(model, x, y) - 0.2  # the attack does something
    assert acc_ours <= acc_art + 0.02
    assert np.mean(np.abs(ours - theirs) > 1e-5) < 0.01  # same formula, same pixels


@pytest.mark.parametrize("norm, eps, step, steps", [(np.inf, 0.1, 0.01, 40), (2, 0.75, 0.1, 20)])
def test_pgd_at_least_as_strong_as_art(model, digits, norm, eps, step, steps):
    x, y = digits.x_test, digits.y_test
    acc_ours = models.accuracy(model, attacks.pgd(model, x, y, eps, step, steps, norm=norm, seed=0), y)
    acc_art = models.accuracy(model, attacks.art_pgd(model, x, y, eps, step, steps, norm=norm, seed=0), y)
    assert acc_ours <= acc_art + 0.02, (acc_ours, acc_art)
    clean = models.accuracy(model, x, y)
    assert acc_ours < 0.8 * clean and acc_art < 0.8 * clean  # both attacks work: no win over a broken peer


def test_pgd_beats_fgsm_and_grows_with_eps(model, digits):
    x, y = digits.x_test[:300], digits.y_test[:300]
    accs = [models.accuracy(model, attacks.pgd(model, x, y, e, e / 4, 10, seed=0), y) for e in (0.05, 0.1, 0.2)]
    assert accs[0] > accs[1] > accs[2]
    assert accs[1] <= models.accuracy(model, attacks.fgsm(model, x, y, 0.1), y)


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (np.inf, 0.0123457), (2, 0.5), (2, 1.3333333)])
@pytest.mark.parametrize("clip", [(0.0, 1.0), (0.1, 0.9)])
def test_ball_and_clip_hold_exactly(model, digits, norm, eps, clip):
    x = np.clip(digits.x_test[:200], *clip)
    y = digits.y_test[:200]
    for x_adv in (attacks.pgd(model, x, y, eps, eps / 3, 7, norm=norm, clip=clip, seed=1),
                  attacks.pgd(model, x, y, eps, 2 * eps, 3, norm=norm, clip=clip, random_start=False)):
        assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
        assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]
        if norm == np.inf:
            assert np.max(np.abs(x_adv.astype(np.float64) - x)) <= eps
        else:
            assert np.max(_l2(x_adv, x)) <= eps
    assert np.max(np.abs(attacks.fgsm(model, x, y, eps, clip=clip).astype(np.float64) - x)) <= eps


def test_step_saturates_the_linf_ball(model, digits):
    # Without random start and with a step equal to eps, every pixel away from the clip bounds
    # (and with a non-zero gradient) moves by eps exactly: the sign of the step is used.
    x, y = np.clip(digits.x_test[:50], 0.2, 0.8), digits.y_test[:50]
    delta = np.abs(attacks.fgsm(model, x, y, 0.1).astype(np.float64) - x)
    assert np.mean(np.isclose(delta, 0.1, atol=1e-6)) > 0.9


def test_eps_zero_returns_the_input(model, digits):
    x, y = digits.x_test[:20], digits.y_test[:20]
    np.testing.assert_array_equal(attacks.pgd(model, x, y, 0.0, 0.01, 5, seed=0), x)
    np.testing.assert_array_equal(attacks.fgsm(model, x, y, 0.0), x)


def test_seeded_random_start_is_reproducible(model, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    a = attacks.pgd(model, x, y, 0.1, 0.01, 3, seed=5)
    np.testing.assert_array_equal(a, attacks.pgd(model, x, y, 0.1, 0.01, 3, seed=5))
    assert not np.array_equal(a, attacks.pgd(model, x, y, 0.1, 0.01, 3, seed=6))


def test_second_call_does_not_retrace(model, digits):
    x, y = digits.x_test, digits.y_test
    attacks.pgd(model, x[:100], y[:100], 0.1, 0.01, 5, norm=2, seed=0)
    attacks.fgsm(model, x[:100], y[:100], 0.1)
    before = attacks.trace_count()
    attacks.pgd(model, x[:100], y[:100], 0.1, 0.01, 5, norm=2, seed=0)  # same shapes
    attacks.pgd(model, x[:37], y[:37], 0.3, 0.02, 9, norm=2, seed=1)    # other batch, eps, steps
    attacks.pgd(model, x, y, 0.1, 0.01, 5, norm=2, batch_size=128)      # several batches
    attacks.fgsm(model, x[:100], y[:100], 0.2)
    assert attacks.trace_count() == before
    attacks.pgd(model, x[:10], y[:10], 0.1, 0.01, 2, norm=np.inf, targeted=True)  # a new loop
    assert attacks.trace_count() == before + 1


def test_targeted_attack_reaches_the_target(model, digits):
    x, y = digits.x_test[:200], digits.y_test[:200]
    target = (y + 1) % 10
    x_adv = attacks.pgd(model, x, target, 0.25, 0.02, 40, targeted=True, seed=0)
    hit = np.mean(models.predict_labels(model, x_adv) == target)
    untargeted = attacks.pgd(model, x, y, 0.25, 0.02, 40, seed=0)
    assert hit > 0.7
    assert hit > np.mean(models.predict_labels(model, untargeted) == target) + 0.3
    theirs = attacks.art_pgd(model, x, target, 0.25, 0.02, 40, targeted=True, seed=0)
    assert hit >= np.mean(models.predict_labels(model, theirs) == target) - 0.02


def test_attack_raises_the_loss(model, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    before = -attacks.true_label_log_odds(model, x, y)
    after = -attacks.true_label_log_odds(model, attacks.pgd(model, x, y, 0.1, 0.01, 10, seed=0), y)
    assert np.mean(after > before) > 0.95


def test_true_label_log_odds_matches_softmax():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(30, 5)).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, size=30)
    z = np.asarray(model(x), dtype=np.float64)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    py = p[np.arange(30), y]
    np.testing.assert_allclose(attacks.true_label_log_odds(model, x, y), np.log(py / (1 - py)), rtol=1e-4, atol=1e-5)


def test_sample_ball_is_inside_and_spread():
    x = np.full((500, 4, 4, 1), 0.5, dtype=np.float32)
    inf = attacks.sample_ball(x, 0.1, np.inf, seed=0)
    assert np.abs(inf - x).max() <= 0.1 + 1e-7 and np.abs(inf - x).mean() > 0.04
    two = attacks.sample_ball(x, 0.3, 2, seed=0)
    radius = _l2(two, x)
    assert radius.max() <= 0.3 + 1e-6 and np.median(radius) > 0.25  # mass sits near the surface in 16-d


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=-0.1), "eps must be"),
    (dict(eps=float("nan")), "eps must be"),
    (dict(eps_step=-1.0), "eps_step must be"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=2.5), "steps must be"),
    (dict(norm=1), "norm must be np.inf or 2"),
    (dict(norm=True), "norm must be"),
    (dict(clip=(1.0, 0.0)), "clip must be"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments(model, digits, kwargs, message):
    args = dict(eps=0.1, eps_step=0.01, steps=3) | kwargs
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match=message):
        attacks.pgd(model, x, y, args.pop("eps"), args.pop("eps_step"), args.pop("steps"), **args)


def test_bad_inputs(model, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match="outside clip"):
        attacks.pgd(model, x + 0.5, y, 0.1, 0.01, 3)
    with pytest.raises(ValueError, match="outside clip"):
        attacks.fgsm(model, x - 0.5, y, 0.1)
    with pytest.raises(ValueError, match="shape mismatch: x has 4 samples but y has 3"):
        attacks.pgd(model, x, y[:3], 0.1, 0.01, 3)
    with pytest.raises(ValueError, match="1-D integer labels"):
        attacks.fgsm(model, x, np.eye(10)[y], 0.1)
    with pytest.raises(ValueError, match="outside 0..9"):
        attacks.fgsm(model, x, y + 10, 0.1)
    with pytest.raises(ValueError, match="eps must be"):
        attacks.fgsm(model, x, y, -1)
    with pytest.raises(ValueError, match="shape mismatch"):
        attacks.art_pgd(model, x, y[:2], 0.1, 0.01, 3)


def test_compiled_attacks_do_not_keep_models_alive(digits):
    import gc
    import weakref

    model = models.build("logistic", digits.input_shape, digits.n_classes)
    attacks.pgd(model, digits.x_test[:8], digits.y_test[:8], 0.1, 0.01, 2, seed=0)
    attacks.input_gradient(model, digits.x_test[:8], digits.y_test[:8])
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_art_batch_size_is_passed_through(model, digits):
    x, y = digits.x_test[:40], digits.y_test[:40]
    one = attacks.art_fgsm(model, x, y, 0.1)
    np.testing.assert_allclose(attacks.art_fgsm(model, x, y, 0.1, batch_size=7), one, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        attacks.art_pgd(model, x, y, 0.1, 0.01, 2, batch_size=0)
