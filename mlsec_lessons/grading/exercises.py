"""Which exercises exist and where their files are.

An exercise exists when the grader has checks for it: ``grading/checks/exN_name.py`` (or
``capstone.py``, the last one). Its stub is ``exercises/<name>.py`` and its reference solution
``solutions/<name>.py``.
"""
from pathlib import Path

from mlsec_lessons import course
from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.stubs import exercise_files

CHECKS_DIR = Path(__file__).parent / "checks"


def known():
    """The full names of all gradable exercises, in course order."""
    return [p.stem for p in exercise_files(CHECKS_DIR)]


def resolve(exercise):
    """The full name of ``exercise``, given in full or by its number.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an exercise the grader does not know; the message lists the ones it does.

    Examples
    --------
    >>> resolve("ex0")
    'ex0_security_metrics'
    """
    names = known()
    for name in names:
        if exercise in (name, name.split("_")[0]):
            return name
    raise InvalidParameterError(f"unknown exercise {exercise!r}; known exercises: {', '.join(names)}")


def checks_file(name):
    return CHECKS_DIR / f"{name}.py"


# what a check that compares with the reference says in a student release (``mlsec release``)
MISSING_REFERENCE = ("needs the reference solution, which this copy of the course leaves out: "
                     "your instructor grades this check")


def solution_file(name):
    """The reference solution of the repository in use (:func:`mlsec_lessons.course.repo_root`).

    A student release has no ``solutions/``, so there the path does not exist (see
    :func:`has_reference`), even when the course the package was installed from has one: a
    release grades as it does on a student's machine.
    """
    return course.repo_root() / "solutions" / f"{name}.py"


def has_reference(name):
    """Whether the reference solution of ``name`` is here: False in a student release, where a
    check that needs it must fail with :data:`MISSING_REFERENCE` instead of running.

    Examples
    --------
    >>> has_reference("ex0_security_metrics")  # the instructor's copy of the course  # doctest: +SKIP
    True
    """
    return solution_file(resolve(name)).is_file()


def solution_variant(exercise, old, new, directory):
    """Write the reference solution with ``old`` replaced by ``new`` to ``directory``; return its path.

    This is how the course tests its checks: a deliberate mistake, made in one place of a
    solution that scores full marks, must lose the points of the check that explains it.

    Raises
    ------
    InvalidParameterError (a ValueError)
        When ``old`` is not in the solution exactly once, so a test cannot edit the wrong place.

    Examples
    --------
    >>> path = solution_variant("ex0", "return 1.0 - asr", "return asr", tmp)   # doctest: +SKIP
    """
    name = resolve(exercise)
    text = solution_file(name).read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise InvalidParameterError(f"solutions/{name}.py contains {old!r} {text.count(old)} times, not once")
    path = Path(directory) / f"{name}.py"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path
