"""Tiered hints: the idea first, a hint closer to the code only when a student asks for it.

Each marked region of a reference solution carries two hints (see :mod:`mlsec_lessons.stubs`).
Hint 1, the idea and the pitfall, is the message of the stub's ``NotImplementedError``. Hint 2,
closer to the code, never reaches the stub; this module prints it on request::

    mlsec hint ex1                                the names that have hints
    mlsec hint ex1 pgd_step_increases_the_loss    the hints of what a check exercises
    mlsec hint ex1 AdversarialDefense.perturb     the hints of one function (or just: perturb)

or, in a notebook, ``show_hint("ex1", "perturb")``.

A check is named as the grader prints it: a check function (``test_x`` is ``x``), or the id of
one case of a parametrized check. It exercises the functions its name names: the longest
function name it contains as whole words, once ``asr`` and ``mrs`` are spelled out. For names
that say too little, :data:`CHECKS` lists the functions by the name's first words. A case whose
id names nothing takes its check's functions, and a check that names nothing those of its
cases, else the functions its body calls. The checks are read with ``ast``, never imported.
"""
import ast
import difflib
import functools
import json
import textwrap
from dataclasses import dataclass

from mlsec_lessons import course, stubs
from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.grading import exercises

ABBREVIATIONS = {"asr": "attack_success_rate", "mrs": "model_robustness_score"}
ALL = "*"  # a check of the whole exercise

# first words of a check's name -> the functions (bare or Class.method names) it exercises,
# where the name alone does not say; the longest matching prefix wins
CHECKS = {
    "ex0_security_metrics": {
        "asr_accepts_probabilities": ["as_labels", "attack_success_rate"],
    },
    "ex1_adversarial_defense": {
        "rejects_bad_input": ["_check"],
        "robust_model": ["_train_step", "perturb"],
        "detector": ["detector_score", "fit_detector"],
        "evaluate": ["evaluate_robustness"],
    },
    "ex2_privacy_preserving_system": {
        "clipping": ["clip_gradients"],
        "one_example_influence": ["clip_gradients", "privatize_gradients"],
        "noiseless_update": ["privatize_gradients"],
        "noise_std": ["privatize_gradients"],
        "poisson_sampling": ["poisson_sample"],
        "epsilon": ["epsilon_spent"],
        "audit_bound": ["clopper_pearson", "epsilon_lower_bound"],
        "training": ["train_private_model"],
        "accuracy": ["train_private_model"],
        "membership_leak": ["evaluate_privacy"],
        "masked_vectors": ["secure_aggregate"],
    },
    "ex3_secure_deployment": {
        "refuses_a_weak_secret": ["__init__"],
        "accepts_a_secret": ["__init__"],
        "clock_skew_leeway": ["authenticate_request"],
        "leeway_is": ["__init__", "authenticate_request"],
        "each_role_may": ["authenticate_request"],
        "digest": ["model_digest"],
        "deploy": ["deploy_model_securely"],
        "verify": ["verify_model_integrity"],
        "issued_token": ["issue_token"],
        "accepts_a_valid_token": ["authenticate_request"],
        "tolerates_small_clock_skew": ["authenticate_request"],
        "refuses_with": ["authenticate_request"],
        "admin_may": ["authenticate_request"],
    },
    "capstone": {
        "trains": ["train"],
        "trained_model": ["train"],
        "robustness": ["measure_robustness"],
        "epsilon": ["measure_privacy"],
        "membership": ["measure_membership"],
        "card": ["model_card"],
        "tokens": ["issue_token"],
        "user_tokens": ["issue_token"],
        "detector": ["monitor"],
        "monitoring": ["monitor"],
        "coverage": ["compliance_report"],
        "checklist": ["compliance_report"],
        "the_whole_system": ALL,
    },
}


@dataclass(frozen=True)
class Hint:
    """The two hints of one region, and the function it lies in (``name`` or ``Class.method``)."""
    function: str
    hint: str
    hint2: str

    def __str__(self):
        wrap = dict(width=100, subsequent_indent=" " * 10, break_long_words=False, break_on_hyphens=False)
        return "\n".join([self.function,
                          textwrap.fill(self.hint, initial_indent="  hint 1: ", **wrap),
                          textwrap.fill(self.hint2 or "(none)", initial_indent="  hint 2: ", **wrap)])


