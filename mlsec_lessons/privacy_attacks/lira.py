"""The Likelihood Ratio Attack, LiRA (Carlini et al., 2022, "Membership Inference Attacks From First Principles").

The loss-threshold attack uses one threshold for every record. LiRA calibrates per record:
shadow models trained *with* record ``i`` give a distribution of its logit-scaled confidence
``s_i`` (``IN``), models trained *without* it give another (``OUT``). Each is fitted with a
Gaussian, and the target's confidence ``s`` on the record is scored by

* **online** (shadows with and without ``i``): the likelihood ratio
  ``log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out)``;
* **offline** (only shadows without ``i``, so they can be trained before the target's records
  are known): a one-sided test of ``s`` against ``OUT``, ``-log P(S >= s | OUT)``.

With few shadows (the course uses 16), one variance shared by all records ("fixed
variance") is steadier than a per-record estimate; the paper recommends it below 64 shadows.
"""
import numpy as np
from scipy.stats import norm

from ..errors import InvalidParameterError
from .shadows import ShadowSet


def _check(target_scores, shadow_scores, shadow_in):
    s = np.asarray(target_scores, dtype=float)
    shadow = np.asarray(shadow_scores, dtype=float)
    inside = np.asarray(shadow_in, dtype=bool)
    if s.ndim != 1:
        raise InvalidParameterError(f"target_scores must be 1-D (one score per record), got shape {s.shape}")
    if shadow.ndim != 2 or shadow.shape[1] != len(s):
        raise InvalidParameterError(f"shadow_scores must have shape (n_shadows, {len(s)}), got {shadow.shape}")
    if inside.shape != shadow.shape:
        raise InvalidParameterError(f"shadow_in must have the shape of shadow_scores {shadow.shape}, got {inside.shape}")
    if not np.all(np.isfinite(s)) or not np.all(np.isfinite(shadow)):
        raise InvalidParameterError("scores must be finite (use logit_confidence on logits, not on rounded probabilities)")
    return s, shadow, inside


def _gaussian(shadow, mask, fix_variance):
    """Per-record mean and standard deviation of the shadow scores selected by ``mask``."""
    picked = np.where(mask, shadow, np.nan)
    count = mask.sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(picked, axis=0) / count  # NaN where no shadow qualifies
    if fix_variance:  # one variance for every record, pooled over all (record, shadow) pairs
        std = np.full(shadow.shape[1], np.nanstd(picked - mean))
    else:
        std = np.sqrt(np.nansum((picked - mean) ** 2, axis=0) / np.maximum(count, 1))
    return mean, np.maximum(std, 1e-6), count


def in_out_gaussians(shadow_scores, shadow_in, fix_variance=True):
    """The two Gaussians LiRA fits to each record: its scores in the shadows trained with it and without it.

    Parameters
    ----------
    shadow_scores : array of shape (n_shadows, n)
        Each shadow model's logit-scaled confidence on each record.
    shadow_in : bool array of shape (n_shadows, n)
        Whether the record was in that shadow model's training set.
    fix_variance : bool, default=True
        One standard deviation per side shared by all records, as :func:`lira_online` uses.

    Returns
    -------
    dict of str to array of shape (n,)
        ``mu_in``, ``sd_in``, ``n_in`` (how many shadows trained with the record) and the same
        for ``out``; a mean is NaN where no shadow qualifies. The samples themselves are
        ``shadow_scores[shadow_in[:, i], i]`` and ``shadow_scores[~shadow_in[:, i], i]``.

    Examples
    --------
    >>> shadow = [[3.0, 0.5], [1.0, 0.0], [2.0, 1.5], [0.0, -1.0]]
    >>> inside = [[1, 1], [0, 0], [1, 1], [0, 0]]
    >>> g = in_out_gaussians(shadow, inside)
    >>> g["mu_in"], g["mu_out"], g["n_in"]
    (array([2.5, 1. ]), array([ 0.5, -0.5]), array([2, 2]))
    """
    shadow = np.asarray(shadow_scores, dtype=float)
    if shadow.ndim != 2:
        raise InvalidParameterError(f"shadow_scores must have shape (n_shadows, n), got {shadow.shape}")
    _, shadow, inside = _check(shadow[0], shadow, shadow_in)
    mu_in, sd_in, n_in = _gaussian(shadow, inside, fix_variance)
    mu_out, sd_out, n_out = _gaussian(shadow, ~inside, fix_variance)
    return {"mu_in": mu_in, "sd_in": sd_in, "n_in": n_in, "mu_out": mu_out, "sd_out": sd_out, "n_out": n_out}


