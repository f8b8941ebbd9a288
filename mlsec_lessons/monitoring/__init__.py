"""Security monitoring of a served model (lesson 08): watch the live inputs, raise alerts, report.

* ``window``: cut the input stream into windows; one alert per episode, not per window
* ``adversarial``: lesson 03's adversarial-input detector on live traffic
* ``drift``: per-feature Kolmogorov-Smirnov tests against the training inputs (Bonferroni)
* ``report``: the timeline of every monitor, the alerts read back from the audit log, and its plot

The monitors plug into the real server: ``create_app(monitors=[...])`` shows them every allowed
prediction request and writes their alerts to the audit log. PRADA, the model-extraction detector,
is in :mod:`mlsec_lessons.theft.prada` and plugs in the same way.
"""
from .adversarial import AdversarialInputMonitor
from .drift import DriftMonitor, ks_drift
from .report import alerts, plot_timeline, timeline
from .window import MonitorError, WindowedMonitor

__all__ = ["AdversarialInputMonitor", "DriftMonitor", "ks_drift", "alerts", "plot_timeline", "timeline",
           "MonitorError", "WindowedMonitor"]