# --------------------------------------------------------------------------- the solution's regions
def _functions(tree):
    """``(qualified name, first line, last line)`` of each function and method of a module."""
    found = []
    for node in tree.body:
        methods = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        found += [(prefix + f.name, f.lineno, f.end_lineno) for f in methods if isinstance(f, ast.FunctionDef)]
    return found


@functools.lru_cache(maxsize=16)
def _parse(text):
    """The syntax tree of a source text, parsed once a process: a grading looks up the hints of every
    failed check, and a class of stubs fails hundreds. Keyed by the text itself, so an edited file is
    parsed again; callers only read the tree."""
    return ast.parse(text)


def hints(exercise):
    """Every region's :class:`Hint` in ``exercise``'s reference solution, in file order.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an unknown exercise, or a copy of the course without the reference solutions.

    Examples
    --------
    >>> hints("ex0")[1].function
    'attack_success_rate'
    """
    name = exercises.resolve(exercise)
    path = exercises.solution_file(name)
    if path.is_file():
        return from_solution(path.read_text(encoding="utf-8"), name)
    shipped = course.repo_root() / "exercises" / "hints" / f"{name}.json"  # a student release has these
    if shipped.is_file():
        return [Hint(**h) for h in json.loads(shipped.read_text(encoding="utf-8"))]
    raise InvalidParameterError(f"the hints of {name} live in solutions/{name}.py, which this copy of the course "
                     "does not have; ask your instructor")


def from_solution(text, name):
    """The :class:`Hint` of every region of a solution's source ``text``."""
    functions = _functions(_parse(text))
    found = []
    for region in stubs.regions(text, f"solutions/{name}.py"):
        # the innermost function around the region: a method rather than its class
        around = [f for f in functions if f[1] <= region.start <= f[2]]
        function = min(around, key=lambda f: f[2] - f[1])[0] if around else "(module)"
        found.append(Hint(function, region.hint, region.hint2))
    return found


def export(text, name):
    """The hints of a solution's source as JSON, for a student release (the hints, never the code)."""
    return json.dumps([{"function": h.function, "hint": h.hint, "hint2": h.hint2}
                       for h in from_solution(text, name)], indent=1)


def _bare(function):
    return function.rsplit(".", 1)[-1]


def _find(hints_, name):
    """The hints of the function called ``name`` (``Class.method`` or just ``method``)."""
    return [h for h in hints_ if name in (h.function, _bare(h.function))]


# --------------------------------------------------------------------------- the checks
class _Case:
    """A ``pytest.param(...)`` met while reading a checks file: only its id matters."""
    def __init__(self, id):
        self.id = id


def _value(node, names):
    """The value of a literal-like expression of a checks file: constants, tuples and lists, f-strings,
    ``+``, list comprehensions, names bound in ``names`` and ``pytest.param``; None for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_value(e, names) for e in node.elts]
    if isinstance(node, ast.JoinedStr):  # f"missing_{claim}"
        parts = [_value(v.value if isinstance(v, ast.FormattedValue) else v, names) for v in node.values]
        return None if None in parts else "".join(str(p) for p in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _value(node.left, names), _value(node.right, names)
        return left + right if isinstance(left, list) and isinstance(right, list) else None
    if isinstance(node, ast.ListComp) and len(node.generators) == 1 and not node.generators[0].ifs:
        loop, rows = node.generators[0], _value(node.generators[0].iter, names)
        return [_value(node.elt, {**names, **_bind(loop.target, row)}) for row in rows or []]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "param":
        return _Case(next((_value(k.value, names) for k in node.keywords if k.arg == "id"), None))
    return None


def _bind(target, value):
    """The names a ``for`` target binds to ``value``: ``i`` or ``i, m, w``."""
    if isinstance(target, ast.Name):
        return {target.id: value}
    if isinstance(target, ast.Tuple) and isinstance(value, list) and len(value) == len(target.elts):
        return {k: v for t, item in zip(target.elts, value) for k, v in _bind(t, item).items()}
    return {}


def checks(exercise):
    """``{check function: (ids of its cases, names its body uses)}``, read from the checks file.

    Examples
    --------
    >>> checks("ex3")["refuses_with_403"][0]
    ['role_escalation', 'model_out_of_scope', 'no_model_scope']
    """
    tree = _parse(exercises.checks_file(exercises.resolve(exercise)).read_text(encoding="utf-8"))
    names, found = {}, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = _value(node.value, names)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            ids = []
            for decorator in node.decorator_list:  # @pytest.mark.parametrize(argnames, argvalues)
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == "parametrize":
                    values = _value(decorator.args[1], names) if len(decorator.args) > 1 else None
                    ids += [case.id for case in values or [] if isinstance(case, _Case) and isinstance(case.id, str)]
            used = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            found[node.name.removeprefix("test_")] = (ids, used)
    return found


def _named(check, functions, table):
    """The functions ``check``'s name points at: through ``table``, else the longest name it contains."""
    prefix = max((k for k in table if check == k or check.startswith(k + "_")), key=len, default=None)
    if prefix is not None:
        wanted = table[prefix]
        return [f for f in functions if wanted == ALL or f in wanted or _bare(f) in wanted]
    words = f"_{check}_"
    for short, full in ABBREVIATIONS.items():
        words = words.replace(f"_{short}_", f"_{full}_")
    found = [f for f in functions if f"_{_bare(f).lstrip('_')}_" in words]
    return [max(found, key=lambda f: len(_bare(f)))] if found else []


