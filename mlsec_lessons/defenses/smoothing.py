"""Certified robustness by randomized smoothing (Cohen, Rosenfeld and Kolter, 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, answers the class
the base classifier ``f`` picks most often under Gaussian noise. If that class has probability at
least ``pA > 1/2``, no perturbation with ``||delta||_2 < sigma * Phi^-1(pA)`` changes ``g``'s answer.
``pA`` is not known, so CERTIFY estimates it from Monte-Carlo samples: ``n0`` samples pick the
top class, ``n`` fresh ones give a one-sided Clopper-Pearson lower bound on its probability at
level ``alpha``. With probability at least ``1 - alpha`` over the sampling, the radius it returns
is a true certificate; when the bound is not above 1/2 it abstains. The guarantee is about ``g``,
not ``f``, and only as good as ``f`` is under noise: train ``f`` with noise of the same sigma.
"""
import dataclasses

import numpy as np
import tensorflow as tf
from scipy.stats import beta, binomtest, norm

from .. import models
from ..cache import cached_fit, fingerprint
from ..validation import as_generator, check_int, check_real, check_xy

ABSTAIN = -1


def train_noisy(data, sigma, *, arch="small_cnn", epochs=30, batch_size=64, learning_rate=1e-3, seed=0,
                cache=True):
    """Train (or load from the cache) a base classifier on inputs with fresh N(0, sigma^2) noise per batch.

    Cohen et al.'s recipe: the base classifier must be accurate under the noise the smoothed
    classifier adds, so it is trained with the same sigma. The noisy inputs are not clipped.

    Examples
    --------
    >>> from mlsec_lessons import data
    >>> base = train_noisy(data.load_digits(), sigma=0.25).model          # doctest: +SKIP
    """
    sigma = check_real(sigma, "sigma", min_value=0, include_boundaries="neither")
    check_int(epochs, "epochs", min_value=1)
    check_int(batch_size, "batch_size", min_value=1)
    config = dict(arch=arch, sigma=sigma, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  data=fingerprint(data.x_train, data.y_train))

    def build():
        return models.compile_for_training(models.build(arch, data.input_shape, data.n_classes), learning_rate)

    def fit(model):
        ds = (tf.data.Dataset.from_tensor_slices((data.x_train.astype("float32"), data.y_train))
              .shuffle(len(data.x_train), seed=seed).batch(batch_size)
              .map(lambda x, y: (x + tf.random.normal(tf.shape(x), stddev=sigma), y)))  # new noise every epoch
        model.fit(ds, epochs=epochs, shuffle=False, verbose=0)    # the dataset shuffles itself

    return cached_fit(f"{data.name}-{arch}-noisy", config, build, fit, seed=seed, cache=cache)


