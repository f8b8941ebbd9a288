"""Security metrics, defined so that each one measures something.

* Attack Success Rate (ASR): among the samples the model classified correctly *before*
  the attack, the share the attack flips. Samples that were already wrong are not
  attacks that succeeded.
* Model Robustness Score (MRS): ``1 - ASR``, the share of correctly classified samples
  that survive the attack. Report it beside clean accuracy: a model that is always wrong
  has nothing to lose.
* Privacy Loss (PL): the membership advantage ``TPR - FPR`` of a membership-inference
  attack (Yeom et al., 2018). An (eps, delta)-DP training bounds it by
  ``(e^eps - 1 + 2 delta) / (e^eps + 1)``.
* Security Coverage (SC): the share of components in an explicit inventory whose every
  required control is in place.
"""
import dataclasses

import numpy as np

from mlsec_lessons.errors import InvalidParameterError  # absolute: the grader also runs this file on its own
from mlsec_lessons.records import OneRowFrame


# --------------------------------------------------------------------------- validation
def _as_labels(name, y, n=None):
    """Accept integer labels (1-D) or class probabilities (2-D, each in [0, 1])."""
    y = np.asarray(y)
    if y.size == 0:
        raise InvalidParameterError(f"{name} is empty")
    if y.ndim == 2:
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
            raise InvalidParameterError(f"{name} must hold finite probabilities")
        if y.min() < 0 or y.max() > 1:
            raise InvalidParameterError(f"{name} holds values outside [0, 1] (min {y.min():.3g}, max {y.max():.3g}); "
                             "pass labels (argmax of the logits) or probabilities, not logits")
        y = np.argmax(y, axis=1)
    elif y.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D labels or 2-D probabilities, got shape {y.shape}")
    elif not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise InvalidParameterError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if n is not None and len(y) != n:
        raise InvalidParameterError(f"{name} has {len(y)} samples but y_true has {n}")
    return y


def _attack_labels(y_true, y_pred_clean, y_pred_adv):
    """The label triple every ASR function takes, validated together."""
    y_true = _as_labels("y_true", y_true)
    return (y_true, _as_labels("y_pred_clean", y_pred_clean, len(y_true)),
            _as_labels("y_pred_adv", y_pred_adv, len(y_true)))


def _check_rate(name, value):
    value = float(value)
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidParameterError(f"{name} must be a rate in [0, 1], got {value!r}")
    return value


# --------------------------------------------------------------------------- ASR / MRS
def attack_success_rate(y_true, y_pred_clean, y_pred_adv):
    """Untargeted ASR: share of the initially correct samples that the attack misclassifies.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True integer labels.
    y_pred_clean, y_pred_adv : array-like of shape (n,) or (n, n_classes)
        Predictions on the clean and on the adversarial inputs: labels, or probabilities.

    Returns
    -------
    float
        ASR in [0, 1].

    Raises
    ------
    ValueError
        On empty or mismatched inputs, probabilities outside [0, 1], or when no sample is
        classified correctly (then the ASR is undefined).

    Examples
    --------
    >>> attack_success_rate([0, 1, 2, 3], [0, 1, 2, 0], [0, 2, 1, 3])
    0.6666666666666666
    """
    return _asr(*_attack_labels(y_true, y_pred_clean, y_pred_adv))


def _asr(y_true, clean, adv):
    correct = clean == y_true  # only these can be attacked successfully
    if not correct.any():
        raise InvalidParameterError("no sample is classified correctly before the attack, so the ASR is undefined")
    return float(np.mean(adv[correct] != y_true[correct]))


