"""The server's two hooks: what a prediction answers (an output policy), and who watches (monitors).

Both are small protocols (:class:`typing.Protocol`): any object with the right method plugs in, and
the server needs to know nothing else about it. Lesson 08 uses both: ``Probabilities`` with an
output defense against model extraction, and PRADA, a drift test and an adversarial-input detector
as monitors.

Examples
--------
>>> import numpy as np
>>> class Model:
...     def predict(self, x): return [0] * len(x)
>>> policy = output_policy("labels")
>>> policy(Model(), np.zeros((2, 3)))
([0, 0], {})
"""
import logging
from typing import Iterable, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidParameterError

log = logging.getLogger(__name__)

OUTPUTS = ("labels", "probabilities")


@runtime_checkable
class OutputPolicy(Protocol):
    """Turns a validated batch into the answer: ``(labels, extra fields of the JSON response)``."""

    def __call__(self, served, x) -> tuple:
        ...


@runtime_checkable
class Monitor(Protocol):
    """Sees every allowed prediction request; each dict it returns is an alert for the audit log."""

    def observe(self, sub, x, labels) -> Iterable[dict]:
        ...


class LabelsOnly:
    """Answer the labels alone: scores would help an attacker copy the model (lesson 07's default)."""

    def __call__(self, served, x):
        return served.predict(x), {}


class Probabilities:
    """Answer the labels and the class probabilities, through ``postprocessor`` if one is given
    (e.g. ART's ``Rounded`` or ``ReverseSigmoid``). The labels are always the model's own."""

    def __init__(self, postprocessor=None):
        if postprocessor is not None and not callable(postprocessor):
            raise InvalidParameterError(f"postprocessor must be callable, got {postprocessor!r}")
        self.postprocessor = postprocessor

    def __call__(self, served, x):
        labels, scores = served.predict_with_scores(x)
        if self.postprocessor is not None:
            scores = np.asarray(self.postprocessor(scores), dtype=np.float64)
        return labels, {"probabilities": scores.tolist()}


def output_policy(outputs="labels", postprocessor=None):
    """The :class:`OutputPolicy` for ``outputs`` (``"labels"``, ``"probabilities"``, or a policy itself)."""
    if postprocessor is not None and outputs != "probabilities":
        raise InvalidParameterError(f"postprocessor needs outputs='probabilities', got outputs={outputs!r}")
    if outputs == "labels":
        return LabelsOnly()
    if outputs == "probabilities":
        return Probabilities(postprocessor)
    if isinstance(outputs, str) or not callable(outputs):
        raise InvalidParameterError(f"outputs must be one of {OUTPUTS} or an OutputPolicy, got {outputs!r}")
    return outputs


def monitor_name(monitor):
    """The name a monitor goes by in the audit log."""
    return str(getattr(monitor, "name", type(monitor).__name__))


def run_monitors(monitors, audit, *, model, sub, x, labels):
    """Show each monitor the request; append its alerts, or its failure, to the audit log.

    A monitor that raises does not fail the request (a broken monitor is the operator's problem, not
    the client's): ``event="monitor-error"`` is recorded instead. The alerts of windows it closed
    before it failed (an exception's ``alerts``, see
    :class:`~mlsec_lessons.monitoring.window.MonitorError`) are recorded first, so none is lost.
    """
    for monitor in monitors:
        try:
            alerts = list(monitor.observe(sub, x, np.asarray(labels)) or ())
        except Exception as e:
            alerts = list(getattr(e, "alerts", ()))
            for alert in alerts:
                audit.append(event="alert", model=model, **alert)
            log.error("monitor %r failed: %s: %s", monitor_name(monitor), type(e).__name__, e)
            audit.append(event="monitor-error", model=model, monitor=monitor_name(monitor),
                         error=f"{type(e).__name__}: {e}"[:500])
            continue
        for alert in alerts:
            audit.append(event="alert", model=model, **alert)
