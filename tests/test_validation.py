"""The shared argument checks: every boundary, every type, one error hierarchy."""
import numpy as np
import pytest

from mlsec_lessons.errors import InvalidParameterError, MLSecError, ParameterTypeError, RunError, SecurityError
from mlsec_lessons.validation import (
    as_generator,
    as_int_seed,
    check_bounds,
    check_choice,
    check_fraction,
    check_int,
    check_labels,
    check_real,
    check_seed,
    check_xy,
)


def test_error_hierarchy():
    assert issubclass(InvalidParameterError, ValueError) and issubclass(InvalidParameterError, MLSecError)
    assert issubclass(ParameterTypeError, TypeError) and issubclass(ParameterTypeError, MLSecError)
    assert issubclass(SecurityError, MLSecError) and not issubclass(SecurityError, ValueError)
    assert issubclass(RunError, MLSecError) and issubclass(RunError, RuntimeError)


@pytest.mark.parametrize("value", [1, 5, np.int64(3)])
def test_check_int_accepts(value):
    out = check_int(value, "steps", min_value=1, max_value=5)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, 6, -1])
def test_check_int_range(value):
    with pytest.raises(InvalidParameterError, match="steps must be in \\[1, 5\\]"):
        check_int(value, "steps", min_value=1, max_value=5)


@pytest.mark.parametrize("value", [True, 2.0, "3", None, np.float32(1)])
def test_check_int_type(value):
    with pytest.raises(ParameterTypeError, match="steps must be an int"):
        check_int(value, "steps")


@pytest.mark.parametrize("bounds, value, ok", [
    ("both", 0, True), ("both", 1, True), ("neither", 0, False), ("neither", 1, False),
    ("left", 0, True), ("left", 1, False), ("right", 0, False), ("right", 1, True),
])
def test_include_boundaries(bounds, value, ok):
    if ok:
        assert check_real(value, "r", min_value=0, max_value=1, include_boundaries=bounds) == value
    else:
        with pytest.raises(InvalidParameterError):
            check_real(value, "r", min_value=0, max_value=1, include_boundaries=bounds)


def test_include_boundaries_must_be_known():
    with pytest.raises(InvalidParameterError, match="include_boundaries"):
        check_real(0.5, "r", min_value=0, include_boundaries="closed")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_real_not_finite(value):
    with pytest.raises(InvalidParameterError, match="finite"):
        check_real(value, "eps")


def test_check_real_inf_when_allowed():
    assert check_real(np.inf, "norm", allow_inf=True) == np.inf
    with pytest.raises(InvalidParameterError):
        check_real(np.nan, "norm", allow_inf=True)


@pytest.mark.parametrize("value", [True, "0.1", None, [0.1]])
def test_check_real_type(value):
    with pytest.raises(ParameterTypeError):
        check_real(value, "eps")


@pytest.mark.parametrize("value, ok", [(0, True), (1, True), (0.5, True), (-1e-9, False), (1 + 1e-9, False)])
def test_check_fraction(value, ok):
    if ok:
        assert check_fraction(value, "rate") == value
    else:
        with pytest.raises(InvalidParameterError, match="rate must be in \\[0, 1\\]"):
            check_fraction(value, "rate")


def test_check_choice():
    assert check_choice("inf", "norm", {"inf", "2"}) == "inf"
    with pytest.raises(InvalidParameterError, match="norm must be one of"):
        check_choice("1", "norm", {"inf", "2"})
    with pytest.raises(InvalidParameterError):
        check_choice([1], "norm", {"inf", "2"})


def test_seed_convention():
    gen = np.random.default_rng(0)
    assert check_seed(None) is None and check_seed(gen) is gen and check_seed(np.int32(4)) == 4
    with pytest.raises(InvalidParameterError):
        check_seed(-1)
    for bad in (1.5, "1", True, np.random.RandomState(0)):
        with pytest.raises(ParameterTypeError, match="seed must be an int, a numpy Generator or None"):
            check_seed(bad)


def test_generators_never_touch_global_state():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    as_generator(5).random()
    as_int_seed(None)
    as_int_seed(np.random.default_rng(1))
    assert np.random.rand() == expected
    assert as_generator(5).random() == as_generator(5).random()
    gen = np.random.default_rng(0)
    assert as_generator(gen) is gen
    assert as_int_seed(7) == 7 and isinstance(as_int_seed(None), int)
    assert as_int_seed(np.random.default_rng(2)) == as_int_seed(np.random.default_rng(2))


def test_check_bounds():
    assert check_bounds([0, 1]) == (0.0, 1.0)
    with pytest.raises(InvalidParameterError, match="lo < hi"):
        check_bounds((1, 1))
    with pytest.raises(ParameterTypeError, match="pair"):
        check_bounds(1.0)
    with pytest.raises(InvalidParameterError):
        check_bounds((0, np.nan))


def test_check_labels():
    assert check_labels([0, 1.0, 2], n_classes=3).dtype == np.int64
    with pytest.raises(InvalidParameterError, match="outside"):
        check_labels([0, 3], n_classes=3)
    with pytest.raises(InvalidParameterError, match="outside"):
        check_labels([-1, 0], n_classes=3)
    with pytest.raises(InvalidParameterError, match="integer class labels"):
        check_labels([0.5])
    with pytest.raises(InvalidParameterError, match="1-D"):
        check_labels([[0]])


def test_check_xy():
    x, y = check_xy(np.zeros((2, 3)), [0, 1], bounds=(0, 1), n_classes=2)
    assert x.dtype == np.float32 and y.tolist() == [0, 1]
    assert check_xy(np.zeros((2, 4, 4)), ndim=(3, 4))[1] is None
    with pytest.raises(InvalidParameterError, match="axes"):
        check_xy(np.zeros(3))
    with pytest.raises(InvalidParameterError, match="axes"):
        check_xy(np.zeros((2, 3)), ndim=(3, 4))
    with pytest.raises(InvalidParameterError, match="at least one sample"):
        check_xy(np.zeros((0, 3)))
    assert len(check_xy(np.zeros((0, 3)), allow_empty=True)[0]) == 0
    with pytest.raises(InvalidParameterError, match="NaN"):
        check_xy(np.array([[np.nan, 0.0]]))
    with pytest.raises(InvalidParameterError, match="outside bounds"):
        check_xy(np.array([[1.5]]), bounds=(0, 1))
    with pytest.raises(InvalidParameterError, match="mismatch"):
        check_xy(np.zeros((2, 3)), [0])
    with pytest.raises(ParameterTypeError):
        check_xy([["a", "b"]])
