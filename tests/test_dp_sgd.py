"""DP-SGD from scratch: checked against a brute-force loop, the clip bound, the noise, training."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlsec_lessons import data, models
from mlsec_lessons.privacy import accounting, dp_sgd

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


@pytest.fixture
def cache(fresh_cache):
    return fresh_cache


def brute_force(model, x, y, clip):
    """The definition, one example at a time: clip each gradient, sum, divide by B."""
    total = [np.zeros(v.shape) for v in model.trainable_variables]
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = LOSS(y[i:i + 1], model(x[i:i + 1], training=True))
        g = [t.numpy().astype(np.float64) for t in tape.gradient(loss, model.trainable_variables)]
        norm = math.sqrt(sum(float(np.sum(t * t)) for t in g))
        for acc, t in zip(total, g):
            acc += t * min(1.0, clip / norm)
    return [t / len(x) for t in total]


def max_rel_err(got, want):
    return max(float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))) for a, b in zip(got, want))


class Residual(keras.Model):
    """Not a Sequential of Dense/Conv2D layers: exercises the tf.vectorized_map path."""

    def __init__(self):
        super().__init__()
        self.a, self.b = keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)

    def call(self, x, training=False):
        return self.b(self.a(x) + x[:, :8])


@pytest.mark.parametrize("arch", ["small_cnn", "mlp", "logistic"])
@pytest.mark.parametrize("clip", [0.1, 1.0, 1e3])  # clip most, some, none of the examples
def test_matches_brute_force_loop_without_noise(digits, arch, clip):
    keras.utils.set_random_seed(0)
    model = models.build(arch, digits.input_shape, 10)
    x, y = digits.x_train[:24], digits.y_train[:24]
    got = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=clip, noise_multiplier=0.0)
    assert len(got) == len(model.trainable_variables)
    assert max_rel_err(got, brute_force(model, x, y, clip)) < 1e-5


def test_vectorized_map_path_matches_brute_force():
    keras.utils.set_random_seed(0)
    model = Residual()
    x = np.random.default_rng(0).normal(size=(16, 12)).astype("float32")
    y = np.arange(16) % 3
    model(x)
    assert not dp_sgd._layerwise_supported(model)
    got = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=0.5, noise_multiplier=0.0)
    assert max_rel_err(got, brute_force(model, x, y, 0.5)) < 1e-5


def test_both_per_example_paths_agree(digits):
    model = models.build("small_cnn", digits.input_shape, 10)
    x, y = digits.x_train[:8], digits.y_train[:8]
    fast = dp_sgd.layerwise_per_example_gradients(model, LOSS, x, y)
    slow = dp_sgd.vmap_per_example_gradients(model, LOSS, x, y)
    assert [tuple(t.shape) for t in fast] == [(8,) + tuple(v.shape) for v in model.trainable_variables]
    assert max_rel_err(fast, [t.numpy() for t in slow]) < 1e-5


@pytest.mark.parametrize("arch", ["small_cnn", "mlp"])
def test_one_example_moves_the_update_by_at_most_clip_over_batch(digits, arch):
    keras.utils.set_random_seed(1)
    model = models.build(arch, digits.input_shape, 10)
    clip, batch = 0.5, 32
    x, y = digits.x_train[:batch].copy(), digits.y_train[:batch].copy()
    base = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=clip, noise_multiplier=0.0)
    # the worst replacement we can think of: an extreme image with a wrong label
    x[0], y[0] = 1.0, (y[0] + 5) % 10
    moved = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=clip, noise_multiplier=0.0)
    gap = math.sqrt(sum(float(tf.reduce_sum((a - b) ** 2)) for a, b in zip(base, moved)))
    assert 0 < gap <= 2 * clip / batch + 1e-7  # replace = remove + add: at most 2C / B
    # removing the example (same public denominator) moves it by at most C / B
    removed = dp_sgd.privatize_gradients(model, LOSS, x[1:], y[1:], l2_norm_clip=clip,
                                         noise_multiplier=0.0, denominator=batch)
    gap = math.sqrt(sum(float(tf.reduce_sum((a - b) ** 2)) for a, b in zip(moved, removed)))
    assert 0 < gap <= clip / batch + 1e-7
    # without clipping the same example moves it far more: the clip is what bounds it
    huge = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1e6, noise_multiplier=0.0)
    huge_removed = dp_sgd.privatize_gradients(model, LOSS, x[1:], y[1:], l2_norm_clip=1e6,
                                              noise_multiplier=0.0, denominator=batch)
    gap = math.sqrt(sum(float(tf.reduce_sum((a - b) ** 2)) for a, b in zip(huge, huge_removed)))
    assert gap > clip / batch


def test_noise_has_std_sigma_times_clip_over_batch(digits):
    model = models.build("logistic", digits.input_shape, 10)
    x, y = digits.x_train[:50], digits.y_train[:50]
    clean = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=2.0, noise_multiplier=0.0)
    noisy = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=2.0, noise_multiplier=1.5, seed=3)
    resid = np.concatenate([np.ravel(a - b) for a, b in zip(noisy, clean)])
    assert np.std(resid) == pytest.approx(1.5 * 2.0 / 50, rel=0.05)  # 650 coordinates
    again = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=2.0, noise_multiplier=1.5, seed=3)
    other = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=2.0, noise_multiplier=1.5, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(noisy, again))
    assert not np.allclose(noisy[0], other[0])


def test_noise_is_added_to_the_sum_not_per_example(digits):
    # Noise on the sum: std of the mean gradient is sigma*C/B. Per-example noise would give
    # sigma*C/sqrt(B), much more. Doubling B with everything else fixed must halve the noise.
    model = models.build("logistic", digits.input_shape, 10)
    stds = []
    for b in (25, 100):
        x, y = digits.x_train[:b], digits.y_train[:b]
        clean = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1.0, noise_multiplier=1.0)
        noisy = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1.0, noise_multiplier=1.0, seed=0)
        stds.append(np.std(np.concatenate([np.ravel(a - c) for a, c in zip(noisy, clean)])))
    assert stds[0] / stds[1] == pytest.approx(4.0, rel=0.1)


def test_poisson_batches_have_the_expected_size():
    sizes = [len(b) for b in dp_sgd.poisson_batches(1000, 0.05, 400, np.random.default_rng(0))]
    assert np.mean(sizes) == pytest.approx(50, rel=0.03)
    assert np.std(sizes) == pytest.approx(math.sqrt(1000 * 0.05 * 0.95), rel=0.15)  # binomial, not fixed


def test_training_learns_reports_epsilon_and_caches(cache, digits):
    kw = dict(noise_multiplier=1.1, epochs=4, batch_size=64, learning_rate=0.05)
    run = dp_sgd.train_dp_sgd(digits, "mlp", hidden=(32,), **kw)
    assert not run.provenance.from_cache and run.provenance.seconds > 0
    acc = models.accuracy(run.model, digits.x_test, digits.y_test)
    assert acc > 0.5  # well above chance (0.1) after four noisy epochs
    steps = 4 * round(len(digits.x_train) / 64)
    spend = run.privacy
    assert spend.steps == steps and spend.sample_rate == pytest.approx(64 / len(digits.x_train))
    assert spend.epsilon == pytest.approx(accounting.epsilon(1.1, spend.sample_rate, steps, 1e-5))
    assert (spend.delta, spend.noise_multiplier, spend.l2_norm_clip) == (1e-5, 1.1, 1.0)
    assert run.config["adversarial_eps"] == 0.0 and not hasattr(run.model, "epsilon_")
    files = sorted(p.name for p in (cache / "models").iterdir())
    assert any(f.endswith(".weights.npz") for f in files)
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)

    again = dp_sgd.train_dp_sgd(digits, "mlp", hidden=(32,), **kw)
    assert again.provenance.from_cache and again.provenance.seconds == 0.0 and again.privacy == run.privacy
    for a, b in zip(run.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = dp_sgd.train_dp_sgd(digits, "mlp", hidden=(32,), **(kw | {"noise_multiplier": 2.0}))
    assert not other.provenance.from_cache and other.privacy.epsilon < run.privacy.epsilon


def test_training_is_reproducible_and_noise_matters(digits):
    kw = dict(epochs=1, batch_size=128, cache=False)
    a = dp_sgd.train_dp_sgd(digits, "logistic", **kw)
    b = dp_sgd.train_dp_sgd(digits, "logistic", **kw)
    c = dp_sgd.train_dp_sgd(digits, "logistic", noise_multiplier=0.0, **kw)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a.model.get_weights()[0], c.model.get_weights()[0])
    assert c.privacy.epsilon == math.inf


def test_fit_dp_sgd_trains_a_given_model_like_train_dp_sgd(digits):
    """The one public loop: train_dp_sgd is build + fit_dp_sgd, weight for weight."""
    from mlsec_lessons.reproducibility import seeded

    kw = dict(noise_multiplier=1.1, epochs=1, batch_size=128, seed=4)
    run = dp_sgd.train_dp_sgd(digits, "logistic", cache=False, **kw)
    with seeded(4):
        model = models.build("logistic", digits.input_shape, digits.n_classes)
    spend = dp_sgd.fit_dp_sgd(model, digits.x_train, digits.y_train, **kw)
    assert spend == run.privacy
    for a, b in zip(model.get_weights(), run.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fgsm_rs_examples_stay_in_the_ball_and_raise_the_loss(digits):
    model = dp_sgd.train_dp_sgd(digits, "logistic", epochs=2, cache=False).model
    x, y = tf.constant(digits.x_test[:64]), tf.constant(digits.y_test[:64].astype(np.int64))
    adv = dp_sgd.fgsm_rs_examples(model, LOSS, x, y, 0.1, tf.constant([0, 1], tf.int64)).numpy()
    assert np.abs(adv - x.numpy()).max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert LOSS(y, model(adv)) > LOSS(y, model(x))


@pytest.mark.slow
def test_dp_adversarial_training_is_more_robust_at_the_same_epsilon(digits):
    from mlsec_lessons import attacks

    kw = dict(noise_multiplier=1.1, epochs=15, cache=False, progress=False)
    plain = dp_sgd.train_dp_sgd(digits, "small_cnn", **kw)
    robust = dp_sgd.train_dp_sgd(digits, "small_cnn", adversarial_eps=0.1, **kw)
    assert robust.privacy == plain.privacy and robust.config["adversarial_eps"] == 0.1
    plain, robust = plain.model, robust.model

    def pgd_accuracy(model):
        x_adv = attacks.pgd(model, digits.x_test, digits.y_test, eps=0.1, eps_step=0.01, steps=20, seed=0)
        return models.accuracy(model, x_adv, digits.y_test)

    # measured: clean 0.89 and 0.91; PGD 0.29 and 0.53
    assert models.accuracy(robust, digits.x_test, digits.y_test) > 0.8
    assert pgd_accuracy(robust) > pgd_accuracy(plain) + 0.1


@pytest.mark.parametrize("kwargs, match", [
    (dict(l2_norm_clip=0.0), "l2_norm_clip must be in \\(0, inf\\), got 0.0"),
    (dict(noise_multiplier=-1.0), "noise_multiplier must be in \\[0, inf\\], got -1.0"),
    (dict(batch_size=0), "batch_size must be in \\[1, inf\\], got 0"),
    (dict(batch_size=10_000), "batch_size=10000 is larger than the 1257 training examples"),
    (dict(learning_rate=0), "learning_rate must be in \\(0, inf\\), got 0"),
    (dict(delta=1.0), "delta must be in \\(0, 1\\), got 1.0"),
    (dict(momentum=1.0), "momentum must be in \\[0, 1\\), got 1.0"),
    (dict(seed=-1), "seed must be in \\[0, inf\\], got -1"),
    (dict(adversarial_eps=1.5), "adversarial_eps must be in \\[0, 1\\]"),
])
def test_bad_training_arguments(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dp_sgd.train_dp_sgd(digits, "logistic", cache=False, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(epochs=2.5), dict(batch_size="64"), dict(seed=1.0)])
def test_wrong_types_are_type_errors(digits, kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        dp_sgd.train_dp_sgd(digits, "logistic", cache=False, **kwargs)


def test_bad_privatize_arguments(digits):
    model = models.build("logistic", digits.input_shape, 10)
    x, y = digits.x_train[:4], digits.y_train[:4]
    with pytest.raises(ValueError, match="l2_norm_clip must be in \\(0, inf\\), got -1.0"):
        dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=-1.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise_multiplier must be a finite number, got nan"):
        dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1.0, noise_multiplier=float("nan"))
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        dp_sgd.privatize_gradients(model, LOSS, x, y[:3], l2_norm_clip=1.0, noise_multiplier=1.0)


def test_privacy_spent_is_reported_while_training(digits, capsys):
    dp_sgd.train_dp_sgd(digits, "logistic", epochs=2, batch_size=128, cache=False, progress=True)
    shown = capsys.readouterr().err
    expected = accounting.epsilon(1.1, 128 / len(digits.x_train), 2 * round(len(digits.x_train) / 128), 1e-5)
    assert "epsilon=" in shown and f"{expected:.3f}" in shown  # the bar ends on the spend so far


def test_empty_poisson_batches_still_release_noise():
    # Five rows, expected batch 1: about a third of the batches are empty. Skipping those steps
    # would reveal that the batch was empty, so a noise-only step is taken instead.
    from mlsec_lessons.data import Dataset

    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    y = np.array([0, 1, 0, 1, 0])
    tiny = Dataset("tiny", x, y, x, y, n_classes=2)
    assert any(len(b) == 0 for b in dp_sgd.poisson_batches(5, 0.2, 10, np.random.default_rng(0)))
    run = dp_sgd.train_dp_sgd(tiny, "logistic", batch_size=1, epochs=2, cache=False, seed=0)
    assert run.privacy.steps == 10 and np.all(np.isfinite(run.model.get_weights()[0]))

    keras.utils.set_random_seed(0)
    m = models.build("logistic", (3,), 2)
    before = [w.copy() for w in m.get_weights()]
    _, noise_step = dp_sgd.make_dp_step(m, LOSS, keras.optimizers.SGD(1.0), 1.0, 1.0, 1.0)
    noise_step(tf.constant([0, 0], tf.int64))
    assert all(not np.allclose(a, b) for a, b in zip(before, m.get_weights()))


# --------------------------------------------------------------------------- sequence models
# Three right-padded rows (0 is padding) of a tiny language model: 4, 1 and 7 real targets.
SEQ_X = np.array([[2, 5, 7, 3, 9, 0, 0, 0], [2, 4, 0, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 7, 8, 9]], np.int32)


def tiny_language_model():
    from mlsec_lessons.llm.model import transformer

    keras.utils.set_random_seed(0)
    return transformer(12, context=8, dim=8, heads=2, mlp=16, blocks=1)


def next_tokens(x):
    """Targets (the next token, padding after the last) and the mask of the real ones."""
    y = np.concatenate([x[:, 1:], np.zeros((len(x), 1), x.dtype)], axis=1)
    return y, (y != 0).astype(np.float32)


def sequence_oracle(model, x, y, mask, clip):
    """The definition, one example at a time: its loss is the mean of -log p(target) over its real
    targets; its gradient is clipped; the clipped gradients are summed and divided by B."""
    total = [np.zeros(v.shape) for v in model.trainable_variables]
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            log_p = tf.nn.log_softmax(model(x[i:i + 1], training=True)[0])  # (length, vocab)
            loss = -tf.reduce_sum(tf.gather(log_p, y[i], batch_dims=1) * mask[i]) / mask[i].sum()
        g = [tf.convert_to_tensor(t).numpy().astype(np.float64) for t in tape.gradient(loss, model.trainable_variables)]
        norm = math.sqrt(sum(float(np.sum(t * t)) for t in g))
        for acc, t in zip(total, g):
            acc += t * min(1.0, clip / norm)
    return [t / len(x) for t in total]


@pytest.mark.parametrize("clip", [0.05, 1e3])  # every example clipped; none
def test_sequence_model_clipped_gradient_matches_an_oracle(clip):
    model = tiny_language_model()
    y, mask = next_tokens(SEQ_X)
    got = dp_sgd.privatize_gradients(model, LOSS, SEQ_X, y, l2_norm_clip=clip, noise_multiplier=0.0,
                                     sample_weight=mask / mask.sum(axis=1, keepdims=True))
    assert [tuple(t.shape) for t in got] == [tuple(v.shape) for v in model.trainable_variables]
    want = sequence_oracle(model, SEQ_X, y, mask, clip)
    # against the largest entry of all: the key bias's gradient is 0 up to rounding (softmax ignores a shift)
    scale = max(float(np.max(np.abs(t))) for t in want)
    assert max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in zip(got, want)) < 1e-5 * scale


def test_padding_does_not_count_with_sample_weight():
    model = tiny_language_model()
    y, mask = next_tokens(SEQ_X)
    weight = mask / mask.sum(axis=1, keepdims=True)
    noisy_padding = np.where(SEQ_X == 0, 11, SEQ_X).astype(np.int32)  # what the padded positions read changes
    for w, same in ((weight, True), (None, False)):
        before = dp_sgd.privatize_gradients(model, LOSS, SEQ_X, y, l2_norm_clip=1e3, noise_multiplier=0.0,
                                            sample_weight=w)
        after = dp_sgd.privatize_gradients(model, LOSS, noisy_padding, y, l2_norm_clip=1e3, noise_multiplier=0.0,
                                           sample_weight=w)
        assert all(np.allclose(a, b, atol=1e-7) for a, b in zip(before, after)) == same


def test_attention_models_take_the_loop_which_agrees_with_vmap():
    assert not dp_sgd._pfor_safe(tiny_language_model())  # pfor of attention crashes TensorFlow's oneDNN kernels
    keras.utils.set_random_seed(0)
    model = Residual()
    x = np.random.default_rng(0).normal(size=(6, 12)).astype("float32")
    y = np.arange(6) % 3
    model(x)
    assert dp_sgd._pfor_safe(model)
    loop = dp_sgd.loop_per_example_gradients(model, LOSS, x, y)
    vmap = dp_sgd.vmap_per_example_gradients(model, LOSS, x, y)
    assert max_rel_err(loop, [t.numpy() for t in vmap]) < 1e-5


def test_an_attention_models_dp_step_matches_the_oracle_at_any_batch_size():
    # make_dp_step runs an attention model's per-example gradients under XLA, in fixed-size chunks
    # whose padding rows must count zero: each update is the definition's, whatever the batch size.
    # One step function per case, called on a part of a chunk, one chunk and several (compiled once).
    model, clip = tiny_language_model(), 0.5
    for weighted in (True, False):
        step, _ = dp_sgd.make_dp_step(model, LOSS, keras.optimizers.SGD(1.0), clip, 0.0, 1.0)
        for rows in (3, dp_sgd.XLA_CHUNK, 2 * dp_sgd.XLA_CHUNK + 5):
            x = np.tile(SEQ_X, (rows // 3 + 1, 1))[:rows]
            y, mask = next_tokens(x)
            weight = [tf.constant(mask / mask.sum(axis=1, keepdims=True))] if weighted else []
            if not weighted:  # each example's loss is then Keras' mean over all its positions, padding too
                mask = np.ones_like(mask)
            before = [w.copy() for w in model.get_weights()]
            want = [rows * g for g in sequence_oracle(model, x, y, mask, clip)]  # the clipped sum, at `before`
            loss = float(step(tf.constant(x), tf.constant(y, tf.int64), tf.constant([0, 0], tf.int64), *weight))
            moved = [b - a for a, b in zip(model.get_weights(), before)]  # SGD(1.0), denominator 1: -1 x the sum
            scale = max(float(np.max(np.abs(t))) for t in want)
            error = max(float(np.max(np.abs(m - w))) for m, w in zip(moved, want))
            assert error < 1e-5 * scale, (weighted, rows, error, scale)
            assert math.isfinite(loss) and loss > 0


def test_unit_sample_weights_change_nothing_and_weights_scale_the_loss(digits):
    model = models.build("mlp", digits.input_shape, 10)
    x, y = digits.x_train[:16], digits.y_train[:16]
    plain = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1e3, noise_multiplier=0.0)
    ones = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1e3, noise_multiplier=0.0,
                                      sample_weight=np.ones(16))
    twice = dp_sgd.privatize_gradients(model, LOSS, x, y, l2_norm_clip=1e3, noise_multiplier=0.0,
                                       sample_weight=np.full(16, 2.0))
    assert max_rel_err(ones, [t.numpy() for t in plain]) < 1e-6
    assert max_rel_err(twice, [2 * t.numpy() for t in plain]) < 1e-5


def test_fit_dp_sgd_trains_a_language_model_on_token_ids():
    model = tiny_language_model()
    x = np.tile(SEQ_X, (8, 1))
    y, mask = next_tokens(x)
    before = [w.copy() for w in model.get_weights()]
    spend = dp_sgd.fit_dp_sgd(model, x, y, sample_weight=mask / mask.sum(axis=1, keepdims=True), batch_size=8,
                              epochs=1, noise_multiplier=1.0, learning_rate=0.5, seed=0)
    assert spend.steps == 3 and math.isfinite(spend.epsilon)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not np.allclose(before[0], model.get_weights()[0])


@pytest.mark.parametrize("weight, error, match", [
    (np.ones((3, 7)), ValueError, "sample_weight must have y's shape"),
    (-np.ones((3, 8)), ValueError, "non-negative"),
    (np.full((3, 8), np.nan), ValueError, "finite"),
])
def test_bad_sample_weight(weight, error, match):
    model = tiny_language_model()
    y, _ = next_tokens(SEQ_X)
    with pytest.raises(error, match=match):
        dp_sgd.privatize_gradients(model, LOSS, SEQ_X, y, l2_norm_clip=1.0, noise_multiplier=0.0, sample_weight=weight)
    with pytest.raises(TypeError, match="keras.losses.Loss"):
        dp_sgd.privatize_gradients(model, lambda a, b: LOSS(a, b), SEQ_X, y, l2_norm_clip=1.0, noise_multiplier=0.0,
                                   sample_weight=np.ones((3, 8)))


@pytest.mark.parametrize("arch", ["small_cnn", "mlp"])
def test_gradient_norms_match_the_definition_and_what_clipping_sees(digits, arch):
    keras.utils.set_random_seed(0)
    model = models.build(arch, digits.input_shape, 10)
    x, y = digits.x_train[:16], digits.y_train[:16]
    norms = dp_sgd.gradient_norms(model, LOSS, x, y)
    want = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            loss = LOSS(y[i:i + 1], model(x[i:i + 1], training=True))
        want.append(math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in tape.gradient(loss, model.trainable_variables))))
    assert norms.shape == (16,)
    np.testing.assert_allclose(norms, want, rtol=1e-4)
    # a clip norm above every gradient clips nothing: the clipped sum is the plain sum
    grads = dp_sgd.per_example_gradients(model, LOSS, tf.constant(x), tf.constant(y))
    unclipped = dp_sgd.clip_gradients(grads, float(norms.max()) * 1.01)
    assert max_rel_err([tf.reduce_sum(g, 0) for g in unclipped], [tf.reduce_sum(g, 0).numpy() for g in grads]) < 1e-6


def test_gradient_norms_checks_its_arguments(digits):
    model = models.build("logistic", digits.input_shape, 10)
    with pytest.raises(ValueError, match="rows"):
        dp_sgd.gradient_norms(model, LOSS, digits.x_train[:4], digits.y_train[:3])
