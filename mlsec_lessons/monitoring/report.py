"""The monitoring report: every monitor's view of the live traffic, window by window, and the alerts.

:func:`timeline` lines up the windowed monitors (they see the same inputs in the same order) and,
for each client PRADA watches, its Shapiro-Wilk ``W`` at the end of each window. :func:`alerts`
reads the alerts back from the audit log, where the server wrote them, so the report shows what an
investigator would find, not what the monitors keep in memory. :func:`plot_timeline` draws it.
"""
import json
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError


def timeline(*monitors, prada=None):
    """One row per window: the clients in it, each monitor's statistic and alarm, PRADA's ``W`` per client.

    Parameters
    ----------
    *monitors : WindowedMonitor
        Monitors that saw the same traffic with the same window size.
    prada : PRADA or None
        Adds a column ``W <sub>`` per client it watched (NaN until its test can run).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    if not monitors:
        raise InvalidParameterError("give at least one windowed monitor")
    records = [getattr(m, "windows_", []) for m in monitors]
    if len({len(r) for r in records}) != 1 or any(
            a["subjects"] != b["subjects"] for r in records[1:] for a, b in zip(records[0], r)):
        raise InvalidParameterError("the monitors did not see the same windows: give them the same window size and traffic")
    rows = []
    for i, first in enumerate(records[0]):
        row = {"window": i, "clients": ", ".join(f"{s} {n}" for s, n in first["subjects"].items())}
        for monitor, rec in zip(monitors, records):
            row.update({k: v for k, v in rec[i].items() if k not in ("window", "time", "subjects", "top", "alarm")})
            row[f"alarm: {monitor.name}"] = rec[i]["alarm"]
        rows.append(row)
    table = pd.DataFrame(rows)
    if prada is not None and hasattr(prada, "streams_"):
        sent = {}
        for sub, stream in prada.streams_.items():
            history, w = np.asarray(stream.history), []
            for rec in records[0]:
                sent[sub] = sent.get(sub, 0) + rec["subjects"].get(sub, 0)
                w.append(history[sent[sub] - 1] if sent[sub] else np.nan)
            table[f"W {sub}"] = w
    return table


def alerts(audit_log):
    """The ``event="alert"`` entries of an audit log, oldest first (list of dict)."""
    path = Path(audit_log)
    if not path.is_file():
        raise InvalidParameterError(f"audit_log={str(path)!r}: no audit log there")
    entries = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [e for e in entries if e.get("event") == "alert"]


def plot_timeline(table, delta=None, alpha=None, max_rate=None, phases=None, title=None, p_floor=1e-12):
    """Three stacked panels over the windows: detector flag share, drift p-value, PRADA ``W`` per client.

    ``phases``: ``[(first_window, last_window, label)]``, shaded in turn and named on the top panel.
    p-values below ``p_floor`` are drawn at the floor (they are all "certainly drifted").
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    from ..plotting import DPI

    fig, axes = plt.subplots(3, 1, figsize=(5.6, 5.2), dpi=DPI, sharex=True, layout="constrained")
    x = table["window"].to_numpy()
    if "flagged" in table:
        axes[0].plot(x, table["flagged"], marker="o", ms=3)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("detector:\nshare flagged", fontsize="small")
    if "drift_p" in table:
        axes[1].plot(x, np.clip(table["drift_p"], p_floor, 1.0), marker="o", ms=3)
    axes[1].set_yscale("log")
    axes[1].set_ylim(p_floor / 3, 3)
    axes[1].set_ylabel("drift:\np-value", fontsize="small")
    for column in (c for c in table.columns if c.startswith("W ") and table[c].notna().any()):
        axes[2].plot(x, table[column], marker=".", ms=3, label=column[2:])  # clients PRADA could test
    axes[2].set_ylabel("PRADA:\nShapiro-Wilk W", fontsize="small")
    axes[2].legend(frameon=False, fontsize="x-small", ncol=3, loc="lower left")
    axes[2].set_xlabel("time (windows of live inputs, in arrival order)")
    for ax, line in zip(axes, (max_rate, alpha, delta)):
        if line is not None:
            ax.axhline(line, color="red", ls="--", lw=1)
    for i, (first, last, label) in enumerate(phases or ()):
        for ax in axes:
            ax.axvspan(first - 0.5, last + 0.5, color="grey", alpha=0.12 if i % 2 == 0 else 0.0, lw=0)
        axes[0].text((first + last) / 2, 1.02, label, transform=axes[0].get_xaxis_transform(), ha="center",
                     va="bottom", fontsize="x-small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig
