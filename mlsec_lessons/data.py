"""Bundled, deterministic datasets. Nothing is downloaded: everything ships with scikit-learn
or is generated here, so the course runs offline."""
from dataclasses import dataclass, field

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from .errors import InvalidParameterError
from .validation import as_int_seed, check_choice, check_fraction, check_int, check_real, check_seed


@dataclass(frozen=True, eq=False)
class Dataset:
    """A stratified train/test split with the facts a lesson needs about it."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    clip: tuple = None  # valid input range, (lo, hi), where the data has one
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self):
        return self.x_train.shape[1:]

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"n_classes={self.n_classes}, clip={self.clip})")


def _check_split(test_size, seed):
    check_fraction(test_size, "test_size", include_boundaries="neither")
    check_seed(seed)


def stratified_split(x, y, test_size, seed):
    """``x_train, x_test, y_train, y_test``: a split stratified by ``y``, the one every loader uses.

    Parameters
    ----------
    x, y : arrays
    test_size : float
        The share held out, in (0, 1).
    seed : int, numpy Generator or None
        The split's randomness.

    Examples
    --------
    >>> x_tr, x_te, y_tr, y_te = stratified_split(np.arange(8.0), np.arange(8) % 2, 0.5, seed=0)
    >>> sorted(y_te.tolist())
    [0, 0, 1, 1]
    """
    _check_split(test_size, seed)
    return train_test_split(x, y, test_size=test_size, random_state=as_int_seed(seed), stratify=y)


def load_digits(test_size=0.3, seed=0):
    """The 8x8 handwritten digits, as images in [0, 1] of shape (N, 8, 8, 1).

    Parameters
    ----------
    test_size : float, default=0.3
        Fraction of the 1797 images held out, stratified by class.
    seed : int, default=0
        Seed of the split.

    Returns
    -------
    Dataset
        ``x_*`` float32 images in [0, 1], ``y_*`` int64 labels 0-9, ``clip=(0.0, 1.0)``.

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits()
    >>> d.x_train.shape, d.x_test.shape
    ((1257, 8, 8, 1), (540, 8, 8, 1))
    """
    _check_split(test_size, seed)
    raw = skdatasets.load_digits()
    # Pixel intensities are 0..16 by construction, so the bound is known without looking at data.
    x = (raw.images / 16.0).astype(np.float32)[..., None]
    y = raw.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = stratified_split(x, y, test_size, seed)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, n_classes=10, clip=(0.0, 1.0),
                   info={"source": "sklearn.datasets.load_digits", "test_size": test_size, "seed": seed})


def load_breast_cancer(test_size=0.3, seed=0, scale="standard"):
    """Wisconsin breast cancer (569 x 30), scaled with statistics of the training split only.

    Parameters
    ----------
    test_size : float, default=0.3
    seed : int, default=0
    scale : {"standard", "minmax"}, default="standard"
        ``"standard"``: zero mean, unit variance. ``"minmax"``: [0, 1] on the training
        range, with test values clipped into it (then ``clip=(0.0, 1.0)``).

    Returns
    -------
    Dataset
        float32 features, int64 labels (0 malignant, 1 benign).
    """
    _check_split(test_size, seed)
    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler}
    check_choice(scale, "scale", scalers)
    raw = skdatasets.load_breast_cancer()
    x_tr, x_te, y_tr, y_te = stratified_split(raw.data, raw.target.astype(np.int64), test_size, seed)
    scaler = scalers[scale]().fit(x_tr)  # fit on train only: test statistics must not leak
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    clip = None
    if scale == "minmax":
        x_te, clip = np.clip(x_te, 0.0, 1.0), (0.0, 1.0)
    return Dataset("breast_cancer", x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te,
                   n_classes=2, clip=clip,
                   info={"source": "sklearn.datasets.load_breast_cancer", "scale": scale,
                         "feature_names": list(raw.feature_names), "test_size": test_size, "seed": seed})


def make_fraud(n_samples=20000, fraud_rate=0.01, test_size=0.3, seed=0):
    """A synthetic, imbalanced "card fraud" set: 20 standardised features, label 1 = fraud.

    The signal is real (8 informative features), so a model has something to learn, unlike
    the random features with random labels in the source material.

    Parameters
    ----------
    n_samples : int, default=20000
    fraud_rate : float, default=0.01
        Share of fraudulent transactions, strictly between 0 and 0.5.
    test_size : float, default=0.3
    seed : int, default=0
    """
    _check_split(test_size, seed)
    fraud_rate = check_real(fraud_rate, "fraud_rate", min_value=0, max_value=0.5, include_boundaries="neither")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    # Stratification needs at least a couple of frauds on each side of the split.
    min_fraud = 2 / min(test_size, 1 - test_size)
    if n_samples * fraud_rate < min_fraud:
        raise InvalidParameterError(f"n_samples={n_samples} with fraud_rate={fraud_rate} gives fewer than "
                         f"{min_fraud:.0f} frauds; use more samples or a higher rate")
    x, y = skdatasets.make_classification(
        n_samples=n_samples, n_features=20, n_informative=8, n_redundant=4, n_clusters_per_class=2,
        weights=[1 - fraud_rate], flip_y=0.0, class_sep=1.2, random_state=as_int_seed(seed))
    x_tr, x_te, y_tr, y_te = stratified_split(x, y.astype(np.int64), test_size, seed)
    scaler = StandardScaler().fit(x_tr)
    return Dataset("fraud", scaler.transform(x_tr).astype(np.float32), y_tr,
                   scaler.transform(x_te).astype(np.float32), y_te, n_classes=2,
                   info={"source": "sklearn.datasets.make_classification", "fraud_rate": fraud_rate,
                         "n_samples": n_samples, "test_size": test_size, "seed": seed})


LOADERS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "fraud": make_fraud}


def load(name, **kwargs):
    """Load a bundled dataset by name: ``"digits"``, ``"breast_cancer"`` or ``"fraud"``.

    Examples
    --------
    >>> from mlsec_lessons.data import load
    >>> load("digits", seed=1).n_classes
    10
    """
    check_choice(name, "name", LOADERS)
    return LOADERS[name](**kwargs)
