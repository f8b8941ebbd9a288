"""Shadow models: many copies of the target's training recipe, each on a random half of the data.

LiRA needs, for every record, models trained *with* it and models trained *without* it. The
standard design (Carlini et al., 2022) draws, for each model, a random half of a data pool
as its training set. Every model's outputs on the whole pool are kept, so any one model can
play the target while the others are its shadows, and members (its half) and non-members
(the other half) come from the same distribution, in equal numbers.

The outputs are cached (``.npz``, no pickle) under :func:`mlsec_lessons.cache.cache_dir`, keyed
by the estimator's parameters, the data and the seed, so a lesson re-run loads them.
"""
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from ..cache import Provenance, cached_arrays, fingerprint
from ..errors import InvalidParameterError
from ..validation import check_int, check_seed
from .membership import logit_confidence


def model_logits(model, x):
    """Logits of a fitted scikit-learn classifier, computed so that confident outputs stay finite.

    ``predict_proba`` rounds to exactly 1 for confident records, and ``log(1 - 1)`` is ``-inf``:
    the membership signal is lost where it is strongest. So the logits are taken before the
    softmax: the forward pass of an ``MLPClassifier``, the joint log-likelihood of a Gaussian
    naive Bayes, the ``decision_function`` of a linear model (``[0, d]`` for two classes).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> model_logits(m, [[0.0]]).shape
    (1, 2)
    """
    x = np.asarray(x, dtype=float)
    if hasattr(model, "coefs_"):  # MLPClassifier: replay the forward pass without the softmax
        h = x
        for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
            h = h @ w + b
            if i < len(model.coefs_) - 1:
                h = _ACTIVATIONS[model.activation](h)
        return np.column_stack([-h[:, 0] / 2, h[:, 0] / 2]) if h.shape[1] == 1 else h
    if hasattr(model, "predict_joint_log_proba"):  # naive Bayes: log p(x, y) are logits up to a constant
        return model.predict_joint_log_proba(x)
    if hasattr(model, "decision_function"):
        d = np.asarray(model.decision_function(x), dtype=float)
        return np.column_stack([np.zeros(len(d)), d]) if d.ndim == 1 else d
    raise InvalidParameterError(f"cannot get logits from {type(model).__name__}: it has no coefs_, "
                     "predict_joint_log_proba or decision_function")


_ACTIVATIONS = {"relu": lambda h: np.maximum(h, 0), "tanh": np.tanh, "identity": lambda h: h,
                "logistic": lambda h: 1 / (1 + np.exp(-h))}


@dataclass(frozen=True, eq=False)
class ShadowSet:
    """Outputs of ``n_models`` models, each trained on a random half of a pool of records."""

    logits: np.ndarray   # (n_models, n_records, n_classes)
    in_mask: np.ndarray  # (n_models, n_records): True where the record was in that model's training set
    y: np.ndarray        # (n_records,) labels
    provenance: Provenance | None = None  # where the logits came from (cache path, from_cache, versions)

    @property
    def scores(self):
        """Logit-scaled confidence in the true label, shape (n_models, n_records)."""
        return np.stack([logit_confidence(z, self.y) for z in self.logits])

    @property
    def losses(self):
        """Cross-entropy loss of every model on every record, shape (n_models, n_records)."""
        from .membership import loss_scores

        return -np.stack([loss_scores(z, self.y) for z in self.logits])

    def to_frame(self):
        """One row per model: its training-set size and its accuracy on members and on non-members."""
        import pandas as pd

        correct = self.logits.argmax(-1) == self.y
        return pd.DataFrame({"members": self.in_mask.sum(axis=1),
                             "accuracy on members": [c[m].mean() for c, m in zip(correct, self.in_mask)],
                             "accuracy on non-members": [c[~m].mean() for c, m in zip(correct, self.in_mask)]},
                            index=pd.RangeIndex(len(self.logits), name="model"))

    def accuracy_by_membership(self):
        """Mean accuracy of the models on their members and on their non-members (the generalisation gap).

        Returns ``{"members": float, "non-members": float}``. (``models.accuracy`` is one model's accuracy.)
        """
        correct = self.logits.argmax(-1) == self.y
        return {"members": float(correct[self.in_mask].mean()), "non-members": float(correct[~self.in_mask].mean())}


