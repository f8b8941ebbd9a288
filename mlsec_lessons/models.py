"""The small Keras models the lessons share, and a trainer that caches its weights.

Every model outputs logits (no softmax layer): attacks and losses want logits, and
``from_logits=True`` is numerically safer than taking the log of a softmax.
"""

import keras
import numpy as np
import tensorflow as tf

from . import attacks  # the package's compile cache (attacks does not import this module)
from .cache import cached_fit, fingerprint
from .errors import InvalidParameterError
from .validation import as_generator, check_int, check_real, check_seed


def small_cnn(input_shape=(8, 8, 1), n_classes=10):
    """Two conv layers and a dense head; 79,242 parameters, trains on digits in seconds.

    :func:`cnn` with its defaults, under its own name (the name is part of the cache keys).
    """
    return cnn(input_shape, n_classes, name="small_cnn")


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


def cnn(input_shape=(8, 8, 1), n_classes=10, filters=(16, 32), dropout=0.0, name="cnn"):
    """``small_cnn`` with the depth and dropout as arguments, to vary one at a time.

    One 3x3 conv layer per entry of ``filters`` (the first keeps the size, the others shrink it by 2),
    a dense layer of 64 and, if ``dropout > 0``, a ``Dropout(dropout)`` after the flattened features and
    after the dense layer. ``filters=(16, 32), dropout=0.0`` has ``small_cnn``'s layers.

    Examples
    --------
    >>> [layer.name.split("_")[0] for layer in cnn(filters=(16,), dropout=0.5).layers]
    ['conv2d', 'flatten', 'dropout', 'dense', 'dropout', 'dense']
    """
    check_real(dropout, "dropout", min_value=0, max_value=1, include_boundaries="left")
    layers = [keras.Input(shape=tuple(input_shape))]
    for i, n in enumerate(filters):
        layers.append(keras.layers.Conv2D(int(n), 3, padding="same" if i == 0 else "valid", activation="relu"))
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dropout(dropout)] if dropout else []
    layers.append(keras.layers.Dense(64, activation="relu"))
    layers += [keras.layers.Dropout(dropout)] if dropout else []
    layers.append(keras.layers.Dense(n_classes))
    return keras.Sequential(layers, name=name)


ARCHITECTURES = {"small_cnn": small_cnn, "mlp": mlp, "logistic": logistic, "cnn": cnn}


