"""Which exercises exist and where their files are.

An exercise exists when the grader has checks for it: ``grading/checks/exN_name.py`` (or
``capstone.py``, the last one). Its stub is ``exercises/<name>.py`` and its reference solution
``solutions/<name>.py``.
"""
from pathlib import Path

import mlsec_lessons
from mlsec_lessons.stubs import exercise_files

CHECKS_DIR = Path(__file__).parent / "checks"


def known():
    """The full names of all gradable exercises, in course order."""
    return [p.stem for p in exercise_files(CHECKS_DIR)]


def resolve(exercise):
    """The full name of ``exercise``, given in full or by its number.

    Raises
    ------
    ValueError
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
    raise ValueError(f"unknown exercise {exercise!r}; known exercises: {', '.join(names)}")


def repo_root():
    """The course repository: the current directory if it has ``exercises/``, else the one the
    package is installed from."""
    here = Path.cwd()
    if (here / "exercises").is_dir():
        return here
    return Path(mlsec_lessons.__file__).resolve().parents[1]


def checks_file(name):
    return CHECKS_DIR / f"{name}.py"


def solution_file(name):
    """The reference solution: in the repository in use, else in the installed one."""
    for root in (repo_root(), Path(mlsec_lessons.__file__).resolve().parents[1]):
        path = root / "solutions" / f"{name}.py"
        if path.exists():
            return path
    return path


def solution_variant(exercise, old, new, directory):
    """Write the reference solution with ``old`` replaced by ``new`` to ``directory``; return its path.

    This is how the course tests its checks: a deliberate mistake, made in one place of a
    solution that scores full marks, must lose the points of the check that explains it.

    Raises
    ------
    ValueError
        When ``old`` is not in the solution exactly once, so a test cannot edit the wrong place.

    Examples
    --------
    >>> path = solution_variant("ex0", "return 1.0 - asr", "return asr", tmp)   # doctest: +SKIP
    """
    name = resolve(exercise)
    text = solution_file(name).read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise ValueError(f"solutions/{name}.py contains {old!r} {text.count(old)} times, not once")
    path = Path(directory) / f"{name}.py"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path
