"""`mlsec hint`: both hints of a function, or of the functions a check exercises, on request."""
import subprocess
import sys
import textwrap

import pytest

from mlsec_lessons import cli
from mlsec_lessons.grading import exercises, hints, runner


def flat(text):
    return " ".join(text.split())


@pytest.mark.parametrize("exercise", exercises.known())
def test_every_check_leads_to_a_hint(exercise):
    found = hints.checks(exercise)
    assert list(found) == runner.check_functions(exercise), "the check functions, read as the grader reads them"
    mapping = hints.check_map(exercise)
    names = [*found, *(i for ids, _ in found.values() for i in ids)]
    assert set(names) == set(mapping)
    for name in names:
        assert mapping[name], (f"{exercise}: no function found for the check {name!r}; add the first words of "
                               f"its name to hints.CHECKS[{exercise!r}]")
        assert hints.lookup(exercise, name), name


@pytest.mark.parametrize("exercise", list(hints.CHECKS))
def test_the_table_names_functions_that_have_hints(exercise):
    functions = {h.function for h in hints.hints(exercise)}
    bare = {f.rsplit(".", 1)[-1] for f in functions}
    for prefix, wanted in hints.CHECKS[exercise].items():
        assert wanted == hints.ALL or set(wanted) <= functions | bare, (exercise, prefix, wanted)


def test_parametrized_checks_are_named_by_their_ids():
    # the ids the grader prints, including those a list comprehension builds from an f-string
    assert "asr_ignores_already_misclassified" in hints.checks("ex0")["example"][0]
    unauthenticated = hints.checks("ex3")["refuses_with_401"][0]
    assert {"expired", "alg_none", "missing_exp", "missing_role"} <= set(unauthenticated)
    assert hints.check_map("ex3")["expired"] == ["SecureModelDeployment.authenticate_request"]


def test_names_lead_to_their_functions():
    assert [h.function for h in hints.lookup("ex0", "asr_ignores_already_misclassified")] == ["attack_success_rate"]
    assert [h.function for h in hints.lookup("ex0", "targeted_asr_matches_reference")] == [
        "targeted_attack_success_rate"]                      # the longest name wins
    assert [h.function for h in hints.lookup("ex0", "mrs_is_one_minus_asr")] == ["model_robustness_score"]
    assert [h.function for h in hints.lookup("ex1", "pgd_step_increases_the_loss")] == ["pgd_step"]
    assert [h.function for h in hints.lookup("ex1", "pgd_step_takes_eps_step_by_keyword")] == ["pgd_step"]
    assert hints.lookup("ex1", "perturb") == hints.lookup("ex1", "AdversarialDefense.perturb")
    assert len(hints.lookup("capstone", "the_whole_system_runs_on_your_code")) == len(hints.hints("capstone"))


def test_hint_prints_both_hints(capsys):
    assert cli.main(["hint", "ex1", "pgd_step_increases_the_loss"]) == 0
    out = flat(capsys.readouterr().out)
    pgd_step, = hints.lookup("ex1", "pgd_step")
    assert "pgd_step_increases_the_loss exercises pgd_step" in out
    assert flat(pgd_step.hint) in out and flat(pgd_step.hint2) in out and "hint 2:" in out


def test_hint_without_a_name_lists_the_names(capsys):
    assert cli.main(["hint", "ex3"]) == 0
    out = capsys.readouterr().out
    assert "SecureModelDeployment.authenticate_request" in out and "expired" in out and "hint 2" in out


@pytest.mark.parametrize("argv, message", [
    (["hint", "ex1", "pgd_stepp"], "no hints for 'pgd_stepp' in ex1_adversarial_defense; did you mean pgd_step"),
    (["hint", "ex3", "expird"], "did you mean expired?"),
    (["hint", "ex0", "nothing_like_it"], "no hints for 'nothing_like_it' in ex0_security_metrics (`mlsec hint ex0`"),
    (["hint", "ex9", "perturb"], "unknown exercise 'ex9'; known exercises: ex0_security_metrics"),
])
def test_an_unknown_name_is_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("mlsec hint: error: ") and message in captured.err
    assert captured.err.count("\n") == 1, captured.err


