"""What a grading run found: one line per check, its points, and why it failed."""
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, what it is worth, and whether it passed (and if not, why)."""

    name: str
    points: int
    passed: bool
    message: str = ""

    @property
    def earned(self):
        return self.points if self.passed else 0

    def to_frame(self):
        """The check as a one-row pandas DataFrame (name, points, earned, passed, message)."""
        import pandas as pd

        return pd.DataFrame([{"name": self.name, "points": self.points, "earned": self.earned,
                              "passed": self.passed, "message": self.message}])


@dataclass(frozen=True)
class Report:
    """The results of grading one file against one exercise's checks (the runner appends to ``checks``)."""

    exercise: str
    path: Path
    checks: list = field(default_factory=list)
    note: str = ""  # a problem with the run as a whole, when there is one
    isolation: str = ""  # how the student's code was isolated while it was graded

    @property
    def score(self):
        return sum(c.earned for c in self.checks)

    @property
    def total(self):
        return sum(c.points for c in self.checks)

    @property
    def full_marks(self):
        # no checks at all means the grader could not run: that is not full marks
        return bool(self.checks) and not self.note and self.score == self.total

    def to_frame(self):
        """One row per check (name, points, earned, passed, message), for display in a notebook."""
        import pandas as pd

        return pd.DataFrame([{"name": c.name, "points": c.points, "earned": c.earned, "passed": c.passed,
                              "message": c.message} for c in self.checks],
                            columns=["name", "points", "earned", "passed", "message"])

    def failed(self):
        """``{check name: why it failed}`` for every check that did not pass."""
        return {c.name: c.message for c in self.checks if not c.passed}

    def table(self, width=96):
        """The report as text: a row per check, a total, and the reason for each failure."""
        name_width = max([len(c.name) for c in self.checks] + [5])
        lines, first_with = [f"{self.exercise}: {_shown(self.path)}"], {}
        for c in self.checks:
            lines.append(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<{name_width}}  {c.earned:>3}/{c.points}")
            if not c.passed:
                # checks of the same function often fail for the same reason: say it once
                message = f"(as for {first_with[c.message]})" if c.message in first_with else c.message
                first_with.setdefault(c.message, c.name)
                lines += textwrap.wrap(message, width, initial_indent=" " * 8, subsequent_indent=" " * 8,
                                       break_long_words=False, break_on_hyphens=False)  # keep paths whole
        if self.note:
            lines += textwrap.wrap(self.note, width, initial_indent="  ", subsequent_indent="  ")
        if self.isolation:
            lines += textwrap.wrap(f"graded under: {self.isolation}", width, initial_indent="  ",
                                   subsequent_indent="    ")
        percent = 100 * self.score / self.total if self.total else 0
        lines.append(f"  {'total':<{name_width + 6}}  {self.score:>3}/{self.total}  ({percent:.0f}%)")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return f"<Report {self.exercise}: {self.score}/{self.total} points>"


def _shown(path):
    """``path`` relative to the current directory when it lies below it, as a student typed it."""
    path = Path(path)
    try:
        return Path(os.path.relpath(path)).as_posix() if Path.cwd() in path.parents else str(path)
    except ValueError:  # another drive on Windows
        return str(path)


def summary(reports):
    """One line per exercise and a total, for ``mlsec grade --all``."""
    name_width = max(len(r.exercise) for r in reports)
    lines = [f"  {r.exercise:<{name_width}}  {r.score:>3}/{r.total}" for r in reports]
    score, total = sum(r.score for r in reports), sum(r.total for r in reports)
    percent = 100 * score / total if total else 0
    lines.append(f"  {'total':<{name_width}}  {score:>3}/{total}  ({percent:.0f}%)")
    return "\n".join(lines)
