"""The grader: an exercise's checks are pytest tests, judged apart from the student's code.

The threat model: **the student's file is untrusted code. Nothing it does may raise its grade
except computing correct results.** Three processes take part (see :mod:`.runner`):

* the grader (:func:`grade`) starts the judge and reads its signed record;
* the judge (:mod:`.judge`, a pytest session with :mod:`.plugin` per file graded) holds the
  checks and the reference solution and decides every verdict; it never runs the student's code;
* the worker (:mod:`.worker`, under its :mod:`.keeper`) runs the student's file, and nothing
  else: it answers the judge with plain data (:mod:`.wire`, :mod:`.remote`), cannot use the
  library's answers (:mod:`.offlimits`), lives under resource limits, and with ``sandbox=True``
  inside bubblewrap, with no view of the solutions, the checks or other students (:mod:`.sandbox`).

Modules:

* ``exercises``: which exercises exist, and where their files are
* ``checks/exN_name.py``: the checks, pytest tests of the fixtures ``impl`` and ``ref``
* ``judge``, ``plugin``, ``remote``, ``wire``: the judge's process, its pytest sessions, its view of the
  student's module, the protocol
* ``worker``, ``keeper``, ``offlimits``, ``sandbox``: the student's side and its confinement;
  ``forkserver``: the default mode's workers, forked from a process that imported their libraries once
* ``runner``: :func:`grade` and :func:`grade_many` (several files, one judge), the processes and
  their time limits
* ``report``: the table of results; ``batch``, ``gradescope``, ``release``: a class's grading
* ``hints``: the second, closer hints; ``notebook``: :func:`try_it` and :func:`grade_cell`

Examples
--------
>>> from mlsec_lessons.grading import grade
>>> print(grade("ex0", solutions=True))  # doctest: +SKIP
"""
from .exercises import known, resolve
from .notebook import grade_cell, try_it
from .report import CheckResult, Report
from .runner import collect, grade, grade_many

__all__ = ["grade", "grade_many", "collect", "grade_cell", "try_it", "known", "resolve", "Report", "CheckResult"]
