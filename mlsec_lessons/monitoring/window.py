"""Monitoring in windows: cut the live input stream into consecutive windows of ``window`` inputs.

A statistic of one input says little (is this one image odd?); a statistic of the last fifty
says whether the traffic changed. The monitors here buffer the inputs the server shows them, in
arrival order and across all clients, and evaluate each full window once. Each window's record
keeps how many of its inputs came from each client, so a report can tell who sent what.
"""
import time

import numpy as np


class WindowedMonitor:
    """Base class: buffer inputs, evaluate every ``window`` of them with :meth:`evaluate`, raise alerts.

    Subclasses define ``name`` and ``evaluate(x) -> (record dict, alarm bool, reason str)``. An alert
    is raised when a window alarms and the one before it did not, or did for another client: an
    episode of one client makes one audit entry, not one per window. The alert names the client
    that sent most of the window's inputs, and lists every client in it.

    Attributes
    ----------
    windows_ : list of dict
        One record per evaluated window: ``window`` (0, 1, ...), ``time`` (Unix seconds), ``alarm``,
        ``subjects`` (``{sub: inputs}``), ``top`` (the client with most inputs) and what ``evaluate``
        returned.
    alerts_ : list of dict
    """

    name = "window"

    def _start(self):
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 2:
            raise ValueError(f"window must be an integer >= 2, got {self.window!r}")
        if not hasattr(self, "windows_"):
            self.windows_, self.alerts_, self._x, self._subjects = [], [], [], []

    def observe(self, subject, x, labels=None):
        """Take one request's inputs; return the alerts of the windows it completed."""
        self._start()
        new = []
        for xi in np.asarray(x):
            self._x.append(xi)
            self._subjects.append(subject)
            if len(self._x) == self.window:
                new += self._close()
        return new

    def _close(self):
        x, subjects = np.stack(self._x), self._subjects
        self._x, self._subjects = [], []
        record, alarm, reason = self.evaluate(x)
        counts = {s: subjects.count(s) for s in dict.fromkeys(subjects)}
        top = max(reversed(list(counts)), key=counts.get)  # most inputs; on a tie, the later client
        before = self.windows_[-1] if self.windows_ else None
        self.windows_.append({"window": len(self.windows_), "time": time.time(), "alarm": bool(alarm),
                              "subjects": counts, "top": top, **record})
        if alarm and (before is None or not before["alarm"] or before["top"] != top):
            alert = {"monitor": self.name, "sub": top, "window": len(self.windows_) - 1, "clients": counts,
                     "reason": reason}
            self.alerts_.append(alert)
            return [alert]
        return []
