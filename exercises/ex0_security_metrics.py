# Generated from solutions/ex0_security_metrics.py by `make stubs`: do not edit by hand in the
# course repository (change the solution, then run `make stubs`). Students: this is your
# copy; replace each `raise NotImplementedError(...)` with your code, then run the grader.
"""Exercise 0: security metrics that measure what they claim to.

The source material scores an attack as ``1 - adv_acc / clean_acc`` and calls a model "secure"
from numbers nobody measured. Here you write the metrics the rest of the course reports:

* ``attack_success_rate``: among the samples the model got right *before* the attack, the share
  the attack flips. Samples that were already wrong are no success of the attack.
* ``targeted_attack_success_rate``: among those samples, leaving out the ones whose target is
  their own class, the share sent to the target class.
* ``model_robustness_score``: ``1 - ASR``, the share that survives.
* ``privacy_loss``: the membership advantage ``TPR - FPR`` of a membership-inference attack,
  at its best threshold.
* ``security_coverage``: the share of components whose every required control is in place.
* ``robustness_curve``: accuracy under attack for a list of budgets ``eps``.

Every metric raises ``ValueError`` on input it cannot score (empty arrays, mismatched lengths,
probabilities outside [0, 1], nothing to attack) and the message names the bad argument.
``as_labels`` does the common part; write it first and use it everywhere.

Try your functions in ``exercises/ex0_security_metrics.ipynb``, then grade them with
``mlsec grade ex0`` (or the notebook's last cell).
"""
import numpy as np


def as_labels(y, name="y", n=None):
    """Labels as a 1-D array: integer labels pass through, probabilities become their argmax.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, n_classes)
        Integer labels, or one row of class probabilities per sample.
    name : str, default="y"
        The argument's name, for error messages.
    n : int, optional
        The number of samples ``y`` must have.

    Raises
    ------
    ValueError
        If ``y`` is empty, has not ``n`` samples, or holds probabilities outside [0, 1].

    Examples
    --------
    >>> as_labels([[0.9, 0.1], [0.2, 0.8]])
    array([0, 1])
    """
    raise NotImplementedError("Accept integer labels or rows of class probabilities, and give back one class label per sample. Pitfall: refuse what cannot be scored (no samples, the wrong number of them, rows that are not probabilities such as logits) rather than guess.")


def attack_success_rate(y_true, y_pred_clean, y_pred_adv):
    """Untargeted ASR: of the samples the model got right, the share the attack gets wrong.

    Parameters
    ----------
    y_true : array-like
        One true label per sample.
    y_pred_clean : array-like
        The model's predictions on the clean inputs: labels, or a row of probabilities per sample.
    y_pred_adv : array-like
        The same, on the attacked inputs.

    Returns
    -------
    float
        The ASR, in [0, 1].

    Raises
    ------
    ValueError
        On bad input, or when no sample is classified correctly (nothing to attack).

    Examples
    --------
    >>> attack_success_rate([0, 1, 2, 3], [0, 1, 2, 0], [0, 2, 1, 3])  # 2 of the 3 correct ones flip
    0.6666666666666666
    """
    raise NotImplementedError("count flips only among samples that were correct before the attack, as a share of those samples. Pitfall: a sample the model already got wrong is no success of the attack, and with no correct sample there is nothing to attack.")


def targeted_attack_success_rate(y_true, y_pred_clean, y_pred_adv, y_target):
    """Targeted ASR: the share of eligible samples that the attack sends to their target class.

    A sample is eligible when it was classified correctly before the attack and its target is
    another class than its own (landing in your own class is no success).

    Raises
    ------
    ValueError
        On bad input, or when no sample is eligible.

    Examples
    --------
    >>> targeted_attack_success_rate([0, 1, 2], [0, 1, 2], [5, 1, 5], y_target=[5, 5, 5])
    0.6666666666666666
    """
    raise NotImplementedError("Only the samples that were right before the attack and are aimed at a class other than their own can count; report the share of them that land on their target. Pitfall: a target equal to the true class is no success, and neither is a sample that was already wrong.")


def model_robustness_score(asr):
    """MRS = 1 - ASR: the share of correctly classified samples that survive the attack.

    Raises
    ------
    ValueError
        If ``asr`` is not a rate in [0, 1].

    Examples
    --------
    >>> model_robustness_score(0.25)
    0.75
    """
    raise NotImplementedError("Robustness is what is left of the correctly classified samples once the attack's successes are taken away. Pitfall: a rate outside [0, 1], or NaN, is a bug upstream: refuse it.")


def privacy_loss(is_member, member_score):
    """Privacy Loss: the best membership advantage ``TPR - FPR`` over all score thresholds.

    The attack says "member" when ``member_score >= threshold``. TPR is the share of members it
    flags, FPR the share of non-members it flags. PL is 0 when no threshold beats guessing.

    Parameters
    ----------
    is_member : array-like of bool or {0, 1}, shape (n,)
        Ground truth; both members and non-members must be present.
    member_score : array-like of float, shape (n,)
        The attack's score; higher means "more likely a member".

    Raises
    ------
    ValueError
        On empty or mismatched input, or when only members (or only non-members) are given.

    Examples
    --------
    >>> privacy_loss([1, 1, 0, 0], [0.9, 0.8, 0.7, 0.1])
    1.0
    """
    raise NotImplementedError("Try every score the attack produced as the threshold, and keep the best gap between the share of members flagged and the share of non-members flagged. Pitfall: the highest score is a threshold too, and the result is never below zero (guessing already scores zero).")


def security_coverage(inventory):
    """Security Coverage: the share of components whose every required control is in place.

    Parameters
    ----------
    inventory : dict of str to dict of str to bool
        ``{component: {control: in_place}}``; each component lists every control it needs.

    Raises
    ------
    ValueError
        For an empty inventory, or a component that lists no controls.

    Examples
    --------
    >>> security_coverage({"api": {"auth": True, "tls": True}, "model file": {"signature": False}})
    0.5
    """
    raise NotImplementedError("A component counts as protected only when every control it needs is in place; coverage is the share of protected components. Pitfall: counting controls instead of components lets one open hole hide among many closed ones; refuse an empty inventory and a component without controls.")


def robustness_curve(predict, attack, x, y, eps_values):
    """Accuracy under attack for each budget in ``eps_values``.

    Parameters
    ----------
    predict : callable
        ``predict(x)`` returns labels (or probabilities).
    attack : callable
        ``attack(x, y, eps)`` returns the attacked inputs. Budget 0 means no attack.
    x, y : arrays
        Inputs and their labels.
    eps_values : sequence of float
        Increasing, non-negative budgets.

    Returns
    -------
    dict
        ``{"eps": array, "accuracy": array}``, one accuracy per budget.

    Raises
    ------
    ValueError
        For no budgets, negative or decreasing ones, or when ``x`` and ``y`` differ in length.

    Examples
    --------
    >>> predict = lambda x: (x[:, 0] > 0).astype(int)
    >>> attack = lambda x, y, eps: x - eps * (2 * y[:, None] - 1)
    >>> robustness_curve(predict, attack, np.array([[0.5], [-0.2]]), np.array([1, 0]), [0, 0.3, 1])["accuracy"]
    array([1. , 0.5, 0. ])
    """
    raise NotImplementedError("For each budget, attack the inputs with it, predict, and record the accuracy; a budget of zero means the clean inputs. Pitfall: refuse budgets that are missing, negative or decreasing, and inputs and labels of different lengths.")
