"""Input checks the poisoning modules share (their models are cached through :func:`mlsec_lessons.cache.cached_fit`)."""
import dataclasses

import numpy as np


def check_fraction(name, value):
    """``value`` as a float in [0, 1], or a ValueError that names it."""
    if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    return float(value)


def check_labels(y, n_classes=None, name="y"):
    """``y`` as a 1-D int64 array of class labels in ``[0, n_classes)``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} holds labels outside [0, {n_classes}): min {y.min()}, max {y.max()}")
    return y


def check_class(name, value, n_classes):
    """``value`` as an int class index in ``[0, n_classes)``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n_classes:
        raise ValueError(f"{name} must be a class index in [0, {n_classes}), got {value!r}")
    return int(value)


def check_images(x, y=None):
    """``x`` as float32 images (n, h, w) or (n, h, w, c), the same length as ``y`` if given."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4) or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of images (n, h, w) or (n, h, w, c), got shape {x.shape}")
    if y is not None and len(x) != len(y):
        raise ValueError(f"shape mismatch: x has {len(x)} samples but y has {len(y)}")
    return x


def with_train(data, x_train, y_train, name):
    """A copy of the Dataset ``data`` whose training split is ``(x_train, y_train)``, renamed ``name``."""
    return dataclasses.replace(data, name=name, x_train=np.asarray(x_train, np.float32),
                               y_train=np.asarray(y_train, np.int64))
