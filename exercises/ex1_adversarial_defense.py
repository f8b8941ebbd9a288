# Generated from solutions/ex1_adversarial_defense.py by `make stubs`: do not edit by hand in the
# course repository (change the solution, then run `make stubs`). Students: this is your
# copy; replace each `raise NotImplementedError(...)` with your code, then run the grader.
"""Exercise 1: an adversarial defense that is measured, not claimed.

The source material's ``AdversarialDefense`` is three empty methods, and the code around it
evaluates an untrained model, on its training data, with ``1 - adv_acc / clean_acc`` as the
attack success rate. Here you write the real thing, on the 8x8 digits, in TensorFlow:

* ``pgd_step``: one step of projected gradient descent (PGD) on the loss, in the L-inf ball of
  radius ``eps`` around the clean input, and inside the valid pixel range;
* ``AdversarialDefense.perturb``: PGD itself, a random start and ``steps`` of those steps;
* ``AdversarialDefense.train_robust_model``: adversarial training (Madry et al., 2018), where each
  batch is replaced by its PGD examples before the gradient step;
* ``AdversarialDefense.fit_detector`` / ``detect_attack``: a feature-squeezing detector
  (Xu et al., 2018), which flags an input when the model's prediction moves a lot once the input's
  bit depth is reduced; its threshold is set on clean data for a chosen false-positive rate;
* ``AdversarialDefense.evaluate_robustness``: clean accuracy, accuracy under attack, the attack
  success rate (flips among the samples that were correct before the attack) and MRS = 1 - ASR,
  on the held-out data it is given;
* ``certify``: a certificate instead of a measurement, by randomized smoothing (Cohen, Rosenfeld
  and Kolter, 2019): for each input, the class the classifier picks most often under Gaussian
  noise and an L2 radius within which no perturbation can change that answer, or an abstention.

Everything that runs inside the training step (``pgd_step``, ``perturb``, ``_train_step``) is
compiled by ``tf.function``, so write it with TensorFlow operations (``tf.sign``,
``tf.clip_by_value``, ``tf.GradientTape``), not NumPy. Input checks live in ``_check``: a bad
argument is a ``ValueError`` that names it.

Try each piece in ``exercises/ex1_adversarial_defense.ipynb``, then grade your file with
``mlsec grade ex1`` (or the notebook's last cell). The grader attacks your model with its own
PGD, not yours: a weak attack cannot make a model look robust.
"""
import keras
import numpy as np
import tensorflow as tf
from scipy.stats import beta, norm

from mlsec_lessons.models import small_cnn

ABSTAIN = -1  # certify's class for an input it abstains on


def loss_per_example(model, x, y):
    """Cross-entropy of ``model``'s logits at ``x`` against the labels ``y``, one value per sample."""
    return keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True)


def pgd_step(model, x_adv, x, y, eps, *, eps_step, clip=(0.0, 1.0)):
    """One PGD step: up the loss by ``eps_step`` per pixel, back into the eps-ball and the clip range.

    .. math:: x' = \\mathrm{clip}_{[lo, hi]}\\bigl(\\Pi_{\\|x' - x\\|_\\infty \\le \\varepsilon}
              (x_{adv} + \\alpha \\, \\mathrm{sign}(\\nabla_{x_{adv}} L(f(x_{adv}), y)))\\bigr)

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    x_adv : tf.Tensor
        The current adversarial inputs.
    x : tf.Tensor
        The clean inputs: the centre of the eps-ball.
    y : tf.Tensor
        The true labels (integers).
    eps : float
        The L-inf budget: no pixel may move further than ``eps`` from ``x``.
    eps_step : float
        How far each pixel moves in this step (alpha above). Keyword-only, as ``steps`` and
        ``eps_step`` are in every attack of the course (``eps`` stays positional): a step size is
        never passed where a budget is meant.
    clip : (float, float), default=(0.0, 1.0)
        The valid pixel range; keyword-only.

    Returns
    -------
    tf.Tensor
        The new adversarial inputs, with ``|x' - x| <= eps`` and ``lo <= x' <= hi`` everywhere.

    Examples
    --------
    >>> model = small_cnn()
    >>> x = tf.fill((2, 8, 8, 1), 0.5)
    >>> x1 = pgd_step(model, x, x, tf.constant([0, 1]), eps=0.1, eps_step=0.3)
    >>> float(tf.reduce_max(tf.abs(x1 - x))) <= 0.1 + 1e-6
    True
    """
    raise NotImplementedError("Step every pixel up the loss by the sign of the gradient (the steepest step under an L-inf budget), then project back into the eps-ball and the valid pixel range. Pitfall: the ball is centred on the clean input, not on the current adversarial one, or the attack drifts past eps.")


