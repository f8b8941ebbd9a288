"""The grader: an exercise's checks are pytest tests, run in a subprocess on a student's file.

* ``exercises``: which exercises exist, and where their files are
* ``checks/exN_name.py``: the checks, pytest tests of the fixtures ``impl`` and ``ref``
* ``plugin``: the pytest plugin that loads the files and records points and outcomes
* ``runner``: :func:`grade`, the subprocess with its time limits
* ``report``: the table of results
* ``notebook``: :func:`try_it` and :func:`grade_cell` for the exercise notebooks

Examples
--------
>>> from mlsec_lessons.grading import grade
>>> print(grade("ex0", solutions=True))  # doctest: +SKIP
"""
from .exercises import known, resolve
from .notebook import grade_cell, try_it
from .report import CheckResult, Report
from .runner import grade

__all__ = ["grade", "grade_cell", "try_it", "known", "resolve", "Report", "CheckResult"]
