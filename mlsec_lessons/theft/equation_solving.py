"""Exact extraction: Tramer et al. (2016)'s equation-solving attack on a logistic regression served with scores.

A binary logistic regression answers ``p = sigmoid(w.x + b)``. Inverting the sigmoid turns every answer
into one linear equation in the ``d + 1`` unknowns::

    log(p / (1 - p)) = w.x + b

so ``d + 1`` queries in general position give ``(w, b)`` exactly, and more are solved by least squares.
A softmax regression over ``k`` classes answers ``p_j = exp(z_j) / sum_i exp(z_i)``, and
``log p_j - log p_0 = (w_j - w_0).x + (b_j - b_0)``: the same ``d + 1`` queries give every class's
weights relative to class 0, which is all that the probabilities determine.

Rounded answers make the equations approximate. An answer rounded to 0 gives no equation at all
(``log 0``): it says only that the logit lies beyond a bound, and it is dropped. Label-only answers
are all 0 or 1, so nothing is left to solve: the thief has to learn the boundary from labels instead.

Reference: F. Tramer, F. Zhang, A. Juels, M. K. Reiter, T. Ristenpart, "Stealing Machine Learning Models
via Prediction APIs", USENIX Security 2016, section 4.1.
"""
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..deployment.hooks import output_policy
from ..errors import InvalidParameterError


class ServedClassifier:
    """A fitted scikit-learn classifier answering as lesson 07's server does, without the HTTP.

    The answer goes through the server's own output policy (``outputs``, ``postprocessor``: the options
    of ``server.create_app``), and :meth:`predict` returns what :class:`~.client.HttpVictim` would:
    the probabilities, or a one-hot row of the label.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> ServedClassifier(model, postprocessor=lambda p: p.round(1)).predict([[0.0]])
    array([[0.6, 0.4]])
    >>> api = ServedClassifier(model, outputs="labels")
    >>> api.predict([[0.0], [1.0]]), api.queries
    (array([[1., 0.],
           [0., 1.]]), 2)
    """

    def __init__(self, model, outputs="probabilities", postprocessor=None):
        self.model, self.outputs, self.postprocessor = model, outputs, postprocessor
        self.policy = output_policy(outputs, postprocessor)
        self.queries = 0

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        served = SimpleNamespace(predict=self.model.predict,
                                 predict_with_scores=lambda v: (self.model.predict(v), self.model.predict_proba(v)))
        labels, extra = self.policy(served, x)
        self.queries += len(x)
        if "probabilities" in extra:
            return np.asarray(extra["probabilities"], dtype=np.float64)
        return np.eye(len(self.model.classes_))[np.searchsorted(self.model.classes_, labels)]


@dataclass(frozen=True, eq=False)
class LinearCopy:
    """The stolen weights: ``coef_`` (k, d) and ``intercept_`` (k,), class 0's row set to zero.

    ``equations_[j]``: how many answers gave an equation for class ``j`` (both its probability and
    class 0's above zero). :meth:`predict` returns class indices ``0 .. k-1``.
    """

    coef_: np.ndarray
    intercept_: np.ndarray
    equations_: np.ndarray

    def decision_function(self, x):
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ self.coef_.T + self.intercept_

    def predict(self, x):
        return self.decision_function(x).argmax(axis=1)