def check_map(exercise):
    """``{check name: [functions it exercises]}`` for every check function and every case id.

    Examples
    --------
    >>> check_map("ex0")["asr_ignores_already_misclassified"]
    ['attack_success_rate']
    """
    name = exercises.resolve(exercise)
    functions = list(dict.fromkeys(h.function for h in hints(name)))
    table = CHECKS.get(name, {})
    found = {}
    for check, (ids, used) in checks(name).items():
        cases = {i: _named(i, functions, table) for i in ids}
        found[check] = (_named(check, functions, table)
                        or [f for f in functions if any(f in fs for fs in cases.values())]
                        or [f for f in functions if _bare(f) in used])
        for i, exercised in cases.items():
            found.setdefault(i, exercised or found[check])
    return found


# --------------------------------------------------------------------------- asking for a hint
def lookup(exercise, name):
    """The hints for ``name``: a function (``perturb``, ``AdversarialDefense.perturb``) or a check.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an unknown exercise or name, in one line that lists the close matches.
    """
    exercise = exercises.resolve(exercise)
    every = hints(exercise)
    if _find(every, name):
        return _find(every, name)
    exercised = check_map(exercise).get(name)
    if exercised:
        return [h for h in every if h.function in exercised]
    close = difflib.get_close_matches(name, names(exercise), n=5, cutoff=0.6)
    short = exercise.split("_")[0]
    also = f"; did you mean {', '.join(close)}?" if close else ""
    raise InvalidParameterError(f"no hints for {name!r} in {exercise}{also} (`mlsec hint {short}` lists every name)")


def names(exercise):
    """Every name :func:`lookup` knows: the functions (bare and qualified), then the checks."""
    functions = [h.function for h in hints(exercise)]
    return list(dict.fromkeys([*functions, *map(_bare, functions), *check_map(exercise)]))


def explain(exercise, name):
    """What ``mlsec hint EXERCISE NAME`` prints: the hints of every function ``name`` leads to."""
    found = lookup(exercise, name)
    head = f"{exercises.resolve(exercise)}: {name}"
    if not _find(found, name):  # a check: say what it exercises
        head += f" exercises {', '.join(h.function for h in found)}"
    return "\n\n".join([head, *map(str, found)])


def listing(exercise):
    """What ``mlsec hint EXERCISE`` prints: the functions with hints, and each check's functions."""
    exercise = exercises.resolve(exercise)
    short = exercise.split("_")[0]
    lines = [f"{exercise}: `mlsec hint {short} NAME` shows the hints for a function or a check.",
             "hint 1 is what the stub says; hint 2 is closer to the code: try on your own first.", "",
             "functions:"]
    lines += [f"  {h.function}" for h in hints(exercise)]
    lines += ["", "checks (and the functions they exercise):"]
    mapping = check_map(exercise)
    width = max(map(len, mapping), default=0)
    lines += [f"  {check:<{width}}  {', '.join(functions)}" for check, functions in mapping.items()]
    return "\n".join(lines)


def show_hint(exercise, name):
    """Print both hints for ``name`` (a function or a check) in a notebook; never raises."""
    try:
        print(explain(exercise, name))
    except ValueError as e:
        print(f"no hint: {e}")