def predict_labels(model, X, batch_size=512):
    """The model's predicted classes (argmax of its logits) for a NumPy array ``X``."""
    return np.concatenate([np.argmax(model(X[i:i + batch_size], training=False), axis=1)
                           for i in range(0, len(X), batch_size)])


class AdversarialDefense:
    """PGD adversarial training, a feature-squeezing detector, and an honest robustness report.

    Parameters
    ----------
    eps : float, default=0.1
        The L-inf budget of the attack the model is trained against, in pixel units ([0, 1]).
        The only positional parameter: the others are keyword-only.
    steps : int, default=3
        PGD steps per training batch (and in :meth:`perturb`).
    eps_step : float, optional
        The size of one PGD step. Default ``2.5 * eps / steps``, so that the attack can cross the
        ball and come back (the course's one rule, as ``mlsec_lessons.attacks.default_eps_step``).
    epochs, batch_size, learning_rate
        Adversarial training with Adam.
    squeeze_bits : int, default=2
        The detector compares the prediction on ``X`` with the one on ``X`` reduced to this many
        bits per pixel.
    fpr : float, default=0.05
        The false-positive rate the detector's threshold is set for, on clean data.
    clip : (float, float), default=(0.0, 1.0)
        The valid input range.
    seed : int, default=0
        Seeds the model's initial weights, the batch order and the random starts.

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits()
    >>> defense = AdversarialDefense(eps=0.1)
    >>> model = defense.train_robust_model(d.x_train, d.y_train)  # doctest: +SKIP
    >>> defense.evaluate_robustness(model, d.x_test, d.y_test)  # doctest: +SKIP
    {'clean_accuracy': 0.97, 'adversarial_accuracy': 0.74, 'attack_success_rate': 0.24, ...}
    """

    def __init__(self, eps=0.1, *, steps=3, eps_step=None, epochs=8, batch_size=64, learning_rate=1e-3,
                 squeeze_bits=2, fpr=0.05, clip=(0.0, 1.0), seed=0):
        # scikit-learn style: store the parameters unchanged, check them when they are used;
        # eps positional, the rest keyword-only, as the course's attacks take them
        self.eps = eps
        self.steps = steps
        self.eps_step = eps_step
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.squeeze_bits = squeeze_bits
        self.fpr = fpr
        self.clip = clip
        self.seed = seed

    # ------------------------------------------------------------------ checks
    def _check(self, X, y=None):
        """Check the parameters and the data; return ``X`` as float32 and ``y`` as int64 (or None).

        Raises
        ------
        ValueError
            Naming the bad argument: ``eps < 0``, ``steps < 1``, ``eps_step <= 0``, ``X`` empty or
            outside ``clip``, ``y`` of another length than ``X``.
        """
        raise NotImplementedError("Check the parameters and the data before any work, and let each ValueError name the bad argument and its value. Pitfall: NaN fails every comparison, so phrase each test so that NaN is refused rather than let through.")

    def _eps_step(self):
        return 2.5 * self.eps / self.steps if self.eps_step is None else self.eps_step

    # ------------------------------------------------------------------ the attack
    def perturb(self, model, x, y):
        """PGD with a random start: ``self.steps`` calls of :func:`pgd_step` from a random point
        of the eps-ball (clipped to the valid range). ``x`` and ``y`` are tensors."""
        raise NotImplementedError("PGD starts from a random point of the eps-ball (inside the valid range) and takes the configured number of PGD steps from there. Pitfall: without the random start, training only ever sees the gradient at the clean input and overfits to it.")

    def adversarial_examples(self, model, X, y, batch_size=512):
        """:meth:`perturb` on NumPy arrays, compiled and in batches; returns a NumPy array."""
        X, y = self._check(X, y)
        if getattr(self, "_compiled", None) is None:
            self._compiled = tf.function(self.perturb)  # one graph, reused for every batch
        return np.concatenate([self._compiled(model, tf.constant(X[i:i + batch_size]), tf.constant(y[i:i + batch_size]))
                               for i in range(0, len(X), batch_size)])

    # ------------------------------------------------------------------ adversarial training
    def train_robust_model(self, X_train, y_train):
        """Train a small CNN with PGD adversarial training; return it (it outputs logits).

        The training data are kept as ``X_train_`` and ``y_train_`` (the detector's default
        calibration data); the model as ``model_``.
        """
        X, y = self._check(X_train, y_train)
        keras.utils.set_random_seed(self.seed)
        model = small_cnn(X.shape[1:], int(y.max()) + 1)
        optimizer = keras.optimizers.Adam(self.learning_rate)
        step = tf.function(self._train_step)  # compiled: the attack and the update in one graph
        order = np.random.default_rng(self.seed)
        for _ in range(self.epochs):
            batches = order.permutation(len(X))
            for i in range(0, len(X), self.batch_size):
                batch = batches[i:i + self.batch_size]
                step(model, optimizer, tf.constant(X[batch]), tf.constant(y[batch]))
        self.X_train_, self.y_train_, self.model_ = X, y, model
        return model

    def _train_step(self, model, optimizer, x, y):
        """One step of adversarial training on the batch ``(x, y)``; returns the batch's loss."""
        raise NotImplementedError("Replace the batch by its worst case in the eps-ball for the weights as they are now, then take one ordinary gradient step on that adversarial batch; its loss is the result. Pitfall: the model is in training mode for the update, and the gradient is taken with respect to the weights, not the inputs.")

    # ------------------------------------------------------------------ detection
    def squeeze(self, X):
        """``X`` reduced to ``self.squeeze_bits`` bits per pixel: ``2**bits`` levels across ``clip``."""
        raise NotImplementedError("Reduce the bit depth: spread a few evenly spaced levels (two to the power of the bits) across the valid range, snap each pixel to the nearest one, and map back. Pitfall: the valid range is the clip range, which is not always the unit interval.")

    def detector_score(self, X):
        """How far the prediction moves when ``X`` is squeezed: the L1 distance between the softmax
        outputs of ``detector_model_`` on ``X`` and on ``squeeze(X)``. Higher is more suspicious."""
        X, _ = self._check(X)
        raise NotImplementedError("Compare the model's class probabilities on each input with those on its squeezed copy; the score is how far they moved, one number per input. Pitfall: compare probabilities, not logits, and use the model the detector watches.")

    def fit_detector(self, model, X_clean=None):
        """Set the detector's threshold so that it flags a share ``fpr`` of the clean ``X_clean``
        (default: the training data). Returns ``self``."""
        if X_clean is None:
            if not hasattr(self, "X_train_"):
                raise ValueError("fit_detector needs clean inputs: pass X_clean, or call train_robust_model first")
            X_clean = self.X_train_
        self.detector_model_ = model
        raise NotImplementedError("Set the threshold from the scores of clean inputs, so that only the chosen false-positive share of them scores above it. Pitfall: calibrate on clean data only, and refuse a rate that is not strictly between zero and one.")
        return self

    def detect_attack(self, X):
        """A boolean per input: True where the detector flags it as adversarial.

        The detector is calibrated on first use, on the robust model and its training data, unless
        ``fit_detector`` was called before (to watch another model, or calibrate on other data).
        """
        if not hasattr(self, "threshold_"):
            if not hasattr(self, "model_"):
                raise ValueError("the detector is not calibrated: call train_robust_model or fit_detector first")
            self.fit_detector(self.model_)
        return self.detector_score(X) > self.threshold_

    # ------------------------------------------------------------------ evaluation
    def evaluate_robustness(self, model, X_test, y_test, attack=None):
        """Clean accuracy, accuracy under attack, ASR and MRS of ``model`` on held-out data.

        Parameters
        ----------
        model : keras.Model
        X_test, y_test : arrays
            Held-out data, never the training data.
        attack : callable, optional
            ``attack(model, X, y)`` returns the adversarial inputs. Default: this defense's PGD,
            :meth:`adversarial_examples`.

        Returns
        -------
        dict
            ``clean_accuracy``, ``adversarial_accuracy``, ``attack_success_rate`` (the share of the
            correctly classified samples that the attack flips) and ``model_robustness_score``
            (1 - ASR).
        """
        X, y = self._check(X_test, y_test)
        X_adv = np.asarray((attack or self.adversarial_examples)(model, X, y))
        raise NotImplementedError("Predict on the clean and on the attacked inputs; the attack succeeds only on samples that were right before it, and robustness is what survives. Pitfall: a sample the model already got wrong is no success of the attack, so this is not one minus the ratio of the two accuracies.")


