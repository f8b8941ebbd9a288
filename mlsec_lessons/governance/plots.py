"""The two figures of lesson 09: who did what when (the audit trail), and where the controls are missing."""
import numpy as np

from ..errors import InvalidParameterError
from ..plotting import axes_or_new, finish_axes
from .audit_query import UNAUTHENTICATED

DECISION_COLOURS = {"allow": "tab:green", "deny": "tab:red", "error": "black", "refused": "tab:purple"}
STATUS_COLOURS = {"in place": "tab:green", "failed": "tab:red", "not implemented": "lightgrey"}


DECISION_MARKERS = {"allow": "o", "deny": "X", "error": "s", "refused": "D"}


def plot_audit_timeline(df, ax=None, title=None, x="entry"):
    """Each audit entry as a marker: its place in the log on x, the token's subject on y, its decision as colour.

    Parameters
    ----------
    df : DataFrame
        From :func:`mlsec_lessons.governance.audit_query.load_audit_log` (or a query of it).
    x : {"entry", "ms"}
        ``"entry"`` (default) puts the entries one per step, in log order, so that a burst of
        requests within a few milliseconds stays readable; the milliseconds since the first entry
        go into the axis label. ``"ms"`` plots the milliseconds themselves.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if len(df) == 0:
        raise InvalidParameterError("df has no entries to plot")
    if x not in ("entry", "ms"):
        raise InvalidParameterError(f"x must be 'entry' or 'ms', got {x!r}")
    ax = axes_or_new(ax, figsize=(6.0, 3.2))                                  # room for the legend on the right
    subjects = list(dict.fromkeys(df["sub"].fillna(UNAUTHENTICATED)))  # first-seen order
    row = {s: i for i, s in enumerate(subjects)}
    ms = 1000 * (df["time"] - df["time"].min()).dt.total_seconds().to_numpy()
    pos = np.arange(1, len(df) + 1) if x == "entry" else ms
    y = np.array([row[s] for s in df["sub"].fillna(UNAUTHENTICATED)], dtype=float)
    for decision, colour in DECISION_COLOURS.items():
        mask = (df["decision"] == decision).to_numpy()
        if mask.any():
            ax.scatter(pos[mask], y[mask], s=22, color=colour, marker=DECISION_MARKERS[decision],
                       label=f"{decision} ({mask.sum()})", zorder=3)
    ax.set_yticks(range(len(subjects)), subjects, fontsize="small")
    ax.set_ylim(-0.6, len(subjects) - 0.4)
    if x == "entry":
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(f"entry in the log, in time order ({ms.max():.0f} ms from the first to the last)")
        ax.set_xlim(0, len(df) + 1)
    else:
        ax.set_xlabel("milliseconds since the first entry")
    ax.grid(axis="x", alpha=0.3)
    return finish_axes(ax, title, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: no marker is hidden


def plot_coverage(report, ax=None, title=None):
    """Per component, its controls stacked by status; a component is protected only with no red or grey.

    Parameters
    ----------
    report : CoverageReport
        From :func:`mlsec_lessons.governance.coverage.measure`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    table = report.summary()
    ax = axes_or_new(ax)
    y = np.arange(len(table))[::-1]  # the first component on top
    left = np.zeros(len(table))
    for status, colour in STATUS_COLOURS.items():
        counts = table[status].to_numpy()
        ax.barh(y, counts, left=left, color=colour, edgecolor="white", label=status)
        left += counts
    labels = [f"{name} {'(protected)' if ok else ''}".strip() for name, ok in zip(table.index, table["protected"])]
    ax.set_yticks(y, labels, fontsize="small")
    ax.set(xlabel="controls required")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return finish_axes(ax, title, loc="upper right")
