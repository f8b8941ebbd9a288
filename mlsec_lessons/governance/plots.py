"""The two figures of lesson 09: who did what when (the audit trail), and where the controls are missing."""
import numpy as np

from ..plotting import _axes, _finish
from .audit_query import UNAUTHENTICATED

DECISION_COLOURS = {"allow": "tab:green", "deny": "tab:red", "error": "black", "refused": "tab:purple"}
STATUS_COLOURS = {"in place": "tab:green", "failed": "tab:red", "not implemented": "lightgrey"}


def plot_audit_timeline(df, ax=None, title=None):
    """Each audit entry as a dot: time on x, the token's subject on y, the colour its decision.

    Parameters
    ----------
    df : DataFrame
        From :func:`mlsec_lessons.governance.audit_query.load_audit_log` (or a query of it).

    Returns
    -------
    matplotlib.axes.Axes
    """
    if len(df) == 0:
        raise ValueError("df has no entries to plot")
    ax = _axes(ax)
    subjects = list(dict.fromkeys(df["sub"].fillna(UNAUTHENTICATED)))  # first-seen order
    row = {s: i for i, s in enumerate(subjects)}
    ms = 1000 * (df["time"] - df["time"].min()).dt.total_seconds().to_numpy()
    y = np.array([row[s] for s in df["sub"].fillna(UNAUTHENTICATED)], dtype=float)
    for decision, colour in DECISION_COLOURS.items():
        mask = (df["decision"] == decision).to_numpy()
        if mask.any():
            ax.scatter(ms[mask], y[mask], s=14, color=colour, label=f"{decision} ({mask.sum()})", zorder=3)
    ax.set_yticks(range(len(subjects)), subjects, fontsize="small")
    ax.set(xlabel="milliseconds since the first entry", ylim=(-0.6, len(subjects) - 0.4))
    ax.grid(axis="x", alpha=0.3)
    return _finish(ax, title, loc="upper left")


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
    ax = _axes(ax)
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
    return _finish(ax, title, loc="upper right")
