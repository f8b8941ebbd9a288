"""Rules of the code base that a linter cannot see: private stays private, one name one meaning."""
import ast
import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import mlsec_lessons

PACKAGE = Path(mlsec_lessons.__file__).parent


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _resolve(module, node):
    """The absolute module a ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    is_package = base and Path(PACKAGE.parent, *base, "__init__.py").exists()
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports():
    """``(file:line, what)`` for every private name one course module takes from another."""
    found = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases = {}  # local name -> course module it refers to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                if not source.startswith("mlsec_lessons"):
                    continue
                for alias in node.names:
                    name = alias.name
                    if name.startswith("_") and not name.startswith("__") and source != module:
                        found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", f"{source}.{name}"))
                    aliases[alias.asname or name] = f"{source}.{name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("mlsec_lessons"):
                        aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.value.id in aliases):
                target = aliases[node.value.id]
                if importlib.util.find_spec(target.rsplit(".", 1)[0]) is not None and _is_module(target):
                    found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", f"{target}.{node.attr}"))
    return found


def _is_module(dotted):
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def test_no_private_name_crosses_modules():
    found = private_imports()
    assert not found, "private helpers used from another module (make them public):\n" + "\n".join(
        f"  {where}: {what}" for where, what in found)


def test_the_rule_can_fail(tmp_path, monkeypatch):
    fake = tmp_path / "mlsec_lessons"
    (fake / "sub").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "a.py").write_text("def _helper():\n    pass\n")
    (fake / "sub" / "__init__.py").write_text("")
    (fake / "sub" / "b.py").write_text("from ..a import _helper\nfrom .. import a\na._helper()\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in list(__import__("sys").modules) if m.startswith("mlsec_lessons")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    found = private_imports()
    assert [what for _, what in found] == ["mlsec_lessons.a._helper", "mlsec_lessons.a._helper"]


def _public_definitions():
    """``(module name, name, object)`` for every public function and class a course module defines."""
    for info in pkgutil.walk_packages(mlsec_lessons.__path__, "mlsec_lessons."):
        if ".grading.checks" in info.name or info.name.endswith("flower_app") or ".flower_app." in info.name:
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - an optional module that fails to import is another test's job
            continue
        for name, obj in vars(module).items():
            if (not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                    and getattr(obj, "__module__", None) == info.name):
                yield info.name, name, obj


def _public_names():
    """Every public function and class each course module defines, by name."""
    names = {}
    for module, name, _ in _public_definitions():
        names.setdefault(name, set()).add(module)
    return names


@pytest.mark.parametrize("name", ["epsilon_lower_bound", "attack_success_rate", "adversarial_train", "accuracy",
                                  "train", "repo_root", "check_seed", "seeded", "check_fraction", "check_labels"])
def test_one_name_one_meaning(name):
    homes = _public_names().get(name, set())
    assert len(homes) <= 1, f"{name} is defined in {sorted(homes)}: one name, one meaning"


# The grader's worker answers the student's process in built-in errors on purpose: they cross the wire
# by name, and the student's code should not need this package to read them.
BUILTIN_RAISES_ALLOWED = {"mlsec_lessons/grading/worker.py", "mlsec_lessons/grading/remote.py"}


def builtin_raises():
    """``file:line`` for every ``raise ValueError(...)`` (or another bare built-in) in the package."""
    found = []
    for _, path in _modules():
        rel = str(path.relative_to(PACKAGE.parent))
        if rel in BUILTIN_RAISES_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name)
                    and node.exc.func.id in {"ValueError", "TypeError", "RuntimeError", "KeyError", "Exception"}):
                found.append(f"{rel}:{node.lineno} raises {node.exc.func.id}")
    return found


def test_every_error_is_an_mlsec_error():
    found = builtin_raises()
    assert not found, "raise an mlsec_lessons.errors class (an MLSecError) instead:\n" + "\n".join(found)


# --------------------------------------------------------------------------- the attack arguments
# issue 15's convention: eps is positional; an attack's steps and eps_step are keyword-only, and
# eps_step=None means attacks.default_eps_step everywhere. (The privacy accountant's ``steps``, the
# number of DP-SGD steps, is another quantity and not an attack argument.)
ATTACK_MODULES = ("attacks", "defenses", "governance", "applications", "poisoning", "monitoring", "theft")
RULE_FUNCTIONS = {"mlsec_lessons.attacks.default_eps_step"}  # the rule itself: (eps, steps)


def public_functions(source, module, *, init=False):
    """``(module.function, its ast node)`` for each public function of ``source``, at module level and in
    its classes (``Class.method``); with ``init``, every ``__init__`` too."""
    tree = ast.parse(source)
    scopes = [(tree.body, module)] + [(n.body, f"{module}.{n.name}") for n in tree.body if isinstance(n, ast.ClassDef)]
    for body, prefix in scopes:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    not node.name.startswith("_") or (init and node.name == "__init__")):
                yield f"{prefix}.{node.name}", node


def course_sources():
    """``(module, source)`` for every module of the package but the grader's checks (its internals)."""
    return [(module, path.read_text()) for module, path in _modules() if ".grading.checks" not in module]