def targeted_attack_success_rate(y_true, y_pred_clean, y_pred_adv, y_target):
    """Targeted ASR: share of the eligible samples that the attack sends to their target class.

    Eligible samples were classified correctly before the attack and have a target
    different from their true class (reaching your own class is no success).

    Examples
    --------
    >>> targeted_attack_success_rate([0, 1, 2], [0, 1, 2], [5, 1, 5], y_target=[5, 5, 5])
    0.6666666666666666
    """
    y_true, clean, adv = _attack_labels(y_true, y_pred_clean, y_pred_adv)
    target = _as_labels("y_target", y_target, len(y_true))
    eligible = (clean == y_true) & (target != y_true)
    if not eligible.any():
        raise InvalidParameterError("no sample is both correctly classified and aimed at another class, "
                         "so the targeted ASR is undefined")
    return float(np.mean(adv[eligible] == target[eligible]))


def asr_from_counts(successes, attempts):
    """ASR from counts, for reports that only give counts (such as the source's example)."""
    if isinstance(attempts, bool) or int(attempts) != attempts or attempts < 1:
        raise InvalidParameterError(f"attempts must be a positive integer, got {attempts!r}")
    if int(successes) != successes or not 0 <= successes <= attempts:
        raise InvalidParameterError(f"successes must be an integer between 0 and attempts={attempts}, got {successes!r}")
    return successes / attempts


def model_robustness_score(asr):
    """MRS = 1 - ASR: the share of correctly classified samples that survive the attack."""
    return 1.0 - _check_rate("asr", asr)


def source_attack_success_rate(clean_accuracy, adv_accuracy):
    """The source material's formula ``1 - adv_acc / clean_acc``. Kept to show where it misleads:
    it credits the attack with nothing when it also fixes mistakes, and it can go negative."""
    clean_accuracy, adv_accuracy = _check_rate("clean_accuracy", clean_accuracy), _check_rate("adv_accuracy", adv_accuracy)
    if clean_accuracy == 0:
        raise InvalidParameterError("clean_accuracy is 0, so 1 - adv_acc / clean_acc is undefined")
    return 1.0 - adv_accuracy / clean_accuracy


@dataclasses.dataclass(frozen=True)
class AsrComparison(OneRowFrame):
    """Both ASR definitions on one attack, with the counts that explain where they differ."""

    clean_accuracy: float
    accuracy_under_attack: float
    flipped: int          # correct before the attack, wrong after: what the attack achieved
    fixed: int            # wrong before the attack, correct after: what the source's formula nets against it
    source_asr: float     # the source's 1 - adv_acc / clean_acc
    standard_asr: float   # flips among the initially correct samples


def compare_asr_definitions(y_true, y_pred_clean, y_pred_adv):
    """Both ASR definitions side by side, with the counts that explain where they differ.

    The source's ``1 - adv_acc / clean_acc`` nets the attack's flips against the mistakes it
    happens to fix; the standard ASR counts only flips of initially correct samples.

    Returns
    -------
    AsrComparison
        ``clean_accuracy`` and ``accuracy_under_attack``, ``flipped`` (correct, then wrong),
        ``fixed`` (wrong, then correct), the source's value ``source_asr`` and the standard
        ``standard_asr``.

    Examples
    --------
    >>> r = compare_asr_definitions([0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0])
    >>> r.flipped, r.fixed, r.source_asr, r.standard_asr
    (1, 2, -0.5, 0.5)
    >>> list(r.to_frame().columns)
    ['clean_accuracy', 'accuracy_under_attack', 'flipped', 'fixed', 'source_asr', 'standard_asr']
    """
    y_true, clean_pred, adv_pred = _attack_labels(y_true, y_pred_clean, y_pred_adv)
    clean, adv = clean_pred == y_true, adv_pred == y_true
    return AsrComparison(clean_accuracy=float(clean.mean()), accuracy_under_attack=float(adv.mean()),
                         flipped=int(np.sum(clean & ~adv)), fixed=int(np.sum(~clean & adv)),
                         source_asr=source_attack_success_rate(clean.mean(), adv.mean()),
                         standard_asr=_asr(y_true, clean_pred, adv_pred))