def lira_online(target_scores, shadow_scores, shadow_in, fix_variance=True):
    """Online LiRA: ``log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out)`` for each record.

    Parameters
    ----------
    target_scores : array of shape (n,)
        The target model's logit-scaled confidence on each candidate record.
    shadow_scores : array of shape (n_shadows, n)
        The same score from each shadow model.
    shadow_in : bool array of shape (n_shadows, n)
        Whether the record was in that shadow model's training set.
    fix_variance : bool, default=True
        Share one variance across records (steadier with few shadows).

    Returns
    -------
    array of shape (n,)
        Higher means "more likely a member".

    Notes
    -----
    A record with no IN shadow (rare: about ``n * 2**-n_shadows`` of them) gets
    ``mu_in = mu_out + `` the median gap of the other records, so it is still scored.

    Examples
    --------
    Four shadows, two records; record 0 looks like a member, record 1 does not:

    >>> shadow = [[3.0, 0.5], [1.0, 0.0], [2.0, 1.5], [0.0, -1.0]]
    >>> inside = [[1, 1], [0, 0], [1, 1], [0, 0]]
    >>> lira_online([2.5, 0.0], shadow, inside).round(2)
    array([ 8. , -1.5])
    """
    s, shadow, inside = _check(target_scores, shadow_scores, shadow_in)
    mu_out, sd_out, n_out = _gaussian(shadow, ~inside, fix_variance)
    mu_in, sd_in, n_in = _gaussian(shadow, inside, fix_variance)
    if not n_out.all():
        raise InvalidParameterError("some records have no shadow model trained without them; use more shadows")
    if not n_in.all():
        gap = np.median((mu_in - mu_out)[n_in > 0])
        mu_in = np.where(n_in > 0, mu_in, mu_out + gap)
        sd_in = np.where(n_in > 0, sd_in, sd_out)
    return norm.logpdf(s, mu_in, sd_in) - norm.logpdf(s, mu_out, sd_out)


def lira_offline(target_scores, shadow_scores, shadow_in, fix_variance=True):
    """Offline LiRA: ``-log P(S >= s)`` under the Gaussian fitted to the OUT shadows of each record.

    Only models trained *without* the record are used, so the shadows can be trained once,
    before the attacker knows which records to test. Same arguments as :func:`lira_online`.

    Examples
    --------
    >>> shadow = [[3.0, 0.5], [1.0, 0.0], [2.0, 1.5], [0.0, -1.0]]
    >>> inside = [[1, 1], [0, 0], [1, 1], [0, 0]]
    >>> lira_offline([2.5, 0.0], shadow, inside).round(2)
    array([10.36,  1.84])
    """
    s, shadow, inside = _check(target_scores, shadow_scores, shadow_in)
    mu_out, sd_out, n_out = _gaussian(shadow, ~inside, fix_variance)
    if not n_out.all():
        raise InvalidParameterError("some records have no shadow model trained without them; use more shadows")
    return -norm.logsf(s, mu_out, sd_out)  # one-sided: only an unusually *high* confidence says "member"


def leave_one_out(shadows, attack="online", targets=None, fix_variance=True):
    """Each model in turn is the target and every other model a shadow; results are pooled.

    Pooling gives ``len(targets) * n_records`` membership trials, half of them members, so
    TPR at 0.1% FPR rests on thousands of non-members rather than a few hundred.

    Parameters
    ----------
    shadows : ShadowSet
    attack : {"online", "offline", "loss"}, default="online"
        ``"loss"`` is the loss-threshold attack on the same targets, for comparison.
    targets : sequence of int, optional
        Which models play the target (default: all).
    fix_variance : bool, default=True

    Returns
    -------
    is_member, score : arrays of shape (len(targets) * n_records,)

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mlsec_lessons.privacy_attacks.shadows import train_shadow_models
    >>> x, y = np.arange(20.0).reshape(-1, 1), (np.arange(20) >= 10).astype(int)
    >>> s = train_shadow_models(LogisticRegression(), x, y, n_models=9, cache=False)
    >>> member, score = leave_one_out(s, "online", targets=[0, 1])
    >>> member.shape, score.shape
    ((40,), (40,))
    """
    if not isinstance(shadows, ShadowSet):
        raise InvalidParameterError(f"shadows must be a ShadowSet, got {type(shadows).__name__}")
    if attack not in ("online", "offline", "loss"):
        raise InvalidParameterError(f"attack must be 'online', 'offline' or 'loss', got {attack!r}")
    n_models = len(shadows.in_mask)
    targets = range(n_models) if targets is None else [int(t) for t in targets]
    if any(not 0 <= t < n_models for t in targets):
        raise InvalidParameterError(f"targets must be model indices in [0, {n_models - 1}], got {list(targets)}")
    scores = shadows.scores if attack != "loss" else -shadows.losses
    is_member, score = [], []
    for t in targets:
        rest = np.arange(n_models) != t
        if attack == "loss":
            score.append(scores[t])
        else:
            fn = lira_online if attack == "online" else lira_offline
            score.append(fn(scores[t], scores[rest], shadows.in_mask[rest], fix_variance))
        is_member.append(shadows.in_mask[t])
    return np.concatenate(is_member), np.concatenate(score)