def positional_attack_arguments(source, module):
    """``module.function(argument)`` for each public function or method of ``source`` (module and class
    level) that takes ``steps`` or ``eps_step`` by position."""
    return [f"{name}({a.arg})" for name, node in public_functions(source, module) if name not in RULE_FUNCTIONS
            for a in node.args.posonlyargs + node.args.args if a.arg in ("steps", "eps_step")]


def test_attack_steps_and_eps_step_are_keyword_only():
    found = []
    for module, path in _modules():
        if module.split(".")[1:2] and module.split(".")[1] in ATTACK_MODULES:
            found += positional_attack_arguments(path.read_text(), module)
    assert not found, f"steps and eps_step must be keyword-only (after a bare *): {found}"


def _defaults(args):
    """``{argument: its default's ast node}`` for the arguments of a function that have one."""
    positional = args.posonlyargs + args.args
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
    return defaults | {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}


def eps_step_rule_breaks(source, module):
    """``module.function: why`` for each public function or method of ``source`` that takes ``eps_step``
    without the one default rule: ``eps_step=None`` (:func:`attacks.default_eps_step`), with ``steps``."""
    found = []
    for name, node in public_functions(source, module):
        names = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        if "eps_step" not in names:
            continue
        default = _defaults(node.args).get("eps_step")
        if default is not None and not (isinstance(default, ast.Constant) and default.value is None):
            found.append(f"{name}: eps_step={ast.unparse(default)}")
        if "steps" not in names:
            found.append(f"{name}: no steps")
    return found


def test_eps_step_has_one_default_rule():
    found = [f for module, source in course_sources() for f in eps_step_rule_breaks(source, module)]
    assert not found, f"eps_step=None (attacks.default_eps_step) and a steps argument, everywhere: {found}"


def test_the_eps_step_rule_can_fail():
    source = ("def pgd(model, x, y, eps, *, steps=10, eps_step=None): ...\n"
              "def step(model, x, y, eps, *, eps_step): ...\n"
              "def poison(x, eps=0.3, *, eps_step=0.075, max_iter=20): ...\n")
    assert eps_step_rule_breaks(source, "m") == ["m.step: no steps", "m.poison: eps_step=0.075", "m.poison: no steps"]


def test_the_keyword_only_rule_can_fail():
    source = ("def pgd(model, x, y, eps, steps=10, *, eps_step=None): ...\n"
              "def ok(model, x, y, eps, *, steps=10, eps_step=None): ...\n"
              "class A:\n    def perturb(self, x, eps_step): ...\n")
    assert positional_attack_arguments(source, "m") == ["m.pgd(steps)", "m.A.perturb(eps_step)"]


# --------------------------------------------------------------------------- randomness
# issue 15's convention: randomness comes in as ``seed`` (an int, a Generator or None), never as ``rng``
# or ``random_state``, in every public function and method of the package.
RANDOMNESS_NAMES = {"rng", "random_state", "random_seed", "generator"}


def randomness_parameters(source, module):
    """``module.function(argument)`` for each public function or method of ``source`` that takes its
    randomness under another name than ``seed``."""
    return [f"{name}({a.arg})" for name, node in public_functions(source, module, init=True)
            for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs if a.arg in RANDOMNESS_NAMES]


def test_randomness_is_always_called_seed():
    found = [f for module, source in course_sources() for f in randomness_parameters(source, module)]
    assert not found, f"take randomness as seed= (an int, a Generator or None): {found}"


def test_the_randomness_rule_can_fail():
    source = ("def counts(x, *, rng): ...\n"
              "def ok(x, *, seed=0): ...\n"
              "def _private(rng): ...\n"
              "class A:\n    def __init__(self, random_state=None): ...\n")
    assert randomness_parameters(source, "m") == ["m.counts(rng)", "m.A.__init__(random_state)"]


