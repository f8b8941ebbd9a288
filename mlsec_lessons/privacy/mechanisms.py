"""The Laplace and Gaussian mechanisms, with the sensitivity stated, and the source's non-DP noise.

A mechanism is DP for a *query* whose sensitivity it knows: the most one person can move
the query's answer. Laplace noise of scale ``Delta_1 / epsilon`` makes an answer of L1
sensitivity ``Delta_1`` epsilon-DP; Gaussian noise of std ``sigma * Delta_2`` makes an
answer of L2 sensitivity ``Delta_2`` (epsilon, delta)-DP. The sensitivity comes from the
query and from bounds known before looking at the data (``lower``, ``upper``). Without
bounds there is no finite sensitivity, and no noise scale is enough.

Neighbouring datasets here differ in one record *replaced* by another (the bounded
definition); :func:`neighbour_gap` measures a query's sensitivity on a dataset by brute
force, so a stated sensitivity can be checked.
"""
import math

import dp_accounting
import numpy as np

from ..errors import InvalidParameterError
from ..validation import as_generator, check_choice, check_int, check_real


def _positive(value, name):
    return check_real(value, name, min_value=0, include_boundaries="neither")


def laplace(value, sensitivity, epsilon, seed=None):
    """epsilon-DP release of ``value``, a query answer of L1 sensitivity ``sensitivity``.

    Adds Laplace noise of scale ``b = sensitivity / epsilon`` to each coordinate. The
    privacy loss ``log p(o | D) / p(o | D')`` is at most ``|f(D) - f(D')|_1 / b <= epsilon``.

    Parameters
    ----------
    value : float or array-like
        The true answer f(D).
    sensitivity : float
        max over neighbours ``|f(D) - f(D')|_1``; it must come from the query and
        data-independent bounds, not from the data.
    epsilon : float
    seed : int, numpy Generator or None
        The noise's randomness; ``None`` draws fresh entropy.

    Examples
    --------
    >>> round(float(laplace(10.0, sensitivity=1.0, epsilon=1.0, seed=0)), 3)
    10.32
    """
    scale = _positive(sensitivity, "sensitivity") / _positive(epsilon, "epsilon")
    value = np.asarray(value, dtype=float)
    return value + as_generator(seed).laplace(0.0, scale, size=value.shape)


def gaussian_sigma(sensitivity, epsilon, delta, calibration="analytic"):
    """Noise std for an (epsilon, delta)-DP Gaussian mechanism of L2 sensitivity ``sensitivity``.

    * ``"analytic"`` (Balle & Wang 2018, via ``dp_accounting.get_sigma_gaussian``): the
      smallest sigma that works, for any epsilon.
    * ``"classic"`` (Dwork & Roth 2014, Thm A.1): ``sqrt(2 ln(1.25/delta)) / epsilon``,
      proven only for epsilon < 1, and larger than needed.

    Examples
    --------
    >>> round(gaussian_sigma(1.0, 0.5, 1e-5, "classic"), 2), round(gaussian_sigma(1.0, 0.5, 1e-5), 2)
    (9.69, 7.03)
    """
    sensitivity, epsilon = _positive(sensitivity, "sensitivity"), _positive(epsilon, "epsilon")
    delta = check_real(delta, "delta", min_value=0, max_value=1, include_boundaries="neither")
    check_choice(calibration, "calibration", ("analytic", "classic"))
    if calibration == "analytic":
        return sensitivity * float(dp_accounting.get_sigma_gaussian(epsilon, delta))
    if epsilon >= 1:  # the classic calibration
        raise InvalidParameterError(f"the classic calibration is proven only for epsilon < 1, got epsilon={epsilon!r}; "
                                    "use calibration='analytic'")
    return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def gaussian(value, sensitivity, epsilon, delta, seed=None, calibration="analytic"):
    """(epsilon, delta)-DP release of ``value``, a query answer of L2 sensitivity ``sensitivity``.

    Examples
    --------
    >>> round(float(gaussian(10.0, sensitivity=1.0, epsilon=1.0, delta=1e-5, seed=0)), 3)
    10.469
    """
    sigma = gaussian_sigma(sensitivity, epsilon, delta, calibration)
    value = np.asarray(value, dtype=float)
    return value + as_generator(seed).normal(0.0, sigma, size=value.shape)


