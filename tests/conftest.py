"""Fixtures that several test modules share, so that each trained model is trained once per run."""
import pytest

from mlsec_lessons import data, models


@pytest.fixture(scope="session")
def digits():
    return data.load_digits()


@pytest.fixture(scope="session")
def small_cnn(digits):
    """A clean small CNN (not from the cache: the tests must not trust an earlier run's weights)."""
    return models.train(digits, "small_cnn", epochs=15, seed=0, cache=False)
