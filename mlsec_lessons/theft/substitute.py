"""The thief's model: a one-hidden-layer network in numpy, trained on whatever the API answered.

It learns from probability vectors (soft labels) as readily as from hard labels: the loss is the
cross-entropy against the answer, ``-sum_k p_k log q_k``, which for a one-hot ``p`` is the usual
log-loss. It is trained full batch with L-BFGS, so a few hundred stolen answers train in well
under a second, and the same seed gives the same copy. The thief does not know the victim's
architecture (a CNN here) and does not need to.
"""
import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..errors import InvalidParameterError
from ..validation import as_generator, check_int


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)  # shift for stability: exp never overflows
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def as_targets(y, n_classes=None):
    """Answers as a probability matrix: labels become one-hot, rows of scores are renormalised.

    Examples
    --------
    >>> as_targets([2, 0], n_classes=3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    y = np.asarray(y)
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise InvalidParameterError(f"labels must be non-negative integers, got dtype {y.dtype}")
        k = int(n_classes if n_classes is not None else y.max() + 1)
        if y.size and y.max() >= k:
            raise InvalidParameterError(f"label {int(y.max())} is out of range for n_classes={k}")
        return np.eye(k)[y]
    if y.ndim != 2 or not np.all(np.isfinite(y)) or (y < 0).any():
        raise InvalidParameterError(f"y must be labels (n,) or non-negative scores (n, k), got shape {y.shape}")
    total = y.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise InvalidParameterError("every row of scores must have a positive sum")
    return y / total  # rounded scores need not sum to exactly 1


class Substitute:
    """A small tanh network (inputs -> ``hidden`` -> classes) fitted with L-BFGS.

    Parameters
    ----------
    hidden : int, default=64
        Width of the hidden layer.
    alpha : float, default=1e-3
        L2 penalty on the weights.
    max_iter : int, default=200
        L-BFGS iterations.
    n_classes : int or None
        Needed only when ``fit`` gets labels and some class may be missing from them.
    seed : int, default=0
        Seed of the initial weights.

    Attributes
    ----------
    params_ : tuple of ndarray
        ``(W1, b1, W2, b2)``.
    n_classes_ : int

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((40, 4))
    >>> sub = Substitute(hidden=8, seed=0).fit(x, (x[:, 0] > 0.5).astype(int))
    >>> float(np.mean(sub.predict(x) == (x[:, 0] > 0.5)))
    1.0
    """

    def __init__(self, hidden=64, alpha=1e-3, max_iter=200, n_classes=None, seed=0):
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.n_classes = n_classes
        self.seed = seed

    def fit(self, X, y):
        """Fit on inputs ``X`` and answers ``y`` (labels, or one row of scores per input). Returns self."""
        for name in ("hidden", "max_iter"):
            value = getattr(self, name)
            check_int(value, name, min_value=1)
        if not self.alpha >= 0:
            raise InvalidParameterError(f"alpha must be non-negative, got {self.alpha!r}")
        X = self._flat(X)
        P = as_targets(y, self.n_classes)
        if len(X) != len(P):
            raise InvalidParameterError(f"X has {len(X)} samples but y has {len(P)}")
        rng = as_generator(self.seed)
        d, h, k = X.shape[1], int(self.hidden), P.shape[1]
        shapes = [(d, h), (h,), (h, k), (k,)]
        # Glorot-scaled start, zero biases
        theta = np.concatenate([rng.normal(0, np.sqrt(2 / (d + h)), d * h), np.zeros(h),
                                rng.normal(0, np.sqrt(2 / (h + k)), h * k), np.zeros(k)])

        def unpack(t):
            out, i = [], 0
            for s in shapes:
                n = int(np.prod(s))
                out.append(t[i:i + n].reshape(s))
                i += n
            return out

        def loss_and_grad(t):
            W1, b1, W2, b2 = unpack(t)
            H = np.tanh(X @ W1 + b1)
            Q = _softmax(H @ W2 + b2)
            n = len(X)
            loss = -np.sum(P * np.log(Q + 1e-12)) / n + 0.5 * self.alpha * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
            dZ = (Q - P) / n  # gradient of soft cross-entropy w.r.t. the logits
            dH = (dZ @ W2.T) * (1 - H ** 2)
            grads = [X.T @ dH + self.alpha * W1, dH.sum(0), H.T @ dZ + self.alpha * W2, dZ.sum(0)]
            return loss, np.concatenate([g.ravel() for g in grads])

        # one BLAS thread: these matrices are small, and extra threads only wait on each other
        with threadpool_limits(1):
            result = minimize(loss_and_grad, theta, jac=True, method="L-BFGS-B",
                              options={"maxiter": int(self.max_iter)})
        self.params_ = tuple(unpack(result.x))
        self.n_classes_ = k
        self.n_features_in_ = d
        return self

    @staticmethod
    def _flat(X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 0 or len(X) == 0:
            raise InvalidParameterError(f"X must hold at least one input, got shape {X.shape}")
        return X.reshape(len(X), -1)

    def _check_fitted(self):
        if not hasattr(self, "params_"):
            raise InvalidParameterError("this Substitute is not fitted yet; call fit(X, y) first")

    def _forward(self, X):
        self._check_fitted()
        X = self._flat(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidParameterError(f"X has {X.shape[1]} features per sample, the substitute expects {self.n_features_in_}")
        W1, b1, W2, b2 = self.params_
        H = np.tanh(X @ W1 + b1)
        return H, H @ W2 + b2

    def decision_function(self, X):
        """The logits, one row per input."""
        return self._forward(X)[1]

    def predict_proba(self, X):
        return _softmax(self.decision_function(X))

    def predict(self, X):
        return np.argmax(self.decision_function(X), axis=1)

    def logit_gradient(self, X, classes):
        """d logit[c] / d x for each input and its class ``c``, in the shape of ``X``."""
        H, _ = self._forward(X)
        W1, _, W2, _ = self.params_
        g = (W2[:, np.asarray(classes)].T * (1 - H ** 2)) @ W1.T  # back through tanh to the pixels
        return g.reshape(np.shape(X))

    def loss_gradient(self, X, y):
        """d cross-entropy(x, y) / d x, in the shape of ``X`` (what FGSM and PGD step along)."""
        H, Z = self._forward(X)
        W1, _, W2, _ = self.params_
        dZ = _softmax(Z) - np.eye(self.n_classes_)[np.asarray(y)]
        return (((dZ @ W2.T) * (1 - H ** 2)) @ W1.T).reshape(np.shape(X))