def build(arch, input_shape, n_classes, **kwargs):
    """Build an untrained model by architecture name; ``kwargs`` go to the builder."""
    if arch not in ARCHITECTURES:
        raise InvalidParameterError(f"unknown architecture {arch!r}; available: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](input_shape=tuple(input_shape), n_classes=int(n_classes), **kwargs)


def in_notebook():
    """Whether this code runs inside a Jupyter kernel (where progress bars are worth drawing)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class EpochBar(keras.callbacks.Callback):
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


def fit_epochs(model, x, y, *, epochs, batch_size=64, seed=0, sample_weight=None, progress=None,
               desc="training"):
    """Train a compiled Keras model on ``(x, y)``: the course's replacement for ``model.fit``.

    One epoch (all its shuffled batches, each one optimizer step on ``model.compute_loss``) is a
    single ``tf.function``, traced once per model and kept in the package's compile cache
    (:func:`mlsec_lessons.attacks.compiled`). A model compiled with ``jit_compile=True`` (lesson 13's
    transformers) gets an XLA-compiled step instead, called batch by batch as ``fit`` does: XLA
    compiles for fixed shapes, not a loop over batches of varying length.

    ``fit`` builds a data pipeline and traces its step for every model, and pays callbacks and
    metrics on every batch: on the course's small models that costs more than the arithmetic
    (``benchmarks/bench_training.py`` measures both on the same models).

    Parameters
    ----------
    model : keras.Model
        Compiled (:func:`compile_for_training`): its optimizer, loss and ``jit_compile`` are used.
    x, y : array-like
        Inputs and integer targets, the same number of rows.
    epochs, batch_size : int
    seed : int, Generator or None
        Draws each epoch's order. The initial weights and dropout follow Keras' seed, which
        :func:`mlsec_lessons.cache.cached_fit` sets.
    sample_weight : array-like or None
        Weights of the loss terms, as in ``fit`` (per row, or per token for a language model).
    progress : bool or None
        An epoch progress bar; ``None`` shows it only inside a notebook.
    desc : str
        The progress bar's label.

    Returns
    -------
    list of float
        The mean training loss of each epoch.

    Examples
    --------
    >>> import numpy as np
    >>> model = compile_for_training(logistic((2,), 2), learning_rate=0.1)
    >>> x = np.array([[0.0, 0.0], [1.0, 1.0]] * 8, dtype=np.float32); y = np.array([0, 1] * 8)
    >>> losses = fit_epochs(model, x, y, epochs=20, batch_size=4, progress=False)
    >>> losses[-1] < losses[0], accuracy(model, x, y)
    (True, 1.0)
    """
    epochs, batch_size = check_int(epochs, "epochs", min_value=1), check_int(batch_size, "batch_size", min_value=1)
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise InvalidParameterError("model must be compiled (compile_for_training) before fit_epochs")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise InvalidParameterError(f"x and y must hold the same number of rows, at least one; got {len(x)} and {len(y)}")
    weighted = sample_weight is not None
    if weighted:
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
        if len(sample_weight) != len(x):
            raise InvalidParameterError(f"sample_weight has {len(sample_weight)} rows but x has {len(x)}")
    arrays = (x, y, sample_weight) if weighted else (x, y)
    if model.jit_compile:
        # XLA compiles a step for fixed shapes, not a loop over slices of varying length: Python drives its batches
        step = attacks.compiled(model, ("xla step",), lambda model_ref: _train_step(model_ref, jit_compile=True))

        def epoch(order):
            losses = [step(*[a[order[i:i + batch_size]] for a in arrays]) for i in range(0, len(order), batch_size)]
            return tf.reduce_mean(tf.stack(losses))
    else:
        whole = attacks.compiled(model, ("epoch", batch_size), _epoch_builder(batch_size))
        tensors = [tf.convert_to_tensor(a) for a in arrays]

        def epoch(order):
            return whole(tf.constant(order), *tensors)
    rng = as_generator(seed)
    show = in_notebook() if progress is None else progress
    bar = EpochBar(epochs, desc) if show else None
    losses = []
    for _ in range(epochs):
        losses.append(float(epoch(rng.permutation(len(x)))))
        if bar is not None:
            bar.on_epoch_end(0, {"loss": losses[-1]})
    if bar is not None:
        bar.on_train_end()
    return losses


def _train_step(model_ref, jit_compile):
    """One optimizer step on a batch ``(x, y[, weight])``, for the model behind ``model_ref``."""
    model = model_ref()
    model.optimizer.build(model.trainable_variables)  # its slots exist before tracing

    @tf.function(jit_compile=jit_compile)
    def step(x, y, *weight):
        m = model_ref()
        with tf.GradientTape() as tape:
            loss = m.compute_loss(x=x, y=y, y_pred=m(x, training=True), sample_weight=weight[0] if weight else None)
        m.optimizer.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
        return loss

    return step


def _epoch_builder(batch_size):
    def build(model_ref):
        step = _train_step(model_ref, jit_compile=False)

        @tf.function(reduce_retracing=True)  # a model trained again on another number of rows: one more trace, then none
        def epoch(order, *tensors):
            total, batches = tf.constant(0.0), tf.constant(0.0)
            for start in tf.range(0, tf.shape(order)[0], batch_size):
                rows = order[start:start + batch_size]
                total += step(*[tf.gather(t, rows) for t in tensors])
                batches += 1.0
            return total / batches

        return epoch

    return build


def train(data, arch="small_cnn", *, epochs=30, batch_size=64, learning_rate=1e-3, seed=0,
          cache=True, progress=None, **arch_kwargs):
    """Train (or load from the cache) a model on a :class:`~mlsec_lessons.data.Dataset`.

    Goes through :func:`mlsec_lessons.cache.cached_fit`: the key covers the architecture and
    its arguments, the training hyperparameters, a fingerprint of the training data, the seed
    and the library versions, so re-running a lesson loads the weights instead of retraining,
    and any change retrains. Weights are stored as ``.npz`` (no pickle, no optimizer state).
    The caller's Python and numpy random states are left as they were.

    Parameters
    ----------
    data : Dataset
        Uses ``x_train``, ``y_train``, ``input_shape`` and ``n_classes``.
    arch : str, default="small_cnn"
        A name from :data:`ARCHITECTURES`.
    epochs, batch_size : int
    learning_rate : float
    seed : int
        Seeds the initial weights and the shuffling.
    cache : bool, default=True
        ``False`` always trains and writes nothing.
    progress : bool or None
        Show an epoch progress bar; ``None`` shows it only inside a notebook.
    **arch_kwargs
        Passed to the architecture builder (e.g. ``hidden=(128,)`` for ``mlp``).

    Returns
    -------
    Fitted
        ``.model`` is the compiled Keras model (outputs logits), ``.privacy`` is None,
        ``.provenance`` says where the weights are and whether they were loaded.

    Examples
    --------
    >>> from mlsec_lessons import data, models
    >>> d = data.load_digits()
    >>> model = models.train(d, "small_cnn", epochs=20).model          # doctest: +SKIP
    """
    check_int(epochs, "epochs", min_value=1)
    check_int(batch_size, "batch_size", min_value=1)
    check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    if arch not in ARCHITECTURES:
        raise InvalidParameterError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    if len(data.x_train) != len(data.y_train):
        raise InvalidParameterError(f"x_train has {len(data.x_train)} rows but y_train has {len(data.y_train)}")
    check_seed(seed)
    config = dict(arch=arch, arch_kwargs=arch_kwargs, epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, data=fingerprint(data.x_train, data.y_train))

    def build_model():
        return compile_for_training(build(arch, data.input_shape, data.n_classes, **arch_kwargs), learning_rate)

    def fit(model):
        fit_epochs(model, data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, seed=seed,
                   progress=progress, desc=f"training {arch} on {data.name}")

    return cached_fit(f"{data.name}-{arch}", config, build_model, fit, seed=seed, cache=cache)


def predict_labels(model, x, batch_size=512):
    """Class labels (argmax of the outputs) for ``x``, ``batch_size`` rows per call.

    A Keras model runs one compiled call per chunk, traced once per model and kept in the package's
    compile cache (:func:`mlsec_lessons.attacks.compiled`): ``predict``'s set-up on every call costs
    more than the forward pass on a few hundred digits, and accuracy is measured after every epoch,
    attack and noise draw. Anything else with a ``predict`` method (a stub, a wrapper) is asked
    through it.
    """
    if not isinstance(model, keras.Model):
        return np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)

    def build(model_ref):
        @tf.function(input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
        def label(chunk):
            return tf.argmax(model_ref()(chunk, training=False), axis=1)

        return label

    label = attacks.compiled(model, ("labels",), build)
    x = np.asarray(x, dtype=np.float32)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    chunks = [label(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def accuracy(model, x, y):
    """Share of ``x`` classified as ``y``."""
    return float(np.mean(predict_labels(model, x) == np.asarray(y)))
