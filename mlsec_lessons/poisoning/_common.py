"""Input checks the poisoning modules share (their models are cached through :func:`mlsec_lessons.cache.cached_fit`)."""
import dataclasses

import numpy as np

from .. import validation
from ..errors import InvalidParameterError


def check_class(name, value, n_classes):
    """``value`` as an int class index in ``[0, n_classes)``."""
    return validation.check_int(value, name, min_value=0, max_value=n_classes - 1)


def check_images(x, y=None):
    """``x`` as float32 images (n, h, w) or (n, h, w, c), the same length as ``y`` if given."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4) or len(x) == 0:
        raise InvalidParameterError(f"x must be a non-empty batch of images (n, h, w) or (n, h, w, c), got shape {x.shape}")
    if y is not None and len(x) != len(y):
        raise InvalidParameterError(f"shape mismatch: x has {len(x)} samples but y has {len(y)}")
    return x


def with_train(data, x_train, y_train, name):
    """A copy of the Dataset ``data`` whose training split is ``(x_train, y_train)``, renamed ``name``."""
    return dataclasses.replace(data, name=name, x_train=np.asarray(x_train, np.float32),
                               y_train=np.asarray(y_train, np.int64))