# --------------------------------------------------------------------------- privacy loss
def membership_advantage(is_member, predicted_member):
    """TPR - FPR of hard membership decisions (Yeom et al., 2018).

    Parameters
    ----------
    is_member : array-like of bool or {0, 1}, shape (n,)
        Ground truth: was the record in the training set?
    predicted_member : array-like of bool or {0, 1}, shape (n,)
        The attack's decisions.

    Examples
    --------
    >>> membership_advantage([1, 1, 0, 0], [1, 0, 0, 0])
    0.5
    """
    truth = check_binary(is_member, "is_member")
    guess = check_binary(predicted_member, "predicted_member", n=len(truth))
    return float(np.mean(guess[truth]) - np.mean(guess[~truth]))


def check_binary(v, name, *, n=None):
    """``v`` as a 1-D boolean array of membership labels (booleans or 0/1), or an error naming it.

    Parameters
    ----------
    v : array-like of bool or {0, 1}
    name : str
        The argument's name, for the message.
    n : int, optional
        The length ``v`` must have (that of ``is_member``). Without it, ``v`` is the ground truth
        and must hold both members and non-members.

    Returns
    -------
    ndarray of bool
    """
    v = np.asarray(v)
    if v.size == 0:
        raise InvalidParameterError(f"{name} is empty")
    if v.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-D, got shape {v.shape}")
    if n is not None and len(v) != n:
        raise InvalidParameterError(f"{name} has {len(v)} entries but is_member has {n}")
    if not np.isin(v, (0, 1)).all():
        raise InvalidParameterError(f"{name} must hold booleans or 0/1")
    v = v.astype(bool)
    if n is None and (v.all() or not v.any()):
        raise InvalidParameterError(f"{name} needs both members and non-members")
    return v


def privacy_loss(is_member, member_score):
    """Privacy Loss: the best membership advantage over all thresholds of an attack's score.

    A higher ``member_score`` means "more likely a member" (for the loss-threshold attack,
    the model's confidence in the true label). PL = max_t TPR(t) - FPR(t), in [0, 1]:
    0 means the attack cannot tell members from non-members at any threshold.

    Returns
    -------
    float
        The maximal advantage. 0 when no threshold beats guessing.

    Examples
    --------
    >>> privacy_loss([1, 1, 0, 0], [0.9, 0.8, 0.7, 0.1])
    1.0
    """
    truth = check_binary(is_member, "is_member")
    score = np.asarray(member_score, dtype=float)
    if score.shape != truth.shape:
        raise InvalidParameterError(f"member_score has shape {score.shape} but is_member has {truth.shape}")
    if not np.all(np.isfinite(score)):
        raise InvalidParameterError("member_score must be finite")
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    tpr = np.cumsum(t) / t.sum()
    fpr = np.cumsum(~t) / (~t).sum()
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold cannot split tied scores
    return float(max(0.0, np.max((tpr - fpr)[last_of_tie])))


def dp_advantage_bound(epsilon, delta=0.0):
    """Largest membership advantage any attack can reach on an (epsilon, delta)-DP model."""
    if not np.isfinite(epsilon) or epsilon < 0:
        raise InvalidParameterError(f"epsilon must be finite and non-negative, got {epsilon!r}")
    delta = _check_rate("delta", delta)
    return float(min(1.0, (np.expm1(epsilon) + 2 * delta) / (np.exp(epsilon) + 1)))


def epsilon_from_advantage(advantage, delta=0.0):
    """Smallest epsilon consistent with an observed advantage (inverts :func:`dp_advantage_bound`)."""
    advantage, delta = _check_rate("advantage", advantage), _check_rate("delta", delta)
    if advantage <= 2 * delta:
        return 0.0
    if advantage >= 1:
        return float("inf")
    return float(np.log((1 + advantage - 2 * delta) / (1 - advantage)))


