"""Reconstruction: recover a training record from a released model and the other records (ART).

The threat model of ART's ``DatabaseReconstruction`` is the strongest "informed adversary":
it knows every training record but one, and the released model. It searches for the row
``(x, y)`` that, added to the known rows and refitted, gives parameters closest to the
released ones. For a Gaussian naive Bayes (per-class means and variances) or a logistic
regression fitted to its optimum, the parameters pin the missing row down exactly.

A DP model releases noisy parameters. Two attacker views are tried, and the stronger one is
the one to report:

* ``"released"``: ART's default, which refits clones of the released (DP) model class, so each
  refit draws fresh noise;
* ``"exact"``: the attacker knows noise was added and matches the released parameters with
  exact, non-private refits of the same model family.
"""
import numpy as np
from sklearn.base import clone

_PARAMS = {"GaussianNB": ("theta_", "var_", "class_prior_", "class_count_", "classes_", "epsilon_"),
           "LogisticRegression": ("coef_", "intercept_", "classes_", "n_features_in_", "n_iter_")}


def exact_refit_view(released, template):
    """A non-private scikit-learn model of the same family that carries the released parameters.

    ART's attack refits clones of the model it is given; this one refits *without* noise and
    compares the result with the (noisy) parameters that were released.

    Parameters
    ----------
    released : fitted GaussianNB or LogisticRegression (e.g. from diffprivlib)
    template : unfitted scikit-learn GaussianNB or LogisticRegression
        The non-private recipe the attacker refits with.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> m = GaussianNB().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> exact_refit_view(m, GaussianNB()).theta_.ravel().tolist()
    [0.5, 2.5]
    """
    family = next((name for name in _PARAMS if name == type(template).__name__), None)
    if family is None:
        raise ValueError("template must be a scikit-learn GaussianNB or LogisticRegression, "
                         f"got {type(template).__name__}")
    view = clone(template)
    for name in _PARAMS[family]:
        if hasattr(released, name):
            setattr(view, name, getattr(released, name))
    return view


def reconstruct_row(released, x_known, y_known, n_classes=None):
    """ART's ``DatabaseReconstruction``: the row that, with the known rows, best explains ``released``.

    Parameters
    ----------
    released : fitted scikit-learn GaussianNB or LogisticRegression
        The model as the attacker sees it (wrap a DP model with :func:`exact_refit_view` for the
        noise-aware attacker).
    x_known, y_known : arrays
        Every training record but the one to recover.
    n_classes : int, optional
        Defaults to ``len(released.classes_)``.

    Returns
    -------
    x_row : array of shape (n_features,)
    y_row : int

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> x, y = np.array([[0.1, 0.2], [0.4, 0.3], [0.8, 0.9], [0.7, 0.6]]), np.array([0, 0, 1, 1])
    >>> x_row, y_row = reconstruct_row(GaussianNB().fit(x, y), x[1:], y[1:])   # doctest: +SKIP
    >>> x_row.round(3), y_row                                                  # doctest: +SKIP
    (array([0.1, 0.2]), 0)
    """
    from art.attacks.inference.reconstruction import DatabaseReconstruction
    from art.estimators.classification import scikitlearn as art_sk
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    # ART's factory rejects diffprivlib's classes by module name; they subclass scikit-learn's,
    # so the family's wrapper takes them directly
    if isinstance(released, GaussianNB):
        wrapper = art_sk.ScikitlearnGaussianNB
    elif isinstance(released, LogisticRegression):
        wrapper = art_sk.ScikitlearnLogisticRegression
    else:
        raise ValueError(f"released must be a fitted GaussianNB or LogisticRegression, got {type(released).__name__}")
    x_known, y_known = np.asarray(x_known, dtype=float), np.asarray(y_known)
    if x_known.ndim != 2 or y_known.shape != (len(x_known),):
        raise ValueError("x_known must be 2-D and y_known 1-D of the same length, "
                         f"got {x_known.shape} and {y_known.shape}")
    attack = DatabaseReconstruction(wrapper(released))
    x_rec, y_rec = attack.reconstruct(x_known, y_known)
    return x_rec[0], int(np.argmax(y_rec[0]))


def reconstruction_errors(estimator, x, y, rows, view="released", template=None):
    """Fit ``estimator`` on ``(x, y)``, then try to recover each of ``rows`` from the model and the other rows.

    Parameters
    ----------
    estimator : unfitted scikit-learn (or diffprivlib) GaussianNB or LogisticRegression
        The training recipe of the released model.
    x, y : arrays
        The full training set.
    rows : sequence of int
        Which records to reconstruct, one attack each.
    view : {"released", "exact"}, default="released"
        The attacker's refits: clones of the released model, or exact refits of ``template``
        (see the module docstring).
    template : unfitted scikit-learn model, required for ``view="exact"``

    Returns
    -------
    dict of arrays, one entry per row
        ``rmse``: root-mean-square error of the recovered features; ``baseline rmse``: that of
        guessing the mean of the known rows (what the attacker knows without the model);
        ``label correct``.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> r = reconstruction_errors(GaussianNB(), x, y, rows=[0, 1])          # doctest: +SKIP
    >>> r["rmse"] < 1e-3                                                     # doctest: +SKIP
    array([ True,  True])
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y)
    if view not in ("released", "exact"):
        raise ValueError(f"view must be 'released' or 'exact', got {view!r}")
    if view == "exact" and template is None:
        raise ValueError("view='exact' needs the non-private template the attacker refits with")
    rows = [int(r) for r in rows]
    if not rows or min(rows) < 0 or max(rows) >= len(x):
        raise ValueError(f"rows must be indices into x (0..{len(x) - 1}), got {rows}")
    released = clone(estimator).fit(x, y)
    if view == "exact":
        seen = exact_refit_view(released, template)
    else:
        # the released model as the attacker holds it: its fitted parameters, but not the seed of
        # its noise (with the seed, ART's refits would replay the very same noise)
        seen = clone(released)
        if "random_state" in seen.get_params():
            seen.set_params(random_state=None)
        seen.__dict__.update({k: v for k, v in vars(released).items() if k.endswith("_")})
    rmse, baseline, label = [], [], []
    for i in rows:
        known = np.arange(len(x)) != i
        x_rec, y_rec = reconstruct_row(seen, x[known], y[known])
        rmse.append(np.sqrt(np.mean((x_rec - x[i]) ** 2)))
        baseline.append(np.sqrt(np.mean((x[known].mean(axis=0) - x[i]) ** 2)))
        label.append(released.classes_[y_rec] == y[i])
    return {"rmse": np.array(rmse), "baseline rmse": np.array(baseline), "label correct": np.array(label)}
