"""Label flipping: the attacker controls some training labels, not the inputs.

A fraction of the training set gets a wrong label. ``"random"`` flips each chosen label to a
uniformly drawn *other* class (label noise an attacker can inject through a labelling service);
``"targeted"`` relabels examples of one ``source`` class as ``target``, which spends the same
number of flips on a single decision and hurts that class far more.
"""
import numpy as np

from .. import models
from ..errors import InvalidParameterError
from ..validation import as_generator, check_fraction, check_int, check_labels
from ._common import check_class, with_train

STRATEGIES = ("random", "targeted")


def flip_labels(y, fraction, n_classes, *, strategy="random", source=None, target=None, seed=0):
    """Flip exactly ``round(fraction * n_candidates)`` labels, each to a class other than its own.

    Parameters
    ----------
    y : array of int, shape (n,)
        Clean labels in ``[0, n_classes)``.
    fraction : float in [0, 1]
        ``"random"``: share of the whole training set flipped. ``"targeted"``: share of the
        ``source`` class relabelled as ``target``.
    n_classes : int
    strategy : {"random", "targeted"}, default="random"
    source, target : int or None
        The classes of a ``"targeted"`` flip (required there, unused by ``"random"``).
    seed : int, default=0

    Returns
    -------
    y_poisoned : ndarray of int64, shape (n,)
        A copy of ``y`` with the flips applied.
    flipped : ndarray of int64
        Sorted indices of the flipped labels: ``y_poisoned[flipped] != y[flipped]`` and every
        other label is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 10)
    >>> y_bad, flipped = flip_labels(y, 0.2, 10, seed=0)
    >>> len(flipped), bool(np.all(y_bad[flipped] != y[flipped])), int(np.sum(y_bad != y))
    (20, True, 20)
    >>> y_bad, flipped = flip_labels(y, 0.5, 10, strategy="targeted", source=7, target=1)
    >>> np.unique(y[flipped]).tolist(), np.unique(y_bad[flipped]).tolist()
    ([7], [1])
    """
    n_classes = check_int(n_classes, "n_classes", min_value=2)
    y = check_labels(y, n_classes=n_classes)
    fraction = check_fraction(fraction, "fraction")
    if strategy not in STRATEGIES:
        raise InvalidParameterError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    rng = as_generator(seed)
    if strategy == "random":
        candidates = np.arange(len(y))
    else:
        if source is None or target is None:
            raise InvalidParameterError("strategy='targeted' needs both source and target classes")
        source, target = check_class("source", source, n_classes), check_class("target", target, n_classes)
        if source == target:
            raise InvalidParameterError(f"source and target must differ, both are {source}")
        candidates = np.flatnonzero(y == source)
    flipped = np.sort(rng.choice(candidates, size=int(round(fraction * len(candidates))), replace=False))
    y_poisoned = y.copy()
    if strategy == "random":
        # a shift of 1..n_classes-1 (mod n_classes) is uniform over the *other* classes
        y_poisoned[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    else:
        y_poisoned[flipped] = target
    return y_poisoned, flipped


def flipping_curve(x_train, y_train, x_test, y_test, fractions, *, strategy="random", source=None, target=None,
                   n_classes=None, seed=0):
    """Accuracy of a logistic regression trained on labels flipped at each fraction.

    A linear model retrains in a fraction of a second, so the whole curve costs less than one
    CNN; the images are flattened to pixel vectors.

    Parameters
    ----------
    x_train, x_test : arrays (n, ...)
    y_train, y_test : arrays of int
    fractions : sequence of float in [0, 1]
        Passed to :func:`flip_labels`, one model per value.
    strategy, source, target, seed
        As in :func:`flip_labels`.
    n_classes : int or None
        Defaults to ``max(y_train) + 1``.

    Returns
    -------
    list of dict
        Per fraction: ``fraction``, ``flipped_share`` (flipped labels over the training set
        size), ``accuracy`` on the test set and, for ``"targeted"``, ``source_recall`` and
        ``source_to_target`` on the test images of the source class.

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits()
    >>> rows = flipping_curve(d.x_train, d.y_train, d.x_test, d.y_test, [0.0, 1.0], strategy="targeted",
    ...                       source=7, target=1)
    >>> rows[0]["source_recall"] > 0.9, rows[1]["source_recall"] < 0.1
    (True, True)
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    y_train, y_test = check_labels(y_train, name="y_train"), check_labels(y_test, name="y_test")
    x_train = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float64).reshape(len(x_test), -1)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise InvalidParameterError(f"shape mismatch: x_train {len(x_train)} vs y_train {len(y_train)} rows, "
                         f"x_test {len(x_test)} vs y_test {len(y_test)} rows")
    n_classes = int(y_train.max()) + 1 if n_classes is None else n_classes
    rows = []
    for fraction in fractions:
        y_bad, flipped = flip_labels(y_train, fraction, n_classes, strategy=strategy, source=source, target=target,
                                     seed=seed)
        with threadpool_limits(1):  # a 64-feature fit gains nothing from threads, and they stall on a busy CPU
            pred = LogisticRegression(C=1.0, tol=1e-3, max_iter=1000).fit(x_train, y_bad).predict(x_test)
        row = {"fraction": float(fraction), "flipped_share": len(flipped) / len(y_train),
               "accuracy": float(np.mean(pred == y_test))}
        if strategy == "targeted":
            is_source = y_test == source
            row["source_recall"] = float(np.mean(pred[is_source] == source))
            row["source_to_target"] = float(np.mean(pred[is_source] == target))
        rows.append(row)
    return rows


def train_flipped(data, fraction, *, strategy="random", source=None, target=None, epochs=15, batch_size=64, seed=0,
                  cache=True):
    """Flip ``data``'s training labels with :func:`flip_labels` and train a small CNN on them.

    The CNN counterpart of one point of :func:`flipping_curve`. The model cache is keyed by the
    flipped labels, so a second call with the same arguments loads the weights.

    Returns
    -------
    (model, flipped)
        The trained model (loaded from the model cache when it holds one) and the indices of the
        flipped training labels.

    Examples
    --------
    >>> model, flipped = train_flipped(data.load_digits(), 0.6, strategy="targeted", source=7,
    ...                                target=1)                                  # doctest: +SKIP
    """
    y_bad, flipped = flip_labels(data.y_train, fraction, data.n_classes, strategy=strategy, source=source,
                                 target=target, seed=seed)
    flipped_data = with_train(data, data.x_train, y_bad, f"{data.name}-flipped")
    model = models.train(flipped_data, "small_cnn", epochs=epochs, batch_size=batch_size, seed=seed, cache=cache,
                         progress=False).model
    return model, flipped
