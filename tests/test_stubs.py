"""The stubs in exercises/ are generated from solutions/, never edited by hand, and their hints
state the idea and the pitfall, never the code."""
import io
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

from mlsec_lessons import cli, stubs

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = '''\
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION hint: return twice x
    ### HINT 2: y = 2 * x, then return y
    y = 2 * x
    return y
    ### END SOLUTION


class Model:
    def fit(self):
        if True:
            ### BEGIN SOLUTION
            return self
            ### END SOLUTION
'''

STUB_BODY = '''\
def double(x):
    """Twice x."""
    raise NotImplementedError("return twice x")


class Model:
    def fit(self):
        if True:
            raise NotImplementedError("write your code here")
'''


def test_committed_stubs_match_the_solutions():
    stale = [str(p.relative_to(ROOT)) for p in stubs.outdated(ROOT)]
    assert not stale, f"{stale} differ from what the solutions generate; run `make stubs` (never edit them by hand)"


def test_every_solution_has_a_stub_that_compiles():
    solutions = stubs.exercise_files(ROOT / "solutions")
    assert solutions and solutions[-1].name == "capstone.py", "no solutions/ex*.py and capstone.py found"
    for solution in solutions:
        stub = (ROOT / "exercises" / solution.name).read_text(encoding="utf-8")
        compile(stub, solution.name, "exec")
        assert stub.startswith(f"# Generated from solutions/{solution.name} by `make stubs`")
        assert stubs.BEGIN not in stub and stubs.END not in stub
        raises = re.findall(r"^ *raise NotImplementedError\(", stub, flags=re.MULTILINE)
        assert len(raises) == solution.read_text(encoding="utf-8").count(stubs.BEGIN)


def test_regions_become_raises_at_their_indentation():
    stub = stubs.make_stub(SOLUTION, "solutions/ex9_demo.py")
    header = stubs.header("solutions/ex9_demo.py")
    assert stub == header + STUB_BODY
    assert "solutions/ex9_demo.py" in header and "make stubs" in header and "by hand" in header
    assert all(line.startswith("#") for line in header.splitlines())


def test_text_without_markers_is_kept_as_it_is():
    text = "import numpy as np\n\n\ndef f():\n    return 1  # BEGIN SOLUTION in a comment is no marker\n"
    assert stubs.make_stub(text, "s.py") == stubs.header("s.py") + text


@pytest.mark.parametrize("line, hint", [
    ("### BEGIN SOLUTION hint: count flips among correct samples", "count flips among correct samples"),
    ("    ### BEGIN SOLUTION   hint:   spaced out  ", "spaced out"),
    ("### BEGIN SOLUTION", stubs.DEFAULT_HINT),
    ("### BEGIN SOLUTION hint:", stubs.DEFAULT_HINT),
    ("### BEGIN SOLUTION use numpy", "use numpy"),
])
def test_parse_hint(line, hint):
    assert stubs.parse_hint(line) == hint


def test_hints_with_quotes_and_backslashes_survive():
    hint = 'use "mask" and \\n, or it\'s wrong'
    namespace = {}
    solution = f"def f():\n    ### BEGIN SOLUTION hint: {hint}\n    return 1\n    ### END SOLUTION\n"
    exec(stubs.make_stub(solution), namespace)
    with pytest.raises(NotImplementedError) as raised:
        namespace["f"]()
    assert str(raised.value) == hint


