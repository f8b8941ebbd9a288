"""Detecting adversarial inputs, and why a detector must be tested against an attacker who knows it.

The detector is a binary classifier ``g`` over inputs, trained on clean images (label 0) and
adversarial ones (label 1) crafted against the model it protects (in the spirit of Metzen et
al., 2017, and ART's ``BinaryInputDetector``). Reported as TPR (share of adversarial inputs
flagged) at an FPR (share of clean inputs flagged).

An attacker who knows ``g`` raises the classifier's loss *and* lowers ``g``'s "adversarial"
score in one objective (Carlini and Wagner, 2017):

    max_delta  L(f(x + delta), y) - c * L(g(x + delta), clean)
"""
import keras
import numpy as np
import tensorflow as tf

from .. import __version__, models
from ..attacks import _check_nonneg, _check_positive_int, _loss, pgd_loop
from ..cache import cache_dir, cache_key, fingerprint, save_weights
from ..reproducibility import check_seed, seed_everything


def detection_data(x_clean, x_adv):
    """Stack clean (label 0) and adversarial (label 1) inputs into ``(X, y)`` for :meth:`AdversarialDetector.fit`."""
    x_clean, x_adv = np.asarray(x_clean, np.float32), np.asarray(x_adv, np.float32)
    if x_clean.shape[1:] != x_adv.shape[1:]:
        raise ValueError(f"x_clean and x_adv must have the same input shape, got {x_clean.shape[1:]} "
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
    from_cache_ : bool
        Whether ``fit`` loaded the weights instead of training.

    Examples
    --------
    >>> X, y = detection_data(x_train, pgd(model, x_train, y_train, 0.15, 0.02, 20))   # doctest: +SKIP
    >>> det = AdversarialDetector().fit(X, y)                                          # doctest: +SKIP
    >>> det.rates(x_test, x_test_adv)              # lesson 03: PGD at eps=0.15          # doctest: +SKIP
    {'tpr': 0.998, 'fpr': 0.002}
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
        X, y = np.asarray(X, np.float32), np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        if not set(np.unique(y)) == {0, 1}:
            raise ValueError(f"y must hold both labels 0 (clean) and 1 (adversarial), got {np.unique(y).tolist()}")
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")
        seed_everything(check_seed(self.seed))
        model = models.build(self.arch, X.shape[1:], 2)
        config = dict(kind="detector", arch=self.arch, epochs=self.epochs, batch_size=self.batch_size,
                      learning_rate=self.learning_rate, seed=self.seed, data=fingerprint(X, y),
                      keras=keras.__version__, mlsec=__version__)
        path = cache_dir() / "models" / f"detector-{self.arch}-{cache_key(**config)}.weights.h5"
        self.from_cache_ = bool(self.cache and path.exists())
        if self.from_cache_:
            model.load_weights(path)
        models.compile_for_training(model, self.learning_rate)
        if not self.from_cache_:
            model.fit(X, y, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0)
            if self.cache:
                save_weights(model, path, config)
        self.model_ = model
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ValueError("this AdversarialDetector is not fitted yet; call fit(X, y) first")

    def score_samples(self, X):
        """Probability that each input is adversarial."""
        self._check_fitted()
        logits = self.model_.predict(np.asarray(X, np.float32), batch_size=1024, verbose=0)
        return tf.nn.softmax(logits, axis=1).numpy()[:, 1]

    def predict(self, X):
        """1 where an input is flagged as adversarial, else 0."""
        return (self.score_samples(X) >= self.threshold).astype(int)

    def rates(self, x_clean, x_adv):
        """``{"tpr": share of x_adv flagged, "fpr": share of x_clean flagged}``."""
        return {"tpr": float(np.mean(self.predict(x_adv))), "fpr": float(np.mean(self.predict(x_clean)))}


def _joint_gradient(model, detector_model, c):
    """Compiled grad of  L(f(x), y) - c * L(g(x), clean)."""
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
    def gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            clean = tf.zeros_like(y)
            objective = tf.reduce_sum(_loss(model, x, y) - c * _loss(detector_model, x, clean))
        return tape.gradient(objective, x)

    return lambda x, y: gradient(np.asarray(x, np.float32), np.asarray(y, np.int32)).numpy()


def detector_aware_pgd(model, detector, x, y, eps, eps_step, steps, *, c=1.0, norm=np.inf, clip=(0.0, 1.0),
                       seed=None):
    """PGD that fools the classifier *and* keeps the detector quiet (the adaptive attacker).

    ``c`` weighs evading the detector against fooling the classifier; ``c=0`` is plain PGD.

    Examples
    --------
    >>> x_adv = detector_aware_pgd(model, det, x_test, y_test, 0.15, 0.02, 40)     # doctest: +SKIP
    """
    detector._check_fitted()
    c = _check_nonneg("c", c)
    return pgd_loop(_joint_gradient(model, detector.model_, c), x, y, eps, eps_step, steps, norm=norm,
                    clip=clip, seed=seed)


def evaluate_detection(model, detector, x, y, x_adv):
    """What a detector buys: TPR, FPR, and the share of attacks that both fool and evade.

    Returns
    -------
    dict
        ``tpr`` (adversarial inputs flagged), ``fpr`` (clean inputs flagged),
        ``adv_accuracy`` (model accuracy on ``x_adv``), and ``undetected_success``: the share of
        ``x_adv`` that is misclassified *and* not flagged, the attacker's real success rate.
    """
    y = np.asarray(y)
    flagged = detector.predict(x_adv).astype(bool)
    wrong = models.predict_labels(model, x_adv) != y
    return {"tpr": float(flagged.mean()), "fpr": float(detector.predict(x).mean()),
            "adv_accuracy": float(1 - wrong.mean()), "undetected_success": float(np.mean(wrong & ~flagged)),
            "n": int(len(y))}
