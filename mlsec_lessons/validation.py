"""Argument checks shared by every module, in the style of scikit-learn's ``check_scalar``.

Each check returns the value in its canonical type (``int``, ``float``, a float32 array...) or raises
an error that names the argument: :class:`~mlsec_lessons.errors.ParameterTypeError` (a ``TypeError``)
for the wrong type, :class:`~mlsec_lessons.errors.InvalidParameterError` (a ``ValueError``) for a
value out of range. ``bool`` is never accepted as a number: ``steps=True`` is a bug, not 1.

Randomness follows one convention across the package: a ``seed`` argument is an ``int``, a
:class:`numpy.random.Generator` or ``None`` (fresh entropy), and no library function reseeds the
caller's global random number generators.
"""
import numbers

import numpy as np

from .errors import InvalidParameterError, ParameterTypeError

_BOUNDARIES = ("both", "neither", "left", "right")


def _number(value):
    # an int bound is printed whole (2**32 as 4294967296, not 4.29e+09)
    return str(int(value)) if isinstance(value, numbers.Integral) else f"{value:g}"


def _describe_range(min_value, max_value, include_boundaries):
    left = "[" if include_boundaries in ("both", "left") else "("
    right = "]" if include_boundaries in ("both", "right") else ")"
    lo = "-inf" if min_value is None else _number(min_value)
    hi = "inf" if max_value is None else _number(max_value)
    return f"{left}{lo}, {hi}{right}"


def _check_range(value, name, min_value, max_value, include_boundaries):
    if include_boundaries not in _BOUNDARIES:
        raise InvalidParameterError(f"include_boundaries must be one of {_BOUNDARIES}, got {include_boundaries!r}")
    closed_left = include_boundaries in ("both", "left")
    closed_right = include_boundaries in ("both", "right")
    too_low = min_value is not None and (value < min_value if closed_left else value <= min_value)
    too_high = max_value is not None and (value > max_value if closed_right else value >= max_value)
    if too_low or too_high:
        where = _describe_range(min_value, max_value, include_boundaries)
        raise InvalidParameterError(f"{name} must be in {where}, got {value!r}")


def check_int(value, name, *, min_value=None, max_value=None, include_boundaries="both"):
    """``value`` as a Python ``int`` within the given range.

    Parameters
    ----------
    value : int or numpy integer
        What the caller passed. A float, even ``3.0``, is a ``TypeError``: it usually hides a bug.
    name : str
        The argument's name, for the message.
    min_value, max_value : int, optional
        The range; ``None`` leaves that side open.
    include_boundaries : {"both", "neither", "left", "right"}
        Which ends of the range are allowed.

    Returns
    -------
    int

    Examples
    --------
    >>> check_int(3, "steps", min_value=1)
    3
    >>> check_int(0, "steps", min_value=1)
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: steps must be in [1, inf], got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    _check_range(value, name, min_value, max_value, include_boundaries)
    return value


def check_real(value, name, *, min_value=None, max_value=None, include_boundaries="both", allow_inf=False):
    """``value`` as a finite Python ``float`` within the given range.

    Parameters
    ----------
    value : int, float or numpy number
    name : str
    min_value, max_value : float, optional
    include_boundaries : {"both", "neither", "left", "right"}
    allow_inf : bool
        Accept ``inf`` (but never ``nan``), for the few arguments where infinity means something,
        such as ``norm=np.inf`` or an unbounded privacy budget.

    Examples
    --------
    >>> check_real(0.5, "eps", min_value=0)
    0.5
    >>> check_real(float("nan"), "eps")
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: eps must be a finite number, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    _check_range(value, name, min_value, max_value, include_boundaries)
    return value


def check_fraction(value, name, *, include_boundaries="both"):
    """``value`` as a float in [0, 1] (or the open variant ``include_boundaries`` asks for).

    Examples
    --------
    >>> check_fraction(1, "poison_rate")
    1.0
    >>> check_fraction(1, "sample_rate", include_boundaries="left")
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: sample_rate must be in [0, 1), got 1.0
    """
    return check_real(value, name, min_value=0, max_value=1, include_boundaries=include_boundaries)