def equation_solving(x, answers):
    """Solve the answers' log-probability ratios for the weights of a softmax (or logistic) regression.

    Parameters
    ----------
    x : array of shape (n, d)
        The queries (any shape per query; each is flattened).
    answers : array of shape (n, k)
        The class probabilities the API returned, rounded or not.

    Returns
    -------
    LinearCopy

    Raises
    ------
    InvalidParameterError
        If the answers are not probabilities, or leave fewer than ``d + 1`` independent equations for a
        class: too few queries, or answers rounded to 0 and 1 (label-only answers give none).

    Examples
    --------
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])       # d + 1 = 3 queries
    >>> p = 1 / (1 + np.exp(-(x @ [2.0, -1.0] + 0.5)))           # w = (2, -1), b = 0.5
    >>> copy = equation_solving(x, np.column_stack([1 - p, p]))
    >>> copy.coef_[1].round(6), copy.intercept_[1].round(6)
    (array([ 2., -1.]), np.float64(0.5))
    >>> equation_solving(x, np.column_stack([1 - p, p]).round(0))
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: answers give 0 equations for class 1 ...
    """
    p = np.asarray(answers, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InvalidParameterError(f"answers must be one row of k >= 2 probabilities per query, got shape {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise InvalidParameterError("answers must be probabilities in [0, 1]; label-only answers have none to solve")
    x = np.asarray(x, dtype=np.float64)
    if len(x) != len(p):
        raise InvalidParameterError(f"x has {len(x)} queries but answers has {len(p)} rows")
    design = np.column_stack([x.reshape(len(x), -1), np.ones(len(x))])   # the unknowns: (w_j - w_0, b_j - b_0)
    k, unknowns = p.shape[1], design.shape[1]
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    theta, equations = np.zeros((k, unknowns)), np.zeros(k, dtype=int)
    for j in range(1, k):
        rows = (p[:, 0] > 0) & (p[:, j] > 0)    # log 0: a probability rounded to 0 says only "beyond a bound"
        equations[j] = rows.sum()
        if np.linalg.matrix_rank(design[rows]) < unknowns:
            raise InvalidParameterError(
                f"answers give {equations[j]} equations for class {j} (rows where it and class 0 have probability "
                f"above 0), not {unknowns} independent ones (d + 1): query more, or the answers are rounded to 0 and 1")
        theta[j] = np.linalg.lstsq(design[rows], log_p[rows, j] - log_p[rows, 0], rcond=None)[0]
    return LinearCopy(theta[:, :-1], theta[:, -1], equations)


def relative_weights(model):
    """A fitted scikit-learn linear classifier's ``(coef, intercept)`` in :class:`LinearCopy`'s form (class 0 = 0)."""
    coef, intercept = np.atleast_2d(model.coef_), np.ravel(model.intercept_)
    if len(coef) == 1:                            # binary: one row, the weights of class 1 against class 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    return coef - coef[0], intercept - intercept[0]


def parameter_error(copy, model):
    """Relative L2 error of the stolen weights and intercepts: ``||theta_copy - theta|| / ||theta||``."""
    coef, intercept = relative_weights(model)
    truth = np.column_stack([coef, intercept])
    return float(np.linalg.norm(np.column_stack([copy.coef_, copy.intercept_]) - truth) / np.linalg.norm(truth))


def solving_curve(x, answers, budgets, model, x_eval):
    """Parameter error and fidelity of the equation-solving copy from the first ``b`` answers, per budget.

    A budget whose answers cannot be solved (too few equations) gets ``NaN`` for both.

    Returns
    -------
    list of dict
        ``{"budget", "equations", "parameter error", "fidelity"}`` per budget; ``equations`` is the
        fewest usable answers of any class.
    """
    victim = np.searchsorted(model.classes_, model.predict(x_eval))
    rows = []
    for b in budgets:
        if not 1 <= b <= len(answers):
            raise InvalidParameterError(f"budget {b!r} is outside [1, {len(answers)}], the number of answers")
        try:
            copy = equation_solving(x[:b], answers[:b])
        except InvalidParameterError:
            p = np.asarray(answers[:b])
            usable = min(int(np.sum((p[:, 0] > 0) & (p[:, j] > 0))) for j in range(1, p.shape[1]))
            rows.append({"budget": int(b), "equations": usable, "parameter error": np.nan, "fidelity": np.nan})
            continue
        rows.append({"budget": int(b), "equations": int(copy.equations_[1:].min()),
                     "parameter error": parameter_error(copy, model),
                     "fidelity": float(np.mean(copy.predict(x_eval) == victim))})
    return rows
