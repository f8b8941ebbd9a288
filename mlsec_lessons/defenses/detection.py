"""Detecting adversarial inputs, and why a detector must be tested against an attacker who knows it.

The detector is a binary classifier ``g`` over inputs, trained on clean images (label 0) and
adversarial ones (label 1) crafted against the model it protects (in the spirit of Metzen et
al., 2017, and ART's ``BinaryInputDetector``). Reported as TPR (share of adversarial inputs
flagged) at an FPR (share of clean inputs flagged).

An attacker who knows ``g`` raises the classifier's loss *and* lowers ``g``'s "adversarial"
score in one objective (Carlini and Wagner, 2017):

    max_delta  L(f(x + delta), y) - c * L(g(x + delta), clean)
"""
import dataclasses

import numpy as np
import tensorflow as tf

from .. import models
from ..attacks import cross_entropy, pgd_loop
from ..cache import cached_fit, fingerprint
from ..errors import InvalidParameterError, MLSecError
from ..records import OneRowFrame
from ..validation import check_int, check_real, check_xy


class NotFittedError(MLSecError, ValueError):
    """A fitted attribute was asked of an estimator before ``fit``."""


def detection_data(x_clean, x_adv):
    """Stack clean (label 0) and adversarial (label 1) inputs into ``(X, y)`` for :meth:`AdversarialDetector.fit`."""
    x_clean, x_adv = np.asarray(x_clean, np.float32), np.asarray(x_adv, np.float32)
    if x_clean.shape[1:] != x_adv.shape[1:]:
        raise InvalidParameterError(f"x_clean and x_adv must have the same input shape, got {x_clean.shape[1:]} "
                         f"and {x_adv.shape[1:]}")
    return np.concatenate([x_clean, x_adv]), np.r_[np.zeros(len(x_clean), int), np.ones(len(x_adv), int)]


class AdversarialDetector:
    """A small network that scores how likely an input is adversarial.

    Parameters
    ----------
    arch : str, default="small_cnn"
        Architecture of the detector network (two outputs).
    epochs, batch_size : int
    learning_rate : float
    threshold : float, default=0.5
        Inputs with ``score_samples >= threshold`` are flagged.
    seed : int
    cache : bool, default=True
        Load the weights if the same detector was trained on the same data before.

    Attributes
    ----------
    model_ : keras.Model
        The trained detector; logit 1 means "adversarial".
    fitted_ : Fitted
        ``fit``'s training record: ``fitted_.provenance.from_cache`` says whether the weights were
        loaded instead of trained.

    Examples
    --------
    >>> X, y = detection_data(x_train, pgd(model, x_train, y_train, 0.15, steps=20, eps_step=0.02))  # doctest: +SKIP
    >>> det = AdversarialDetector().fit(X, y)                                          # doctest: +SKIP
    >>> det.rates(x_test, x_test_adv)              # lesson 03: PGD at eps=0.15          # doctest: +SKIP
    DetectionRates(tpr=0.998, fpr=0.002)
    """

    def __init__(self, arch="small_cnn", epochs=10, batch_size=64, learning_rate=1e-3, threshold=0.5, seed=0,
                 cache=True):
        self.arch = arch
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.threshold = threshold
        self.seed = seed
        self.cache = cache

    def fit(self, X, y):
        """Train on inputs ``X`` with labels ``y`` (0 clean, 1 adversarial). Returns self."""
        X, y = check_xy(X, y, n_classes=2)
        if len(np.unique(y)) != 2:
            raise InvalidParameterError(f"y must hold both labels 0 (clean) and 1 (adversarial), got {np.unique(y).tolist()}")
        epochs = check_int(self.epochs, "epochs", min_value=1)
        batch_size = check_int(self.batch_size, "batch_size", min_value=1)
        check_real(self.threshold, "threshold", min_value=0, max_value=1, include_boundaries="neither")

        def build():
            return models.compile_for_training(models.build(self.arch, X.shape[1:], 2), self.learning_rate)

        def fit(model):
            models.fit_epochs(model, X, y, epochs=epochs, batch_size=batch_size, seed=self.seed, progress=False)

        config = dict(arch=self.arch, epochs=epochs, batch_size=batch_size, learning_rate=self.learning_rate,
                      data=fingerprint(X, y))
        self.fitted_ = cached_fit(f"detector-{self.arch}", config, build, fit, seed=self.seed, cache=self.cache)
        self.model_ = self.fitted_.model
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("this AdversarialDetector is not fitted yet; call fit(X, y) first")

    def score_samples(self, X):
        """Probability that each input is adversarial."""
        self._check_fitted()
        logits = self.model_.predict(np.asarray(X, np.float32), batch_size=1024, verbose=0)
        return tf.nn.softmax(logits, axis=1).numpy()[:, 1]

    def predict(self, X):
        """1 where an input is flagged as adversarial, else 0."""
        return (self.score_samples(X) >= self.threshold).astype(int)

    def rates(self, x_clean, x_adv):
        """The detector's :class:`DetectionRates`: the share of ``x_adv`` and of ``x_clean`` it flags."""
        return DetectionRates(tpr=float(np.mean(self.predict(x_adv))), fpr=float(np.mean(self.predict(x_clean))))


