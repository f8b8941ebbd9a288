"""The library's answers earn nothing: an exercise's off-limits modules and names, made inert.

An exercise's checks module declares what the student must write rather than import::

    OFF_LIMITS = {"mlsec_lessons.metrics": "*",                          # the whole module
                  "mlsec_lessons.federated.masking": ["simulate_round"]}  # these names

In the worker that runs the student's file, each such module is replaced by a *shadow*: its
own source, with every off-limits function and class swapped for a tripwire of the same name.
Calling one (directly, through a wrapper, or by ``from ... import *``) raises
:class:`OffLimitsError` and is recorded, and the judge fails the check with a message that says
which name was used. The real code is never executed in the worker, so there is no original
object left to find; under ``--sandbox`` the shadow is also what the module's file contains.
Constants, imports and the allowed helpers stay as they are.

Examples
--------
>>> print(shadow_source("def f():\\n    return 1\\nX = 2\\n", "pkg.mod", "*").splitlines()[-3])
def f(*args, **kwargs):
"""
import ast
import importlib.machinery
import importlib.util
import json
from pathlib import Path

from ..errors import InvalidParameterError, MLSecError

TRIPPED = []  # in the worker: every off-limits name called since the judge last asked


class OffLimitsError(MLSecError):
    """Raised by a tripwire: the student's code called the library's answer."""


def tripped(qualified_name):
    """What a tripwire does: record the name, then refuse."""
    TRIPPED.append(qualified_name)
    raise OffLimitsError(f"{qualified_name} is the course library's answer to this exercise; write it yourself")


def message(names):
    """The judge's one-line verdict for a call that used off-limits names."""
    names = sorted(set(names))
    return (f"your code uses {', '.join(names)} from the course library, which this exercise asks you to "
            "write yourself: importing, wrapping or re-exporting it earns no points")


def shadow_source(source, module_name, names):
    """``source`` with each off-limits top-level function and class replaced by a tripwire.

    ``names`` is ``"*"`` (every public function and class) or a list of names.
    """
    tree = ast.parse(source)
    body = []
    for node in tree.body:
        name = getattr(node, "name", None)
        blocked = (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                   and (names == "*" and not name.startswith("_") or name in names))
        body.append(_tripwire(node, f"{module_name}.{name}") if blocked else node)
    # the import goes after the docstring and any `from __future__`, which must come first
    first = next((i for i, node in enumerate(body) if not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and i == 0
        or isinstance(node, ast.ImportFrom) and node.module == "__future__")), len(body))
    body.insert(first, ast.parse("from mlsec_lessons.grading.offlimits import tripped as _mlsec_tripped").body[0])
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _tripwire(node, qualified):
    call = f"_mlsec_tripped({qualified!r})"
    if isinstance(node, ast.ClassDef):
        text = (f"class {node.name}:\n    def __init__(self, *args, **kwargs):\n        {call}\n"
                f"    def __init_subclass__(cls, **kwargs):\n        {call}\n")
    else:
        text = f"def {node.name}(*args, **kwargs):\n    {call}\n"
    return ast.parse(text).body[0]


def module_file(module_name):
    """Where ``module_name``'s source lives, found without importing it or the packages above it
    (``importlib.util.find_spec`` would import them, and ``mlsec_lessons.llm`` loads TensorFlow).

    Examples
    --------
    >>> module_file("mlsec_lessons.llm.corpus").name
    'corpus.py'
    """
    parts = module_name.split(".")
    spec = importlib.util.find_spec(parts[0])
    for depth in range(2, len(parts) + 1):  # each level in its package's folders, the package not run
        folders = spec.submodule_search_locations if spec is not None else None
        spec = None if folders is None else importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]),
                                                                                     list(folders))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise InvalidParameterError(f"OFF_LIMITS names {module_name!r}, which is not a Python module of the library")
    return Path(spec.origin)


def write_shadows(off_limits, directory):
    """Write a shadow for each module of ``off_limits`` into ``directory``; return
    ``{module name: (original file, shadow file)}`` (also saved as ``shadows.json`` there)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shadows = {}
    for module_name, names in sorted(off_limits.items()):
        original = module_file(module_name)
        shadow = directory / f"{module_name}.py"
        shadow.write_text(shadow_source(original.read_text(encoding="utf-8"), module_name, names), encoding="utf-8")
        shadows[module_name] = (str(original), str(shadow))
    (directory / "shadows.json").write_text(json.dumps(shadows), encoding="utf-8")
    return shadows


class ShadowFinder:
    """A meta-path finder that loads each off-limits module from its shadow (and blocks the
    grader's checks): installed in the worker before the student's file is imported."""

    BLOCKED = ("mlsec_lessons.grading.checks",)

    def __init__(self, shadows):
        self.shadows = {name: paths[1] for name, paths in shadows.items()}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.shadows:
            return importlib.util.spec_from_file_location(fullname, self.shadows[fullname])
        if any(fullname == b or fullname.startswith(b + ".") for b in self.BLOCKED):
            raise ImportError(f"{fullname} belongs to the grader, not to your code")
        return None
