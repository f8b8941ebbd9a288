"""Privacy accounting for DP-SGD with Google's ``dp_accounting``.

DP-SGD runs ``steps`` times a Gaussian mechanism (noise ``sigma * C`` on a sum whose
sensitivity is the clip norm ``C``) on a batch drawn by Poisson sampling: each example
joins each batch independently with probability ``q``. The accountant turns
``(sigma, q, steps)`` into the ``epsilon`` of an ``(epsilon, delta)`` guarantee.

Three things change that number for the *same* training, which is why the lesson says
"epsilon is an assumption":

* the accountant: RDP (Mironov 2017) is an upper bound; PLD (privacy loss distributions)
  is tighter; the "classic" RDP-to-DP conversion TF Privacy used is looser still;
* amplification by sampling: the small ``epsilon`` assumes the batches really were
  Poisson samples and stayed secret. If the batches are known (say a shuffle whose order
  leaks), each example is still touched once per epoch: ``epochs`` Gaussian mechanisms
  (:func:`epsilon_known_batches`). Full-batch gradient descent touches every example at
  every step: ``steps`` of them (:func:`epsilon_full_batch`);
* ``delta``: the guarantee is the pair, and a larger delta buys a smaller epsilon.
"""
import functools
import math

import dp_accounting
import numpy as np

from ..errors import InvalidParameterError
from ..validation import check_fraction, check_int, check_real

ACCOUNTANTS = ("rdp", "pld")


def _check(noise_multiplier, sample_rate, steps, delta):
    """Validate the four numbers every accounting call takes, naming the bad one."""
    check_real(noise_multiplier, "noise_multiplier", min_value=0, include_boundaries="neither")
    check_fraction(sample_rate, "sample_rate", include_boundaries="right")
    check_int(steps, "steps", min_value=1)
    check_fraction(delta, "delta", include_boundaries="neither")


def _check_accountant(accountant):
    if accountant not in ACCOUNTANTS:
        raise InvalidParameterError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def dp_sgd_event(noise_multiplier, sample_rate, steps):
    """The ``DpEvent`` of DP-SGD: ``steps`` Poisson-sampled Gaussian mechanisms.

    Examples
    --------
    >>> dp_sgd_event(1.1, 0.01, 100).count
    100
    """
    step = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sample_rate < 1:  # with q = 1 there is no sampling to amplify anything
        step = dp_accounting.PoissonSampledDpEvent(sample_rate, step)
    return dp_accounting.SelfComposedDpEvent(step, int(steps))


def _fresh(accountant):
    return dp_accounting.rdp.RdpAccountant() if accountant == "rdp" else dp_accounting.pld.PLDAccountant()


def epsilon(noise_multiplier, sample_rate, steps, delta, accountant="rdp"):
    """Epsilon spent by DP-SGD, from dp_accounting.

    Parameters
    ----------
    noise_multiplier : float
        sigma: the noise std divided by the clip norm.
    sample_rate : float
        q: the Poisson sampling probability (expected batch size / dataset size).
    steps : int
        Number of noisy gradient steps.
    delta : float
    accountant : {"rdp", "pld"}, default="rdp"
        Renyi DP (fast, an upper bound) or privacy loss distributions (tighter). With
        ``sample_rate=1``, ``"pld"`` gives the exact epsilon of the composed Gaussian
        (:func:`epsilon_full_batch`).

    Returns
    -------
    float

    Examples
    --------
    TF Privacy's MNIST row: sigma 1.1, batch 256 of 60000, 60 epochs, delta 1e-5.

    >>> q = 256 / 60000
    >>> round(epsilon(1.1, q, math.ceil(60 / q), 1e-5), 2)
    2.6
    >>> round(epsilon(1.1, q, math.ceil(60 / q), 1e-5, accountant="pld"), 2)
    2.38
    """
    _check(noise_multiplier, sample_rate, steps, delta)
    _check_accountant(accountant)
    if accountant == "pld" and sample_rate == 1:
        # no sampling: the composition is exactly one Gaussian, and the exact formula is
        # instant where a PLD of thousands of full-batch steps takes minutes
        return epsilon_full_batch(noise_multiplier, steps, delta)
    return _composed_epsilon(accountant, noise_multiplier, sample_rate, steps, delta)


# The accountant's answers are pure functions of their arguments, and each costs up to seconds of CPU (a
# calibration composes dozens of candidate runs): a process that asks again, as a training's progress bar, a
# notebook and its tests do, gets the answer it already has.
@functools.lru_cache(maxsize=1024)
def _composed_epsilon(accountant, noise_multiplier, sample_rate, steps, delta):
    acct = _fresh(accountant)
    acct.compose(dp_sgd_event(noise_multiplier, sample_rate, steps))
    return float(acct.get_epsilon(delta))


