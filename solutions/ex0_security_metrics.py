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
    ### BEGIN SOLUTION hint: Accept integer labels or rows of class probabilities, and give back one class label per sample. Pitfall: refuse what cannot be scored (no samples, the wrong number of them, rows that are not probabilities such as logits) rather than guess.
    ### HINT 2: np.asarray(y); ValueError if it is empty or has not n samples; a 2-D y holds probabilities: check that they lie in [0, 1] (min and max), then take the argmax along axis 1
    y = np.asarray(y)
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.ndim == 2:
        # values outside [0, 1] are logits passed by mistake: refuse them rather than guess
        if y.min() < 0 or y.max() > 1:
            raise ValueError(f"{name} must hold probabilities in [0, 1], got values from {y.min():g} to {y.max():g}")
        y = y.argmax(axis=1)
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} samples, expected {n}")
    return y
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: count flips only among samples that were correct before the attack, as a share of those samples. Pitfall: a sample the model already got wrong is no success of the attack, and with no correct sample there is nothing to attack.
    ### HINT 2: as_labels for all three arguments (with len(y_true)); a boolean mask of the samples predicted correctly before; ValueError if the mask is all False; the flips are the masked samples that are wrong after the attack; their count over the mask's count, as a float
    y_true = as_labels(y_true, "y_true")
    before = as_labels(y_pred_clean, "y_pred_clean", len(y_true))
    after = as_labels(y_pred_adv, "y_pred_adv", len(y_true))
    attackable = before == y_true
    if not attackable.any():
        raise ValueError("no sample is classified correctly before the attack, so there is nothing to attack")
    flips = (after != y_true) & attackable
    return float(flips.sum() / attackable.sum())
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: Only the samples that were right before the attack and are aimed at a class other than their own can count; report the share of them that land on their target. Pitfall: a target equal to the true class is no success, and neither is a sample that was already wrong.
    ### HINT 2: as_labels for all four arguments; eligible is the mask (clean prediction equals y_true) & (target differs from y_true); ValueError if no sample is eligible; hits are the eligible samples whose adversarial prediction equals their target; the count of hits over the count of eligible samples
    y_true = as_labels(y_true, "y_true")
    before = as_labels(y_pred_clean, "y_pred_clean", len(y_true))
    after = as_labels(y_pred_adv, "y_pred_adv", len(y_true))
    target = as_labels(y_target, "y_target", len(y_true))
    eligible = (before == y_true) & (target != y_true)
    if not eligible.any():
        raise ValueError("no sample is both classified correctly and aimed at another class")
    hits = (after == target) & eligible
    return float(hits.sum() / eligible.sum())
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: Robustness is what is left of the correctly classified samples once the attack's successes are taken away. Pitfall: a rate outside [0, 1], or NaN, is a bug upstream: refuse it.
    ### HINT 2: ValueError unless 0.0 <= asr <= 1.0 (a chained comparison also refuses NaN); then one minus asr
    if not 0.0 <= asr <= 1.0:  # also rejects NaN: every comparison with NaN is False
        raise ValueError(f"asr must be a rate in [0, 1], got {asr!r}")
    return 1.0 - asr
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: Try every score the attack produced as the threshold, and keep the best gap between the share of members flagged and the share of non-members flagged. Pitfall: the highest score is a threshold too, and the result is never below zero (guessing already scores zero).
    ### HINT 2: validate: not empty, the same shape, 0/1 or bool labels, both members and non-members; for each distinct score t (np.unique) flag score >= t, TPR is the flagged share of members and FPR that of non-members; the largest TPR - FPR, starting from 0.0
    member = np.asarray(is_member)
    score = np.asarray(member_score, dtype=float)
    if member.size == 0:
        raise ValueError("is_member is empty")
    if score.shape != member.shape:
        raise ValueError(f"member_score has shape {score.shape} but is_member has shape {member.shape}")
    if not np.isin(member, (0, 1)).all():
        raise ValueError("is_member must hold booleans or 0/1")
    member = member.astype(bool)
    if member.all() or not member.any():
        raise ValueError("is_member needs both members and non-members")
    best = 0.0
    for t in np.unique(score):
        flagged = score >= t
        tpr, fpr = flagged[member].mean(), flagged[~member].mean()
        best = max(best, tpr - fpr)
    return float(best)
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: A component counts as protected only when every control it needs is in place; coverage is the share of protected components. Pitfall: counting controls instead of components lets one open hole hide among many closed ones; refuse an empty inventory and a component without controls.
    ### HINT 2: ValueError for an empty inventory or a component whose dict of controls is empty; per component all(controls.values()); the number of protected components over the number of components
    if not inventory:
        raise ValueError("inventory is empty: list the components and the controls each needs")
    protected = []
    for component, controls in inventory.items():
        if not controls:
            raise ValueError(f"component {component!r} lists no controls")
        protected.append(all(controls.values()))  # one open hole leaves the component exposed
    return sum(protected) / len(protected)
    ### END SOLUTION


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
    ### BEGIN SOLUTION hint: For each budget, attack the inputs with it, predict, and record the accuracy; a budget of zero means the clean inputs. Pitfall: refuse budgets that are missing, negative or decreasing, and inputs and labels of different lengths.
    ### HINT 2: np.asarray(eps_values, dtype=float); ValueError if it is empty, any value is below 0 or np.diff is below 0; y through as_labels with len(x); for each e the inputs are x when e == 0, else attack(x, y, e); np.mean of as_labels(predict(...)) == y; return {'eps': the budgets, 'accuracy': an array}
    eps = np.asarray(eps_values, dtype=float)
    if eps.size == 0 or (eps < 0).any() or (np.diff(eps) < 0).any():
        raise ValueError(f"eps_values must be a non-empty increasing list of budgets >= 0, got {eps_values!r}")
    y = as_labels(y, "y", len(x))
    accuracy = []
    for e in eps:
        x_eval = x if e == 0 else attack(x, y, e)
        accuracy.append(np.mean(as_labels(predict(x_eval), "predict(x)") == y))
    return {"eps": eps, "accuracy": np.array(accuracy)}
    ### END SOLUTION
