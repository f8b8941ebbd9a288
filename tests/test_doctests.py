"""The examples in the package's docstrings run and print what they say."""
import doctest
import importlib
import pkgutil

import pytest

import mlsec_lessons

MODULES = sorted(m.name for m in pkgutil.walk_packages(mlsec_lessons.__path__, "mlsec_lessons.")
                 if ".checks." not in m.name)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
