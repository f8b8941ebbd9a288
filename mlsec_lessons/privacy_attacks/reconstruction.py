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

ART's search is unbounded (it calls L-BFGS with ``bounds=None``), so against noisy parameters it
wanders outside the range any record can take. :class:`BoxedDatabaseReconstruction` keeps it in
the public box the data are known to lie in.

**What DP promises.** Say the missing row is one of ``k`` candidates, equally likely, and the
attacker must name it. Blind guessing succeeds with probability ``1/k``. Against an
(eps, delta)-DP training (neighbours: one row replaced) no attack succeeds with probability
above ``(e^eps + (k - 1) delta) / (e^eps + k - 1)`` (:func:`guessing_bound`), the finite-prior
case of the reconstruction-robustness bound ``e^eps * kappa + delta`` of Balle et al. (2022),
"Reconstructing Training Data with Informed Adversaries", and Hayes et al. (2023), "Bounding
Training Data Reconstruction in DP-SGD". :func:`candidate_trials` measures success in this game.
"""
import numpy as np
from scipy.optimize import fmin_l_bfgs_b
from sklearn.base import clone

from ..errors import InvalidParameterError
from ..validation import check_int

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
        raise InvalidParameterError("template must be a scikit-learn GaussianNB or LogisticRegression, "
                         f"got {type(template).__name__}")
    view = clone(template)
    for name in _PARAMS[family]:
        if hasattr(released, name):
            setattr(view, name, getattr(released, name))
    return view


def _art_reconstruction():
    """ART's attack class and :class:`BoxedDatabaseReconstruction` (ART is imported only when needed)."""
    from art.attacks.inference.reconstruction import DatabaseReconstruction

    class BoxedDatabaseReconstruction(DatabaseReconstruction):
        """ART's ``DatabaseReconstruction`` with its L-BFGS search kept inside ``bounds``."""

        def __init__(self, estimator, bounds):
            super().__init__(estimator)
            self.bounds = bounds

        def reconstruct(self, x, y=None, **kwargs):
            y = self.estimator.predict(x=x).argmax(axis=1) if y is None else np.asarray(y)
            best, x_best, y_best = np.inf, None, None
            for label in range(self.estimator.nb_classes):  # as ART does: one search per label
                args = (label, x, y, self._estimator, self.estimator, self.params)
                x_row, residual, _ = fmin_l_bfgs_b(self.objective, x[0], args=args, approx_grad=True,
                                                   factr=100, pgtol=1e-10, bounds=self.bounds)
                if residual < best:
                    best, x_best, y_best = residual, x_row, label
            return x_best[None], np.eye(self.estimator.nb_classes)[[y_best]]

    return DatabaseReconstruction, BoxedDatabaseReconstruction


def _art_wrapper(released):
    from art.estimators.classification import scikitlearn as art_sk
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    # ART's factory rejects diffprivlib's classes by module name; they subclass scikit-learn's,
    # so the family's wrapper takes them directly
    if isinstance(released, GaussianNB):
        return art_sk.ScikitlearnGaussianNB(released)
    if isinstance(released, LogisticRegression):
        return art_sk.ScikitlearnLogisticRegression(released)
    raise InvalidParameterError(f"released must be a fitted GaussianNB or LogisticRegression, got {type(released).__name__}")


def _check_bounds(bounds, n_features):
    if bounds is None:
        return None
    lo, hi = (np.broadcast_to(np.asarray(b, dtype=float), (n_features,)) for b in bounds)
    if not np.all(lo < hi):
        raise InvalidParameterError(f"bounds must be (lower, upper) with lower < upper, got {bounds!r}")
    return list(zip(lo.tolist(), hi.tolist()))