@pytest.mark.parametrize("text, error", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", r"s\.py, line 2: ### BEGIN SOLUTION is never closed"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", r"s\.py, line 3: ### END SOLUTION without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION\n",
     r"s\.py, line 2: ### BEGIN SOLUTION inside the region opened on line 1; regions cannot nest"),
])
def test_unbalanced_markers_are_an_error(text, error):
    with pytest.raises(stubs.MarkerError, match=error):
        stubs.make_stub(text, "s.py")


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A tiny course repository with one solution and no stubs yet, as the current directory."""
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions" / "ex9_demo.py").write_text(SOLUTION)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_writes_and_checks_stubs(course, capsys):
    stub = course / "exercises" / "ex9_demo.py"
    assert cli.main(["stubs", "--check"]) == 1
    assert "exercises/ex9_demo.py differs" in capsys.readouterr().out
    assert cli.main(["stubs"]) == 0
    assert "wrote exercises/ex9_demo.py" in capsys.readouterr().out
    assert stub.read_text() == stubs.header("solutions/ex9_demo.py") + STUB_BODY
    assert cli.main(["stubs", "--check"]) == 0
    stub.write_text(stub.read_text().replace("return twice x", "edited by hand"))
    assert cli.main(["stubs", "--check"]) == 1
    assert "exercises/ex9_demo.py differs" in capsys.readouterr().out


def test_cli_reports_broken_markers(course, capsys):
    (course / "solutions" / "ex8_broken.py").write_text("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    assert cli.main(["stubs"]) == 1
    assert "solutions/ex8_broken.py, line 2: ### BEGIN SOLUTION is never closed" in capsys.readouterr().err


def test_regions_keep_both_hints_and_drop_hint_2_from_the_stub():
    double, fit = stubs.regions(SOLUTION, "s.py")
    assert (double.start, double.end, double.hint, double.hint2) == (3, 7, "return twice x", "y = 2 * x, then return y")
    assert double.code == "    y = 2 * x\n    return y\n" and double.indent == "    "
    assert (fit.hint, fit.hint2, fit.code) == (stubs.DEFAULT_HINT, "", "            return self\n")
    assert "HINT 2" not in stubs.make_stub(SOLUTION) and "then return y" not in stubs.make_stub(SOLUTION)


@pytest.mark.parametrize("text, error", [
    ("### HINT 2: outside\n", r"s\.py, line 1: ### HINT 2: must be the line right after a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\nx = 1\n### HINT 2: late\n### END SOLUTION\n", r"line 3: ### HINT 2: must be the line right after"),
    ("### BEGIN SOLUTION\n### HINT 2: one\n### HINT 2: two\n### END SOLUTION\n", r"line 3: ### HINT 2: must be the line right after"),
])
def test_a_hint_2_out_of_place_is_an_error(text, error):
    # outside a region a hint 2 would be copied into the stub
    with pytest.raises(stubs.MarkerError, match=error):
        stubs.make_stub(text, "s.py")


# --------------------------------------------------------------------------- the hints themselves
# Hint 1 (the stub's NotImplementedError) gives the idea and the pitfall; code belongs in hint 2.
CODE = re.compile(r"""
      [A-Za-z_]\w*\(               # a call: name(
    | [A-Za-z_]\w*\.[A-Za-z_]      # an attribute or module: np.mean, self.eps
    | \w\[                         # indexing: y[mask]
    | \breturn\b | \blambda\b
    | == | != | <= | >= | \*\* | // | -> | [<>=%`]
    | \w\s[-+*/]\s\w               # arithmetic: 1 - asr
""", re.VERBOSE)
SHARED_TOKENS = 6  # a run this long in common with the region's code is a copy of it
MAX_HINT = 300     # characters: one or two sentences


def course_regions():
    """``(file name, region)`` for every region of every reference solution."""
    return [(path.name, region) for path in stubs.exercise_files(ROOT / "solutions")
            for region in stubs.regions(path.read_text(encoding="utf-8"), path.name)]


def region_id(case):
    return f"{case[0]}:{case[1].start}"


def code_tokens(code):
    """The names, numbers and operators of ``code``: comments and strings (error messages) are prose."""
    kinds = (tokenize.NAME, tokenize.NUMBER, tokenize.OP)
    return [t.string.lower() for t in tokenize.generate_tokens(io.StringIO(textwrap.dedent(code)).readline)
            if t.type in kinds]


def shared_run(hint, code, n=SHARED_TOKENS):
    """The first run of ``n`` tokens that ``hint`` and ``code`` have in common, or None."""
    words = [w.lower() for w in re.findall(r"\w+|[^\w\s]", hint)]
    tokens = code_tokens(code)
    runs = {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}
    return next((" ".join(words[i:i + n]) for i in range(len(words) - n + 1) if tuple(words[i:i + n]) in runs), None)


@pytest.mark.parametrize("hint", [
    "np.asarray(y); ValueError if it is empty or len(y) != n",    # the hints this test replaced
    "ValueError unless 0 <= asr <= 1, then return 1 - asr",
    "a component counts only if all(controls.values())",
    "with levels = 2**self.squeeze_bits - 1, round and scale back",
    "flag score >= t; the largest TPR - FPR",
    "keep the samples where before[i] equals y",
])
def test_the_code_detector_catches_code(hint):
    assert CODE.search(hint), hint


def test_the_code_detector_passes_ideas():
    idea = ("Among the samples the model got right before the attack, what share does it get wrong? "
            "Pitfall: samples that were already wrong are no success of the attack (FGSM-RS, L-inf, e-mail).")
    assert not CODE.search(idea)
    code = "    flips = (after != y_true) & attackable\n    return float(flips.sum() / attackable.sum())  # the share\n"
    assert shared_run("return float ( flips . sum ( ) ) please", code) == "return float ( flips . sum"
    assert shared_run("the share of flips among the attackable samples", code) is None


@pytest.mark.parametrize("case", course_regions(), ids=region_id)
def test_first_hint_states_the_idea_not_the_code(case):
    name, region = case
    assert region.hint != stubs.DEFAULT_HINT, f"{name}, line {region.start}: the region has no hint"
    found = CODE.search(region.hint)
    assert found is None, (f"{name}, line {region.start}: hint 1 contains code ({found.group()!r}); say the idea "
                           f"and the pitfall there, and move the code to hint 2: {region.hint}")
    copied = shared_run(region.hint, region.code)
    assert copied is None, f"{name}, line {region.start}: hint 1 copies the code ({copied!r}): {region.hint}"
    assert len(region.hint) <= MAX_HINT, f"{name}, line {region.start}: hint 1 has {len(region.hint)} characters"


@pytest.mark.parametrize("case", course_regions(), ids=region_id)
def test_every_region_has_a_second_hint(case):
    name, region = case
    assert region.hint2, f"{name}, line {region.start}: add a `{stubs.HINT2} ...` line right after {stubs.BEGIN}"
    assert region.hint2 != region.hint and len(region.hint2) <= 2 * MAX_HINT, (name, region.start)


def test_no_stub_holds_a_second_hint():
    for path in stubs.exercise_files(ROOT / "solutions"):
        stub = (ROOT / "exercises" / path.name).read_text(encoding="utf-8")
        assert stubs.HINT2 not in stub, path.name
        for region in stubs.regions(path.read_text(encoding="utf-8"), path.name):
            assert region.hint2 not in stub, f"exercises/{path.name} holds the hint 2 of line {region.start}"
