"""One place to seed every random number generator and to silence framework chatter."""
import contextlib
import logging
import os
import random
import warnings

import numpy as np

from .validation import as_int_seed, check_int, check_seed


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


@contextlib.contextmanager
def seeded_numpy_global(seed):
    """Seed numpy's global generator for the block, then give the caller's state back.

    Some libraries draw from ``np.random``'s global generator and take no seed (ART's random starts
    and attack models, Flower's DP noise); this makes their runs reproducible without reseeding the
    student's global RNG as a side effect. ``seed=None`` leaves the generator's stream as it is.

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
    with preserved_global_rngs():
        if check_seed(seed) is not None:
            np.random.seed(as_int_seed(seed))
        yield


@contextlib.contextmanager
def seeded(seed):
    """Seed Python, numpy, TensorFlow and Keras for the block, then give the caller's generators back.

    Keras draws initial weights and shuffles from these global generators, so training must seed
    them to be reproducible; the Python and numpy states a student had before the call are
    restored afterwards, so a library call never reseeds them as a side effect. (TensorFlow's
    global seed stays set: TensorFlow cannot hand back the state it had.) ``seed=None`` seeds nothing.
    """
    import keras

    with preserved_global_rngs():
        if check_seed(seed) is not None:
            keras.utils.set_random_seed(as_int_seed(seed))
        yield


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
