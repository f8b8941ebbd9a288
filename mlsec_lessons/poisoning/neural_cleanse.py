"""Neural Cleanse (Wang et al., 2019): reverse-engineer, for each class, the smallest trigger that sends inputs there.

For every class ``k`` a mask ``m`` (one value a pixel, in [0, 1]) and a pattern ``p`` are optimised
so that ``(1 - m) * x + m * p`` is classified as ``k`` for clean images ``x``, with an L1 penalty
``lam * |m|_1`` keeping the mask small. A backdoor is a shortcut: its target needs a much smaller
mask than the other classes. The outlier test is the anomaly index, the distance of a class's mask
norm below the median in units of the median absolute deviation (times 1.4826, the normal
consistency constant); the paper flags an index above 2.

All the classes are optimised at once, as one batch of ``n_classes * len(x)`` mixed images (a
small model on 8x8 images makes that cheap); ART's ``NeuralCleanse`` loops over classes.
"""
import dataclasses

import numpy as np

from ..errors import InvalidParameterError
from ..validation import check_int, check_real
from ._common import check_images

THRESHOLD = 2.0   # Wang et al. (2019) flag a class whose anomaly index is above 2


def anomaly_index(norms):
    """``(median - norm) / (1.4826 * MAD)`` for each class's mask norm: large means an unusually small mask.

    Examples
    --------
    >>> anomaly_index([10.0, 11.0, 9.0, 10.0, 3.0]).round(2).tolist()
    [0.0, -0.67, 0.67, 0.0, 4.72]
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or len(norms) < 3:
        raise InvalidParameterError(f"norms must be a 1-D array of at least 3 mask norms, got shape {norms.shape}")
    median = np.median(norms)
    mad = 1.4826 * np.median(np.abs(norms - median))
    return (median - norms) / mad if mad > 0 else np.zeros_like(norms)


@dataclasses.dataclass(frozen=True)
class ReversedTriggers:
    """What :func:`reverse_triggers` found, one row per class.

    Attributes
    ----------
    masks : ndarray, shape (k, h, w)
    patterns : ndarray, shape (k, h, w, c)
    success : ndarray, shape (k,)
        Share of the clean images that mask and pattern send to the class.
    norms : ndarray, shape (k,)
        L1 norm of each mask (pixels' worth of trigger).
    anomaly : ndarray, shape (k,)
        :func:`anomaly_index` of the norms.
    """

    masks: np.ndarray
    patterns: np.ndarray
    success: np.ndarray
    norms: np.ndarray
    anomaly: np.ndarray

    @property
    def flagged(self):
        """Classes whose anomaly index is above :data:`THRESHOLD` (a small mask suffices to reach them)."""
        return [int(k) for k in np.flatnonzero(self.anomaly > THRESHOLD)]

    def to_frame(self):
        """A row per class: the mask's L1 norm, its success rate, its anomaly index and whether it is flagged."""
        import pandas as pd

        return pd.DataFrame({"mask_l1": self.norms, "success": self.success, "anomaly": self.anomaly,
                             "flagged": self.anomaly > THRESHOLD}, index=pd.RangeIndex(len(self.norms), name="class"))


def reverse_triggers(model, x, *, steps=150, lam=0.1, learning_rate=0.1):
    """Neural Cleanse's per-class trigger search on clean images ``x``, all classes in one batch.

    Parameters
    ----------
    model : keras.Model
        Outputs logits; its weights are not changed.
    x : array, shape (n, h, w, c)
        Clean images in [0, 1] (50 are enough on digits).
    steps : int, default=150
        Adam steps.
    lam : float, default=0.1
        Weight of the mask's L1 norm (averaged over classes) against the cross-entropy.
    learning_rate : float, default=0.1

    The start is fixed (every mask pixel at 0.12, every pattern pixel at 0.5), so the search is deterministic.

    Returns
    -------
    ReversedTriggers

    Examples
    --------
    >>> found = reverse_triggers(model5, x_test[:50])          # doctest: +SKIP
    >>> found.flagged, found.anomaly.round(2)                  # doctest: +SKIP
    """
    import tensorflow as tf

    x = check_images(x)
    if x.ndim == 3:
        x = x[..., None]
    steps = check_int(steps, "steps", min_value=1)
    lam = check_real(lam, "lam", min_value=0)
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    k = int(model.output_shape[-1])
    h, w, c = x.shape[1:]
    mask_v = tf.Variable(tf.fill((k, h, w, 1), -2.0))      # sigmoid(-2) = 0.12: a faint start everywhere
    pattern_v = tf.Variable(tf.zeros((k, h, w, c)))
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    images = tf.constant(x)[None]
    labels = tf.repeat(tf.range(k), len(x))

    def mixed():
        m, p = tf.sigmoid(mask_v)[:, None], tf.sigmoid(pattern_v)[:, None]
        return tf.reshape((1 - m) * images + m * p, (-1, h, w, c))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(mixed(), training=False)
            ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            loss = ce + lam * tf.reduce_sum(tf.sigmoid(mask_v)) / k
        grads = tape.gradient(loss, [mask_v, pattern_v])
        optimizer.apply_gradients(zip(grads, [mask_v, pattern_v]))

    for _ in range(steps):
        step()
    pred = np.argmax(np.asarray(model(mixed(), training=False)), axis=1)
    masks = tf.sigmoid(mask_v).numpy()[..., 0]
    norms = masks.reshape(k, -1).sum(axis=1)
    return ReversedTriggers(masks=masks, patterns=tf.sigmoid(pattern_v).numpy(),
                            success=(pred == labels.numpy()).reshape(k, -1).mean(axis=1), norms=norms,
                            anomaly=anomaly_index(norms))
