"""STRIP (Gao et al., 2019): spotting triggered inputs at run time by the entropy of superimposed copies.

Superimpose an input on a few clean images and classify each mix. A clean input's identity is
blurred by the mix, so the predictions vary and their entropy is high; an input carrying a
trigger keeps being sent to the target class whatever it is mixed with, so the entropy is low.
An input is flagged when its mean entropy is below a threshold set on clean inputs: the
``false_alarm`` quantile of a normal fitted to their entropies (as ART's ``STRIP`` does).

How the images are superimposed decides the outcome. ART's ``STRIP`` blends ``0.5 * x + 0.5 *
x_clean``; on the course's 8x8 digits the trigger sits on blank pixels, so the blend halves it
and the backdoor often no longer fires. ``blend="max"`` (the pixelwise maximum, ink over ink)
keeps the trigger at full strength. ART's entropy is also taken along the samples axis
(``entropy(..., axis=0)``), where the paper takes each prediction's entropy over the classes;
:func:`strip_entropy` follows the paper.
"""
import numpy as np

from ..errors import InvalidParameterError
from ..validation import as_generator, check_fraction, check_int, check_real
from ._common import check_images


def _probabilities(model, x):
    logits = np.asarray(model(x, training=False), np.float64)
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def strip_entropy(model, x, x_clean, *, n_samples=20, blend="max", seed=0):
    """Mean prediction entropy (bits) of each input superimposed on ``n_samples`` random clean images.

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    x : array, shape (n, h, w, c)
        The inputs to test.
    x_clean : array, shape (m, h, w, c)
        Clean images to superimpose (a defender's held-out set).
    n_samples : int, default=20
    blend : "max" or float in (0, 1), default="max"
        ``"max"``: the pixelwise maximum; a float ``a``: ``a * x + (1 - a) * x_clean`` (ART: 0.5).
    seed : int or numpy Generator

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> import keras, numpy as np
    >>> flat = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> h = strip_entropy(flat, np.zeros((3, 8, 8, 1)), np.zeros((5, 8, 8, 1)))  # all inputs alike
    >>> h.shape, bool(np.allclose(h, h[0]))
    ((3,), True)
    """
    x, x_clean = check_images(x), check_images(x_clean)
    if x.shape[1:] != x_clean.shape[1:]:
        raise InvalidParameterError(f"x has images of shape {x.shape[1:]} but x_clean {x_clean.shape[1:]}")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    if not (isinstance(blend, str) and blend == "max"):
        blend = check_real(blend, "blend", min_value=0, max_value=1, include_boundaries="neither")
    pick = as_generator(seed).integers(0, len(x_clean), size=(len(x), n_samples))
    others = x_clean[pick]
    mixed = np.maximum(x[:, None], others) if blend == "max" else blend * x[:, None] + (1 - blend) * others
    p = _probabilities(model, mixed.reshape(-1, *x.shape[1:]).astype(np.float32)).reshape(len(x), n_samples, -1)
    return -(p * np.log2(np.clip(p, 1e-12, 1.0))).sum(axis=-1).mean(axis=1)


def strip_detect(model, x, x_clean, *, false_alarm=0.05, n_samples=20, blend="max", seed=0):
    """Flag the inputs of ``x`` whose STRIP entropy is below the threshold set on ``x_clean``.

    The threshold is the ``false_alarm`` quantile of a normal fitted to the entropies of
    ``x_clean`` (each mixed with the others), so about that share of clean inputs is flagged.

    Returns
    -------
    flagged : ndarray of bool, shape (len(x),)
    threshold : float

    Examples
    --------
    >>> flagged, threshold = strip_detect(model, x_triggered, x_val)           # doctest: +SKIP
    """
    from scipy.stats import norm

    false_alarm = check_fraction(false_alarm, "false_alarm", include_boundaries="neither")
    rng = as_generator(seed)
    reference = strip_entropy(model, x_clean, x_clean, n_samples=n_samples, blend=blend, seed=rng)
    threshold = float(norm.ppf(false_alarm, *norm.fit(reference)))
    return strip_entropy(model, x, x_clean, n_samples=n_samples, blend=blend, seed=rng) <= threshold, threshold
