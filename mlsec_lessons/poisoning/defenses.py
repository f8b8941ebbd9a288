"""Finding the poison in a training set: ART's activation clustering and spectral signatures.

Both look at what the trained (backdoored) model computes for each training image, one class
at a time. Poisoned images share the trigger, so inside their (target) class they tend to form
a separate group:

* ``ActivationDefence`` (Chen et al., 2018) reduces each class's activations to 10 dimensions
  (PCA), splits them into two clusters with k-means and flags the smaller cluster.
* ``SpectralSignatureDefense`` (Tran et al., 2018) scores each example by its projection on
  the top singular vector of its class's centred activations (ART projects the activations
  themselves, uncentred, where the paper centres them) and flags the top
  ``1.5 * expected_fraction`` of *every* class: it needs a guess of the poison rate.

Which activations is a choice (:func:`feature_classifier`), and it decides the outcome.

A flag is only useful next to the ground truth, so :func:`detection_scores` reports precision
(how many flagged examples are poison) and recall (how much of the poison is flagged).
"""
import dataclasses
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from .. import models
from ..art_bridge import art_classifier
from ..errors import InvalidParameterError
from ..reproducibility import quiet, seeded
from ..validation import check_fraction, check_int, check_labels
from ._common import check_images, with_train

METHODS = ("activation", "spectral")
CLUSTER_ANALYSES = ("smaller", "relative-size", "distance", "silhouette-scores")
RELATIVE_SIZE_THRESHOLD = 0.35   # ART's default size_threshold for "relative-size" and "silhouette-scores"
SILHOUETTE_THRESHOLD = 0.1       # ART's default silhouette_threshold


def feature_classifier(model, input_shape, n_classes, clip=(0.0, 1.0), layer=-2):
    """An ART classifier whose last layer is ``model.layers[layer]``.

    ART's detectors take the activations of "the last layer" in ``layer_names``, and for a
    Keras ``Sequential`` model that list includes the output layer: left alone, they cluster
    the 10 logits (``layer=-1``). ``layer=-2`` (the default) hands them the last hidden layer
    the methods were designed for; ``layer=-3`` on ``small_cnn`` is the flattened conv
    features. The layers (and so the weights) are shared with ``model``.
    """
    import keras

    if not isinstance(model, keras.Sequential) or len(model.layers) < 2:
        raise InvalidParameterError(f"model must be a keras.Sequential with at least two layers, got {type(model).__name__}")
    n = len(model.layers)
    layer = check_int(layer, f"layer (an index into the model's {n} layers)", min_value=-n, max_value=n - 1)
    body = keras.Sequential([keras.Input(shape=tuple(input_shape)), *model.layers[:int(layer) % n + 1]],
                            name="features")
    return art_classifier(body, n_classes, input_shape, clip)