# ---------------------------------------------------------------------- certified robustness
def noisy_labels(classify, x, sigma, num, rng):
    """``classify``'s labels for ``num`` copies of the one input ``x``, each with its own fresh
    Gaussian noise ``N(0, sigma^2 I)`` drawn from ``rng``: one call of ``classify`` on a batch of
    shape ``(num, *x.shape)``. Returns ``num`` integer labels."""
    batch = x + rng.normal(0.0, sigma, size=(num, *x.shape)).astype(np.float32)
    labels = np.asarray(classify(batch)).astype(np.int64)
    if labels.shape != (num,):
        raise ValueError(f"classify must return one label per input of the batch ({num}), got shape {labels.shape}")
    return labels


def certify(classify, X, sigma, *, n0=100, n=1000, alpha=0.001, seed=0):
    """Certify each row of ``X`` by randomized smoothing: CERTIFY of Cohen, Rosenfeld and Kolter (2019).

    The smoothed classifier ``g(x)`` answers the class that the base classifier ``classify`` picks
    most often for ``x + e``, ``e ~ N(0, sigma^2 I)``. If that class has probability at least
    ``pA > 1/2``, no perturbation with ``||delta||_2 < sigma * Phi^-1(pA)`` changes ``g``'s answer.
    ``pA`` is unknown, so it is bounded from Monte-Carlo samples, for each row ``x`` of ``X``:

    1. **Selection.** ``n0`` noisy copies of ``x`` (:func:`noisy_labels`); the top class ``cA`` is
       the label they give most often (a tie goes to the smallest label, as ``np.argmax`` does).
    2. **Estimation.** ``n`` *fresh* noisy copies, drawn after the selection ones; ``k`` of them are
       labelled ``cA``. The selection samples are never counted here: the class was picked because
       it did well on them, so counting them again biases the bound upwards.
    3. **The bound.** ``p_lower``, the one-sided ``(1 - alpha)`` Clopper-Pearson lower bound on
       ``pA``: the ``alpha`` quantile of ``Beta(k, n - k + 1)``, and 0 when ``k = 0``. It is
       one-sided at level ``alpha``, not the lower end of a two-sided interval (that is the bound
       at ``alpha / 2``), and never the point estimate ``k / n``.
    4. **Abstain or certify.** If ``p_lower <= 1/2`` the row is abstained on: prediction
       ``ABSTAIN`` (-1) and radius 0 (at exactly 1/2, ``Phi^-1`` is 0 and certifies nothing). Else
       the prediction is ``cA`` and the radius ``sigma * Phi^-1(p_lower)``.

    With probability at least ``1 - alpha`` over the noise, each certified radius is a true one:
    no larger than the distance within which ``g`` cannot change. The certificate is about ``g``,
    the smoothed classifier, not about ``classify`` itself.

    Parameters
    ----------
    classify : callable
        The base classifier: ``classify(batch)`` takes an array of noisy inputs, shape
        ``(m, *X.shape[1:])``, and returns their ``m`` labels (integers >= 0). For a Keras model,
        ``lambda batch: predict_labels(model, batch)``.
    X : array, shape (rows, ...)
        The inputs, one per row; at least one row, none of them empty.
    sigma : float, > 0
        The standard deviation of the Gaussian noise, in pixel units.
    n0 : int, >= 1, default=100
        Selection samples per row (keyword-only, as are the rest).
    n : int, >= 1, default=1000
        Estimation samples per row.
    alpha : float, 0 < alpha < 1, default=0.001
        The certificate may be wrong with probability at most ``alpha``.
    seed : int, Generator or None, default=0
        All the noise comes from ``np.random.default_rng(seed)``, first the selection and then the
        estimation samples of row 0, then those of row 1, ...: the same seed gives the same result.

    Returns
    -------
    dict
        ``prediction`` (int array, ``ABSTAIN`` where abstained), ``radius`` (float array, 0 where
        abstained) and ``p_lower`` (float array, the bound of every row, abstained or not).

    Raises
    ------
    ValueError
        For ``sigma <= 0`` (or NaN), ``alpha`` outside ``(0, 1)``, ``n0`` or ``n`` not an integer
        >= 1, an ``X`` that is empty, or one without a row axis (fewer than two dimensions).

    Examples
    --------
    A classifier that answers 3 whatever the noise: ``k = n``, and ``p_lower = alpha ** (1 / n)``,
    the largest bound ``n`` samples can give.

    >>> result = certify(lambda batch: np.full(len(batch), 3), np.zeros((2, 4)), 0.5, n=1000, alpha=0.001)
    >>> result["prediction"].tolist(), round(float(result["radius"][0]), 4)
    ([3, 3], 1.2316)
    """
    raise NotImplementedError("Per row, guess the top class from one set of noisy copies, count how often a fresh set agrees, turn that count into a one-sided lower confidence bound, and abstain unless it is above one half. Pitfall: reusing the guessing samples, a two-sided interval or the plain share overstate the radius.")