def _bounds(lower, upper):
    lower, upper = check_real(lower, "lower"), check_real(upper, "upper")
    if not lower < upper:
        raise InvalidParameterError(f"lower and upper must be finite with lower < upper, got lower={lower!r}, upper={upper!r}")
    return lower, upper


def mean_sensitivity(n, lower, upper):
    """L1 sensitivity of the mean of ``n`` values clipped to [lower, upper]: ``(upper - lower) / n``.

    Replacing one record moves the clipped sum by at most ``upper - lower``; ``n`` is public.

    Examples
    --------
    >>> mean_sensitivity(100, 0.0, 1.0)
    0.01
    """
    n = check_int(n, "n", min_value=1)
    lower, upper = _bounds(lower, upper)
    return (upper - lower) / n


def clipped_mean(x, lower, upper):
    """The query the DP mean answers: the mean of ``x`` clipped to data-independent bounds."""
    lower, upper = _bounds(lower, upper)
    return float(np.mean(np.clip(np.asarray(x, dtype=float), lower, upper)))


def dp_mean(x, lower, upper, epsilon, seed=None):
    """epsilon-DP mean of a 1-D sample, with bounds known a priori (e.g. pixel intensities in [0, 1]).

    Examples
    --------
    >>> x = np.linspace(0, 1, 1001)
    >>> abs(dp_mean(x, 0.0, 1.0, epsilon=1.0, seed=0) - 0.5) < 0.01
    True
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise InvalidParameterError(f"x must be a non-empty 1-D array, got shape {x.shape}")
    sensitivity = mean_sensitivity(len(x), lower, upper)
    return float(laplace(clipped_mean(x, lower, upper), sensitivity, epsilon, seed))


def neighbour_gap(query, x, lower, upper):
    """The largest change of ``query`` when one record of ``x`` is replaced by ``lower`` or ``upper``.

    A brute-force look at local sensitivity: for queries monotone in each record (sums,
    clipped means, counts) the extremes of the domain are the worst replacements. A stated
    sensitivity must be at least this large on every dataset.

    Examples
    --------
    >>> x = np.array([0.2, 0.5, 0.9])
    >>> round(neighbour_gap(lambda v: clipped_mean(v, 0, 1), x, 0.0, 1.0), 4)  # 0.9 -> 0 moves the mean by 0.3
    0.3
    """
    x = np.asarray(x, dtype=float)
    lower, upper = _bounds(lower, upper)
    base = np.asarray(query(x), dtype=float)
    gap = 0.0
    for i in range(len(x)):
        for extreme in (lower, upper):
            neighbour = x.copy()
            neighbour[i] = extreme
            gap = max(gap, float(np.sum(np.abs(np.asarray(query(neighbour), dtype=float) - base))))
    return gap


def source_feature_noise(x, epsilon, seed=None):
    """The source material's "differential privacy": Laplace(1/epsilon) noise added to every feature.

    Kept to show what is wrong with it. It is **not** DP:

    * the scale ``1/epsilon`` assumes sensitivity 1, but the features are unbounded (a
      tumour area of 2500 moves by 2500, not 1), so no scale is justified;
    * the labels are released (and learned) untouched;
    * delta is never used, and the "budget" is not composed over anything.

    Examples
    --------
    >>> source_feature_noise(np.zeros((2, 3)), epsilon=1.0, seed=0).shape
    (2, 3)
    """
    epsilon = _positive(epsilon, "epsilon")
    x = np.asarray(x, dtype=float)
    return x + as_generator(seed).laplace(0.0, 1.0 / epsilon, size=x.shape)