def detect_poison(model, x, y, method="activation", *, expected_fraction=None, cluster_analysis="smaller",
                  layer=-2, n_classes=None, seed=0):
    """Flag suspected poison in a training set ``(x, y)`` with one of ART's detectors.

    Parameters
    ----------
    model : keras.Sequential
        The model trained on ``(x, y)`` (outputs logits).
    x : array, shape (n, h, w, c)
    y : array of int, shape (n,)
        The labels the model was trained on (poisoned ones included: that is all a defender has).
    method : {"activation", "spectral"}
    layer : int, default=-2
        Index into ``model.layers`` of the layer whose output the detector clusters (see
        :func:`feature_classifier`); -2 is the last hidden layer.
    expected_fraction : float in (0, 1] or None
        ``"spectral"`` only, and required there: the defender's guess of the poison rate.
    cluster_analysis : str, default="smaller"
        ``"activation"`` only: ART's rule for which cluster is poison, one of
        :data:`CLUSTER_ANALYSES`.
    n_classes : int or None
        Defaults to the model's output width.
    seed : int
        k-means and PCA draw from NumPy's global generator; it is seeded here.

    Returns
    -------
    flagged : ndarray of bool, shape (n,)
        ``True`` where the detector says "poison".

    Examples
    --------
    >>> flagged = detect_poison(model, poisoned.x_train, poisoned.y_train, "spectral",
    ...                         expected_fraction=0.05)                                 # doctest: +SKIP

    Notes
    -----
    ``"relative-size"`` and ``"silhouette-scores"`` are computed here from ART's ``"smaller"``
    clusters (see :func:`relative_size`): in ART 1.20 the first crashes on NumPy 2 and the second
    leaves flags of the large cluster unset in the classes it finds suspicious.
    """
    quiet()
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    n_classes = int(model.output_shape[-1]) if n_classes is None else n_classes
    x = check_images(x, y)
    y = check_labels(y, n_classes=n_classes)
    if x.shape[1:] != tuple(model.input_shape[1:]):
        raise InvalidParameterError(f"x has images of shape {x.shape[1:]} but the model takes {tuple(model.input_shape[1:])}")
    clf = feature_classifier(model, x.shape[1:], n_classes, layer=layer)
    # ART's k-means and PCA draw from the global generators: seed them for this call only
    with seeded(seed), warnings.catch_warnings(), threadpool_limits(1):  # PCA and k-means on ~200 rows: threads only stall
        # ART feeds Keras a one-element list where it expects a tensor; Keras warns and copes
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        return _detect(clf, x, y, method, expected_fraction, cluster_analysis)


def _detect(clf, x, y, method, expected_fraction, cluster_analysis):
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    if method == "activation":
        if expected_fraction is not None:
            raise InvalidParameterError("expected_fraction is for method='spectral'; activation clustering does not take it")
        if cluster_analysis not in CLUSTER_ANALYSES:
            raise InvalidParameterError(f"cluster_analysis must be one of {CLUSTER_ANALYSES}, got {cluster_analysis!r}")
        # ART 1.20's "relative-size" crashes on NumPy 2 for any class with no small cluster: it writes
        # `cluster_id in np.where(...)`, a tuple holding one array, and `0 == array([])` is an empty
        # array whose truth value NumPy 2 refuses (NumPy 1 warned and said False). Its
        # "silhouette-scores" marks, in a suspicious class, the small cluster as both clean and poison
        # and leaves the large one's rows unset (`np.empty`: whatever was in memory). With two
        # clusters both rules are "smaller" restricted to some classes, so they are computed from it.
        art_rule = "smaller" if cluster_analysis in ("relative-size", "silhouette-scores") else cluster_analysis
        defence = ActivationDefence(clf, x, y)
        _, is_clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis=art_rule)
        flagged = np.asarray(is_clean) == 0
        if cluster_analysis in ("relative-size", "silhouette-scores"):
            flagged = relative_size(flagged, y)
        if cluster_analysis == "silhouette-scores":   # ART's rule: and the two clusters are cohesive
            from sklearn.metrics import silhouette_score

            cohesive = [c for c, (act, cl) in enumerate(zip(defence.red_activations_by_class, defence.clusters_by_class))
                        if len(np.unique(cl)) == 2 and round(float(silhouette_score(act, cl)), 4) > SILHOUETTE_THRESHOLD]
            flagged &= np.isin(y, cohesive)
        return flagged
    else:
        if expected_fraction is None:
            raise InvalidParameterError("method='spectral' needs expected_fraction, the defender's guess of the poison rate")
        expected_fraction = check_fraction(expected_fraction, "expected_fraction")
        if expected_fraction == 0:
            raise InvalidParameterError("expected_fraction must be > 0: with a guess of 0 nothing is ever flagged")
        defence = SpectralSignatureDefense(clf, x, y, expected_pp_poison=expected_fraction, eps_multiplier=1.5)
        _, is_clean = defence.detect_poison()
    return np.asarray(is_clean) == 0