def reconstruct_row(released, x_known, y_known, n_classes=None, bounds=None):
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
    bounds : (lower, upper), optional
        Scalars or per-feature arrays: the public box the missing row is known to lie in. None
        runs ART's attack as it ships, with an unbounded search.

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
    wrapper = _art_wrapper(released)
    x_known, y_known = np.asarray(x_known, dtype=float), np.asarray(y_known)
    if x_known.ndim != 2 or y_known.shape != (len(x_known),):
        raise InvalidParameterError("x_known must be 2-D and y_known 1-D of the same length, "
                         f"got {x_known.shape} and {y_known.shape}")
    box = _check_bounds(bounds, x_known.shape[1])
    DatabaseReconstruction, BoxedDatabaseReconstruction = _art_reconstruction()
    attack = DatabaseReconstruction(wrapper) if box is None else BoxedDatabaseReconstruction(wrapper, box)
    x_rec, y_rec = attack.reconstruct(x_known, y_known)
    return x_rec[0], int(np.argmax(y_rec[0]))


def _check_view(view, template):
    if view not in ("released", "exact"):
        raise InvalidParameterError(f"view must be 'released' or 'exact', got {view!r}")
    if view == "exact" and template is None:
        raise InvalidParameterError("view='exact' needs the non-private template the attacker refits with")


def _attacker_view(released, view, template):
    """The released model as the attacker holds it (see the module docstring)."""
    if view == "exact":
        return exact_refit_view(released, template)
    # its fitted parameters, but not the seed of its noise (with the seed, ART's refits would
    # replay the very same noise)
    seen = clone(released)
    if "random_state" in seen.get_params():
        seen.set_params(random_state=None)
    seen.__dict__.update({k: v for k, v in vars(released).items() if k.endswith("_")})
    return seen


def reconstruction_errors(estimator, x, y, rows, view="released", template=None, bounds=None):
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
    bounds : (lower, upper), optional
        Keep ART's search inside this box (see :func:`reconstruct_row`).

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
    _check_view(view, template)
    rows = [int(r) for r in rows]
    if not rows or min(rows) < 0 or max(rows) >= len(x):
        raise InvalidParameterError(f"rows must be indices into x (0..{len(x) - 1}), got {rows}")
    released = clone(estimator).fit(x, y)
    seen = _attacker_view(released, view, template)
    rmse, baseline, label = [], [], []
    for i in rows:
        known = np.arange(len(x)) != i
        x_rec, y_rec = reconstruct_row(seen, x[known], y[known], bounds=bounds)
        rmse.append(np.sqrt(np.mean((x_rec - x[i]) ** 2)))
        baseline.append(np.sqrt(np.mean((x[known].mean(axis=0) - x[i]) ** 2)))
        label.append(released.classes_[y_rec] == y[i])
    return {"rmse": np.array(rmse), "baseline rmse": np.array(baseline), "label correct": np.array(label)}


def guessing_bound(epsilon, k, delta=0.0):
    """Highest chance that any attack names the missing row among ``k`` equally likely candidates.

    The bound for an (eps, delta)-DP training, neighbouring datasets differing in one replaced
    row. Let ``p[i, j]`` be the chance of naming candidate ``i`` when ``j`` was trained on. DP
    gives ``p[i, j] >= e^-eps (p[i, i] - delta)``, and each column sums to 1, so
    ``p[j, j] + e^-eps * sum_{i != j} (p[i, i] - delta) <= 1``; summing over ``j`` bounds the mean
    of the diagonal, the success rate. It is the finite-prior case of ``e^eps * kappa + delta``
    (Balle et al., 2022), with ``kappa = 1/k`` the blind guess's success.

    Parameters
    ----------
    epsilon : float
        May be ``inf`` (no guarantee: the bound is 1).
    k : int
        Number of candidates, ``k >= 1``.
    delta : float, default=0.0

    Returns
    -------
    float
        ``(e^eps + (k - 1) delta) / (e^eps + k - 1)``; ``1/k`` at eps = 0 and delta = 0.

    Examples
    --------
    >>> round(guessing_bound(1.0, 24), 3)
    0.106
    >>> guessing_bound(0.0, 24) == 1 / 24, guessing_bound(float("inf"), 24)
    (True, 1.0)
    """
    k = check_int(k, "k", min_value=1)
    if not epsilon >= 0:
        raise InvalidParameterError(f"epsilon must be >= 0, got {epsilon!r}")
    if not 0 <= delta <= 1:
        raise InvalidParameterError(f"delta must be in [0, 1], got {delta!r}")
    rest = (k - 1) * np.exp(-float(epsilon))  # 0 when epsilon is inf
    return float((1 + rest * delta) / (1 + rest))


