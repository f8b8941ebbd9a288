"""Monitoring in windows: cut the live input stream into consecutive windows of ``window`` inputs.

A statistic of one input says little (is this one image odd?); a statistic of the last fifty
says whether the traffic changed. The monitors here buffer the inputs the server shows them, in
arrival order and across all clients, and evaluate each full window once. Each window's record
keeps how many of its inputs came from each client, so a report can tell who sent what.

A window is cleared only once its evaluation has succeeded: a monitor that fails keeps the window
and tries it again with the next inputs, so a failure loses no evidence (the server records the
failure in its audit log and still answers). At most ``MAX_PENDING_WINDOWS`` windows wait; beyond
that the oldest inputs are dropped and counted in ``dropped_``, so a broken monitor cannot grow
without bound.
"""
import time

import numpy as np

from ..errors import MLSecError
from ..validation import check_int


class MonitorError(MLSecError, RuntimeError):
    """A monitor failed while evaluating a window.

    ``alerts`` holds the alerts of the windows the same call closed before the failure, so that the
    server can still record them (:func:`~mlsec_lessons.deployment.hooks.run_monitors`); the
    original exception is the ``__cause__``.
    """

    def __init__(self, message, alerts=()):
        super().__init__(message)
        self.alerts = list(alerts)


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
    dropped_ : int
        Inputs dropped unevaluated because the monitor kept failing.
    """

    name = "window"
    MAX_PENDING_WINDOWS = 10

    def check_settings(self):
        """Raise ``ValueError`` (``TypeError`` for a wrong type) for a bad setting; subclasses extend it
        and call it from ``__init__``."""
        check_int(self.window, "window", min_value=2)

    def _start(self):
        if not hasattr(self, "windows_"):
            self.windows_, self.alerts_, self._x, self._subjects, self.dropped_ = [], [], [], [], 0

    def observe(self, subject, x, labels=None):
        """Take one request's inputs; return the alerts of the windows it completed.

        Raises :class:`MonitorError` if evaluating a window fails; its ``alerts`` are those of the
        windows this call closed before, which must not be lost with the failure.
        """
        self._start()
        for xi in np.asarray(x):
            self._x.append(xi)
            self._subjects.append(subject)
        new = []
        try:
            while len(self._x) >= max(int(self.window), 2):
                new += self._close()
        except Exception as e:
            raise MonitorError(f"{self.name}: window {len(self.windows_)} failed: {type(e).__name__}: {e}",
                               alerts=new) from e
        finally:
            overflow = len(self._x) - self.MAX_PENDING_WINDOWS * self.window
            if overflow > 0:
                del self._x[:overflow], self._subjects[:overflow]
                self.dropped_ += overflow
        return new

    def _close(self):
        self.check_settings()  # again: a setting changed after construction must not pass
        x, subjects = np.stack(self._x[:self.window]), self._subjects[:self.window]
        record, alarm, reason = self.evaluate(x)  # if this raises, the window stays buffered
        del self._x[:self.window], self._subjects[:self.window]
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