def relative_size(smaller_flags, y, threshold=RELATIVE_SIZE_THRESHOLD):
    """ART's ``"relative-size"`` rule from the flags of its ``"smaller"`` rule (two clusters a class).

    A class keeps its smaller cluster flagged only if that cluster's share of the class, rounded
    to 2 decimals, is below ``threshold``; in the other classes nothing is flagged.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 10 + [1] * 10)
    >>> smaller = np.array([True] * 2 + [False] * 8 + [True] * 5 + [False] * 5)
    >>> relative_size(smaller, y).nonzero()[0].tolist()    # class 1's "smaller" cluster is half the class
    [0, 1]
    """
    flagged = np.array(smaller_flags, dtype=bool)
    y = np.asarray(y)
    if flagged.shape != y.shape:
        raise InvalidParameterError(f"smaller_flags has shape {flagged.shape} but y {y.shape}")
    for c in np.unique(y):
        in_class = y == c
        if np.round(flagged[in_class].mean(), 2) >= threshold:
            flagged[in_class] = False
    return flagged


@dataclasses.dataclass(frozen=True)
class DetectionScores:
    """How a poison detector's flags compare with the known poison.

    Attributes
    ----------
    precision : float
        Share of flagged rows that are poison (0.0 when nothing is flagged).
    recall : float
        Share of the poison flagged.
    flagged, poison : int
        How many rows were flagged, and how many are poison.
    clean_removed : float
        Share of clean rows flagged: the data a defense throws away.
    """

    precision: float
    recall: float
    flagged: int
    poison: int
    clean_removed: float

    def to_frame(self, label=None):
        """One row, indexed by ``label`` (a detector's name, say), for a table of detectors."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(self)], index=[label])


def detection_scores(flagged, poison_idx):
    """Precision and recall of ``flagged`` against the known poison indices.

    Parameters
    ----------
    flagged : array of bool, shape (n,)
    poison_idx : array of int
        Indices of the rows that really are poison.

    Returns
    -------
    DetectionScores

    Examples
    --------
    >>> import numpy as np
    >>> flagged = np.array([True, True, False, False, True, False])
    >>> s = detection_scores(flagged, [0, 1, 3])
    >>> round(s.precision, 3), round(s.recall, 3), s.flagged, s.poison, round(s.clean_removed, 3)
    (0.667, 0.667, 3, 3, 0.333)
    """
    flagged = np.asarray(flagged)
    if flagged.ndim != 1 or flagged.dtype != bool:
        raise InvalidParameterError(f"flagged must be a 1-D boolean array, got dtype {flagged.dtype} and shape {flagged.shape}")
    poison_idx = check_labels(poison_idx, name="poison_idx")
    if poison_idx.size and (poison_idx.min() < 0 or poison_idx.max() >= len(flagged)):
        raise InvalidParameterError(f"poison_idx holds indices outside [0, {len(flagged)})")
    if len(np.unique(poison_idx)) != len(poison_idx):
        raise InvalidParameterError("poison_idx holds repeated indices")
    is_poison = np.zeros(len(flagged), bool)
    is_poison[poison_idx] = True
    hits = int(np.sum(flagged & is_poison))
    n_clean = int(np.sum(~is_poison))
    return DetectionScores(precision=hits / int(flagged.sum()) if flagged.any() else 0.0,
                           recall=hits / len(poison_idx) if len(poison_idx) else float("nan"),
                           flagged=int(flagged.sum()), poison=int(len(poison_idx)),
                           clean_removed=float(np.sum(flagged & ~is_poison) / n_clean) if n_clean else 0.0)


def retrain_without(poisoned, flagged, *, epochs=15, batch_size=64, seed=0, cache=True):
    """Drop the flagged rows of ``poisoned``'s training split and train a fresh small CNN on the rest.

    Returns the model (cached, keyed by the data that remain).
    """
    flagged = np.asarray(flagged, bool)
    if flagged.shape != (len(poisoned.x_train),):
        raise InvalidParameterError(f"flagged has shape {flagged.shape}, expected ({len(poisoned.x_train)},)")
    kept = with_train(poisoned, poisoned.x_train[~flagged], poisoned.y_train[~flagged], f"{poisoned.name}-cleaned")
    return models.train(kept, "small_cnn", epochs=epochs, batch_size=batch_size, seed=seed, cache=cache,
                        progress=False).model
