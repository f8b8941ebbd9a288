"""The small Keras models the lessons share, and a trainer that caches its weights.

Every model outputs logits (no softmax layer): attacks and losses want logits, and
``from_logits=True`` is numerically safer than taking the log of a softmax.
"""

import keras
import numpy as np

from . import __version__
from .cache import cache_dir, cache_key, fingerprint, save_weights
from .reproducibility import seed_everything


def small_cnn(input_shape=(8, 8, 1), n_classes=10):
    """Two conv layers and a dense head; 79,242 parameters, trains on digits in seconds."""
    return keras.Sequential([
        keras.Input(shape=tuple(input_shape)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(n_classes),
    ], name="small_cnn")


def mlp(input_shape=(30,), n_classes=2, hidden=(64, 32)):
    """A multilayer perceptron for tabular data (or flattened images)."""
    layers = [keras.Input(shape=tuple(input_shape))]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(int(h), activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(n_classes))
    return keras.Sequential(layers, name="mlp")


def logistic(input_shape=(30,), n_classes=2):
    """Multinomial logistic regression as a one-layer Keras model."""
    layers = [keras.Input(shape=tuple(input_shape))]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(n_classes))
    return keras.Sequential(layers, name="logistic")


def cnn(input_shape=(8, 8, 1), n_classes=10, filters=(16, 32), dropout=0.0):
    """``small_cnn`` with the depth and dropout as arguments, to vary one at a time.

    One 3x3 conv layer per entry of ``filters`` (the first keeps the size, the others shrink it by 2),
    a dense layer of 64 and, if ``dropout > 0``, a ``Dropout(dropout)`` after the flattened features and
    after the dense layer. ``filters=(16, 32), dropout=0.0`` has ``small_cnn``'s layers.

    Examples
    --------
    >>> [layer.name.split("_")[0] for layer in cnn(filters=(16,), dropout=0.5).layers]
    ['conv2d', 'flatten', 'dropout', 'dense', 'dropout', 'dense']
    """
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers = [keras.Input(shape=tuple(input_shape))]
    for i, n in enumerate(filters):
        layers.append(keras.layers.Conv2D(int(n), 3, padding="same" if i == 0 else "valid", activation="relu"))
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dropout(dropout)] if dropout else []
    layers.append(keras.layers.Dense(64, activation="relu"))
    layers += [keras.layers.Dropout(dropout)] if dropout else []
    layers.append(keras.layers.Dense(n_classes))
    return keras.Sequential(layers, name="cnn")


ARCHITECTURES = {"small_cnn": small_cnn, "mlp": mlp, "logistic": logistic, "cnn": cnn}


def build(arch, input_shape, n_classes, **kwargs):
    """Build an untrained model by architecture name; ``kwargs`` go to the builder."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](input_shape=tuple(input_shape), n_classes=int(n_classes), **kwargs)


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class _EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs with the latest loss and accuracy; Keras' own bar is per batch and noisy."""

    def __init__(self, epochs, desc):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def compile_for_training(model, learning_rate=1e-3):
    """Adam and sparse cross-entropy on logits, the setup every lesson uses."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def train(data, arch="small_cnn", *, epochs=30, batch_size=64, learning_rate=1e-3, seed=0,
          cache=True, progress=None, **arch_kwargs):
    """Train (or load from the cache) a model on a :class:`~mlsec_lessons.data.Dataset`.

    The cache key covers the architecture and its arguments, the training
    hyperparameters, a fingerprint of the training data, the seed and the library
    versions, so re-running a lesson loads the weights instead of retraining, and any
    change retrains. Weights are stored as ``.weights.h5`` (no pickle).

    Parameters
    ----------
    data : Dataset
        Uses ``x_train``, ``y_train``, ``input_shape`` and ``n_classes``.
    arch : str, default="small_cnn"
        A name from :data:`ARCHITECTURES`.
    epochs, batch_size : int
    learning_rate : float
    seed : int
    cache : bool, default=True
        ``False`` always trains and writes nothing.
    progress : bool or None
        Show an epoch progress bar; ``None`` shows it only inside a notebook.
    **arch_kwargs
        Passed to the architecture builder (e.g. ``hidden=(128,)`` for ``mlp``).

    Returns
    -------
    keras.Model
        A compiled model whose outputs are logits. ``model.cache_path`` is where its
        weights are (or ``None``) and ``model.from_cache`` says whether they were loaded.

    Examples
    --------
    >>> from mlsec_lessons import data, models
    >>> d = data.load_digits()
    >>> model = models.train(d, "small_cnn", epochs=20)          # doctest: +SKIP
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if len(data.x_train) != len(data.y_train):
        raise ValueError(f"x_train has {len(data.x_train)} rows but y_train has {len(data.y_train)}")

    seed_everything(seed)
    model = build(arch, data.input_shape, data.n_classes, **arch_kwargs)
    config = dict(arch=arch, arch_kwargs=arch_kwargs, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, data=fingerprint(data.x_train, data.y_train),
                  keras=keras.__version__, mlsec=__version__)
    path = cache_dir() / "models" / f"{data.name}-{arch}-{cache_key(**config)}.weights.h5" if cache else None

    if path is not None and path.exists():
        model.load_weights(path)  # before compile: the cache holds weights, not optimizer state
        compile_for_training(model, learning_rate)
        model.from_cache = True
    else:
        compile_for_training(model, learning_rate)
        callbacks = [_EpochBar(epochs, f"training {arch} on {data.name}")] if (
            _in_notebook() if progress is None else progress) else []
        model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                  shuffle=True, verbose=0, callbacks=callbacks)
        model.from_cache = False
        if path is not None:
            save_weights(model, path, config)
    model.cache_path = path
    return model


def predict_labels(model, x, batch_size=512):
    """Class labels (argmax of the logits) for ``x``, without Keras' progress bar."""
    return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)


def accuracy(model, x, y):
    """Share of ``x`` classified as ``y``."""
    return float(np.mean(predict_labels(model, x) == np.asarray(y)))
