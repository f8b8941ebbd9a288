"""Every deliberate mistake the grading tests make still applies to its solution.

The grading runs that use them are slow (``make test`` only), so a solution edit that moves a
mistake's text would otherwise go unnoticed until then. This check reads the texts only.
"""
import importlib.util
from pathlib import Path

import pytest

from mlsec_lessons.course import repo_root
from mlsec_lessons.grading.exercises import resolve, solution_file

TESTS = Path(__file__).parent


def _module(name):
    spec = importlib.util.spec_from_file_location(f"_variants_{name}", TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params(values):
    """``old`` texts from a list of tuples or pytest.param entries."""
    return [getattr(v, "values", v) for v in values]


def mistakes():
    """``(exercise, old)`` for every wrong variant the grading tests make."""
    found = [("ex0", old) for old, *_ in _module("test_grading").WRONG.values()]
    ex1 = _module("test_grading_ex1")
    found += [("ex1", old) for old, *_ in [*ex1.WRONG.values(), *ex1.LIBRARY.values()]]
    found += [("ex2", old) for old, *_ in _module("test_grading_ex2").WRONG.values()]
    found += [("ex3", old) for old, *_ in _params(_module("test_grading_ex3").MISTAKES)]
    found += [("ex4", old) for old, *_ in _module("test_grading_ex4").WRONG.values()]
    found += [("capstone", old) for old, *_ in _module("test_grading_capstone").WRONG.values()]
    found += [(exercise, old) for exercise, old, *_ in _params(_module("test_grading_cheats").LIBRARY_IN_EACH_EXERCISE)]
    return found


def test_there_are_mistakes_to_check():
    assert len(mistakes()) >= 40


@pytest.mark.parametrize("exercise, old", mistakes())
def test_each_mistake_is_in_its_solution_once(exercise, old):
    path = solution_file(resolve(exercise))
    assert repo_root() in path.parents
    count = path.read_text().count(old)
    assert count == 1, f"{old!r} is in solutions/{path.name} {count} times; a wrong variant must edit exactly one place"
