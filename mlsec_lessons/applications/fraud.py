"""Case 1, fraud detection: precision and recall at a threshold chosen in advance, and evasion.

The source claims a "95% fraud detection rate" for a model protected by adversarial training.
Here the detector is a small MLP on the course's generated fraud set (1% fraud), and it is
measured the way a fraud team would measure it:

* its **operating threshold** is chosen on a validation split, then precision and recall are
  read on the test split (a threshold tuned on the test set flatters the detector);
* its **evasion rate**: the share of detected frauds that a fraudster, who knows the model
  (white box), pushes below that threshold by changing only the features of the transaction
  they control, each by at most ``eps`` standard deviations and never outside the range seen
  in the training data.

The attack is the course's PGD engine (:func:`mlsec_lessons.attacks.pgd`) with the fraudster's
objective, mask and bounds: it lowers the fraud log-odds ``z_fraud - z_legit`` with signed
gradient steps restricted to the mutable features,

    x <- clip( x - alpha * sign(grad_x (z_fraud - z_legit)) * mask,  [x0 - eps, x0 + eps] ∩ [lo, hi] )

Adversarial training (:func:`train_against_evasion`) uses the same attack, on the frauds only:
the fraudster is the one who adapts, legitimate customers do not.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.model_selection import train_test_split

from .. import data, models
from ..attacks import as_bounds, check_budget, compiled_pgd, pgd
from ..cache import cached_fit, fingerprint
from ..errors import InvalidParameterError
from ..records import OneRowFrame
from ..validation import as_generator, as_int_seed, check_fraction, check_int, check_real, check_seed

MUTABLE = tuple(range(10))
"""Indices of the features a fraudster sets on their own transaction (an assumption of the threat model:
the generated features have no names, so the first ten stand for amount, merchant, time, device, ...;
the other ten for the account's history, which the fraudster cannot change)."""


# --------------------------------------------------------------------------- data
def load_fraud(val_size=0.25, seed=0, **fraud_kwargs):
    """The fraud set with a validation split carved out of the training split (stratified).

    Returns
    -------
    fit : Dataset
        Training rows minus the validation rows; the test split is ``make_fraud``'s.
    val : tuple (x_val, y_val)
        For choosing thresholds, never for training.

    Examples
    --------
    >>> fit, (x_val, y_val) = load_fraud()
    >>> fit.x_train.shape, x_val.shape, int(y_val.sum())
    ((10500, 20), (3500, 20), 35)
    """
    val_size = check_fraction(val_size, "val_size", include_boundaries="neither")
    full = data.make_fraud(seed=seed, **fraud_kwargs)
    x_fit, x_val, y_fit, y_val = train_test_split(full.x_train, full.y_train, test_size=val_size,
                                                  random_state=as_int_seed(seed), stratify=full.y_train)
    fit = dataclasses.replace(full, x_train=x_fit, y_train=y_fit, info={**full.info, "val_size": val_size})
    return fit, (x_val, y_val)


def feature_bounds(x):
    """Per-feature (lo, hi) of ``x``: a transaction outside every value seen in training is not realistic."""
    x = np.asarray(x, dtype=np.float32)
    return x.min(axis=0), x.max(axis=0)


def _mask(mutable, n_features):
    idx = np.asarray(mutable, dtype=int).ravel()
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_features or len(set(idx.tolist())) != idx.size:
        raise InvalidParameterError(f"mutable must list distinct feature indices in [0, {n_features}), got {list(mutable)!r}")
    mask = np.zeros(n_features, np.float32)
    mask[idx] = 1.0
    return mask


# --------------------------------------------------------------------------- scores and thresholds
def fraud_score(model, x):
    """The detector's fraud log-odds ``z_fraud - z_legit`` (a monotone function of P(fraud))."""
    z = model(np.asarray(x, dtype=np.float32), training=False).numpy()
    return z[:, 1] - z[:, 0]


def threshold_for_recall(y, score, recall):
    """The highest threshold whose recall on ``(y, score)`` reaches ``recall``.

    Examples
    --------
    >>> threshold_for_recall([0, 1, 1, 0, 1], [0.1, 0.9, 0.4, 0.5, 0.7], recall=0.6)
    0.7
    """
    y, score = _check_scores(y, score)
    recall = check_fraction(recall, "recall", include_boundaries="right")
    positives = np.sort(score[y == 1])[::-1]
    return float(positives[int(np.ceil(recall * len(positives))) - 1])


def threshold_max_f1(y, score):
    """The threshold with the best F1 on ``(y, score)``: balances missed frauds against false alarms.

    Examples
    --------
    >>> threshold_max_f1([0, 1, 1, 0, 1], [0.1, 0.9, 0.4, 0.5, 0.7])   # every fraud, one false alarm
    0.4
    """
    y, score = _check_scores(y, score)
    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[np.argmax(f1[:-1])])