def check_choice(value, name, choices):
    """``value`` if it is one of ``choices``, else an error that lists them."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        raise InvalidParameterError(f"{name} must be one of {sorted(map(repr, choices))}, got {value!r}")
    return value


def check_seed(seed, name="seed"):
    """``seed`` as a non-negative ``int``, a :class:`numpy.random.Generator`, or ``None``.

    Examples
    --------
    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: seed must be in [0, inf], got -1
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ParameterTypeError(f"{name} must be an int, a numpy Generator or None, "
                                 f"got {type(seed).__name__} {seed!r}")
    return check_int(seed, name, min_value=0)


def as_generator(seed):
    """A :class:`numpy.random.Generator` for ``seed``: the same one if it already is one.

    Never touches ``np.random``'s global state.
    """
    seed = check_seed(seed)
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def as_int_seed(seed):
    """An ``int`` seed for ``seed``, for libraries that only take ints (Keras, TensorFlow, a cache key).

    An int is returned as is; a Generator gives its next draw; ``None`` draws from fresh entropy.
    """
    seed = check_seed(seed)
    if isinstance(seed, int):
        return seed
    return int(as_generator(seed).integers(0, 2**31 - 1))


def check_bounds(bounds, name="clip"):
    """``bounds`` as a pair of floats ``(lo, hi)`` with ``lo < hi``.

    Examples
    --------
    >>> check_bounds((0, 1))
    (0.0, 1.0)
    """
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ParameterTypeError(f"{name} must be a pair (lo, hi), got {bounds!r}") from None
    lo = check_real(lo, f"{name}[0]")
    hi = check_real(hi, f"{name}[1]")
    if not lo < hi:
        raise InvalidParameterError(f"{name} must be (lo, hi) with lo < hi, got {bounds!r}")
    return lo, hi


def check_labels(y, name="y", *, n_classes=None):
    """``y`` as a 1-D int64 array of class labels, each in ``[0, n_classes)`` when that is given."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D integer labels, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise InvalidParameterError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InvalidParameterError(f"{name} holds labels outside [0, {n_classes}): min {y.min()}, max {y.max()}")
    return y


def check_xy(x, y=None, *, ndim=None, bounds=None, n_classes=None, allow_empty=False, dtype=np.float32):
    """A batch ``x`` as a finite float array, and its labels ``y`` (if given) of the same length.

    Parameters
    ----------
    x : array-like, shape (n, ...)
    y : array-like of int, shape (n,), optional
    ndim : int or tuple of int, optional
        The number of axes ``x`` may have, the batch axis included (2 for tabular rows,
        ``(3, 4)`` for images with or without a channel axis). Default: at least 2.
    bounds : (lo, hi), optional
        Every value of ``x`` must lie inside; an attack cannot keep an input valid that starts
        invalid.
    n_classes : int, optional
        Labels must lie in ``[0, n_classes)``.
    allow_empty : bool
        Accept a batch of zero samples.
    dtype : numpy dtype
        The dtype ``x`` is returned in.

    Returns
    -------
    x : ndarray
    y : ndarray of int64, or None

    Examples
    --------
    >>> x, y = check_xy([[0.0, 1.0]], [1])
    >>> x.dtype, y.tolist()
    (dtype('float32'), [1])
    """
    try:
        x = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"x must be a numeric array, got {type(x).__name__}") from None
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is None and x.ndim < 2 or allowed is not None and x.ndim not in allowed:
        want = "at least 2" if allowed is None else " or ".join(map(str, allowed))
        raise InvalidParameterError(f"x must be a batch with {want} axes (n, ...), got shape {x.shape}")
    if len(x) == 0 and not allow_empty:
        raise InvalidParameterError(f"x must hold at least one sample, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("x holds NaN or infinite values")
    if bounds is not None and x.size:
        lo, hi = check_bounds(bounds)
        if x.min() < lo or x.max() > hi:
            raise InvalidParameterError(f"x lies outside bounds {bounds!r} (min {x.min():.4g}, max {x.max():.4g})")
    if y is None:
        return x, None
    y = check_labels(y, n_classes=n_classes)
    if len(x) != len(y):
        raise InvalidParameterError(f"shape mismatch: x has {len(x)} samples but y has {len(y)}")
    return x, y
