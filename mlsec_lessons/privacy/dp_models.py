"""diffprivlib models on breast cancer, with every bound fixed before the data is seen.

A DP model is private only if its sensitivity is. diffprivlib's Gaussian naive Bayes and
random forest need the range of every feature (``bounds``); its logistic regression needs
the largest L2 norm of a row (``data_norm``). Given none, diffprivlib computes them from
the training rows and warns (``PrivacyLeakWarning``): the extremes of the private data then
shape the model, and diffprivlib even stores them on it (``model.bounds``), so one
patient's unusual value is published exactly.

Here the bounds are round, generous ranges written down from what each feature measures
(:data:`PUBLIC_RANGES`), not from the rows. Features are scaled with them into [0, 1] and
clipped, so ``bounds = (0, 1)`` per feature and ``data_norm = sqrt(n_features)`` hold for
any record, whoever it belongs to.
"""
import math
import warnings

import numpy as np
from sklearn import datasets as skdatasets

from ..data import Dataset, stratified_split
from ..errors import InvalidParameterError
from ..validation import as_int_seed, check_choice, check_int, check_real

# (mean, standard error, worst) range of each base measurement of a cell nucleus, in the
# dataset's units. Round numbers a domain expert could fix in advance: lengths in pixels of
# the digitised image, shape ratios that are dimensionless and small. Generous, so that
# typical records are not clipped; the price is some utility.
_BASE_RANGES = {
    "radius": (40, 5, 50), "texture": (50, 10, 60), "perimeter": (250, 30, 320),
    "area": (3000, 600, 5000), "smoothness": (0.25, 0.05, 0.3), "compactness": (0.5, 0.2, 1.5),
    "concavity": (0.5, 0.5, 1.5), "concave points": (0.25, 0.1, 0.5), "symmetry": (0.5, 0.1, 1.0),
    "fractal dimension": (0.15, 0.05, 0.3),
}
PUBLIC_RANGES = {f"{prefix}{name}{suffix}": (0.0, float(ranges[i]))
                 for i, (prefix, suffix) in enumerate([("mean ", ""), ("", " error"), ("worst ", "")])
                 for name, ranges in _BASE_RANGES.items()}
"""Public (lower, upper) of each breast-cancer feature, keyed by scikit-learn's feature name."""

KINDS = ("logistic_regression", "gaussian_nb", "random_forest")


def public_bounds(feature_names):
    """(lower, upper) arrays for ``feature_names`` from :data:`PUBLIC_RANGES`."""
    missing = [f for f in feature_names if f not in PUBLIC_RANGES]
    if missing:
        raise InvalidParameterError(f"no public range for feature(s) {missing}")
    lo, hi = zip(*(PUBLIC_RANGES[f] for f in feature_names))
    return np.array(lo), np.array(hi)


def scale_public(x, feature_names):
    """Scale raw features into [0, 1] with the public ranges, clipping what falls outside.

    Clipping is part of the mechanism: a record beyond the range is treated as if it were
    at the edge, so no record can move the model more than the bounds allow.

    Examples
    --------
    >>> names = ["mean radius", "mean area"]
    >>> scale_public(np.array([[20.0, 1500.0], [80.0, -3.0]]), names)
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    lo, hi = public_bounds(feature_names)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(lo):
        raise InvalidParameterError(f"x must have shape (n, {len(lo)}), got {x.shape}")
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def load_breast_cancer_public(test_size=0.3, seed=0):
    """Breast cancer, scaled with the public ranges (no statistic of any row is used).

    The split is the same as :func:`mlsec_lessons.data.load_breast_cancer`'s for the same
    ``test_size`` and ``seed``.

    Examples
    --------
    >>> d = load_breast_cancer_public()
    >>> d.x_train.shape, float(d.x_train.min()) >= 0, float(d.x_train.max()) <= 1
    ((398, 30), True, True)
    """
    raw = skdatasets.load_breast_cancer()
    names = list(raw.feature_names)
    x = scale_public(raw.data, names).astype(np.float32)
    x_tr, x_te, y_tr, y_te = stratified_split(x, raw.target.astype(np.int64), test_size, seed)
    return Dataset("breast_cancer_public", x_tr, y_tr, x_te, y_te, n_classes=2, clip=(0.0, 1.0),
                   info={"source": "sklearn.datasets.load_breast_cancer", "scale": "public ranges",
                         "feature_names": names, "test_size": test_size, "seed": seed})


def make_model(kind, epsilon, n_features, *, accountant=None, seed=None, n_estimators=10, max_depth=4):
    """A diffprivlib classifier for features in [0, 1]^n_features, with the bounds that implies.

    Parameters
    ----------
    kind : {"logistic_regression", "gaussian_nb", "random_forest"}
    epsilon : float
        The budget of this one fit.
    n_features : int
    accountant : diffprivlib.BudgetAccountant or None
        Where the spend is recorded; None uses diffprivlib's default accountant.
    seed : int, numpy Generator or None
        The model's noise; ``None`` lets diffprivlib draw fresh noise on every fit.
    n_estimators, max_depth : int
        For the random forest only.

    Examples
    --------
    >>> make_model("gaussian_nb", 1.0, 30).bounds[1].shape
    (30,)
    """
    from diffprivlib import models as dpm

    check_choice(kind, "kind", KINDS)
    epsilon = check_real(epsilon, "epsilon", min_value=0, include_boundaries="neither")
    n_features = check_int(n_features, "n_features", min_value=1)
    random_state = None if seed is None else as_int_seed(seed)  # diffprivlib takes an int, not a Generator
    bounds = (np.zeros(n_features), np.ones(n_features))
    if kind == "logistic_regression":
        # every row lies in the unit cube, so its L2 norm is at most sqrt(d): known a priori
        return dpm.LogisticRegression(epsilon=epsilon, data_norm=math.sqrt(n_features),
                                      accountant=accountant, random_state=random_state)
    if kind == "gaussian_nb":
        return dpm.GaussianNB(epsilon=epsilon, bounds=bounds, accountant=accountant, random_state=random_state)
    return dpm.RandomForestClassifier(n_estimators=n_estimators, epsilon=epsilon, bounds=bounds,
                                      classes=[0, 1], max_depth=max_depth, accountant=accountant,
                                      random_state=random_state)


def utility_curve(data, kind, epsilons, repeats=5, seed=0, **model_kwargs):
    """Test accuracy of a diffprivlib model at each epsilon: mean and std over ``repeats`` fits.

    Each fit draws fresh noise, so one run per epsilon would be a noisy curve.

    Returns
    -------
    mean, std : ndarray of shape (len(epsilons),)
    """
    from diffprivlib import BudgetAccountant

    seed = as_int_seed(seed)  # one int, so fit r of every epsilon draws from seed + r
    repeats = check_int(repeats, "repeats", min_value=1)
    accs = np.zeros((len(epsilons), repeats))
    for i, eps in enumerate(epsilons):
        for r in range(repeats):
            model = make_model(kind, eps, data.x_train.shape[1], accountant=BudgetAccountant(),
                               seed=seed + r, **model_kwargs)
            with warnings.catch_warnings():
                # diffprivlib's LogisticRegression wraps scikit-learn's, which may not converge on
                # noisy objectives; a non-converged fit is still DP and its accuracy is what it is.
                # (It also calls L-BFGS-B with an option SciPy deprecates.)
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=DeprecationWarning)
                model.fit(data.x_train, data.y_train)
            accs[i, r] = np.mean(model.predict(data.x_test) == data.y_test)
    return accs.mean(axis=1), accs.std(axis=1)
