"""The reference attacks: as strong as ART's, inside the ball exactly, compiled once, strict on input."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mlsec_lessons import attacks, models
from mlsec_lessons.errors import MLSecError


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
    acc_ours = models.accuracy(model, attacks.pgd(model, x, y, eps, steps=steps, eps_step=step, norm=norm, seed=0), y)
    acc_art = models.accuracy(model, attacks.art_pgd(model, x, y, eps, steps=steps, eps_step=step, norm=norm, seed=0), y)
    assert acc_ours <= acc_art + 0.02, (acc_ours, acc_art)
    clean = models.accuracy(model, x, y)
    assert acc_ours < 0.8 * clean and acc_art < 0.8 * clean  # both attacks work: no win over a broken peer


def test_pgd_beats_fgsm_and_grows_with_eps(model, digits):
    x, y = digits.x_test[:300], digits.y_test[:300]
    accs = [models.accuracy(model, attacks.pgd(model, x, y, e, steps=10, eps_step=e / 4, seed=0), y) for e in (0.05, 0.1, 0.2)]
    assert accs[0] > accs[1] > accs[2]
    assert accs[1] <= models.accuracy(model, attacks.fgsm(model, x, y, 0.1), y)


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (np.inf, 0.0123457), (2, 0.5), (2, 1.3333333)])
@pytest.mark.parametrize("clip", [(0.0, 1.0), (0.1, 0.9)])
def test_ball_and_clip_hold_exactly(model, digits, norm, eps, clip):
    x = np.clip(digits.x_test[:200], *clip)
    y = digits.y_test[:200]
    for x_adv in (attacks.pgd(model, x, y, eps, steps=7, eps_step=eps / 3, norm=norm, bounds=clip, seed=1),
                  attacks.pgd(model, x, y, eps, steps=3, eps_step=2 * eps, norm=norm, bounds=clip,
                              random_start=False)):
        assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
        assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]
        if norm == np.inf:
            assert np.max(np.abs(x_adv.astype(np.float64) - x)) <= eps
        else:
            assert np.max(_l2(x_adv, x)) <= eps
    assert np.max(np.abs(attacks.fgsm(model, x, y, eps, bounds=clip).astype(np.float64) - x)) <= eps


def test_step_saturates_the_linf_ball(model, digits):
    # Without random start and with a step equal to eps, every pixel away from the clip bounds
    # (and with a non-zero gradient) moves by eps exactly: the sign of the step is used.
    x, y = np.clip(digits.x_test[:50], 0.2, 0.8), digits.y_test[:50]
    delta = np.abs(attacks.fgsm(model, x, y, 0.1).astype(np.float64) - x)
    assert np.mean(np.isclose(delta, 0.1, atol=1e-6)) > 0.9


def test_eps_zero_returns_the_input(model, digits):
    x, y = digits.x_test[:20], digits.y_test[:20]
    np.testing.assert_array_equal(attacks.pgd(model, x, y, 0.0, steps=5, eps_step=0.01, seed=0), x)
    np.testing.assert_array_equal(attacks.fgsm(model, x, y, 0.0), x)


def test_seeded_random_start_is_reproducible(model, digits):
    x, y = digits.x_test[:64], digits.y_test[:64]
    a = attacks.pgd(model, x, y, 0.1, steps=3, eps_step=0.01, seed=5)
    np.testing.assert_array_equal(a, attacks.pgd(model, x, y, 0.1, steps=3, eps_step=0.01, seed=5))
    assert not np.array_equal(a, attacks.pgd(model, x, y, 0.1, steps=3, eps_step=0.01, seed=6))


def test_second_call_does_not_retrace(model, digits):
    x, y = digits.x_test, digits.y_test
    attacks.pgd(model, x[:100], y[:100], 0.1, steps=5, eps_step=0.01, norm=2, seed=0)
    attacks.fgsm(model, x[:100], y[:100], 0.1)
    before = attacks.trace_count()
    attacks.pgd(model, x[:100], y[:100], 0.1, steps=5, eps_step=0.01, norm=2, seed=0)  # same shapes
    attacks.pgd(model, x[:37], y[:37], 0.3, steps=9, eps_step=0.02, norm=2, seed=1)    # other batch, eps, steps
    attacks.pgd(model, x, y, 0.1, steps=5, eps_step=0.01, norm=2, batch_size=128)      # several batches
    attacks.fgsm(model, x[:100], y[:100], 0.2)
    assert attacks.trace_count() == before
    attacks.pgd(model, x[:10], y[:10], 0.1, steps=2, eps_step=0.01, norm=np.inf, targeted=True)  # a new loop
    assert attacks.trace_count() == before + 1


def test_targeted_attack_reaches_the_target(model, digits):
    x, y = digits.x_test[:200], digits.y_test[:200]
    target = (y + 1) % 10
    x_adv = attacks.pgd(model, x, target, 0.25, steps=40, eps_step=0.02, targeted=True, seed=0)
    hit = np.mean(models.predict_labels(model, x_adv) == target)
    untargeted = attacks.pgd(model, x, y, 0.25, steps=40, eps_step=0.02, seed=0)
    assert hit > 0.7
    assert hit > np.mean(models.predict_labels(model, untargeted) == target) + 0.3
    theirs = attacks.art_pgd(model, x, target, 0.25, steps=40, eps_step=0.02, targeted=True, seed=0)
    assert hit >= np.mean(models.predict_labels(model, theirs) == target) - 0.02


def test_attack_raises_the_loss(model, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    before = -attacks.true_label_log_odds(model, x, y)
    after = -attacks.true_label_log_odds(model, attacks.pgd(model, x, y, 0.1, steps=10, eps_step=0.01, seed=0), y)
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
    inf = attacks.sample_ball(x, 0.1, norm=np.inf, seed=0)
    assert np.abs(inf - x).max() <= 0.1 + 1e-7 and np.abs(inf - x).mean() > 0.04
    two = attacks.sample_ball(x, 0.3, norm=2, seed=0)
    radius = _l2(two, x)
    assert radius.max() <= 0.3 + 1e-6 and np.median(radius) > 0.25  # mass sits near the surface in 16-d


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(eps=-0.1), ValueError, "eps must be"),
    (dict(eps=float("nan")), ValueError, "eps must be"),
    (dict(eps_step=-1.0), ValueError, "eps_step must be"),
    (dict(steps=0), ValueError, r"steps must be in \[1, inf\]"),
    (dict(steps=2.5), TypeError, "steps must be an int"),
    (dict(norm=1), ValueError, "norm must be np.inf or 2"),
    (dict(norm=True), ValueError, "norm must be"),
    (dict(bounds=(1.0, 0.0)), ValueError, "bounds must be"),
    (dict(bounds=(np.zeros(3), np.ones(3))), ValueError, "bounds of shape"),
    (dict(mask=np.full(3, 1.0)), ValueError, "mask of shape"),
    (dict(mask=np.full((8, 8, 1), 0.5)), ValueError, "mask must hold only 0"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_arguments(model, digits, kwargs, error, message):
    args = dict(eps=0.1, eps_step=0.01, steps=3) | kwargs
    x, y = digits.x_test[:4], digits.y_test[:4]
    eps = args.pop("eps")
    with pytest.raises(error, match=message) as raised:
        attacks.pgd(model, x, y, eps, **args)
    assert isinstance(raised.value, MLSecError)  # one base class for every error the package raises


def test_a_fitted_record_is_refused_with_a_hint(model, digits):
    from mlsec_lessons.cache import Fitted, Provenance

    record = Fitted(model, None, Provenance(None, False, 0.0, {}, "k"), {})
    with pytest.raises(TypeError, match="holds it as .model"):
        attacks.pgd(record, digits.x_test[:4], digits.y_test[:4], 0.1, steps=2)


def test_steps_and_eps_step_are_keyword_only(model, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(TypeError):
        attacks.pgd(model, x, y, 0.1, 0.01, 3)
    with pytest.raises(TypeError):
        attacks.art_pgd(model, x, y, 0.1, 0.01, 3)


def test_one_rule_for_the_default_step(model, digits):
    x, y = digits.x_test[:50], digits.y_test[:50]
    assert attacks.default_eps_step(0.1, 10) == pytest.approx(0.025)
    assert attacks.check_budget(0.1, steps=10) == (0.1, 10, attacks.default_eps_step(0.1, 10))
    np.testing.assert_array_equal(attacks.pgd(model, x, y, 0.1, steps=10, seed=0),
                                  attacks.pgd(model, x, y, 0.1, steps=10, eps_step=0.025, seed=0))
    assert attacks.fgsm_rs_eps_step(0.1) == pytest.approx(0.125)


def test_bad_inputs(model, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match="outside bounds"):
        attacks.pgd(model, x + 0.5, y, 0.1, steps=3)
    with pytest.raises(ValueError, match="outside bounds"):
        attacks.fgsm(model, x - 0.5, y, 0.1)
    with pytest.raises(ValueError, match="shape mismatch: x has 4 samples but y has 3"):
        attacks.pgd(model, x, y[:3], 0.1, steps=3)
    with pytest.raises(ValueError, match="1-D integer labels"):
        attacks.fgsm(model, x, np.eye(10)[y], 0.1)
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        attacks.fgsm(model, x, y + 10, 0.1)
    with pytest.raises(ValueError, match="eps must be"):
        attacks.fgsm(model, x, y, -1)
    with pytest.raises(ValueError, match="shape mismatch"):
        attacks.art_pgd(model, x, y[:2], 0.1, steps=3)


def test_compiled_attacks_do_not_keep_models_alive(digits):
    import gc
    import weakref

    model = models.build("logistic", digits.input_shape, digits.n_classes)
    attacks.pgd(model, digits.x_test[:8], digits.y_test[:8], 0.1, steps=2, seed=0)
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
        attacks.art_pgd(model, x, y, 0.1, steps=2, batch_size=0)


# --------------------------------------------------------------------------- the engine's knobs
def _left_half(shape):
    mask = np.zeros(shape, np.float32)
    mask[:, : shape[1] // 2] = 1.0
    return mask


@pytest.mark.parametrize("norm, eps, step", [(np.inf, 0.2, 0.02), (2, 1.5, 0.15)])
def test_masked_pgd_matches_arts_mask(model, digits, norm, eps, step):
    # ART: ProjectedGradientDescent.generate(x, y, mask=...); the masked-out pixels never move
    x, y = digits.x_test[:300], digits.y_test[:300]
    mask = _left_half(x.shape[1:])
    ours = attacks.pgd(model, x, y, eps, steps=30, eps_step=step, norm=norm, mask=mask, seed=0)
    theirs = attacks.art_pgd(model, x, y, eps, steps=30, eps_step=step, norm=norm, mask=mask, seed=0)
    for x_adv in (ours, theirs):
        np.testing.assert_array_equal(x_adv[:, :, 4:], x[:, :, 4:])
    acc_ours, acc_art = models.accuracy(model, ours, y), models.accuracy(model, theirs, y)
    assert acc_ours <= acc_art + 0.02, (acc_ours, acc_art)
    full = models.accuracy(model, attacks.pgd(model, x, y, eps, steps=30, eps_step=step, norm=norm, seed=0), y)
    assert full < acc_ours < models.accuracy(model, x, y)  # half the pixels: weaker than all, still an attack


def test_per_feature_bounds_hold(model, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    lo = np.minimum(x.min(axis=0), 0.1)           # one range per pixel, each containing x
    hi = np.maximum(x.max(axis=0) * 0.9, lo + 0.05)
    x = np.clip(x, lo, hi)
    x_adv = attacks.pgd(model, x, y, 0.3, steps=10, bounds=(lo, hi), seed=0)
    assert np.all(x_adv >= lo) and np.all(x_adv <= hi)
    assert np.abs(x_adv.astype(np.float64) - x).max() <= 0.3
    with pytest.raises(ValueError, match="outside bounds"):
        attacks.pgd(model, np.clip(x + 0.2, 0, 1), y, 0.3, steps=2, bounds=(lo, hi))


def _margin(logits, y):
    """Lower the true logit against the best other one (the C&W margin), per example."""
    true = tf.gather(logits, y, axis=1, batch_dims=1)
    others = tf.where(tf.one_hot(y, tf.shape(logits)[1]) > 0, -np.inf, logits)
    return tf.reduce_max(others, axis=1) - true


def test_an_objective_replaces_the_cross_entropy(model, digits):
    x, y = digits.x_test[:200], digits.y_test[:200]
    margin = attacks.pgd(model, x, y, 0.1, steps=20, objective=_margin, seed=0)
    assert models.accuracy(model, margin, y) < 0.8 * models.accuracy(model, x, y)
    before = attacks.trace_count()
    attacks.pgd(model, x[:30], y[:30], 0.2, steps=5, objective=_margin, mask=_left_half(x.shape[1:]), seed=1)
    assert attacks.trace_count() == before  # same objective, other mask and eps: the same compiled loop
    g = attacks.input_gradient(model, x[:5], y[:5], objective=_margin)
    assert g.shape == x[:5].shape and np.abs(g).max() > 0


def test_fgsm_rs_is_one_step_of_1_25_eps_from_a_random_start(model, digits):
    x, y = np.clip(digits.x_test[:100], 0.3, 0.7), digits.y_test[:100]
    x_adv = attacks.fgsm_rs(model, x, y, 0.1, seed=0)
    assert np.abs(x_adv.astype(np.float64) - x).max() <= 0.1
    start = attacks.sample_ball(x, 0.1, seed=0)
    assert not np.array_equal(x_adv, start)
    np.testing.assert_array_equal(x_adv, attacks.fgsm_rs(model, x, y, 0.1, seed=0))
    # one step of 1.25 eps from the start, clipped to the ball: most pixels end on its surface
    assert np.mean(np.isclose(np.abs(x_adv - x), 0.1, atol=1e-6)) > 0.5


def test_attacks_leave_the_global_random_state_alone(model, digits):
    x, y = digits.x_test[:10], digits.y_test[:10]
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    attacks.art_pgd(model, x, y, 0.1, steps=2, seed=0)
    attacks.pgd(model, x, y, 0.1, steps=2, seed=0)
    assert np.random.rand() == expected