def _joint_gradient(model, detector_model, c):
    """Compiled grad of  L(f(x), y) - c * L(g(x), clean)."""
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
    def gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            clean = tf.zeros_like(y)
            objective = tf.reduce_sum(cross_entropy(model(x, training=False), y)
                                      - c * cross_entropy(detector_model(x, training=False), clean))
        return tape.gradient(objective, x)

    return lambda x, y: gradient(np.asarray(x, np.float32), np.asarray(y, np.int32)).numpy()


def detector_aware_pgd(model, detector, x, y, eps, *, steps=40, eps_step=None, c=1.0, norm=np.inf,
                       bounds=(0.0, 1.0), seed=None):
    """PGD that fools the classifier *and* keeps the detector quiet (the adaptive attacker).

    ``c`` weighs evading the detector against fooling the classifier; ``c=0`` is plain PGD.

    Examples
    --------
    >>> x_adv = detector_aware_pgd(model, det, x_test, y_test, 0.15, steps=40, eps_step=0.02)   # doctest: +SKIP
    """
    detector._check_fitted()
    c = check_real(c, "c", min_value=0)
    return pgd_loop(_joint_gradient(model, detector.model_, c), x, y, eps, steps=steps, eps_step=eps_step,
                    norm=norm, bounds=bounds, seed=seed)


@dataclasses.dataclass(frozen=True)
class DetectionRates(OneRowFrame):
    """How often a detector flags attacked and clean inputs."""

    tpr: float  # share of the attacked inputs flagged
    fpr: float  # share of the clean inputs flagged


@dataclasses.dataclass(frozen=True)
class DetectionResult(OneRowFrame):
    """What a detector buys against one set of attacked inputs."""

    tpr: float                  # share of the attacked inputs flagged
    fpr: float                  # share of the clean inputs flagged
    adv_accuracy: float         # the model's accuracy on the attacked inputs
    undetected_success: float   # misclassified *and* not flagged: the attacker's real success rate
    n: int


def evaluate_detection(model, detector, x, y, x_adv):
    """What a detector buys: TPR, FPR, and the share of attacks that both fool and evade.

    Returns
    -------
    DetectionResult
    """
    y = np.asarray(y)
    flagged = detector.predict(x_adv).astype(bool)
    wrong = models.predict_labels(model, x_adv) != y
    return DetectionResult(tpr=float(flagged.mean()), fpr=float(detector.predict(x).mean()),
                           adv_accuracy=float(1 - wrong.mean()), undetected_success=float(np.mean(wrong & ~flagged)),
                           n=int(len(y)))
