import numpy as np
import pytest

import mlsec_lessons
from mlsec_lessons import data, models
from mlsec_lessons.cache import Fitted


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