def rdp_curve(noise_multiplier, sample_rate, steps, orders=None):
    """The RDP guarantee ``rdp(alpha)`` of DP-SGD at each order ``alpha`` (from dp_accounting).

    Returns
    -------
    orders, rdp : ndarray
    """
    _check(noise_multiplier, sample_rate, steps, 0.5)
    acct = dp_accounting.rdp.RdpAccountant(orders)
    acct.compose(dp_sgd_event(noise_multiplier, sample_rate, steps))
    return acct.orders, acct.rdp


def epsilon_by_order(noise_multiplier, sample_rate, steps, delta, orders=None):
    """The epsilon each RDP order alpha proves: the curve whose minimum is the RDP epsilon.

    DP-SGD is ``(alpha, rdp(alpha))``-RDP at every order (Mironov 2017, :func:`rdp_curve`); each
    order converts to a DP guarantee, and the accountant reports the best one. The conversion is
    the one dp_accounting uses (Canonne et al. 2020, Proposition 12)::

        eps(alpha) = rdp(alpha) + log(1 - 1/alpha) - log(delta * alpha) / (alpha - 1)

    Parameters
    ----------
    noise_multiplier, sample_rate, steps, delta
        As for :func:`epsilon`.
    orders : sequence of float or None
        The RDP orders; None: dp_accounting's default grid.

    Returns
    -------
    orders, eps : ndarray
        ``eps`` is inf at orders too close to 1 for the conversion (alpha <= 1.01).

    Examples
    --------
    >>> orders, eps = epsilon_by_order(1.1, 0.01, 1000, 1e-5)
    >>> bool(abs(eps.min() - epsilon(1.1, 0.01, 1000, 1e-5)) < 1e-9), float(orders[np.argmin(eps)])
    (True, 9.6)
    """
    _check(noise_multiplier, sample_rate, steps, delta)
    alphas, rdp = rdp_curve(noise_multiplier, sample_rate, steps, orders)
    alphas, rdp = np.asarray(alphas, dtype=float), np.asarray(rdp, dtype=float)
    usable = alphas > 1.01  # the bound divides by alpha - 1
    a = np.where(usable, alphas, 2.0)
    eps = rdp + np.log1p(-1 / a) - np.log(delta * a) / (a - 1)
    return alphas, np.where(usable, np.maximum(eps, 0.0), np.inf)


def classic_rdp_epsilon(noise_multiplier, sample_rate, steps, delta, orders=None):
    """Epsilon by the classic RDP conversion, the one TF Privacy's published tables used.

    Mironov (2017), Proposition 3: an ``(alpha, rdp(alpha))``-RDP mechanism is
    ``(rdp(alpha) + log(1/delta) / (alpha - 1), delta)``-DP for every order alpha; take
    the best order. dp_accounting now uses a tighter conversion (Canonne et al. 2020),
    which is why its RDP epsilon is smaller for the same RDP curve.

    Examples
    --------
    >>> q = 256 / 60000
    >>> round(classic_rdp_epsilon(1.1, q, math.ceil(60 / q), 1e-5), 2)
    3.01
    """
    _check(noise_multiplier, sample_rate, steps, delta)
    alphas, rdp = rdp_curve(noise_multiplier, sample_rate, steps, orders)
    return float(np.min(rdp + math.log(1 / delta) / (alphas - 1)))


def _composed_gaussian_epsilon(noise_multiplier, count, delta):
    """Exact epsilon of ``count`` Gaussian mechanisms of noise multiplier sigma (sensitivity 1).

    ``count`` Gaussians of noise sigma compose exactly to one of noise ``sigma / sqrt(count)``,
    whose epsilon dp_accounting computes exactly (Balle & Wang 2018).
    """
    return float(dp_accounting.get_epsilon_gaussian(noise_multiplier / math.sqrt(count), delta))


def epsilon_full_batch(noise_multiplier, steps, delta):
    """Epsilon of full-batch noisy gradient descent: every step uses every example (q = 1).

    Each of the ``steps`` updates is a Gaussian mechanism on every example, so the
    composition is ``steps`` Gaussians, exactly one of noise ``sigma / sqrt(steps)``. This
    is *not* the guarantee of minibatch DP-SGD whose batches are known: there each example
    is in one batch per epoch (:func:`epsilon_known_batches`).

    Examples
    --------
    >>> round(epsilon_full_batch(1.1, 1, 1e-5), 2)
    3.92
    """
    _check(noise_multiplier, 1.0, steps, delta)
    return _composed_gaussian_epsilon(noise_multiplier, steps, delta)


