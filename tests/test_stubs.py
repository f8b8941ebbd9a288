"""The stubs in exercises/ are generated from solutions/, never edited by hand."""
import re
from pathlib import Path

import pytest

from mlsec_lessons import cli, stubs

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = '''\
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION hint: return twice x
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