def half_masks(n_models, n_records, seed=0):
    """For each model, exactly ``n_records // 2`` records drawn at random as its training set.

    Examples
    --------
    >>> m = half_masks(4, 10, seed=0)
    >>> m.shape, m.sum(axis=1).tolist()
    ((4, 10), [5, 5, 5, 5])
    """
    rng = np.random.default_rng(check_seed(seed))
    mask = np.zeros((n_models, n_records), bool)
    for k in range(n_models):
        mask[k, rng.permutation(n_records)[: n_records // 2]] = True
    return mask


def train_shadow_models(estimator, x, y, n_models=17, *, seed=0, cache=True):
    """Fit ``n_models`` clones of ``estimator``, each on a random half of ``(x, y)``; keep their logits.

    Parameters
    ----------
    estimator : scikit-learn classifier (unfitted)
        The training recipe, e.g. ``MLPClassifier(...)`` or a diffprivlib model. It is cloned
        for each model; a ``random_state`` parameter, if it has one, is set to ``seed + k`` so
        each model starts differently but reproducibly. An estimator with a ``shadow_logits``
        method (:class:`DPSGDClassifier`) computes the models itself, the same ones.
    x, y : arrays
        The pool: 2-D features and integer labels.
    n_models : int, default=17
        One target plus 16 shadows, the fewest the course uses for LiRA.
    seed : int, default=0
    cache : bool, default=True

    Returns
    -------
    ShadowSet

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> x, y = np.arange(8.0).reshape(-1, 1), np.arange(8) % 2
    >>> s = train_shadow_models(LogisticRegression(), x, y, n_models=3, cache=False)
    >>> s.logits.shape, s.in_mask.sum(axis=1).tolist()
    ((3, 8, 2), [4, 4, 4])
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise InvalidParameterError(f"x must be 2-D and y 1-D of the same length, got {x.shape} and {y.shape}")
    n_models = check_int(n_models, "n_models", min_value=2)
    seed = check_int(seed, "seed", min_value=0)  # seed + k seeds model k: an int
    y = y.astype(np.int64)
    config = dict(estimator=type(estimator).__module__ + "." + type(estimator).__name__,
                  params=sorted((k, repr(v)) for k, v in estimator.get_params().items()),
                  data=fingerprint(x, y), n_models=n_models, seed=seed)

    def compute():
        in_mask = half_masks(n_models, len(x), seed)
        if hasattr(estimator, "shadow_logits"):
            logits = estimator.shadow_logits(x, y, in_mask, seed)
        else:
            logits = [model_logits(fit_seeded(estimator, x[m], y[m], seed + k), x) for k, m in enumerate(in_mask)]
        return {"logits": np.stack(logits).astype(np.float32), "in_mask": in_mask}

    arrays, provenance = cached_arrays(type(estimator).__name__, config, compute, cache=cache, folder="shadows")
    return ShadowSet(arrays["logits"], arrays["in_mask"], y, provenance)


def fit_model(estimator, x, y, in_mask, k, seed=0):
    """Refit model ``k`` of a shadow set exactly as :func:`train_shadow_models` did, to use it as a target.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> x, y = np.arange(8.0).reshape(-1, 1), np.arange(8) % 2
    >>> s = train_shadow_models(LogisticRegression(), x, y, n_models=2, cache=False)
    >>> m = fit_model(LogisticRegression(), x, y, s.in_mask, 1)
    >>> bool(np.allclose(model_logits(m, x), s.logits[1]))
    True
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y).astype(np.int64)
    return fit_seeded(estimator, x[in_mask[k]], y[in_mask[k]], check_int(seed, "seed", min_value=0) + int(k))


def fit_seeded(estimator, x, y, seed):
    """A fresh clone of ``estimator`` fitted on ``(x, y)``, its ``random_state`` or ``seed`` (if any) set to ``seed``.

    Shadow models and canary trials are fitted this way, so each one is reproducible on its own.
    scikit-learn's ``ConvergenceWarning`` is silenced (shadows are meant to overfit); any other
    warning reaches the caller.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    model = clone(estimator)
    for name in ("random_state", "seed"):  # scikit-learn's name, and the course's (DPSGDClassifier)
        if name in model.get_params():
            model.set_params(**{name: seed})
    with warnings.catch_warnings():
        # shadows are meant to overfit, so "not converged" is noise here; any other warning (such as
        # diffprivlib's PrivacyLeakWarning when bounds are missing) still reaches the caller
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


class DPSGDClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn style front for :func:`mlsec_lessons.privacy.dp_sgd.train_dp_sgd` on tabular rows.

    So that DP-SGD models can be shadow models like any other estimator: an attack that knows
    the defense trains its shadows with the same private recipe. ``noise_multiplier=0`` gives
    the same recipe with clipping and no noise.

    Parameters
    ----------
    hidden : tuple of int, default=(64,)
        Hidden layers of the ``mlp`` architecture (``()``: a logistic regression).
    l2_norm_clip, noise_multiplier, batch_size, epochs, learning_rate, momentum, delta
        As in ``dp_sgd.train_dp_sgd``.
    seed : int, default=0
        The seed of the initial weights, the batches and the noise (:func:`fit_seeded` sets it per model).

    Examples
    --------
    >>> clf = DPSGDClassifier(noise_multiplier=1.0, epochs=5)
    >>> clf.get_params()["noise_multiplier"]
    1.0
    """

    def __init__(self, hidden=(64,), l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=64, epochs=15,
                 learning_rate=0.1, momentum=0.9, delta=1e-5, seed=0):
        self.hidden, self.l2_norm_clip, self.noise_multiplier = hidden, l2_norm_clip, noise_multiplier
        self.batch_size, self.epochs, self.learning_rate = batch_size, epochs, learning_rate
        self.momentum, self.delta, self.seed = momentum, delta, seed

    @staticmethod
    def _check(x, y):
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
        if x.ndim != 2 or y.shape != (len(x),):
            raise InvalidParameterError(f"x must be 2-D and y 1-D of the same length, got {x.shape} and {y.shape}")
        classes = np.unique(y)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise InvalidParameterError(f"y must hold the labels 0..n_classes-1, got {classes.tolist()}")
        return x, y, classes

    def fit(self, x, y):
        from ..data import Dataset
        from ..privacy import dp_sgd

        x, y, self.classes_ = self._check(x, y)
        data = Dataset("rows", x, y, x[:0], y[:0], n_classes=len(self.classes_))
        run = dp_sgd.train_dp_sgd(data, "mlp", hidden=tuple(self.hidden), l2_norm_clip=self.l2_norm_clip,
                                  noise_multiplier=self.noise_multiplier, batch_size=self.batch_size,
                                  epochs=self.epochs, learning_rate=self.learning_rate, momentum=self.momentum,
                                  delta=self.delta, seed=self.seed, cache=False, progress=False)
        # scikit-learn's convention: what fit learned ends in "_"; the privacy spent is part of it
        self.model_, self.privacy_ = run.model, run.privacy
        self.epsilon_, self.delta_ = run.privacy.epsilon, run.privacy.delta
        return self

    def shadow_logits(self, x, y, in_mask, seed):
        """The logits on ``x`` of one model per row of ``in_mask``, model ``k`` fitted on its rows with ``seed + k``.

        The models ``fit_seeded(self, x[m], y[m], seed + k)`` gives, weight for weight (the same initial weights,
        Poisson batches and noise), computed faster: :meth:`fit` traces a compiled DP-SGD step anew for every
        model, which takes longer than training a small model on tabular rows. These models differ only in
        their rows and seed, so they share one model object and one step, and the weights and momentum are
        reset between them (``tests/test_applications.py`` checks the two against each other).
        """
        import keras
        import tensorflow as tf

        from ..models import build
        from ..privacy import dp_sgd
        from ..reproducibility import seeded

        x, y, classes = self._check(x, y)
        sizes = {int(m.sum()) for m in in_mask}
        if len(sizes) != 1:  # the expected batch (sample_rate * n) is part of the compiled step
            raise InvalidParameterError(f"every model must train on as many rows, got {sorted(sizes)}")
        n = sizes.pop()
        sample_rate, steps = dp_sgd.schedule(n, self.batch_size, self.epochs)

        def initial_model():
            return build("mlp", x.shape[1:], len(classes), hidden=tuple(self.hidden))

        model = initial_model()
        optimizer = keras.optimizers.SGD(self.learning_rate, momentum=self.momentum)
        optimizer.build(model.trainable_variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        step, noise_step = dp_sgd.make_dp_step(model, loss_fn, optimizer, self.l2_norm_clip, self.noise_multiplier,
                                               float(sample_rate * n))
        logits = []
        for k, mask in enumerate(in_mask):
            with seeded(seed + k):  # train_dp_sgd's initial weights for seed + k
                model.set_weights(initial_model().get_weights())
            for v in optimizer.momentums:
                v.assign(tf.zeros_like(v))
            dp_sgd.run_dp_sgd(step, noise_step, x[mask], y[mask], sample_rate=sample_rate, steps=steps, seed=seed + k)
            logits.append(model(x, training=False).numpy())
        return logits

    def decision_function(self, x):
        """Logits, shape (n, n_classes)."""
        return self.model_.predict(np.asarray(x, dtype=np.float32), batch_size=1024, verbose=0)

    def predict(self, x):
        return self.classes_[np.argmax(self.decision_function(x), axis=1)]
