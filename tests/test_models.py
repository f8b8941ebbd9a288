import numpy as np
import pytest

import mlsec_lessons
from mlsec_lessons import data, models
from mlsec_lessons.cache import Fitted
from mlsec_lessons.errors import InvalidParameterError


@pytest.fixture
def cache(fresh_cache):
    return fresh_cache


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_training_learns_and_caches_weights_without_pickle(cache, digits):
    first = models.train(digits, "small_cnn", epochs=8)
    assert isinstance(first, Fitted) and first.privacy is None
    assert not first.provenance.from_cache and first.provenance.seconds > 0
    assert models.accuracy(first.model, digits.x_test, digits.y_test) > 0.85
    files = sorted(p.name for p in (cache / "models").iterdir())
    assert [f for f in files if f.endswith(".weights.npz")] == [first.provenance.cache_path.name]
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    assert not any(hasattr(first.model, name) for name in ("from_cache", "cache_path", "train_seconds"))

    again = models.train(digits, "small_cnn", epochs=8)
    assert again.provenance.from_cache and again.provenance.seconds == 0.0
    assert again.provenance.cache_path == first.provenance.cache_path
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert again.model.optimizer is not None  # compiled, ready for evaluate() and ART


def test_cache_key_covers_config_data_and_seed(cache, digits):
    base = models.train(digits, "logistic", epochs=2)
    other_seed = models.train(digits, "logistic", epochs=2, seed=1)
    other_lr = models.train(digits, "logistic", epochs=2, learning_rate=1e-2)
    other_data = models.train(data.load_digits(seed=3), "logistic", epochs=2)
    paths = {m.provenance.cache_path for m in (base, other_seed, other_lr, other_data)}
    assert len(paths) == 4 and not any(m.provenance.from_cache for m in (other_seed, other_lr, other_data))


def test_training_is_reproducible(cache, digits):
    a = models.train(digits, "logistic", epochs=3, cache=False)
    b = models.train(digits, "logistic", epochs=3, cache=False)
    assert a.provenance.cache_path is None
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_models_output_logits():
    model = models.build("mlp", (30,), 2)
    out = np.asarray(model(np.random.default_rng(0).normal(size=(16, 30)).astype("float32") * 50))
    assert out.shape == (16, 2)
    assert not np.allclose(out.sum(axis=1), 1.0), "outputs look like probabilities, not logits"


def test_bad_training_arguments(cache, digits):
    with pytest.raises(ValueError, match="arch must be one of .*got 'resnet'"):
        models.train(digits, "resnet")
    with pytest.raises(ValueError, match="epochs"):
        models.train(digits, epochs=0)
    with pytest.raises(TypeError, match="epochs"):
        models.train(digits, epochs=2.0)
    with pytest.raises(ValueError, match="learning_rate"):
        models.train(digits, learning_rate=-1)
    with pytest.raises(ValueError, match="seed"):
        models.train(digits, seed=-1)


def test_small_cnn_is_cnn_with_its_defaults():
    a, b = models.small_cnn(), models.cnn(name="small_cnn")
    assert a.name == "small_cnn" and [layer.output.shape for layer in a.layers] == [
        layer.output.shape for layer in b.layers]
    assert a.count_params() == 79_242


def test_seed_everything_validates():
    assert mlsec_lessons.seed_everything(3) == 3
    with pytest.raises(ValueError, match="seed"):
        mlsec_lessons.seed_everything(-1)


# --------------------------------------------------------------------------- the course's trainer
def _twins(build):
    """Two models with the same initial weights."""
    a, b = build(), build()
    b.set_weights(a.get_weights())
    return a, b


@pytest.mark.parametrize("jit_compile", [False, True], ids=["one compiled epoch", "XLA step per batch"])
def test_fit_epochs_takes_the_same_adam_steps_as_keras_fit(digits, jit_compile):
    # one batch per epoch: the order cannot matter, so both must compute the same steps
    x, y = digits.x_train[:128], digits.y_train[:128]

    def build():
        model = models.compile_for_training(models.build("mlp", digits.input_shape, 10))
        model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=jit_compile)
        return model

    ours, peer = _twins(build)
    assert ours.jit_compile == jit_compile
    models.fit_epochs(ours, x, y, epochs=3, batch_size=128, progress=False)
    peer.fit(x, y, epochs=3, batch_size=128, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), peer.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fit_epochs_weights_the_loss_as_keras_fit_does(digits):
    x, y = digits.x_train[:64], digits.y_train[:64]
    weight = np.linspace(0.0, 2.0, 64).astype(np.float32)
    ours, peer = _twins(lambda: models.compile_for_training(models.build("logistic", digits.input_shape, 10)))
    models.fit_epochs(ours, x, y, sample_weight=weight, epochs=2, batch_size=64, progress=False)
    peer.fit(x, y, sample_weight=weight, epochs=2, batch_size=64, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), peer.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fit_epochs_shuffles_by_its_seed_and_uses_every_row(digits):
    x, y = digits.x_train[:200], digits.y_train[:200]

    def trained(seed, rows=slice(None)):
        mlsec_lessons.seed_everything(0)
        model = models.compile_for_training(models.build("logistic", digits.input_shape, 10))
        losses = models.fit_epochs(model, x[rows], y[rows], epochs=2, batch_size=64, seed=seed, progress=False)
        assert len(losses) == 2 and all(np.isfinite(losses))
        return model.get_weights()[0]

    np.testing.assert_array_equal(trained(0), trained(0))
    assert not np.array_equal(trained(0), trained(1))  # another order, other steps
    assert not np.array_equal(trained(0), trained(0, slice(0, 199)))  # the last, partial batch is trained on


def test_fit_epochs_rejects_bad_input(digits):
    model = models.build("logistic", digits.input_shape, 10)
    x, y = digits.x_train[:10], digits.y_train[:10]
    with pytest.raises(InvalidParameterError, match="compiled"):
        models.fit_epochs(model, x, y, epochs=1, progress=False)
    models.compile_for_training(model)
    with pytest.raises(InvalidParameterError, match="same number of rows"):
        models.fit_epochs(model, x, y[:9], epochs=1, progress=False)
    with pytest.raises(InvalidParameterError, match="same number of rows"):
        models.fit_epochs(model, x[:0], y[:0], epochs=1, progress=False)
    with pytest.raises(InvalidParameterError, match="sample_weight"):
        models.fit_epochs(model, x, y, sample_weight=np.ones(9), epochs=1, progress=False)
    with pytest.raises(InvalidParameterError, match="epochs"):
        models.fit_epochs(model, x, y, epochs=0, progress=False)
