"""Membership inference: the scores an attack gives, and how to read them at low false-positive rates.

A membership-inference attack gives every candidate record a score, higher meaning "more likely
in the training set". Carlini et al. (2022, "Membership Inference Attacks From First
Principles") argue that what matters is the true-positive rate at a *low* false-positive rate:
an attack that is sure about a few records is a privacy breach even when its AUC or balanced
accuracy look like guessing. So every attack here is summarised by :func:`attack_report`: AUC,
TPR at 0.1% and 1% FPR, and the best membership advantage (the course's Privacy Loss).
"""
import numpy as np
from scipy.special import logsumexp

from ..errors import InvalidParameterError
from ..metrics import check_binary, privacy_loss
from ..reproducibility import seeded_numpy_global
from ..validation import as_int_seed, check_fraction

LOW_FPRS = (0.001, 0.01)


# --------------------------------------------------------------------------- validation
def check_is_member(is_member):
    """Ground-truth membership as a boolean array: 1-D, booleans or 0/1, both groups present
    (lesson 01's :func:`~mlsec_lessons.metrics.check_binary`)."""
    return check_binary(is_member, "is_member")


def check_scores(score, n):
    """An attack's scores as a float array of shape ``(n,)`` without NaN, one per record of ``is_member``."""
    score = np.asarray(score, dtype=float)
    if score.shape != (n,):
        raise InvalidParameterError(f"score must have shape ({n},) like is_member, got {score.shape}")
    if np.isnan(score).any():
        raise InvalidParameterError("score holds NaN")
    return score


