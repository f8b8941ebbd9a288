"""Helpers for the exercise notebooks: try a function that may still be a stub, and grade
from a cell. Neither raises for an unfinished exercise, so the notebook always runs through."""
from .runner import grade


def try_it(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; if it is still a stub, print its hint and return None.

    Examples
    --------
    >>> def stub():
    ...     raise NotImplementedError("return 1 - asr")
    >>> try_it(stub)
    not implemented yet: return 1 - asr
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        print(f"not implemented yet: {e}")
        return None


def grade_cell(exercise, path=None, **options):
    """Grade ``exercise`` like ``mlsec grade`` does, print the report and return it.

    Never raises: a problem that stops the grading is printed, and None returned.
    ``options`` are those of :func:`mlsec_lessons.grading.grade`.
    """
    try:
        report = grade(exercise, path, **options)
    except Exception as e:  # a grade cell must not end a notebook run
        print(f"could not grade {exercise!r}: {e}")
        return None
    print(report)
    return report
