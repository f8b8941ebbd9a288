"""Gradient inversion (DLG / iDLG): the label rule, the matching objective, the attack's success on a raw
update and its failure on a clipped and noised one, cross-checked against the closed form of a dense layer."""
import keras
import numpy as np
import pytest

from mlsec_lessons.data import load_digits
from mlsec_lessons.errors import InvalidParameterError, MLSecError
from mlsec_lessons.federated import inversion
from mlsec_lessons.privacy.dp_sgd import privatize_gradients

RAW_MSE = 1e-4  # a rebuilt image this close is the client's image


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return inversion.inversion_mlp()  # the server's freshly initialised model, round one


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# --------------------------------------------------------------------------- iDLG's label rule
def test_idlg_reads_the_label_off_hand_made_bias_gradients():
    rng = np.random.default_rng(0)
    for label in range(10):
        bias = softmax(rng.normal(size=10) * 3) - np.eye(10)[label]  # d CE / d logits = p - onehot(y)
        assert inversion.idlg_label([np.zeros((4, 10)), bias]) == label
    with pytest.raises(InvalidParameterError, match="output bias"):
        inversion.idlg_label([np.zeros((4, 10))])


def test_idlg_recovers_every_label_from_the_real_model(model, digits):
    first = [int(np.flatnonzero(digits.y_train == c)[0]) for c in range(10)]
    recovered = [inversion.idlg_label(inversion.client_gradient(model, digits.x_train[[i]], digits.y_train[[i]]))
                 for i in first]
    assert recovered == list(range(10))


# --------------------------------------------------------------------------- the update and the objective
def test_client_gradient_is_dp_sgd_without_clipping_or_noise_and_leaks_its_input(model, digits):
    x, y = digits.x_train[:1], digits.y_train[:1]
    g = inversion.client_gradient(model, x, y)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    library = privatize_gradients(model, loss, x, y, l2_norm_clip=1e9, noise_multiplier=0.0)
    for ours, theirs in zip(g, library):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-8)
    # the first dense layer's kernel gradient is x * delta: one division gives the image back
    np.testing.assert_allclose(inversion.analytic_input(g), x.ravel(), atol=1e-4)


def test_clipping_scales_the_update_to_the_norm_and_noise_moves_it(model, digits):
    x, y = digits.x_train[:1], digits.y_train[:1]
    raw = inversion.client_gradient(model, x, y)
    clipped = inversion.clipped_noised_gradient(model, x, y, l2_norm_clip=0.01, noise_multiplier=0.0)
    assert np.sqrt(sum(float((g ** 2).sum()) for g in clipped)) == pytest.approx(0.01, rel=1e-4)
    # clipping alone only rescales: the division still gives the image
    np.testing.assert_allclose(inversion.analytic_input(clipped), inversion.analytic_input(raw), atol=1e-4)
    noised = inversion.clipped_noised_gradient(model, x, y, l2_norm_clip=0.01, noise_multiplier=1.0, seed=0)
    again = inversion.clipped_noised_gradient(model, x, y, l2_norm_clip=0.01, noise_multiplier=1.0, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(noised, again))
    assert np.abs(inversion.analytic_input(noised) - x.ravel()).max() > 0.1


def test_matching_objective_is_zero_at_the_true_input_only(model, digits):
    x, y = digits.x_train[:2], digits.y_train[:2]
    observed = inversion.client_gradient(model, x, y)
    assert inversion.gradient_distance(model, x, y, observed) == 0.0
    assert inversion.gradient_distance(model, digits.x_train[2:4], y, observed) > 1e-6
    clipped = inversion.clipped_noised_gradient(model, x[:1], y[:1], l2_norm_clip=0.01, noise_multiplier=0.0)
    assert inversion.gradient_distance(model, x[:1], y[:1], clipped, l2_norm_clip=0.01) < 1e-12
    assert inversion.gradient_distance(model, x[:1], y[:1], clipped) > 1e-3  # unclipped candidate: no match


# --------------------------------------------------------------------------- the attack
def test_raw_single_image_update_is_rebuilt(model, digits):
    result = inversion.attack(model, digits.x_train[5:6], digits.y_train[5:6], variant="raw", seed=0)
    assert result.label == result.true_label == digits.y_train[5]
    assert result.mse < RAW_MSE and result.psnr > 40
    assert result.gradient_distance < 1e-8
    frame = result.to_frame()
    assert "reconstruction" not in frame and frame.loc[0, "mse"] == result.mse


def test_clipped_and_noised_update_is_not_rebuilt(model, digits):
    x, y = digits.x_train[5:6], digits.y_train[5:6]
    result = inversion.attack(model, x, y, variant="clipped+noised", l2_norm_clip=1.0, noise_multiplier=1.0, seed=0)
    baseline = inversion.label_only_mse(x, y, digits.x_test, digits.y_test)
    assert result.mse > 100 * RAW_MSE
    assert result.mse > baseline  # worse than the class's mean image
    assert result.noise_multiplier == 1.0 and result.l2_norm_clip == 1.0


def test_clipping_without_noise_does_not_protect(model, digits):
    result = inversion.attack(model, digits.x_train[5:6], digits.y_train[5:6], variant="clipped+noised",
                              l2_norm_clip=0.01, noise_multiplier=0.0, seed=0)
    assert result.mse < RAW_MSE and result.label == result.true_label


def test_plot_inversions_draws_each_attack(model, digits):
    import matplotlib

    matplotlib.use("Agg")
    result = inversion.attack(model, digits.x_train[:1], digits.y_train[:1], max_iter=5, seed=0)
    axes = inversion.plot_inversions([result, result])
    assert axes.shape == (2, 2) and axes[1, 0].get_images()
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("call, match", [
    (lambda m, d: inversion.client_gradient(m, d.x_train[:1, :, :4], d.y_train[:1]), "shape"),
    (lambda m, d: inversion.client_gradient(m, d.x_train[:1, :, :, 0], d.y_train[:1]), "shape"),
    (lambda m, d: inversion.client_gradient(m, d.x_train[:0], d.y_train[:0]), "batch of 0"),
    (lambda m, d: inversion.client_gradient(m, d.x_train[:2], d.y_train[:1]), "rows"),
    (lambda m, d: inversion.attack(m, d.x_train[:1], d.y_train[:1], variant="clipped+noised",
                                   noise_multiplier=-0.1), "noise_multiplier"),
    (lambda m, d: inversion.attack(m, d.x_train[:2], d.y_train[:2], variant="raw"), "one image"),
    (lambda m, d: inversion.attack(m, d.x_train[:1], d.y_train[:1], variant="secagg"), "variant"),
    (lambda m, d: inversion.invert_gradient(m, inversion.client_gradient(m, d.x_train[:1], d.y_train[:1]), []),
     "at least one"),
    (lambda m, d: inversion.label_only_mse(d.x_train[:1], [3], d.x_test[:0], d.y_test[:0]), "no image"),
])
def test_bad_arguments_are_refused_with_their_name(model, digits, call, match):
    with pytest.raises(MLSecError, match=match):
        call(model, digits)
