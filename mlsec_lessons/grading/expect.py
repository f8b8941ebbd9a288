"""Assertions for the checks, with failure messages written for a student."""
import numpy as np


def show(value, width=80):
    """A short, readable rendering of a result: ``0.5``, ``[1. 0.5]``, ``None``."""
    try:
        if np.ndim(value) == 0 and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return f"{float(value):.4g}"
        if isinstance(value, np.ndarray):
            text = np.array2string(value, precision=4, separator=", ")
        else:
            text = repr(value)
    except Exception:  # a student's object whose repr fails is still something to show
        text = object.__repr__(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def expect_close(got, want, call, why=""):
    """Assert that ``got`` has the shape of ``want`` and is close to it.

    ``call`` names what was called (``"attack_success_rate(y, clean, adv)"``); ``why`` explains
    the expected value.

    Examples
    --------
    >>> expect_close(0.5, 0.5, "f()")
    """
    try:
        got_array = np.asarray(got, dtype=float)
        ok = got_array.shape == np.shape(want) and np.allclose(got_array, want, rtol=1e-7, atol=1e-9)
    except (TypeError, ValueError):  # None, a string, a ragged list: not a number
        ok = False
    assert ok, f"{call} returned {show(got)}, expected {show(want)}" + (f": {why}" if why else "")


def expect_value_error(fn, why, *args):
    """Assert that ``fn(*args)`` raises ValueError; ``why`` completes "should raise ValueError ...".

    NotImplementedError passes through, so that the grader can show the stub's hint.
    """
    try:
        got = fn(*args)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as e:
        raise AssertionError(f"{fn.__name__} should raise ValueError {why}, "
                             f"but raised {type(e).__name__}: {e}") from None
    raise AssertionError(f"{fn.__name__} should raise ValueError {why}, but returned {show(got)}")