# --------------------------------------------------------------------------- coverage
def security_coverage(inventory, level="component"):
    """Security Coverage over an explicit inventory of components and their required controls.

    Parameters
    ----------
    inventory : mapping of str to mapping of str to bool
        ``{component: {control: in_place}}``. Each component lists every control it needs.
    level : {"component", "control"}, default="component"
        ``"component"``: share of components with *all* their controls in place (a
        component with one open hole is not protected). ``"control"``: share of controls.

    Examples
    --------
    >>> security_coverage({"api": {"auth": True, "tls": True}, "model file": {"signature": False}})
    0.5
    """
    if level not in ("component", "control"):
        raise InvalidParameterError(f"level must be 'component' or 'control', got {level!r}")
    if not hasattr(inventory, "items") or len(inventory) == 0:
        raise InvalidParameterError("inventory must be a non-empty mapping {component: {control: bool}}")
    states = []
    for component, controls in inventory.items():
        if not hasattr(controls, "values") or len(controls) == 0:
            raise InvalidParameterError(f"component {component!r} lists no controls; list what protects it")
        values = list(controls.values())
        if not all(isinstance(v, (bool, np.bool_)) for v in values):
            raise InvalidParameterError(f"the controls of component {component!r} must be True or False")
        states.append(values)
    if level == "component":
        return float(np.mean([all(v) for v in states]))
    return float(np.mean([v for vs in states for v in vs]))


# --------------------------------------------------------------------------- curves
@dataclasses.dataclass(frozen=True, eq=False)
class RobustnessCurve:
    """Accuracy under attack at each budget: ``accuracy[i]`` was measured at ``eps[i]``."""

    eps: np.ndarray       # the budgets, increasing; 0 means no attack
    accuracy: np.ndarray  # accuracy under attack, one per budget

    def to_frame(self):
        """One row per budget, for display."""
        import pandas as pd

        return pd.DataFrame({"eps": self.eps, "accuracy": self.accuracy})


def robustness_curve(predict, attack, x, y, eps_values):
    """Accuracy under attack for each budget in ``eps_values``.

    Parameters
    ----------
    predict : callable
        ``predict(x) -> labels`` (1-D) or probabilities (2-D).
    attack : callable
        ``attack(x, y, eps) -> x_adv``. Not called for ``eps == 0``.
    x, y : arrays
        Inputs and integer labels.
    eps_values : sequence of float
        Non-negative, increasing budgets.

    Returns
    -------
    RobustnessCurve
        ``eps`` and ``accuracy``, two arrays of the same length as ``eps_values``.

    Examples
    --------
    >>> predict = lambda v: (v[:, 0] > 0).astype(int)
    >>> attack = lambda v, t, e: v - e * (2 * t - 1)[:, None]      # push towards the boundary
    >>> curve = robustness_curve(predict, attack, np.array([[0.5], [-0.2]]), np.array([1, 0]), [0, 0.3, 1])
    >>> curve.accuracy
    array([1. , 0.5, 0. ])
    >>> curve.to_frame().shape
    (3, 2)
    """
    eps = np.asarray(eps_values, dtype=float)
    if eps.ndim != 1 or eps.size == 0:
        raise InvalidParameterError("eps_values must be a non-empty 1-D sequence")
    if np.any(eps < 0) or not np.all(np.isfinite(eps)):
        raise InvalidParameterError(f"eps_values must be finite and non-negative, got {eps.tolist()}")
    if np.any(np.diff(eps) < 0):
        raise InvalidParameterError(f"eps_values must be increasing, got {eps.tolist()}")
    y = _as_labels("y", y)
    if len(x) != len(y):
        raise InvalidParameterError(f"x has {len(x)} samples but y has {len(y)}")
    acc = []
    for e in eps:
        x_eval = x if e == 0 else attack(x, y, float(e))
        acc.append(np.mean(_as_labels("predict(x)", predict(x_eval), len(y)) == y))
    return RobustnessCurve(eps=eps, accuracy=np.asarray(acc))