def test_the_command_exits_2_without_a_traceback():
    done = subprocess.run([sys.executable, "-m", "mlsec_lessons.cli", "hint", "ex1", "no_such_check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_show_hint_prints_and_never_raises(capsys):
    hints.show_hint("ex0", "attack_success_rate")
    out = flat(capsys.readouterr().out)
    asr, = hints.lookup("ex0", "attack_success_rate")
    assert flat(asr.hint) in out and flat(asr.hint2) in out
    hints.show_hint("ex0", "no_such_thing")
    assert capsys.readouterr().out.startswith("no hint: no hints for 'no_such_thing'")


# --------------------------------------------------------------------------- the rules, on a small course
CHECKS = '''\
import pytest

CASES = [("plain", 1)] + [(f"missing_{c}", 2) for c in ("a", "b")]


@pytest.mark.parametrize("x", [pytest.param(1, id="scale_rejects_bad_input"), pytest.param(2, id="odd_one")])
def test_rejects_bad_input(impl, x):
    pass


@pytest.mark.parametrize("n", [pytest.param(n, id=i) for i, n in CASES])
def test_refuses(impl, n):
    pass


def test_mrs_is_fine(impl):
    pass


def test_something_unnamed(impl):
    impl.Model().fit_scaled([1])
'''

SOLUTION = '''\
def scale(x):
    ### BEGIN SOLUTION hint: the idea
    ### HINT 2: x times two
    return 2 * x
    ### END SOLUTION


def model_robustness_score(asr):
    ### BEGIN SOLUTION hint: what survives
    ### HINT 2: one minus asr
    return 1 - asr
    ### END SOLUTION


class Model:
    def fit_scaled(self, x):
        ### BEGIN SOLUTION hint: fit it
        ### HINT 2: call scale
        return scale(x)
        ### END SOLUTION
'''


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course with one exercise, ex9_demo, as the current directory."""
    for folder in ("checks", "solutions", "exercises"):
        (tmp_path / folder).mkdir()
    (tmp_path / "checks" / "ex9_demo.py").write_text(CHECKS)
    (tmp_path / "solutions" / "ex9_demo.py").write_text(SOLUTION)
    monkeypatch.setattr(exercises, "CHECKS_DIR", tmp_path / "checks")
    monkeypatch.setattr(hints, "CHECKS", {"ex9_demo": {"refuses": ["fit_scaled"]}})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_how_checks_are_mapped(course):
    assert hints.checks("ex9")["refuses"][0] == ["plain", "missing_a", "missing_b"]
    assert hints.check_map("ex9") == {
        "rejects_bad_input": ["scale"],            # nothing in its name: its cases'
        "scale_rejects_bad_input": ["scale"],      # a function's name in it
        "odd_one": ["scale"],                      # nothing in its name: its check's
        "refuses": ["Model.fit_scaled"],           # the table
        "plain": ["Model.fit_scaled"], "missing_a": ["Model.fit_scaled"], "missing_b": ["Model.fit_scaled"],
        "mrs_is_fine": ["model_robustness_score"],  # an abbreviation
        "something_unnamed": ["Model.fit_scaled"],  # nothing at all: what its body calls
    }
    assert hints.explain("ex9", "missing_b") == textwrap.dedent("""\
        ex9_demo: missing_b exercises Model.fit_scaled

        Model.fit_scaled
          hint 1: fit it
          hint 2: call scale""")


def test_a_course_without_solutions_says_so(course):
    (course / "solutions" / "ex9_demo.py").unlink()
    with pytest.raises(ValueError, match=r"the hints of ex9_demo live in solutions/ex9_demo.py, which this copy"):
        hints.lookup("ex9", "scale")


@pytest.mark.parametrize("exercise", exercises.known())
def test_each_exercise_notebook_has_a_collapsed_hint_cell(exercise):
    import ast
    import json

    from mlsec_lessons.course import repo_root

    cells = json.loads((repo_root() / "exercises" / f"{exercise}.ipynb").read_text(encoding="utf-8"))["cells"]
    found = [(i, c) for i, c in enumerate(cells) if "show_hint(" in "".join(c["source"])]
    assert len(found) == 1, f"{exercise}.ipynb needs one cell that calls show_hint"
    i, cell = found[0]
    assert i <= 4 and cells[i - 1]["cell_type"] == "markdown" and "first" in "".join(cells[i - 1]["source"])
    assert cell["metadata"].get("collapsed") is True and cell["metadata"]["jupyter"]["source_hidden"] is True
    assert cell["outputs"] == [], "the hint cell is saved without its output: hint 2 only on request"
    call = next(n for n in ast.walk(ast.parse("".join(cell["source"]))) if isinstance(n, ast.Call))
    short, name = (a.value for a in call.args)
    assert exercises.resolve(short) == exercise and hints.lookup(short, name)
    assert not any("execution" in c["metadata"] for c in cells), "saved with execution timestamps"
