"""The log-log ROC curve of membership-inference attacks (Carlini et al., 2022, Fig. 1 style).

On linear axes every weak attack hugs the diagonal and the region that matters, a few
confident hits at a tiny false-positive rate, is squeezed into a corner. Log axes stretch it.
"""
import numpy as np

from ..errors import InvalidParameterError
from ..plotting import axes_or_new, finish_axes
from .auditing import dp_roc_cap
from .membership import attack_report, roc


def plot_roc_loglog(attacks, ax=None, title=None, min_fpr=None, dp_caps=()):
    """ROC curves of several attacks on log-log axes, with the chance line ``TPR = FPR``.

    Parameters
    ----------
    attacks : mapping of str to (is_member, score)
        One entry per attack; the legend shows its AUC and TPR at 0.1% FPR.
    ax : matplotlib Axes, optional
    title : str, optional
    min_fpr : float, optional
        Left end of the FPR axis; default ``1 / n_non-members`` of the largest attack, the
        smallest FPR that can be measured.
    dp_caps : sequence of (epsilon, delta), optional
        Draw the highest ROC an (epsilon, delta)-DP training allows for each
        (:func:`~mlsec_lessons.privacy_attacks.auditing.dp_roc_cap`); a curve above it
        contradicts the guarantee.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlsec_lessons.privacy_attacks.plots import plot_roc_loglog
    >>> ax = plot_roc_loglog({"perfect": ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1])})
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')
    """
    if not hasattr(attacks, "items") or len(attacks) == 0:
        raise InvalidParameterError("attacks must be a non-empty mapping {label: (is_member, score)}")
    ax = axes_or_new(ax, figsize=(4.8, 5.0))
    smallest = 1.0
    for label, pair in attacks.items():
        if len(pair) != 2:
            raise InvalidParameterError(f"attack {label!r} must be a pair (is_member, score)")
        is_member, score = pair
        fpr, tpr = roc(is_member, score)
        r = attack_report(is_member, score)
        smallest = min(smallest, 1.0 / r["n non-members"])
        # below one false positive the ROC has no point at 0.1% FPR: nothing was measured there
        low = f"{r['tpr@0.1%']:.2%}" if r["n non-members"] * 0.001 >= 1 else "n/a"
        ax.plot(fpr, tpr, linewidth=1.4, label=f"{label}: AUC {r['auc']:.3f}, TPR@0.1% {low}")
    lo = min_fpr if min_fpr is not None else smallest
    grid = np.array([lo, 1.0])
    ax.plot(grid, grid, color="grey", linestyle=":", linewidth=1, label="chance (TPR = FPR)")
    line = np.geomspace(lo, 1.0, 200)
    for k, (epsilon, delta) in enumerate(dp_caps):
        ax.plot(line, dp_roc_cap(line, epsilon, delta), color="black", linewidth=1, linestyle=("--", "-.", ":")[k % 3],
                label=f"cap of ({epsilon:.3g}, {delta:g})-DP: TPR <= e^eps FPR + delta")
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.0), ylim=(lo, 1.02),
           xlabel="false-positive rate", ylabel="true-positive rate")
    for f in (0.001, 0.01):
        if f > lo:
            ax.axvline(f, color="grey", linewidth=0.6, alpha=0.5)
    ax.grid(alpha=0.3, which="major")
    # below the axes: the curves fill the top right, where a legend inside would hide them
    return finish_axes(ax, title, loc="upper center", bbox_to_anchor=(0.5, -0.16))


def plot_in_out(phi_in, phi_out, phi_target, ax=None, title=None, sd=None, bins=12):
    """What LiRA sees for one record: its shadow scores IN and OUT, their Gaussians, the target's score.

    The central figure of Carlini et al. (2022): for most records the two distributions overlap, and no score
    of the target tells them apart; for a record the models must memorise they separate.

    Parameters
    ----------
    phi_in, phi_out : array-like
        The record's logit-scaled confidence in the shadows trained with it / without it.
    phi_target : float
        The target model's score on the record, drawn as a vertical line.
    ax : matplotlib Axes, optional
    title : str, optional
    sd : (float, float), optional
        Standard deviations of the IN and OUT Gaussians (LiRA's shared ones); default each
        sample's own.
    bins : int, default=12

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlsec_lessons.privacy_attacks.plots import plot_in_out
    >>> ax = plot_in_out([3.0, 3.4, 2.9], [-9.0, -6.5, -11.0, -8.2], 3.1, sd=(0.4, 2.5))
    >>> ax.get_xlabel()
    'logit-scaled confidence'
    """
    samples = [np.asarray(p, dtype=float).ravel() for p in (phi_in, phi_out)]
    if any(p.size == 0 or not np.all(np.isfinite(p)) for p in samples) or not np.isfinite(phi_target):
        raise InvalidParameterError("phi_in and phi_out must be non-empty and finite, phi_target finite")
    sds = [p.std() for p in samples] if sd is None else [float(v) for v in sd]
    ax = axes_or_new(ax)
    edges = np.histogram_bin_edges(np.concatenate(samples + [[phi_target]]), bins=bins)
    sds = [max(s, 1e-6) for s in sds]
    ends = [min(edges[0], *(p.mean() - 3 * s for p, s in zip(samples, sds))),
            max(edges[-1], *(p.mean() + 3 * s for p, s in zip(samples, sds)))]
    grid = np.linspace(*ends, 400)  # wide enough to show each Gaussian's tails
    for p, s, name, color in zip(samples, sds, ("IN", "OUT"), ("C0", "C1")):
        ax.hist(p, bins=edges, density=True, alpha=0.35, color=color, label=f"{name} shadows (n={p.size})")
        density = np.exp(-0.5 * ((grid - p.mean()) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        ax.plot(grid, density, color=color, linewidth=1.4)
    ax.axvline(phi_target, color="black", linewidth=1.4, linestyle="--", label=f"target model: {phi_target:.1f}")
    ax.set(xlabel="logit-scaled confidence", ylabel="density")
    return finish_axes(ax, title)
