"""One place to seed every random number generator and to silence framework chatter."""
import contextlib
import logging
import os
import random
import warnings

import numpy as np

from .validation import as_int_seed, check_int


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
    seed = check_int(seed, "seed", min_value=0)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras

    # keras.utils.set_random_seed seeds Python, NumPy and the backend (TensorFlow) together.
    keras.utils.set_random_seed(seed)
    return seed


@contextlib.contextmanager
def seeded_numpy_global(seed):
    """Seed numpy's global generator for the block, then give the caller's state back.

    Some libraries draw from ``np.random``'s global generator and take no seed (Flower's DP noise,
    ART's random-forest attack model); this makes their runs reproducible without reseeding the
    student's global RNG as a side effect.

    Examples
    --------
    >>> before = np.random.get_state()[1][:3].copy()
    >>> with seeded_numpy_global(0):
    ...     a = np.random.rand()
    >>> with seeded_numpy_global(0):
    ...     b = np.random.rand()
    >>> a == b, bool((np.random.get_state()[1][:3] == before).all())
    (True, True)
    """
    state = np.random.get_state()
    np.random.seed(as_int_seed(seed))
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def preserved_global_rngs():
    """Give Python's and numpy's global generators back as they were when the block ends.

    For library code that must call something which reseeds them (``keras.utils.set_random_seed``
    seeds Python, numpy and TensorFlow together), so the student's own draws are not reset.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def check_seed(seed):
    """``seed`` as an ``int`` for code that adds to it or hands it to an int-only library.

    Delegates to :func:`mlsec_lessons.validation.as_int_seed`: an int (>= 0) is returned as is, a
    numpy Generator gives its next draw, ``None`` draws from fresh entropy; anything else raises
    :func:`mlsec_lessons.validation.check_seed`'s error. New code should call ``validation`` directly.
    """
    return as_int_seed(seed)


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
