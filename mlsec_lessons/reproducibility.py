"""One place to seed every random number generator and to silence framework chatter."""
import logging
import os
import random
import warnings

import numpy as np


def seed_everything(seed=0):
    """Seed Python, NumPy and (if imported or importable) TensorFlow/Keras.

    Parameters
    ----------
    seed : int, default=0
        The seed. Must be a non-negative integer.

    Returns
    -------
    seed : int
        The seed that was applied, so a cell can print it.

    Examples
    --------
    >>> from mlsec_lessons import seed_everything
    >>> seed_everything(42)
    42
    """
    seed = check_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras

    # keras.utils.set_random_seed seeds Python, NumPy and the backend (TensorFlow) together.
    keras.utils.set_random_seed(seed)
    return seed


def check_seed(seed):
    """``seed`` as an int, or a ValueError that names it: every seeded function accepts the same seeds."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def quiet():
    """Silence TensorFlow, absl and ART warnings that would clutter a lesson's output.

    Safe to call more than once. Errors are still raised; only chatter is hidden.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # ART warns on import that PyTorch is absent; the course does not use PyTorch.
    warnings.filterwarnings("ignore", message="PyTorch not found")
    warnings.filterwarnings("ignore", message=".*tf.function retracing.*")
    for name in ("tensorflow", "absl", "art", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    tf.autograph.set_verbosity(0)
