"""Small plot helpers the lessons share. Each draws one figure idea and returns its Axes.

Figures are kept small (about 5 x 3.2 inches at 100 dpi) so executed notebooks stay light.
"""
import numpy as np

from .errors import InvalidParameterError

FIGSIZE = (5.0, 3.2)
DPI = 100


def axes_or_new(ax, figsize=FIGSIZE):
    """The given Axes, or a new small figure's: how every course figure starts.

    Parameters
    ----------
    ax : matplotlib.axes.Axes or None
        Draw here; ``None`` opens a new figure of ``figsize`` inches.
    figsize : (float, float)

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # imported late: importing this module never picks a backend

    _, ax = plt.subplots(figsize=figsize, dpi=DPI, layout="constrained")
    return ax


def finish_axes(ax, title, **legend):
    """Legend and optional title, the same on every course figure.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    title : str or None
    **legend
        Passed to ``ax.legend`` (``loc``, ``bbox_to_anchor``, ``ncols``...).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax.legend(frameon=False, fontsize="small", **legend)
    if title:
        ax.set_title(title, fontsize="medium")
    return ax


def plot_robustness_curves(curves, ax=None, title=None, chance=None, mark_eps=None):
    """Accuracy against the attack budget eps, one line per attack.

    Parameters
    ----------
    curves : mapping of str to RobustnessCurve
        ``{label: curve}``, each curve as returned by :func:`mlsec_lessons.metrics.robustness_curve`
        (a mapping with ``"eps"`` and ``"accuracy"`` works too, for curves measured elsewhere).
    ax : matplotlib Axes, optional
        Where to draw; a new small figure when omitted.
    title : str, optional
    chance : float, optional
        Accuracy of guessing (e.g. 0.1 for ten classes), drawn as a dotted line.
    mark_eps : float, optional
        A budget to highlight with a vertical line (e.g. the one a report quotes).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlsec_lessons.metrics import RobustnessCurve
    >>> from mlsec_lessons.plotting import plot_robustness_curves
    >>> ax = plot_robustness_curves({"FGSM": RobustnessCurve(eps=np.array([0, 0.1]), accuracy=np.array([0.97, 0.55]))})
    >>> ax.get_ylabel()
    'accuracy under attack'
    """
    if not hasattr(curves, "items") or len(curves) == 0:
        raise InvalidParameterError("curves must be a non-empty mapping {label: RobustnessCurve}")
    ax = axes_or_new(ax)
    for (label, curve), marker in zip(curves.items(), "osd^v<>"):
        eps, acc = (np.asarray(v, float) for v in _eps_and_accuracy(label, curve))
        if eps.shape != acc.shape:
            raise InvalidParameterError(f"curve {label!r}: eps has shape {eps.shape} but accuracy has {acc.shape}")
        ax.plot(eps, acc, marker=marker, markersize=4, label=label)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label=f"chance ({chance:g})")
    if mark_eps is not None:
        ax.axvline(mark_eps, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="perturbation budget eps (L-inf)", ylabel="accuracy under attack", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    return finish_axes(ax, title)


def _eps_and_accuracy(label, curve):
    """A curve's two arrays, from a RobustnessCurve (its fields) or a mapping (its keys)."""
    if hasattr(curve, "eps") and hasattr(curve, "accuracy"):
        return curve.eps, curve.accuracy
    if hasattr(curve, "keys") and {"eps", "accuracy"} <= set(curve.keys()):
        return curve["eps"], curve["accuracy"]
    raise InvalidParameterError(f"curve {label!r} must be a RobustnessCurve (metrics.robustness_curve) "
                                f"or a mapping with 'eps' and 'accuracy', got {type(curve).__name__}")


def plot_score_histograms(scores, ax=None, title=None, bins=30, xlabel="score", log=False):
    """Overlaid histograms of one score for several groups (e.g. members and non-members).

    Parameters
    ----------
    scores : mapping of str to array-like
        ``{group label: 1-D scores}``. Each group is normalised to a density, so groups of
        different sizes compare fairly.
    ax : matplotlib Axes, optional
    title : str, optional
    bins : int, default=30
        Number of bins, shared by all groups.
    xlabel : str, default="score"
    log : bool, default=False
        Logarithmic y axis, for scores that pile up at one end (confidences near 1).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlsec_lessons.plotting import plot_score_histograms
    >>> ax = plot_score_histograms({"members": [0.9, 1.0], "non-members": [0.2, 0.8]})
    """
    if not hasattr(scores, "items") or len(scores) == 0:
        raise InvalidParameterError("scores must be a non-empty mapping {label: scores}")
    arrays = {label: np.asarray(s, float).ravel() for label, s in scores.items()}
    for label, s in arrays.items():
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise InvalidParameterError(f"scores for {label!r} must be non-empty and finite")
    ax = axes_or_new(ax)
    # one set of edges for every group: otherwise bar heights are not comparable
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    for label, s in arrays.items():
        ax.hist(s, bins=edges, density=True, histtype="step", linewidth=1.5, label=f"{label} (n={s.size})")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel="density")
    return finish_axes(ax, title)


def plot_detection_tradeoff(y_true, scores, ax=None, title=None, target_recall=None):
    """Recall (detection rate) and precision of a detector against its decision threshold.

    A detection rate means little without the threshold and the false alarms that come
    with it: flagging everything detects 100%. This plot shows both sides of the choice.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
        1 marks the positives (e.g. fraud).
    scores : array-like of float, shape (n,)
        Detector scores; higher means "more likely positive".
    ax : matplotlib Axes, optional
    title : str, optional
    target_recall : float, optional
        A claimed detection rate. The highest threshold that reaches it is marked, with the
        precision it costs.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from mlsec_lessons.plotting import plot_detection_tradeoff
    >>> ax = plot_detection_tradeoff([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], target_recall=0.95)
    """
    from sklearn.metrics import precision_recall_curve

    y_true, scores = np.asarray(y_true), np.asarray(scores, float)
    if y_true.shape != scores.shape or y_true.ndim != 1:
        raise InvalidParameterError(f"y_true {y_true.shape} and scores {scores.shape} must be 1-D of the same length")
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    ax = axes_or_new(ax)
    # the last precision/recall pair has no threshold (it is the "flag nothing" end)
    ax.plot(thresholds, recall[:-1], label="recall (detection rate)")
    ax.plot(thresholds, precision[:-1], label="precision")
    # keep to four decades below the top score (the far tail squeezes the useful range), but show the mark
    left = max(thresholds.min(), 1e-4 * thresholds.max())
    if target_recall is not None:
        reach = np.flatnonzero(recall[:-1] >= target_recall)
        if reach.size:
            i = reach[-1]  # thresholds increase, so the last index is the highest threshold
            left = min(left, thresholds[i])
            ax.axhline(target_recall, color="grey", linestyle=":", linewidth=1)
            ax.plot([thresholds[i]] * 2, [recall[i], precision[i]], "k--", linewidth=1)
            ax.annotate(f"recall {recall[i]:.2f}\nprecision {precision[i]:.3f}",
                        (thresholds[i], precision[i]), xytext=(8, 8), textcoords="offset points",
                        fontsize="small")
    if thresholds.min() > 0:  # a log axis spreads out the small thresholds where recall climbs
        ax.set_xscale("log")
        ax.set_xlim(left=left / 2)
    ax.set(xlabel="decision threshold on the score", ylabel="rate", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    return finish_axes(ax, title, loc="center left")