def epsilon_known_batches(noise_multiplier, epochs, delta):
    """Epsilon of minibatch DP-SGD without amplification: the batches are known, not secret.

    With a shuffle into disjoint batches each example is in exactly one batch per epoch. If
    the adversary knows which batch held it (the shuffle's order leaks, or the batches are
    fixed), sampling hides nothing, but the other steps of the epoch do not touch the
    example either: it meets ``epochs`` Gaussian mechanisms, not ``steps``. (Add-or-remove
    neighbours with the batch assignment of the other examples held fixed.)

    Parameters
    ----------
    noise_multiplier : float
    epochs : int
        Passes over the data: the number of batches that contain any one example.
    delta : float

    Examples
    --------
    TF Privacy's MNIST row (sigma 1.1, 60 epochs): about 54, against 2.6 with secret
    Poisson batches.

    >>> round(epsilon_known_batches(1.1, 60, 1e-5))
    54
    """
    check_int(epochs, "epochs", min_value=1)
    _check(noise_multiplier, 1.0, 1, delta)
    return _composed_gaussian_epsilon(noise_multiplier, epochs, delta)


def epsilon_table(noise_multiplier, sample_rate, steps, delta, epochs=None):
    """The same training, accounted five ways: "epsilon is an assumption".

    The first three rows assume secret Poisson batches; the last two drop amplification by
    sampling. "batches known" composes one Gaussian per epoch (each example is in one batch
    per epoch); "full-batch gradient descent" composes one per step, the training if every
    step used every example.

    Parameters
    ----------
    noise_multiplier, sample_rate, steps, delta
        As for :func:`epsilon`.
    epochs : int or None
        Passes over the data, for the "batches known" row. None: ``steps`` divided by the
        ``ceil(1 / sample_rate)`` batches of one pass, rounded up.

    Returns
    -------
    dict
        ``{description: epsilon}``, from the loosest to the tightest sampled accountant,
        then the two guarantees without amplification by sampling.

    Examples
    --------
    >>> t = epsilon_table(1.1, 0.01, 1000, 1e-5)
    >>> list(t)[0]
    'RDP, classic conversion (TF Privacy tables)'
    >>> list(t)[3:]
    ['batches known, no amplification (one Gaussian per epoch)', 'full-batch gradient descent (q = 1, every step)']
    """
    if epochs is None:
        epochs = math.ceil(steps / math.ceil(1 / sample_rate - 1e-9))
    return {
        "RDP, classic conversion (TF Privacy tables)":
            classic_rdp_epsilon(noise_multiplier, sample_rate, steps, delta),
        "RDP, dp_accounting": epsilon(noise_multiplier, sample_rate, steps, delta, "rdp"),
        "PLD, dp_accounting": epsilon(noise_multiplier, sample_rate, steps, delta, "pld"),
        "batches known, no amplification (one Gaussian per epoch)":
            epsilon_known_batches(noise_multiplier, epochs, delta),
        "full-batch gradient descent (q = 1, every step)":
            epsilon_full_batch(noise_multiplier, steps, delta),
    }


def noise_multiplier_for(target_epsilon, sample_rate, steps, delta, accountant="rdp"):
    """The smallest noise multiplier whose training stays within ``target_epsilon``.

    Solved with ``dp_accounting.calibrate_dp_mechanism`` (Brent's method on the
    accountant's epsilon), so training with the result spends at most the target.

    Examples
    --------
    >>> sigma = noise_multiplier_for(2.0, 0.01, 1000, 1e-5)
    >>> epsilon(sigma, 0.01, 1000, 1e-5) <= 2.0 + 1e-6
    True
    """
    check_real(target_epsilon, "target_epsilon", min_value=0, include_boundaries="neither")
    _check(1.0, sample_rate, steps, delta)
    _check_accountant(accountant)
    if epsilon(0.1, sample_rate, steps, delta) <= target_epsilon:
        raise InvalidParameterError(f"target_epsilon={target_epsilon!r} is so large that noise_multiplier=0.1 already meets "
                         "it; such a training is private in name only")
    return float(_calibrate(accountant, target_epsilon, sample_rate, steps, delta))


@functools.lru_cache(maxsize=256)
def _calibrate(accountant, target_epsilon, sample_rate, steps, delta):
    # Below sigma = 0.1 a "private" training is private in name only (noise_multiplier_for refuses
    # such targets), and the RDP of such tiny noise is slow and unstable, so the search starts there.
    bracket = dp_accounting.LowerEndpointAndGuess(0.1, 1.0)
    make_accountant = lambda: _fresh(accountant)  # noqa: E731
    if accountant == "pld":
        # PLD is tighter than RDP, so it needs at most RDP's sigma: search just below it. A
        # coarser grid (1e-3) keeps the search fast; its pessimistic estimate still bounds
        # epsilon from above, so the sigma it returns is safe for the finer default too.
        sigma_rdp = _calibrate("rdp", target_epsilon, sample_rate, steps, delta)
        bracket = dp_accounting.LowerEndpointAndGuess(0.7 * sigma_rdp, sigma_rdp)
        make_accountant = lambda: dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)  # noqa: E731
    return dp_accounting.calibrate_dp_mechanism(
        make_accountant, lambda s: dp_sgd_event(s, sample_rate, steps),
        target_epsilon, delta, bracket_interval=bracket, tol=1e-4)
