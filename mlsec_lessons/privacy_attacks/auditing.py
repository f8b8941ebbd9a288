"""Privacy auditing: an empirical *lower* bound on epsilon from membership-inference trials.

If a training algorithm is (eps, delta)-DP, then for any attack that decides "member" on an
output set ``S`` (Kairouz et al., 2015; Jagielski et al., 2020)::

    TPR     <= e^eps * FPR     + delta
    1 - FPR <= e^eps * (1 - TPR) + delta

so an attack measured at some TPR and FPR proves ``eps >= log((TPR - delta) / FPR)`` (and the
same with the roles of the two worlds swapped). Measured rates are estimates, so the bound
uses the Clopper-Pearson interval: the *lower* end of TPR and the *upper* end of FPR. With
point estimates instead, 3 lucky trials out of 3 "prove" eps = infinity.

An accountant gives an upper bound (what the proof allows); an audit gives a lower bound (what
an attack demonstrated). A correct DP implementation keeps audit <= accountant; a bug shows
up as an audit above it.
"""
import dataclasses

import numpy as np
from scipy.stats import beta

from ..errors import InvalidParameterError
from ..records import OneRowFrame
from ..validation import as_generator, as_int_seed, check_int
from .membership import check_is_member, check_scores


def clopper_pearson(k, n, alpha=0.05):
    """Exact two-sided ``1 - alpha`` confidence interval for a binomial proportion ``k / n``.

    Equal to ``scipy.stats.binomtest(k, n).proportion_ci(1 - alpha, method="exact")``,
    vectorised over ``k``.

    Examples
    --------
    >>> lo, hi = clopper_pearson(0, 100)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0, 0.0362)
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise InvalidParameterError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    with np.errstate(invalid="ignore"):
        lo = np.where(k == 0, 0.0, beta.ppf(alpha / 2, k, n - k + 1))
        hi = np.where(k == n, 1.0, beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def epsilon_lower_bound(tp, fn, fp, tn, delta=0.0, alpha=0.05):
    """Largest epsilon that the counts of one membership test prove, with confidence ``1 - alpha``.

    Parameters
    ----------
    tp, fn : int
        Member trials the attack called "member" / "non-member".
    fp, tn : int
        Non-member trials the attack called "member" / "non-member".
    delta : float, default=0.0
        The delta of the (eps, delta) guarantee being audited.
    alpha : float or None, default=0.05
        Each rate is replaced by the far end of its two-sided ``1 - alpha`` Clopper-Pearson
        interval, so the bound holds with probability at least ``1 - alpha``. ``None`` uses the
        raw rates (a point estimate, *not* a bound: shown only to compare).

    Returns
    -------
    float
        ``max(0, log((TPR - delta) / FPR), log((1 - FPR - delta) / (1 - TPR)))``; may be
        ``inf`` only when ``alpha`` is None.

    Examples
    --------
    >>> round(epsilon_lower_bound(500, 0, 0, 500), 2)       # a perfect attack on 500 + 500 trials
    4.91
    >>> epsilon_lower_bound(500, 0, 0, 500, alpha=None)     # the same without intervals
    inf
    """
    counts = [int(c) for c in (tp, fn, fp, tn)]
    if min(counts) < 0 or counts != [tp, fn, fp, tn]:
        raise InvalidParameterError(f"tp, fn, fp, tn must be non-negative integers, got {(tp, fn, fp, tn)}")
    if tp + fn == 0 or fp + tn == 0:
        raise InvalidParameterError("need at least one member trial (tp + fn) and one non-member trial (fp + tn)")
    if not 0 <= delta < 1:
        raise InvalidParameterError(f"delta must be in [0, 1), got {delta!r}")
    if alpha is None:
        tpr_lo, fpr_hi = tp / (tp + fn), fp / (fp + tn)
    else:
        tpr_lo = clopper_pearson(tp, tp + fn, alpha)[0]
        fpr_hi = clopper_pearson(fp, fp + tn, alpha)[1]
    return max(0.0, _log_ratio(tpr_lo - delta, fpr_hi), _log_ratio(1 - fpr_hi - delta, 1 - tpr_lo))


def epsilon_ceiling(n_members, n_nonmembers, delta=0.0, alpha=0.05):
    """The largest epsilon that ``n_members + n_nonmembers`` trials can prove: a perfect attack's bound.

    Every trial called right (``tp = n_members``, ``tn = n_nonmembers``) still leaves a
    Clopper-Pearson interval around each rate, so a finite number of trials caps what an audit
    can show, whatever the true epsilon. An audit at its ceiling says "at least this much, and
    more trials could show more".

    Examples
    --------
    >>> round(epsilon_ceiling(100, 100), 2), round(epsilon_ceiling(1000, 1000), 2)
    (3.28, 5.6)
    """
    return epsilon_lower_bound(n_members, 0, 0, n_nonmembers, delta, alpha)


def dp_roc_cap(fpr, epsilon, delta=0.0):
    """The highest TPR that any membership test may reach at ``fpr`` against an (epsilon, delta)-DP training.

    The hypothesis-testing view of DP (Wasserman & Zhou, 2010; Kairouz, Oh & Viswanath, 2015):
    telling "trained with the record" from "trained without it" is a test, and DP bounds every
    test's ROC by ``TPR <= e^eps FPR + delta`` and, the same with the worlds swapped,
    ``1 - FPR <= e^eps (1 - TPR) + delta``. An attack whose ROC lies above the cap disproves the
    guarantee (up to the sampling error of its rates: :func:`audit` puts intervals on them).

    Parameters
    ----------
    fpr : float or array-like
        False-positive rates in [0, 1].
    epsilon : float
        Non-negative; ``inf`` gives no cap (1 everywhere).
    delta : float, default=0.0

    Returns
    -------
    float or ndarray
        ``min(e^eps FPR + delta, 1 - e^-eps (1 - FPR - delta), 1)``.

    Examples
    --------
    >>> dp_roc_cap([0.001, 0.01, 0.5], epsilon=1.0).round(4)
    array([0.0027, 0.0272, 0.8161])
    """
    f = np.asarray(fpr, dtype=float)
    if np.any((f < 0) | (f > 1)) or not np.all(np.isfinite(f)):
        raise InvalidParameterError("fpr must lie in [0, 1]")
    if not epsilon >= 0:
        raise InvalidParameterError(f"epsilon must be non-negative, got {epsilon!r}")
    if not 0 <= delta < 1:
        raise InvalidParameterError(f"delta must be in [0, 1), got {delta!r}")
    swapped = 1 - np.exp(-epsilon) * (1 - f - delta)
    with np.errstate(over="ignore"):
        return np.minimum.reduce([np.exp(epsilon) * f + delta, swapped, np.ones_like(f)])


def _log_ratio(a, b):
    a, b = float(a), float(b)
    if a <= 0:
        return 0.0
    return float("inf") if b <= 0 else float(np.log(a / b))


def _best_threshold(is_member, score, delta, alpha):
    """Threshold on ``score`` (decide "member" when ``score >= t``) with the largest bound."""
    order = np.argsort(-score, kind="stable")
    s, m = score[order], is_member[order]
    tp, fp = np.cumsum(m), np.cumsum(~m)
    cut = np.r_[s[1:] != s[:-1], True]  # a threshold cannot split tied scores
    tp, fp, t = tp[cut], fp[cut], s[cut]
    n_in, n_out = m.sum(), (~m).sum()
    tpr_lo = clopper_pearson(tp, n_in, alpha)[0]
    fpr_hi = clopper_pearson(fp, n_out, alpha)[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.maximum(np.log(np.maximum(tpr_lo - delta, 0) / fpr_hi),
                         np.log(np.maximum(1 - fpr_hi - delta, 0) / (1 - tpr_lo)))
    return float(t[np.nanargmax(np.where(np.isfinite(eps), eps, -np.inf))])


@dataclasses.dataclass(frozen=True)
class AuditResult(OneRowFrame):
    """What :func:`audit` proved, and the held-out counts it proved it from."""

    epsilon_lower_bound: float  # with confidence 1 - alpha, epsilon is at least this
    threshold: float            # "member" when score >= threshold, chosen on the other trials
    tp: int                     # held-out member trials called "member"
    fn: int                     # held-out member trials called "non-member"
    fp: int                     # held-out non-member trials called "member"
    tn: int                     # held-out non-member trials called "non-member"


def audit(is_member, score, delta=0.0, alpha=0.05, fit_fraction=0.5, seed=0):
    """Empirical epsilon lower bound from membership-inference trials, with an honest threshold.

    The threshold is chosen on a random ``fit_fraction`` of the trials and the bound is computed
    on the others: choosing it on the same trials would pick the luckiest one and void the
    interval.

    Parameters
    ----------
    is_member : bool array of shape (n,)
        Whether the record (or canary) was in the training set in each trial.
    score : array of shape (n,)
        The attack's score; higher means "member".
    delta, alpha : float
        As in :func:`epsilon_lower_bound`.
    fit_fraction : float, default=0.5
    seed : int, default=0

    Returns
    -------
    AuditResult
        ``epsilon_lower_bound``, the ``threshold``, and ``tp``, ``fn``, ``fp``, ``tn`` on the
        held-out trials.

    Notes
    -----
    Clopper-Pearson assumes independent trials. Canary trials (one fresh training per trial)
    are; records scored by the same model are not quite, so a bound from pooled records is an
    estimate rather than a guarantee.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> member = np.arange(2000) < 1000
    >>> score = member + rng.normal(0, 0.3, 2000)      # a strong attack
    >>> r = audit(member, score)
    >>> 2 < r.epsilon_lower_bound < 6, r.tp + r.fn + r.fp + r.tn
    (True, 1000)
    >>> list(r.to_frame().columns)
    ['epsilon_lower_bound', 'threshold', 'tp', 'fn', 'fp', 'tn']
    """
    truth = check_is_member(is_member)
    score = check_scores(score, len(truth))
    if not 0 < fit_fraction < 1:
        raise InvalidParameterError(f"fit_fraction must be strictly between 0 and 1, got {fit_fraction!r}")
    rng = as_generator(seed)
    fit = np.zeros(len(truth), bool)
    fit[rng.permutation(len(truth))[: int(round(fit_fraction * len(truth)))]] = True
    for part in (fit, ~fit):
        if truth[part].all() or not truth[part].any():
            raise InvalidParameterError("too few trials: each half needs both member and non-member trials")
    t = _best_threshold(truth[fit], score[fit], delta, alpha)
    guess, held = score[~fit] >= t, truth[~fit]
    tp, fn = int(np.sum(guess & held)), int(np.sum(~guess & held))
    fp, tn = int(np.sum(guess & ~held)), int(np.sum(~guess & ~held))
    return AuditResult(epsilon_lower_bound=epsilon_lower_bound(tp, fn, fp, tn, delta, alpha),
                       threshold=t, tp=tp, fn=fn, fp=fp, tn=tn)


def canary_trials(estimator, x, y, x_canary, y_canary, n_trials=200, seed=0, score_fn=None):
    """Train ``n_trials`` models on ``(x, y)``, half of them with one extra canary record; score the canary.

    The two training sets differ in exactly one record, which is what DP's definition compares,
    and each trial is a fresh, independent training, so the Clopper-Pearson interval of
    :func:`audit` applies. The score is the model's logit-scaled confidence in the canary's label,
    unless ``score_fn`` gives another (an auditor may look inside the released model).

    Parameters
    ----------
    estimator : scikit-learn classifier (unfitted)
        Cloned per trial; its ``random_state``, if any, is set to ``seed + trial``.
    x, y : arrays
        The fixed rest of the training set.
    x_canary : array of shape (n_features,)
    y_canary : int
    n_trials : int, default=200
        Even; half with the canary.
    seed : int, default=0
    score_fn : callable, optional
        ``score_fn(model, x_canary, y_canary) -> float``, higher meaning "the canary was in".

    Returns
    -------
    is_member, score : arrays of shape (n_trials,)

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> x, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
    >>> member, score = canary_trials(GaussianNB(), x, y, [5.0, 5.0, 5.0], 0, n_trials=20)
    >>> bool(score[member].min() > score[~member].max())    # a plain model: the canary always shows
    True
    """
    from .membership import logit_confidence
    from .shadows import fit_seeded, model_logits

    x, y = np.asarray(x, dtype=float), np.asarray(y)
    x_canary = np.asarray(x_canary, dtype=float).reshape(1, -1)
    if x.ndim != 2 or x_canary.shape[1] != x.shape[1]:
        raise InvalidParameterError(f"x_canary must have {x.shape[1]} features like x, got shape {x_canary.shape}")
    if check_int(n_trials, "n_trials", min_value=2) % 2:
        raise InvalidParameterError(f"n_trials must be an even integer >= 2, got {n_trials!r}")
    seed = as_int_seed(seed)  # trial i uses seed + i
    is_member = np.random.default_rng(seed).permutation(np.arange(n_trials) < n_trials // 2)
    x_in, y_in = np.vstack([x, x_canary]), np.r_[y, int(y_canary)]
    score = np.empty(n_trials)
    for i, member in enumerate(is_member):
        model = fit_seeded(estimator, *((x_in, y_in) if member else (x, y)), seed + i)
        if score_fn is None:
            score[i] = logit_confidence(model_logits(model, x_canary), np.array([int(y_canary)]))[0]
        else:
            score[i] = float(score_fn(model, x_canary[0], int(y_canary)))
    return is_member, score