def candidate_trials(estimator, x_known, y_known, candidates, y_candidates, *, view="released",
                     template=None, bounds=None, seed=0):
    """The reconstruction game with a finite prior: one training per candidate, then name it.

    For each candidate ``j`` a model is fitted on the known rows plus candidate ``j`` (a fresh
    ``random_state = seed + j`` when the estimator has one, which the attacker does not see).
    The attacker knows the known rows, the released model and the candidate list, and names a
    candidate in two ways:

    * **search**: ART's reconstruction (kept in ``bounds`` if given), then the candidate
      nearest to the reconstructed row;
    * **matching**: the candidate that minimises ART's own objective, the squared distance
      between the refitted and the released parameters.

    Averaged over the candidates, each naming rate is the success rate of a uniform prior, to
    compare with ``1 / k`` (the blind guess) and :func:`guessing_bound`.

    Parameters
    ----------
    estimator : unfitted scikit-learn (or diffprivlib) GaussianNB or LogisticRegression
    x_known, y_known : arrays
        The rows the attacker knows (the same in every trial).
    candidates : array of shape (k, n_features)
    y_candidates : int or array of shape (k,)
    view, template : as in :func:`reconstruction_errors`
    bounds : (lower, upper), optional
        The public box for ART's search.
    seed : int, default=0

    Returns
    -------
    dict of arrays of shape (k,)
        ``rmse`` of the reconstructed row, ``baseline rmse`` (guessing the mean of the known
        rows), ``search names it``, ``matching names it``.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> rng = np.random.default_rng(0)
    >>> x, c = rng.random((30, 2)), rng.random((4, 2))
    >>> r = candidate_trials(GaussianNB(), x, np.arange(30) % 2, c, 1, bounds=(0, 1))  # doctest: +SKIP
    >>> r["matching names it"].all()                                                     # doctest: +SKIP
    True
    """
    x_known, y_known = np.asarray(x_known, dtype=float), np.asarray(y_known)
    cand = np.asarray(candidates, dtype=float)
    if cand.ndim != 2 or x_known.ndim != 2 or cand.shape[1] != x_known.shape[1]:
        raise InvalidParameterError(f"candidates must have shape (k, {x_known.shape[-1]}), got {cand.shape}")
    y_cand = np.broadcast_to(np.asarray(y_candidates), (len(cand),))
    _check_view(view, template)
    DatabaseReconstruction, _ = _art_reconstruction()
    baseline = np.sqrt(np.mean((x_known.mean(axis=0) - cand) ** 2, axis=1))
    rmse, by_search, by_matching = [], [], []
    for j, (row, label) in enumerate(zip(cand, y_cand)):
        model = clone(estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed + j)
        released = model.fit(np.vstack([x_known, row]), np.r_[y_known, label])
        seen = _attacker_view(released, view, template)
        x_rec, _ = reconstruct_row(seen, x_known, y_known, bounds=bounds)
        rmse.append(np.sqrt(np.mean((x_rec - row) ** 2)))
        by_search.append(np.argmin(np.sum((cand - x_rec) ** 2, axis=1)) == j)
        art = _art_wrapper(seen)
        residual = [DatabaseReconstruction.objective(c, yc, x_known, y_known, art, art,
                                                     art.get_trainable_attribute_names())
                    for c, yc in zip(cand, y_cand)]
        by_matching.append(np.argmin(residual) == j)
    return {"rmse": np.array(rmse), "baseline rmse": baseline,
            "search names it": np.array(by_search), "matching names it": np.array(by_matching)}
