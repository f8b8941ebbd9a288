"""The log-log ROC curve of membership-inference attacks (Carlini et al., 2022, Fig. 1 style).

On linear axes every weak attack hugs the diagonal and the region that matters, a few
confident hits at a tiny false-positive rate, is squeezed into a corner. Log axes stretch it.
"""
import numpy as np

from ..errors import InvalidParameterError
from ..plotting import axes_or_new, finish_axes
from .membership import attack_report, roc


def plot_roc_loglog(attacks, ax=None, title=None, min_fpr=None):
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
    ax.set(xscale="log", yscale="log", xlim=(lo, 1.0), ylim=(lo, 1.02),
           xlabel="false-positive rate", ylabel="true-positive rate")
    for f in (0.001, 0.01):
        if f > lo:
            ax.axvline(f, color="grey", linewidth=0.6, alpha=0.5)
    ax.grid(alpha=0.3, which="major")
    # below the axes: the curves fill the top right, where a legend inside would hide them
    return finish_axes(ax, title, loc="upper center", bbox_to_anchor=(0.5, -0.16))
