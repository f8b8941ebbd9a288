"""models.cnn: small_cnn with depth and dropout as arguments (lesson 03's architecture experiment)."""
import keras
import numpy as np
import pytest

from mlsec_lessons import models


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def test_default_cnn_has_small_cnns_layers():
    default, small = models.cnn(), models.small_cnn()
    assert _kinds(default) == _kinds(small)
    assert default.count_params() == small.count_params() == 79_242
    for a, b in zip(default.layers, small.layers):
        assert a.get_config().get("padding") == b.get_config().get("padding")


@pytest.mark.parametrize("filters, n_conv", [((16,), 1), ((16, 32), 2), ((16, 32, 32), 3)])
def test_filters_set_the_number_of_conv_layers(filters, n_conv):
    model = models.cnn(filters=filters)
    assert _kinds(model).count("Conv2D") == n_conv
    assert model.output_shape == (None, 10)  # logits, whatever the depth


def test_dropout_adds_dropout_layers_that_act_only_in_training():
    model = models.cnn(dropout=0.5)
    assert _kinds(model).count("Dropout") == 2 and models.cnn().count_params() == model.count_params()
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))  # deterministic at inference


@pytest.mark.parametrize("dropout", [-0.1, 1.0, float("nan")])
def test_bad_dropout_is_refused(dropout):
    with pytest.raises(ValueError, match="dropout"):
        models.cnn(dropout=dropout)


def test_build_and_train_know_cnn_and_cache_by_its_arguments(digits, fresh_cache):
    assert isinstance(models.build("cnn", digits.input_shape, digits.n_classes, filters=(8,)), keras.Model)
    first = models.train(digits, "cnn", epochs=1, batch_size=256, filters=(8,), progress=False)
    again = models.train(digits, "cnn", epochs=1, batch_size=256, filters=(8,), progress=False)
    other = models.train(digits, "cnn", epochs=1, batch_size=256, filters=(8,), dropout=0.5, progress=False)
    assert not first.provenance.from_cache and again.provenance.from_cache and not other.provenance.from_cache
    assert first.provenance.cache_path != other.provenance.cache_path