@dataclasses.dataclass(frozen=True)
class OperatingPoint(OneRowFrame):
    """What flagging ``score >= threshold`` gives a fraud team on one split."""

    threshold: float
    recall: float               # share of the frauds flagged
    precision: float            # share of the alerts that are frauds
    alerts: int                 # transactions flagged
    frauds_caught: int
    frauds: int
    false_positive_rate: float  # share of the legitimate transactions flagged


def operating_point(y, score, threshold):
    """Precision, recall, alerts and false-positive rate of flagging ``score >= threshold``.

    Returns
    -------
    OperatingPoint

    Examples
    --------
    >>> operating_point([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.6], 0.5).precision
    0.5
    """
    y, score = _check_scores(y, score)
    flagged = score >= threshold
    caught = int(np.sum(flagged & (y == 1)))
    return OperatingPoint(threshold=float(threshold), recall=caught / int(np.sum(y == 1)),
                          precision=caught / max(int(flagged.sum()), 1), alerts=int(flagged.sum()),
                          frauds_caught=caught, frauds=int(np.sum(y == 1)),
                          false_positive_rate=float(np.mean(flagged[y == 0])))


def _check_scores(y, score):
    y, score = np.asarray(y), np.asarray(score, dtype=float)
    if y.ndim != 1 or score.shape != y.shape:
        raise InvalidParameterError(f"y and score must be 1-D of the same length, got {y.shape} and {score.shape}")
    if not np.isin(y, (0, 1)).all() or not (y == 1).any() or not (y == 0).any():
        raise InvalidParameterError("y must hold 0 (legitimate) and 1 (fraud), with at least one of each")
    if not np.all(np.isfinite(score)):
        raise InvalidParameterError("score holds NaN or infinite values")
    return y.astype(np.int64), score


# --------------------------------------------------------------------------- the attack
def legit_log_odds(logits, y):
    """The fraudster's objective for the attack engine: ``z_legit - z_fraud``, per transaction (``y`` unused).

    Raising it lowers :func:`fraud_score`; a transaction the detector reads as legitimate has it >= 0.
    """
    return logits[:, 0] - logits[:, 1]


def _realistic_box(x, bounds):
    """Per-row bounds: the realistic range, widened to ``x`` itself for a row that already lies outside it.

    Such a row may stay where it is but never moves further out.
    """
    lo, hi = as_bounds(bounds, x.shape)
    return np.minimum(lo, x), np.maximum(hi, x)