def _check_logits(logits, y):
    logits, y = np.asarray(logits, dtype=float), np.asarray(y)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise InvalidParameterError(f"logits must have shape (n, n_classes >= 2), got {logits.shape}")
    if y.shape != (len(logits),):
        raise InvalidParameterError(f"y must have shape ({len(logits)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= logits.shape[1]:
        raise InvalidParameterError(f"y must hold integer labels in [0, {logits.shape[1] - 1}]")
    return logits, y


# --------------------------------------------------------------------------- scores
def loss_scores(logits, y):
    """The loss-threshold attack (Yeom et al., 2018): score = minus the cross-entropy loss.

    Training drives the loss of members down, so a low loss hints "member". One global
    threshold is applied to every record, which is the attack's weakness: an easy record has
    a low loss whether or not it was trained on.

    Parameters
    ----------
    logits : array of shape (n, n_classes)
        The target model's outputs (logits, or log-probabilities: the loss is the same).
    y : array of int, shape (n,)
        True labels.

    Examples
    --------
    >>> loss_scores([[2.0, 0.0], [0.0, 2.0]], [0, 0]).round(3)
    array([-0.127, -2.127])
    """
    logits, y = _check_logits(logits, y)
    return logits[np.arange(len(y)), y] - logsumexp(logits, axis=1)


def logit_confidence(logits, y):
    """Logit-scaled confidence in the true label, ``log(p_y / (1 - p_y))`` (Carlini et al., 2022).

    The confidence ``p_y`` piles up near 1 for members; its logit spreads it out into something
    close to Gaussian, which is what LiRA fits. It is computed from logits as
    ``z_y - logsumexp(z_j, j != y)``, so it stays finite where ``p_y`` rounds to exactly 1.

    Examples
    --------
    >>> logit_confidence([[2.0, 0.0], [0.0, 2.0]], [0, 0]).round(3)
    array([ 2., -2.])
    """
    logits, y = _check_logits(logits, y)
    rows = np.arange(len(y))
    others = logits.copy()
    others[rows, y] = -np.inf
    return logits[rows, y] - logsumexp(others, axis=1)


# --------------------------------------------------------------------------- ROC at low FPR
def roc(is_member, score):
    """False- and true-positive rates over every threshold of ``score`` (scikit-learn's ``roc_curve``).

    Returns
    -------
    fpr, tpr : arrays
        Increasing; they start at (0, 0) and end at (1, 1).

    Examples
    --------
    >>> fpr, tpr = roc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    from sklearn.metrics import roc_curve

    truth = check_is_member(is_member)
    fpr, tpr, _ = roc_curve(truth, check_scores(score, len(truth)), drop_intermediate=False)
    return fpr, tpr


def tpr_at_fpr(is_member, score, fpr=0.001):
    """Largest TPR among thresholds whose FPR is at most ``fpr``.

    With ``n`` non-members the smallest non-zero FPR is ``1/n``: below it, this is the TPR at
    *zero* false positives. Use at least ``10 / fpr`` non-members for a reading you can trust.

    Examples
    --------
    >>> tpr_at_fpr([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1], fpr=0.0)
    0.5
    """
    fpr = float(fpr)
    if not 0.0 <= fpr <= 1.0:
        raise InvalidParameterError(f"fpr must be in [0, 1], got {fpr!r}")
    fprs, tprs = roc(is_member, score)
    return float(tprs[fprs <= fpr + 1e-12].max())


def attack_report(is_member, score, fprs=LOW_FPRS):
    """The numbers to report for one membership-inference attack.

    Returns
    -------
    dict
        ``auc``; ``tpr@<fpr>`` for each of ``fprs``; ``balanced accuracy`` of the best single
        threshold, ``(1 + advantage) / 2``; ``advantage`` = max TPR - FPR, the Privacy Loss of
        :func:`mlsec_lessons.metrics.privacy_loss`; ``n members`` and ``n non-members``.

    Examples
    --------
    >>> r = attack_report([1, 1, 0, 0], [0.9, 0.8, 0.7, 0.1])
    >>> r["auc"], r["tpr@0.1%"], r["advantage"]
    (1.0, 1.0, 1.0)
    """
    from sklearn.metrics import roc_auc_score

    truth = check_is_member(is_member)
    score = check_scores(score, len(truth))
    report = {"auc": float(roc_auc_score(truth, score))}
    for f in fprs:
        report[f"tpr@{100 * f:g}%"] = tpr_at_fpr(truth, score, f)
    advantage = privacy_loss(truth, np.nan_to_num(score, posinf=1e300, neginf=-1e300))
    report.update({"balanced accuracy": (1 + advantage) / 2, "advantage": advantage,
                   "n members": int(truth.sum()), "n non-members": int((~truth).sum())})
    return report


# --------------------------------------------------------------------------- ART's learned attack
def art_black_box_scores(estimator, x_member, y_member, x_nonmember, y_nonmember, *,
                         attack_model_type="rf", input_type="prediction", train_fraction=0.5, seed=0):
    """ART's ``MembershipInferenceBlackBox``: a classifier learns member vs non-member from the outputs.

    The attack model is trained on a random ``train_fraction`` of the members and of the
    non-members (the attacker's labelled examples) and scored on the rest, so it is never
    evaluated on records it was fitted to.

    Parameters
    ----------
    estimator : ART classifier
        The target, e.g. from :func:`mlsec_lessons.art_bridge.art_classifier` or
        ``art.estimators.classification.SklearnClassifier``.
    x_member, y_member : arrays
        Records in the target's training set, with integer labels.
    x_nonmember, y_nonmember : arrays
        Records from the same distribution that were not.
    attack_model_type : str, default="rf"
        ART's attack model (``"rf"``, ``"gb"``, ``"lr"``, ``"nn"``, ...).
    input_type : {"prediction", "loss"}, default="prediction"
    train_fraction : float, default=0.5
    seed : int, default=0

    Returns
    -------
    is_member, score : arrays
        Ground truth and the attack's membership probability for the held-out records.

    Examples
    --------
    >>> from art.estimators.classification.scikitlearn import SklearnClassifier      # doctest: +SKIP
    >>> truth, score = art_black_box_scores(SklearnClassifier(target), x_in, y_in, x_out, y_out)  # doctest: +SKIP
    >>> attack_report(truth, score)["tpr@1%"]                                          # doctest: +SKIP
    """
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    check_fraction(train_fraction, "train_fraction", include_boundaries="neither")
    seed = as_int_seed(seed)
    rng = np.random.default_rng(seed)

    def split(n):
        order = rng.permutation(n)
        cut = int(round(train_fraction * n))
        return order[:cut], order[cut:]

    (m_fit, m_eval), (n_fit, n_eval) = split(len(x_member)), split(len(x_nonmember))
    attack = MembershipInferenceBlackBox(estimator, input_type=input_type, attack_model_type=attack_model_type)
    with seeded_numpy_global(seed):  # ART's rf/gb attack models draw from NumPy's global generator
        attack.fit(x_member[m_fit], y_member[m_fit], x_nonmember[n_fit], y_nonmember[n_fit])
    x_eval = np.concatenate([x_member[m_eval], x_nonmember[n_eval]])
    y_eval = np.concatenate([y_member[m_eval], y_nonmember[n_eval]])
    score = attack.infer(x_eval, y_eval, probabilities=True)
    score = np.asarray(score, dtype=float).reshape(len(x_eval), -1)[:, -1]  # P(member)
    is_member = np.r_[np.ones(len(m_eval), bool), np.zeros(len(n_eval), bool)]
    return is_member, score
