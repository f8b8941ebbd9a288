"""Gradescope: its autograder results format, and the autograder bundle that produces it.

Gradescope runs ``setup.sh`` once to build the grading image, then ``run_autograder`` for each
submission; the student's files are in ``/autograder/submission/`` and the grade must end up in
``/autograder/results/results.json`` (top-level ``score``, ``execution_time``, ``output``,
``visibility``, ``tests``; each test ``name``, ``score``, ``max_score``, ``status``, ``output``,
``visibility``).

The bundle holds the course's source, so ``setup.sh`` installs the grader with the pinned stack
(``pip install -c requirements.lock .``) and ``run_autograder`` calls
``mlsec grade EX --path FILE --format gradescope --output results.json``. Both scripts read
``AUTOGRADER_ROOT`` (default ``/autograder``) and ``run_autograder`` reads ``MLSEC`` (the
command that runs the grader), so the bundle can be tried outside Gradescope.

Examples
--------
>>> from mlsec_lessons.grading import grade
>>> results = results_json(grade("ex0", solutions=True), execution_time=2.1)  # doctest: +SKIP
>>> results["score"] == results["max_score"]  # doctest: +SKIP
True
"""
import zipfile
from pathlib import Path

from .. import course
from ..errors import InvalidParameterError
from . import exercises

VISIBLE = "visible"  # students see every check and its message as soon as the grade is in

# what setup.sh installs from: the grader and its pins; the reference it compares with; and the
# stubs, whose folder makes the unpacked source the repository that `mlsec grade` uses
BUNDLED = ["pyproject.toml", "requirements.lock", "README.md", "mlsec_lessons/**/*", "solutions/*.py",
           "exercises/*.py"]
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}  # never bundled, at any depth

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, in {root}/source, to build the grading image.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$ROOT/source"
if ! command -v python3.11 >/dev/null; then
    apt-get update -q
    apt-get install -y -q python3.11 python3.11-venv{apt_extra}
fi
python3.11 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --quiet --upgrade "pip>=24"
"$ROOT/venv/bin/python" -m pip install --quiet -c requirements.lock .
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades {file} with the course's grader and
# writes $ROOT/results/results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
MLSEC="${{MLSEC:-$ROOT/venv/bin/mlsec}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
fail() {{  # a grade of 0 with the reason, so that the student sees why
    printf '{{"score": 0, "output": "%s", "visibility": "visible", "tests": []}}\\n' "$1" > "$RESULTS"
    echo "$1" >&2
    exit 0
}}
# the file by its name anywhere in the submission, else the only .py file there
FILE="$(find "$ROOT/submission" -type f -name '{file}' 2>/dev/null | sort | head -n 1)"
if [ -z "$FILE" ]; then
    mapfile -t PY < <(find "$ROOT/submission" -type f -name '*.py' 2>/dev/null)
    [ "${{#PY[@]}}" -eq 1 ] || fail "no {file} in the submission: upload the file with that name"
    FILE="${{PY[0]}}"
fi
# the course folder is the grader's repository: its solutions/ are the reference
cd "$ROOT/source"
rm -f "$RESULTS"
$MLSEC grade {exercise} --path "$FILE" --format gradescope --output "$RESULTS"{grade_extra}
status=$?  # 0 at full marks, 1 below: both wrote the results
[ -s "$RESULTS" ] || fail "the grader stopped before writing a result (exit code $status): see the log"
exit 0
"""


def results_json(report, execution_time, visibility=VISIBLE):
    """Gradescope's autograder results for one report, or for several (one student's exercises).

    Parameters
    ----------
    report : Report or list of Report
        With a list, each test's name starts with its exercise.
    execution_time : float
        Seconds the grading took.
    visibility : str, default="visible"
        Gradescope's visibility for the results and each test (``"hidden"``,
        ``"after_due_date"``, ``"after_published"``, ``"visible"``).

    Returns
    -------
    dict
        ``score``, ``max_score``, ``execution_time``, ``output``, ``visibility`` and ``tests``,
        ready for ``json.dump``.

    Examples
    --------
    >>> from mlsec_lessons.grading.report import CheckResult, Report
    >>> r = Report("ex0_security_metrics", "ex0.py", [CheckResult("asr", 2, False, "divide by correct")])
    >>> results_json(r, 1.0)["tests"][0]["status"]
    'failed'
    """
    reports = report if isinstance(report, (list, tuple)) else [report]
    prefix = len(reports) > 1
    tests = [{"name": f"{r.exercise}: {c.name}" if prefix else c.name,
              "score": c.earned, "max_score": c.points,
              "status": "passed" if c.passed else "failed",
              "output": c.message, "visibility": visibility}
             for r in reports for c in r.checks]
    output = "\n\n".join(r.table() for r in reports)  # each table says how its code was isolated
    return {"score": sum(r.score for r in reports), "max_score": sum(r.total for r in reports),
            "execution_time": round(float(execution_time), 1), "output": output,
            "visibility": visibility, "tests": tests}


def bundle(exercise, output, root=None, sandbox=False):
    """Write Gradescope's autograder zip for ``exercise`` to ``output``; return its path.

    The zip holds ``setup.sh``, ``run_autograder`` and the course source that ``setup.sh``
    installs (``pyproject.toml``, ``requirements.lock``, ``README.md``, ``mlsec_lessons/``,
    ``solutions/*.py``, ``exercises/*.py``), never ``.venv``, ``.git`` or caches.

    Parameters
    ----------
    exercise : str
        ``"ex0"`` or ``"ex0_security_metrics"``.
    output : str or Path
        The zip to write.
    root : str or Path, optional
        The course repository. Default: :func:`mlsec_lessons.course.repo_root`.
    sandbox : bool, default=False
        Grade with ``--sandbox``; ``setup.sh`` then installs bubblewrap as well.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an unknown exercise, or a course folder without the reference solution.
    """
    name = exercises.resolve(exercise)
    root = Path(root) if root is not None else course.repo_root()
    if not (root / "solutions" / f"{name}.py").is_file():
        raise InvalidParameterError(f"{root} has no solutions/{name}.py: build the autograder from the instructor's "
                         "copy of the course, not from a student release")
    setup = SETUP_SH.format(root="/autograder", apt_extra=" bubblewrap" if sandbox else "")
    run = RUN_AUTOGRADER.format(file=f"{name}.py", exercise=name, grade_extra=" --sandbox" if sandbox else "")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for script, text in [("setup.sh", setup), ("run_autograder", run)]:
            info = zipfile.ZipInfo(script)
            info.external_attr = 0o100755 << 16  # executable once Gradescope unzips it
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
        for path in _source_files(root):
            zf.write(root / path, path.as_posix())
    return output


def _source_files(root):
    """The bundled files below ``root``, relative to it, without caches or compiled files."""
    found = []
    for pattern in BUNDLED:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root)
            if path.is_file() and SKIPPED.isdisjoint(rel.parts) and path.suffix != ".pyc":
                found.append(rel)
    return found