def evade(model, x, eps, *, bounds, mutable=MUTABLE, steps=50, eps_step=None):
    """White-box evasion: move each row's mutable features to lower the detector's fraud score.

    Parameters
    ----------
    model : keras.Model
        Two logits, legitimate (0) and fraud (1).
    x : ndarray of shape (n, n_features)
        The transactions to disguise (frauds).
    eps : float
        Largest change of any mutable feature, in standard deviations (L-inf), >= 0.
    bounds : tuple (lo, hi) of arrays of shape (n_features,)
        Realistic range of each feature (:func:`feature_bounds` of the training data). The attack
        never moves a feature outside it (nor further outside, for a row that starts there).
    mutable : sequence of int, default=MUTABLE
        The features the attacker controls; the others never change.
    steps : int, default=50
    eps_step : float or None
        Step size; ``None`` means :func:`mlsec_lessons.attacks.default_eps_step` (``2.5 * eps / steps``).

    Returns
    -------
    ndarray
        The lowest-scoring point found for each row (``x`` itself if nothing scores lower).

    Examples
    --------
    >>> fit, _ = load_fraud()                                                # doctest: +SKIP
    >>> x_adv = evade(model, fit.x_test[fit.y_test == 1], 0.5, bounds=feature_bounds(fit.x_train))  # doctest: +SKIP
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != model.input_shape[-1] or len(x) == 0:
        raise InvalidParameterError(f"x must have shape (n, {model.input_shape[-1]}), got {x.shape}")
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    return pgd(model, x, np.ones(len(x), np.int32), eps, steps=steps, eps_step=eps_step, random_start=False,
               objective=legit_log_odds, mask=_mask(mutable, x.shape[1]), bounds=_realistic_box(x, bounds))


def evasion_rate(model, x_fraud, threshold, eps, *, bounds, mutable=MUTABLE, steps=50, eps_step=None):
    """Share of the frauds flagged at ``threshold`` that :func:`evade` pushes below it.

    Returns
    -------
    rate, n_detected : float, int
    """
    detected = x_fraud[fraud_score(model, x_fraud) >= threshold]
    if len(detected) == 0:
        raise InvalidParameterError("no fraud is detected at this threshold, so the evasion rate is undefined")
    if eps == 0:
        return 0.0, len(detected)
    x_adv = evade(model, detected, eps, bounds=bounds, mutable=mutable, steps=steps, eps_step=eps_step)
    return float(np.mean(fraud_score(model, x_adv) < threshold)), len(detected)


# --------------------------------------------------------------------------- adversarial training
def train_against_evasion(fit, *, eps=1.0, bounds, mutable=MUTABLE, steps=7, eps_step=None, hidden=(64, 32),
                          epochs=20, batch_size=256, learning_rate=1e-3, seed=0, cache=True):
    """Train (or load from the cache) a detector on frauds disguised by :func:`evade`'s attack, crafted per batch.

    The fraud case's adversarial training (not :func:`mlsec_lessons.defenses.adversarial_train`,
    which attacks every image in an L-inf ball).

    Only the fraud rows of each batch are attacked (from a random start in the ball); the
    legitimate rows are trained on as they are.

    Parameters
    ----------
    fit : Dataset
        The training split (from :func:`load_fraud`).
    eps : float, default=1.0
        Budget of the training attack, in standard deviations.
    bounds : tuple (lo, hi)
        Realistic range of each feature, as for :func:`evade`.
    mutable : sequence of int, default=MUTABLE
    steps : int, default=7
        PGD steps per batch.
    eps_step : float or None
        Their size; ``None`` means :func:`mlsec_lessons.attacks.default_eps_step`.
    hidden : tuple of int, default=(64, 32)
    epochs, batch_size : int
    learning_rate : float
        Adam's learning rate.
    seed : int
    cache : bool, default=True

    Returns
    -------
    Fitted
        ``.model`` is compiled and outputs logits; ``.provenance`` says where it came from.

    Examples
    --------
    >>> robust = train_against_evasion(fit, eps=1.0, bounds=feature_bounds(fit.x_train))  # doctest: +SKIP
    """
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    epochs, batch_size = check_int(epochs, "epochs", min_value=1), check_int(batch_size, "batch_size", min_value=1)
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    seed = check_seed(seed)
    lo, hi = as_bounds(bounds, fit.x_train.shape[1:])
    mask = _mask(mutable, fit.x_train.shape[1])

    def build():
        return models.compile_for_training(models.build("mlp", fit.input_shape, 2, hidden=tuple(hidden)),
                                           learning_rate)

    def train(model):
        _fit(model, fit, lo, hi, mask, eps, steps, eps_step, epochs, batch_size, learning_rate, seed)

    config = dict(eps=eps, steps=steps, eps_step=eps_step, mask=mask.tolist(), lo=lo.tolist(), hi=hi.tolist(),
                  hidden=list(hidden), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  data=fingerprint(fit.x_train, fit.y_train))
    return cached_fit(f"{fit.name}-mlp-evasion", config, build, train, seed=seed, cache=cache)


def _fit(model, fit, lo, hi, mask, eps, steps, eps_step, epochs, batch_size, learning_rate, seed):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)  # variables exist before tracing
    lo_t, hi_t, mask_t = tf.constant(lo), tf.constant(hi), tf.constant(mask)
    spec = tf.TensorSpec([None, fit.x_train.shape[1]], tf.float32)
    attack = compiled_pgd(model, objective=legit_log_odds)  # evade's engine: keeps each row's best point

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32), spec])
    def step(x, y, noise):
        fraud = tf.equal(y, 1)
        x_f = tf.boolean_mask(x, fraud)
        lo_f, hi_f = tf.minimum(lo_t, x_f), tf.maximum(hi_t, x_f)  # as evade's realistic box
        mask_f = tf.broadcast_to(mask_t, tf.shape(x_f))
        start = tf.clip_by_value(x_f + eps * tf.boolean_mask(noise, fraud) * mask_f, lo_f, hi_f)
        x_adv = attack(x_f, tf.boolean_mask(y, fraud), start, lo_f, hi_f, mask_f, eps, eps_step, steps)
        # the disguised frauds replace the originals; legitimate rows are left alone
        x_train = tf.concat([tf.boolean_mask(x, ~fraud), tf.stop_gradient(x_adv)], axis=0)
        y_train = tf.concat([tf.boolean_mask(y, ~fraud), tf.boolean_mask(y, fraud)], axis=0)
        with tf.GradientTape() as tape:
            loss = loss_fn(y_train, model(x_train, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng = as_generator(seed)
    x, y = np.asarray(fit.x_train, np.float32), np.asarray(fit.y_train, np.int32)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            step(x[idx], y[idx], rng.uniform(-1, 1, size=(len(idx), x.shape[1])).astype(np.float32))


# --------------------------------------------------------------------------- the case, measured
@dataclasses.dataclass(frozen=True, eq=False)
class FraudCase:
    """What :func:`fraud_case` measured. Each dict is keyed by model name."""

    fitted: dict          # name -> Fitted (the model and where it came from)
    operating: dict       # name -> {"max F1": OperatingPoint, "95% recall": OperatingPoint} on test
    pr_auc: dict          # name -> average precision on the test split
    pr_curves: dict       # name -> (precision, recall) on the test split
    evasion: dict         # name -> {"eps": array, "rate": array, "ci": (lo, hi) arrays, "n detected": int}
    base_rate: float      # share of frauds in the test split
    config: dict

    @property
    def models(self):
        """name -> keras.Model."""
        return {name: f.model for name, f in self.fitted.items()}

    def to_frame(self):
        """One row per model and threshold: the numbers a fraud team would report."""
        import pandas as pd

        rows = []
        for name, points in self.operating.items():
            for rule, op in points.items():
                rows.append({"model": name, "threshold chosen on validation for": rule, "PR-AUC": self.pr_auc[name],
                             "recall": op.recall, "precision": op.precision, "alerts": op.alerts,
                             "false-positive rate": op.false_positive_rate})
        return pd.DataFrame(rows).set_index(["model", "threshold chosen on validation for"])


def fraud_case(*, train_eps=1.0, eps_values=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0), mutable=MUTABLE, seed=0, cache=True):
    """Train (or load) a plain and an adversarially trained detector, and measure both.

    Thresholds are chosen on the validation split: the best F1, and the highest threshold
    reaching the source's 95% recall. Everything else is read on the test split. The evasion
    rate is that of the frauds detected at the max-F1 threshold, under :func:`evade` (50
    steps) against the very model that is evaluated.

    Parameters
    ----------
    train_eps : float, default=1.0
        The budget the adversarially trained detector is trained against.
    eps_values : sequence of float
        Attack budgets of the evasion curve, in standard deviations.
    mutable : sequence of int, default=MUTABLE
    seed : int, default=0
    cache : bool, default=True

    Returns
    -------
    FraudCase

    Examples
    --------
    >>> case = fraud_case()                                          # doctest: +SKIP
    >>> case.to_frame()                                              # doctest: +SKIP
    """
    from ..privacy_attacks.auditing import clopper_pearson

    fit, (x_val, y_val) = load_fraud(seed=seed)
    bounds = feature_bounds(fit.x_train)
    trained = {
        "plain MLP": models.train(fit, "mlp", hidden=(64, 32), epochs=20, batch_size=256, seed=seed, cache=cache),
        f"adversarially trained MLP (eps {train_eps:g})": train_against_evasion(
            fit, eps=train_eps, bounds=bounds, mutable=mutable, seed=seed, cache=cache),
    }
    x_fraud = fit.x_test[fit.y_test == 1]
    operating, pr_auc, pr_curves, evasion = {}, {}, {}, {}
    for name, model in ((name, f.model) for name, f in trained.items()):
        val, test = fraud_score(model, x_val), fraud_score(model, fit.x_test)
        thresholds = {"max F1": threshold_max_f1(y_val, val), "95% recall": threshold_for_recall(y_val, val, 0.95)}
        operating[name] = {rule: operating_point(fit.y_test, test, t) for rule, t in thresholds.items()}
        pr_auc[name] = float(average_precision_score(fit.y_test, test))
        precision, recall, _ = precision_recall_curve(fit.y_test, test)
        pr_curves[name] = (precision, recall)
        rates = [evasion_rate(model, x_fraud, thresholds["max F1"], e, bounds=bounds, mutable=mutable)
                 for e in eps_values]
        n = rates[0][1]
        evaded = np.round(np.array([r for r, _ in rates]) * n).astype(int)
        evasion[name] = {"eps": np.asarray(eps_values, float), "rate": evaded / n,
                         "ci": clopper_pearson(evaded, n), "n detected": n}
    return FraudCase(trained, operating, pr_auc, pr_curves, evasion, float(np.mean(fit.y_test == 1)),
                     dict(train_eps=train_eps, mutable=list(mutable), seed=seed, n_test=len(fit.y_test),
                          n_val_frauds=int(y_val.sum()), n_test_frauds=int(fit.y_test.sum())))
