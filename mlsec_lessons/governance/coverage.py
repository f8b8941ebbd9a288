"""Security Coverage computed from checks that run, over an explicit inventory.

Lesson 01 defined Security Coverage (SC) as the share of components whose every required
control is in place (:func:`mlsec_lessons.metrics.security_coverage`). There the inventory was
typed in. Here each control carries a ``check``: a function that inspects or probes the real
system (sends the request, verifies the signature, edits a copy of the log) and says whether
the control works. A control without a check is listed as "not implemented" and counts as
missing: leaving it off the list would raise SC without protecting anything.

Examples
--------
>>> report = measure([Component("api", [Control("auth", lambda: True), Control("tls", lambda: (False, "plain HTTP"))]),
...                   Component("model file", [Control("signature", lambda: True)])])
>>> report.coverage(), report.coverage("control")
(0.5, 0.6666666666666666)
>>> [(g["component"], g["control"], g["status"]) for g in report.gaps()]
[('api', 'tls', 'failed')]
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidParameterError, RunError
from ..metrics import security_coverage

STATUSES = ("in place", "failed", "not implemented")


@dataclass(frozen=True)
class Control:
    """A required control; ``check()`` returns ``bool`` or ``(bool, detail)``; ``None``: not implemented."""

    name: str
    check: object = None
    evidence: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidParameterError(f"a control needs a name, got {self.name!r}")
        if self.check is not None and not callable(self.check):
            raise InvalidParameterError(f"control {self.name!r}: check must be callable or None, got {type(self.check).__name__}")


@dataclass(frozen=True)
class Component:
    """A part of the system and every control it needs."""

    name: str
    controls: tuple = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "controls", tuple(self.controls))
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidParameterError(f"a component needs a name, got {self.name!r}")
        if not self.controls or not all(isinstance(c, Control) for c in self.controls):
            raise InvalidParameterError(f"component {self.name!r} must list at least one Control; list what protects it")
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"component {self.name!r} lists a control twice: {names}")


def _run(component, control):
    if control.check is None:
        return "not implemented", "no check exists: the control is not in this system"
    try:
        result = control.check()
    except Exception as e:  # a probe that crashes is a broken probe, not evidence either way
        raise RunError(f"the check of {component.name!r} / {control.name!r} raised "
                       f"{type(e).__name__}: {e}") from e
    ok, detail = result if isinstance(result, tuple) and len(result) == 2 else (result, "")
    if not isinstance(ok, bool):
        raise InvalidParameterError(f"the check of {component.name!r} / {control.name!r} returned {result!r}; "
                         "it must return True/False or (True/False, detail)")
    return ("in place" if ok else "failed"), str(detail)


def measure(inventory):
    """Run every control's check and return a :class:`CoverageReport`.

    Parameters
    ----------
    inventory : sequence of Component
        Every component of the system, each with every control it needs.

    Raises
    ------
    ValueError
        For an empty inventory, a repeated component, or a check that returns something other than
        a bool. ``RuntimeError`` if a check raises (the probe is broken: fix it, do not count it).
    """
    inventory = list(inventory)
    if not inventory or not all(isinstance(c, Component) for c in inventory):
        raise InvalidParameterError("inventory must be a non-empty sequence of Component")
    names = [c.name for c in inventory]
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"a component is listed twice: {names}")
    rows = []
    for component in inventory:
        for control in component.controls:
            status, detail = _run(component, control)
            rows.append({"component": component.name, "control": control.name, "status": status,
                         "detail": detail, "evidence": control.evidence})
    return CoverageReport(rows)


@dataclass(frozen=True)
class CoverageReport:
    """The outcome of every check; SC and its gaps follow from it."""

    rows: list

    @property
    def inventory(self):
        """``{component: {control: in place?}}``, the input of :func:`mlsec_lessons.metrics.security_coverage`."""
        inv = {}
        for r in self.rows:
            inv.setdefault(r["component"], {})[r["control"]] = r["status"] == "in place"
        return inv

    def coverage(self, level="component"):
        """SC: the share of components with every control in place (``level="control"``: of controls)."""
        return security_coverage(self.inventory, level=level)

    def gaps(self):
        """The rows whose control is not in place, failed or not implemented."""
        return [r for r in self.rows if r["status"] != "in place"]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["component", "control", "status", "detail", "evidence"])

    def summary(self):
        """Per component: controls in place, failed and not implemented, and whether it is protected."""
        import pandas as pd

        df = self.to_frame()
        table = pd.crosstab(df["component"], df["status"]).reindex(columns=list(STATUSES), fill_value=0)
        table = table.reindex(list(self.inventory))  # inventory order, not alphabetical
        table["protected"] = (table["failed"] == 0) & (table["not implemented"] == 0)
        return table

    def to_json(self, path=None):
        """The report and both SC levels as JSON text; also written to ``path`` when given."""
        text = json.dumps({"security coverage": self.coverage(), "control coverage": self.coverage("control"),
                           "rows": self.rows}, indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text
