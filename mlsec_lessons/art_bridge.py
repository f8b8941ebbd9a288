"""Wrap the course's Keras models for the Adversarial Robustness Toolbox (ART), correctly.

The source material builds ``TensorFlowV2Classifier`` without a loss (so ART cannot take
gradients of the right objective) and without an optimizer (so ``fit`` cannot train).
Here both are given, and the model's logits are declared as such.
"""
import keras
import numpy as np

from .reproducibility import quiet
from .validation import check_bounds, check_int, check_real


def art_classifier(model, n_classes, input_shape, clip_values=(0.0, 1.0), learning_rate=1e-3):
    """An ART ``TensorFlowV2Classifier`` around a Keras model that outputs logits.

    Parameters
    ----------
    model : keras.Model
        Outputs logits of shape (n, n_classes).
    n_classes : int
    input_shape : tuple of int
        Shape of one input, without the batch axis.
    clip_values : tuple (lo, hi) or None, default=(0.0, 1.0)
        Valid input range; attacks keep adversarial inputs inside it.
    learning_rate : float, default=1e-3
        For the Adam optimizer ART uses when asked to ``fit``.

    Examples
    --------
    >>> clf = art_classifier(model, d.n_classes, d.input_shape, d.clip)      # doctest: +SKIP
    """
    quiet()  # ART's import warns about PyTorch; the course does not use it
    from art.estimators.classification import TensorFlowV2Classifier

    if clip_values is not None:
        clip_values = check_bounds(clip_values, "clip_values")
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    return TensorFlowV2Classifier(
        model=model,
        nb_classes=check_int(n_classes, "n_classes", min_value=2),
        input_shape=tuple(input_shape),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=keras.optimizers.Adam(learning_rate),
        clip_values=None if clip_values is None else tuple(np.float32(c) for c in clip_values),
    )
