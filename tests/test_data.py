import numpy as np
import pytest

from mlsec_lessons import data
from mlsec_lessons.errors import InvalidParameterError


def test_digits_are_images_in_unit_range():
    d = data.load_digits()
    assert d.x_train.shape[1:] == (8, 8, 1) and d.x_train.dtype == np.float32
    assert len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0 and d.x_train.max() > 0.9
    assert d.clip == (0.0, 1.0) and d.n_classes == 10


@pytest.mark.parametrize("name", sorted(data.LOADERS))
def test_loaders_are_deterministic_and_seedable(name):
    a, b, c = data.load(name, seed=0), data.load(name, seed=0), data.load(name, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)


@pytest.mark.parametrize("name", sorted(data.LOADERS))
def test_splits_are_stratified(name):
    d = data.load(name, test_size=0.25)
    p_train = np.bincount(d.y_train) / len(d.y_train)
    p_test = np.bincount(d.y_test, minlength=len(p_train)) / len(d.y_test)
    np.testing.assert_allclose(p_train, p_test, atol=0.01)
    assert abs(len(d.y_test) / (len(d.y_test) + len(d.y_train)) - 0.25) < 0.01


def test_breast_cancer_is_scaled_on_train_statistics():
    d = data.load_breast_cancer()
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(axis=0), 1, atol=1e-3)
    m = data.load_breast_cancer(scale="minmax")
    assert m.clip == (0.0, 1.0) and m.x_test.min() >= 0 and m.x_test.max() <= 1


def test_fraud_is_imbalanced_with_learnable_signal():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    d = data.make_fraud()
    assert 0.008 <= d.y_train.mean() <= 0.012
    clf = LogisticRegression(max_iter=500).fit(d.x_train, d.y_train)
    assert roc_auc_score(d.y_test, clf.predict_proba(d.x_test)[:, 1]) > 0.8


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="mnist"), "name must be one of .*got 'mnist'"),
    (dict(name="digits", test_size=0), "test_size"),
    (dict(name="digits", test_size=1.5), "test_size"),
    (dict(name="digits", seed=-1), "seed"),
    (dict(name="breast_cancer", scale="robust"), "scale"),
    (dict(name="fraud", fraud_rate=0.7), "fraud_rate"),
    (dict(name="fraud", n_samples=50), "fewer than"),
])
def test_bad_arguments_are_rejected_clearly(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        data.load(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="digits", test_size="0.3"), "test_size must be a real number"),
    (dict(name="digits", seed=0.5), "seed must be an int"),
    (dict(name="fraud", n_samples=5e4), "n_samples must be an int"),
])
def test_wrong_types_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        data.load(**kwargs)