# --------------------------------------------------------------------------- result records
# issue 15's convention: a multi-field result is a frozen dataclass with snake_case fields and a
# to_frame() for display. Every public dataclass of the package is either such a result or is named
# here, with what it is instead, so that a new one is a decision and not an accident.
NOT_RESULTS = {
    "mlsec_lessons.data.Dataset": "data, not a result",
    "mlsec_lessons.deployment.language_model.Generation": "one request on its way through the server",
    "mlsec_lessons.deployment.language_model.LanguageModelSpec": "a file's contents",
    "mlsec_lessons.deployment.language_model.ServedLanguageModel": "what the server holds while it serves",
    "mlsec_lessons.deployment.served.Call": "one request on its way through the server",
    "mlsec_lessons.deployment.served.ServedModel": "what the server holds while it serves",
    "mlsec_lessons.deployment.settings.ServerSettings": "configuration",
    "mlsec_lessons.federated.attacks.Attack": "configuration",
    "mlsec_lessons.federated.fedavg.Experiment": "configuration",
    "mlsec_lessons.federated.masking.Client": "a protocol party's state, filled in round by round",
    "mlsec_lessons.federated.masking.ServerView": "one part of a RoundResult, shown by its to_frame",
    "mlsec_lessons.federated.robust.ClientReply": "one message of the protocol",
    "mlsec_lessons.federated.secagg.SecureRound": "configuration",
    "mlsec_lessons.federated.secagg.SecureDPRun": "configuration",
    "mlsec_lessons.governance.checklist.Evidence": "one cell of a Checklist, shown by its to_frame",
    "mlsec_lessons.governance.checklist.Item": "one row of a Checklist, shown by its to_frame",
    "mlsec_lessons.governance.coverage.Control": "configuration: a control and its check",
    "mlsec_lessons.governance.coverage.Component": "configuration: a component and its controls",
    "mlsec_lessons.grading.batch.Student": "a folder's listing, before grading",
    "mlsec_lessons.grading.hints.Hint": "a solution's hint text",
    "mlsec_lessons.grading.plugin.Judging": "the grader's wiring",
    "mlsec_lessons.grading.wire.Scaffold": "the grader's wire format",
    "mlsec_lessons.grading.wire.Handle": "the grader's wire format",
    "mlsec_lessons.llm.agent.ToolCall": "one row of an AgentRun, shown by its to_frame",
    "mlsec_lessons.llm.agent.Decision": "one cell of an AgentRun, shown by its to_frame",
    "mlsec_lessons.llm.corpus.Dialogue": "data, not a result",
    "mlsec_lessons.llm.injection.Attack": "configuration: one attack's text",
    "mlsec_lessons.llm.memorization.CanaryRun": "a trained model and its canaries (a Fitted has the provenance)",
    "mlsec_lessons.stubs.Region": "a solution file's marked region",
    "mlsec_lessons.theft.equation_solving.LinearCopy": "a model (scikit-learn's coef_ and intercept_), not a result",
}


def result_record_problems(classes):
    """``name: problem`` for each dataclass in ``{dotted name: class}`` that breaks the convention."""
    found = []
    for name, cls in sorted(classes.items()):
        if name in NOT_RESULTS:
            continue
        if not cls.__dataclass_params__.frozen:
            found.append(f"{name}: not frozen")
        if not callable(getattr(cls, "to_frame", None)):
            found.append(f"{name}: no to_frame()")
        found += [f"{name}: field {f.name} is not snake_case" for f in dataclasses.fields(cls)
                  if f.name != f.name.lower() or f.name.startswith("_")]
    return found


def test_results_are_frozen_dataclasses_with_to_frame():
    classes = {f"{module}.{name}": obj for module, name, obj in _public_definitions()
               if inspect.isclass(obj) and dataclasses.is_dataclass(obj)}
    problems = result_record_problems(classes)
    assert not problems, "\n".join(problems)
    assert not set(NOT_RESULTS) - set(classes), f"NOT_RESULTS names classes that are gone: {set(NOT_RESULTS) - set(classes)}"


def test_the_result_rule_can_fail():
    @dataclasses.dataclass
    class Loose:
        camelCase: int

    @dataclasses.dataclass(frozen=True)
    class Shown:
        value: int

        def to_frame(self):
            return None

    assert result_record_problems({"m.Loose": Loose, "m.Shown": Shown}) == [
        "m.Loose: not frozen", "m.Loose: no to_frame()", "m.Loose: field camelCase is not snake_case"]