def noise_counts(model, x, sigma, n, *, seed, batch_size=10_000):
    """``counts[i, c]``: how many of ``n`` noisy copies of ``x[i]`` the base model labels ``c``.

    ``seed`` is an int, a Generator or None, and has no default on purpose: pass the same Generator to
    two calls and the second draws fresh noise (CERTIFY's selection and estimation samples must differ),
    while the same int twice draws the same noise.
    """
    sigma = check_real(sigma, "sigma", min_value=0, include_boundaries="neither")
    n = check_int(n, "n", min_value=1)
    x, _ = check_xy(x)
    rng = as_generator(seed)
    n_classes = model.output_shape[-1]
    counts = np.zeros((len(x), n_classes), dtype=np.int64)
    per_call = max(1, batch_size // n)        # images per predict call, all their noise samples at once
    for start in range(0, len(x), per_call):
        xb = np.repeat(x[start:start + per_call], n, axis=0)
        xb = xb + rng.normal(0.0, sigma, size=xb.shape).astype(np.float32)
        labels = models.predict_labels(model, xb, batch_size=len(xb)).reshape(-1, n)  # one call a chunk
        for j, row in enumerate(labels):
            counts[start + j] = np.bincount(row, minlength=n_classes)
    return counts


@dataclasses.dataclass(frozen=True, eq=False)
class Certificate:
    """CERTIFY's answer per input: the class (``-1`` = abstain), the L2 radius and the bound on pA."""

    prediction: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    sigma: float
    n0: int
    n: int
    alpha: float

    def to_frame(self):
        """A row per input: the class (``-1`` = abstain), the certified L2 radius and the bound on pA."""
        import pandas as pd

        return pd.DataFrame({"prediction": self.prediction, "radius": self.radius, "p_lower": self.p_lower},
                            index=pd.RangeIndex(len(self.prediction), name="input"))

    def accuracy_at(self, y, radii):
        """Certified accuracy: the share of inputs certified correct with a radius of at least ``r``, per ``r``."""
        ok = self.prediction == np.asarray(y)
        return np.array([np.mean(ok & (self.radius >= r)) for r in np.atleast_1d(radii)])


def certify(model, x, sigma, *, n0=100, n=1000, alpha=0.001, seed=0, batch_size=10_000):
    """Cohen et al.'s CERTIFY for each row of ``x``.

    Parameters
    ----------
    model : keras.Model
        The base classifier ``f`` (outputs logits or probabilities; only the argmax is used).
    x : array
        Inputs, one per row.
    sigma : float
        Standard deviation of the Gaussian noise, > 0.
    n0 : int, default=100
        Noise samples that select the top class.
    n : int, default=1000
        Fresh noise samples that estimate its probability.
    alpha : float, default=0.001
        The certificate fails with probability at most ``alpha`` (over the sampling).
    seed : int or Generator
    batch_size : int
        Noisy inputs per ``predict`` call (whole images' worth of samples at once).

    Returns
    -------
    Certificate
        ``radius = sigma * Phi^-1(pA)``, where ``pA`` is the one-sided ``1 - alpha`` Clopper-Pearson
        lower bound on the top class's probability; abstains (class -1, radius 0) when ``pA <= 1/2``.

    Examples
    --------
    A base model that answers class 3 whatever the noise: pA = alpha ** (1 / n), the largest bound
    n samples can give.

    >>> class Always3:
    ...     output_shape = (None, 10)
    ...     def predict(self, x, batch_size=None, verbose=0):
    ...         return np.eye(10)[np.full(len(x), 3)]
    >>> cert = certify(Always3(), np.zeros((2, 64)), sigma=0.5, n=1000, alpha=0.001)
    >>> cert.prediction.tolist(), round(float(cert.radius[0]), 4), round(float(0.5 * norm.ppf(0.001 ** (1 / 1000))), 4)
    ([3, 3], 1.2316, 1.2316)
    """
    sigma = check_real(sigma, "sigma", min_value=0, include_boundaries="neither")
    n0, n = check_int(n0, "n0", min_value=1), check_int(n, "n", min_value=1)
    alpha = check_real(alpha, "alpha", min_value=0, max_value=1, include_boundaries="neither")
    x, _ = check_xy(x)
    rng = as_generator(seed)
    top = noise_counts(model, x, sigma, n0, seed=rng, batch_size=batch_size).argmax(axis=1)   # selection ...
    counts = noise_counts(model, x, sigma, n, seed=rng, batch_size=batch_size)               # ... and estimation
    n_top = counts[np.arange(len(x)), top]                # apart, so the bound is not biased by the selection
    # the one-sided 1 - alpha Clopper-Pearson bound (the lower end of the two-sided 1 - 2 alpha interval,
    # written directly so that any alpha in (0, 1) works, not only alpha < 1/2)
    p_lower = np.where(n_top == 0, 0.0, beta.ppf(alpha, np.maximum(n_top, 1), n - n_top + 1))
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * norm.ppf(np.where(certified, p_lower, 0.75)), 0.0)
    return Certificate(np.where(certified, top, ABSTAIN), radius, p_lower, sigma, n0, n, alpha)


def predict(model, x, sigma, *, n=100, alpha=0.001, seed=0, batch_size=10_000):
    """Cohen et al.'s PREDICT: the smoothed class, or ``-1`` when the top two counts are too close.

    A two-sided binomial test of the top count against the runner-up at p = 1/2; abstains unless
    its p-value is at most ``alpha``. A class it returns is wrong with probability at most ``alpha``.
    """
    sigma = check_real(sigma, "sigma", min_value=0, include_boundaries="neither")
    n = check_int(n, "n", min_value=1)
    alpha = check_real(alpha, "alpha", min_value=0, max_value=1, include_boundaries="neither")
    x, _ = check_xy(x)
    counts = noise_counts(model, x, sigma, n, seed=seed, batch_size=batch_size)
    order = np.argsort(counts, axis=1)
    first, second = order[:, -1], order[:, -2]
    out = np.full(len(x), ABSTAIN)
    for i, (a, b) in enumerate(zip(counts[np.arange(len(x)), first], counts[np.arange(len(x)), second])):
        if binomtest(int(a), int(a + b), p=0.5).pvalue <= alpha:
            out[i] = first[i]
    return out

