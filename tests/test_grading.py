"""The grader: full marks for the solutions, none for the stubs, lost points for wrong code, and
failed checks with a clear message (never a traceback or a hang) for code that hangs, crashes
or does not compile."""
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlsec_lessons import cli, metrics, stubs
from mlsec_lessons.grading import collect, grade, grade_cell, grade_many, known, resolve, try_it
from mlsec_lessons.grading.exercises import solution_variant
from mlsec_lessons.grading.plugin import load as load_file
from mlsec_lessons.grading.report import Report

ROOT = Path(__file__).resolve().parents[1]
NAME = "ex0_security_metrics"
SOLUTION = ROOT / "solutions" / f"{NAME}.py"
STUB = ROOT / "exercises" / f"{NAME}.py"
MLSEC = Path(sys.executable).with_name("mlsec")


def variant(tmp_path, old, new):
    return solution_variant("ex0", old, new, tmp_path)


def failed(report):
    return report.failed()


def test_exercise_names():
    assert NAME in known()
    assert resolve("ex0") == resolve(NAME) == NAME
    with pytest.raises(ValueError, match=f"unknown exercise 'ex99'; known exercises: .*{NAME}"):
        resolve("ex99")


def test_solution_scores_full_marks():
    report = grade("ex0", SOLUTION)
    assert report.full_marks, report.table()
    assert report.total >= 20 and len(report.checks) >= 15
    table = report.table()
    assert "FAIL" not in table and f"{report.total}/{report.total}" in table.splitlines()[-1]


def test_reference_metrics_score_full_marks():
    # the package's metrics and the exercise's solution must agree on everything the checks test
    assert grade("ex0", ROOT / "mlsec_lessons" / "metrics.py").full_marks


# distinct hints a stub shows: one per function the student writes, unless an earlier one (ex3's
# constructor) stops most checks first
MIN_HINTS = {"ex0": 6, "ex1": 5, "ex2": 10, "ex3": 2, "ex4": 4, "capstone": 9}


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
@pytest.mark.parametrize("exercise", known())
def test_each_stub_scores_zero_and_shows_its_hints(exercise):
    report = grade(exercise, ROOT / "exercises" / f"{exercise}.py")
    assert report.score == 0 and not report.full_marks, report.table()
    # nearly every check stops at a hint; a check that reads the source (ex3's compare_digest) says why
    hinted = [c for c in report.checks if c.message.startswith("not implemented: ")]
    assert len(hinted) >= len(report.checks) - 1, failed(report)
    solution = (ROOT / "solutions" / f"{exercise}.py").read_text(encoding="utf-8")
    hints = {stubs.parse_hint(line) for line in solution.splitlines() if stubs.BEGIN in line}
    shown = {c.message.removeprefix("not implemented: ") for c in hinted}
    assert shown <= hints and len(shown) >= MIN_HINTS.get(exercise.split("_")[0], 1), shown


def test_stub_hints_say_what_to_do():
    assert "not implemented: count flips only among samples that were correct" in grade("ex0", STUB).table()


# Each is a mistake students make; each must cost points, in the check that explains it.
WRONG = {
    "divides flips by all samples": (
        "flips.sum() / attackable.sum()", "flips.sum() / len(y_true)", "asr_divides_by_correct_samples"),
    "counts samples misclassified before the attack": (
        "flips = (after != y_true) & attackable", "flips = after != y_true", "asr_ignores_already_misclassified"),
    "robustness_curve drops the last eps": (
        "for e in eps:", "for e in eps[:-1]:", "robustness_curve_has_one_accuracy_per_eps"),
    "privacy_loss skips the highest threshold": (
        "np.unique(score)", "np.unique(score)[:-1]", "privacy_loss_tries_the_highest_threshold"),
    "MRS = ASR - 1": ("return 1.0 - asr", "return asr - 1.0", "mrs_is_one_minus_asr"),
    "PL = FPR - TPR": ("tpr - fpr)", "fpr - tpr)", "privacy_loss_separates_perfectly"),
    "targeted ASR ignores the target mask": (
        "eligible = (before == y_true) & (target != y_true)", "eligible = before == y_true",
        "targeted_asr_skips_own_class_targets"),
    "targeted ASR ignores the correctness mask": (
        "eligible = (before == y_true) & (target != y_true)", "eligible = target != y_true",
        "targeted_asr_skips_already_misclassified"),
    "coverage counts controls, not components": (
        "protected.append(all(controls.values()))", "protected.extend(controls.values())",
        "security_coverage_needs_every_control"),
}


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("mistake", list(WRONG))
def test_wrong_solutions_lose_points(mistake, graded_variants):
    old, new, check = WRONG[mistake]
    report = graded_variants("ex0", {m: (o, n, None) for m, (o, n, _) in WRONG.items()})[mistake]
    assert report.score < report.total, f"{mistake}: still full marks"
    assert check in failed(report), f"{mistake}: {check} passed; failed: {failed(report)}"
    message = failed(report)[check]
    assert message and "not implemented" not in message and "Traceback" not in message


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_hang_fails_its_check_within_the_time_limit(tmp_path):
    start = time.monotonic()
    report = grade("ex0", variant(tmp_path, "    return 1.0 - asr\n", "    while True:\n        pass\n"),
                   timeout=30, check_timeout=1)
    assert time.monotonic() - start < 15
    assert failed(report) == {"mrs_is_one_minus_asr": "took longer than 1 s: an endless loop, or far too slow"}


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_hang_past_the_whole_time_limit_stops_the_grading(tmp_path):
    start = time.monotonic()
    report = grade("ex0", variant(tmp_path, "    return 1.0 - asr\n", "    while True:\n        pass\n"),
                   timeout=3, check_timeout=60)
    assert time.monotonic() - start < 10
    messages = failed(report)
    assert "time limit of 3 s for the whole exercise ran out" in messages["mrs_is_one_minus_asr"]
    assert report.checks[0].passed  # what ran before the hang keeps its points


def test_crash_fails_its_check_and_the_others_still_run(tmp_path):
    report = grade("ex0", variant(tmp_path, "    return 1.0 - asr\n", "    import os\n    os._exit(3)\n"))
    assert failed(report) == {
        "mrs_is_one_minus_asr": "the Python process running your code exited with code 3 while running "
                                "model_robustness_score: does the code call os._exit()?"}
    assert report.score == report.total - 1


def test_crash_on_import_fails_every_check(tmp_path):
    report = grade("ex0", variant(tmp_path, "import numpy as np\n", "import os\nos._exit(4)\n"))
    assert report.score == 0
    assert set(failed(report).values()) == {
        "the Python process running your code exited with code 4 while importing your file: does the code call "
        "os._exit()?"}


def test_syntax_error_fails_every_check(tmp_path):
    path = variant(tmp_path, "def privacy_loss(is_member, member_score):", "def privacy_loss(is_member, member_score)")
    report = grade("ex0", path)
    line = path.read_text().splitlines().index("def privacy_loss(is_member, member_score)") + 1
    assert report.score == 0
    assert set(failed(report).values()) == {f"{NAME}.py has a syntax error on line {line}: expected ':'"}
    assert not (tmp_path / "__pycache__").exists()  # grading leaves the student's folder as it was


def test_missing_file_fails_every_check(tmp_path):
    report = grade("ex0", tmp_path / "nothing.py")
    assert report.score == 0 and len(report.checks) >= 15
    assert set(failed(report).values()) == {f"file not found: {tmp_path / 'nothing.py'}"}


def test_a_missing_file_starts_no_judge_once_the_checks_are_collected(tmp_path, monkeypatch):
    """Its report is every check, each failed, from the exercise's collection (made once per process): a
    class with many missing files, or a second run, starts no judge to say so. Some checks of a missing
    file are still collected by a judge, which orders them as pytest does."""
    from mlsec_lessons.grading import runner

    collect("ex0")
    judged = []
    real = runner.judge
    monkeypatch.setattr(runner, "judge", lambda plan, *args: judged.append(plan) or real(plan, *args))
    missing = tmp_path / "nothing.py"
    absent, again = grade_many("ex0", [missing, missing])
    assert judged == []
    assert [(c.name, c.points) for c in absent.checks] == [(c.name, c.points) for c in again.checks] == collect("ex0")
    assert set(failed(absent).values()) == {f"file not found: {missing}"} and absent.score == 0
    solution, absent = grade_many("ex0", [SOLUTION, missing])
    assert [[str(path) for _, path, _ in plan] for plan in judged] == [[str(SOLUTION)]]  # only the file
    assert solution.full_marks and [c.name for c in solution.checks] == [c.name for c in absent.checks]
    some = ["mrs_is_one_minus_asr", "asr_is_a_rate_and_ignores_order"]
    found, absent = grade_many("ex0", [SOLUTION, missing], checks=[some, some])
    assert [[str(path) for _, path, _ in plan] for plan in judged[1:]] == [[str(SOLUTION), str(missing)]]
    assert sorted(c.name for c in found.checks) == sorted(c.name for c in absent.checks) == sorted(some)
    with pytest.raises(ValueError, match="has no check named 'nope'"):  # names are checked, file or no file
        grade_many("ex0", [missing], checks=[["nope"]])


@pytest.mark.slow  # six (three) gradings: make test runs it, make test-fast does not
def test_one_judge_grades_each_file_as_grade_does(tmp_path):
    """grade_many: every file gets the report grade() gives it, whatever the files before it did."""
    crash = variant(tmp_path, "    return 1.0 - asr\n", "    import os\n    os._exit(3)\n")
    (tmp_path / "syntax").mkdir()
    broken = solution_variant("ex0", "def privacy_loss(is_member, member_score):",
                              "def privacy_loss(is_member, member_score)", tmp_path / "syntax")
    missing = tmp_path / "nothing.py"
    solution, crashed, stub, unparsable, absent, again = grade_many(
        "ex0", [SOLUTION, crash, STUB, broken, missing, SOLUTION])
    assert solution.full_marks and again.full_marks, again.table()
    assert failed(crashed) == {
        "mrs_is_one_minus_asr": "the Python process running your code exited with code 3 while running "
                                "model_robustness_score: does the code call os._exit()?"}
    assert stub.score == 0 and all(m.startswith("not implemented") for m in failed(stub).values())
    assert unparsable.score == 0 and all("has a syntax error" in m for m in failed(unparsable).values())
    assert set(failed(absent).values()) == {f"file not found: {missing}"} and absent.total == solution.total
    assert [r.path for r in (solution, crashed, absent)] == [SOLUTION, crash, missing]


def test_one_judge_runs_each_files_own_checks(tmp_path):
    wrong = variant(tmp_path, "    return 1.0 - asr\n", "    return asr\n")
    some, every = grade_many("ex0", [wrong, wrong], checks=[["asr_is_a_rate_and_ignores_order"], None])
    assert [c.name for c in some.checks] == ["asr_is_a_rate_and_ignores_order"] and some.full_marks
    assert "mrs_is_one_minus_asr" in failed(every)
    assert len(every.checks) == len(grade("ex0", SOLUTION, checks=None).checks)
    with pytest.raises(ValueError, match="checks has 1 entries for 2 files"):
        grade_many("ex0", [SOLUTION, SOLUTION], checks=[None])
    with pytest.raises(ValueError, match="at least one file"):
        grade_many("ex0", [])
    with pytest.raises(ValueError, match="has no check named 'nope'"):
        grade_many("ex0", [SOLUTION], checks=[["nope"]])
    with pytest.raises(TypeError, match="a list of files, not one file"):
        grade_many("ex0", SOLUTION)
    with pytest.raises(TypeError, match="a list of check names, not the string 'example'"):
        grade_many("ex0", [SOLUTION], checks=["example"])
    with pytest.raises(TypeError, match="not the string"):
        grade("ex0", SOLUTION, checks="example")


@pytest.mark.slow  # waits out a time limit
def test_one_judge_a_file_past_its_time_limit_costs_only_its_own_checks(tmp_path):
    hang = variant(tmp_path, "    return 1.0 - asr\n", "    while True:\n        pass\n")
    start = time.monotonic()
    hung, solution = grade_many("ex0", [hang, SOLUTION], timeout=4, check_timeout=60)
    assert time.monotonic() - start < 25
    assert "time limit of 4 s for the whole exercise ran out" in failed(hung)["mrs_is_one_minus_asr"]
    assert hung.checks[0].passed  # what ran before the hang keeps its points
    assert solution.full_marks, solution.table()  # graded in a new judge, with a clock of its own


def test_report_without_checks_is_not_full_marks():
    assert not Report(NAME, SOLUTION).full_marks


def run_mlsec(*args):
    command = [str(MLSEC)] if MLSEC.exists() else [sys.executable, "-m", "mlsec_lessons.cli"]
    return subprocess.run(command + list(args), cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_exit_codes():
    solutions = run_mlsec("grade", "ex0", "--solutions")
    assert solutions.returncode == 0, solutions.stdout + solutions.stderr
    assert "total" in solutions.stdout and "FAIL" not in solutions.stdout
    exercises = run_mlsec("grade", NAME)
    assert exercises.returncode == 1
    assert "not implemented: " in exercises.stdout
    unknown = run_mlsec("grade", "ex99")
    assert unknown.returncode == 2 and f"known exercises: {NAME}" in unknown.stderr


def test_grading_only_some_checks(tmp_path):
    wrong = variant(tmp_path, "    return 1.0 - asr\n", "    return asr\n")
    report = grade("ex0", wrong, checks=["example", "rejects_bad_input"])
    names = [c.name for c in report.checks]  # every case of the two parametrized checks, nothing else
    assert "mrs_is_one_minus_asr" in names and "asr_rejects_bad_input" in names, names
    assert "robustness_curve_matches_reference" not in names and len(names) == 17, names
    assert not report.full_marks and "mrs_is_one_minus_asr" in report.failed()
    with pytest.raises(ValueError, match="has no check named 'no_such_check'; its checks are: matches_reference"):
        grade("ex0", SOLUTION, checks=["no_such_check"])


def test_one_case_of_a_parametrized_check_by_the_name_the_report_gives_it(tmp_path):
    wrong = variant(tmp_path, "    return 1.0 - asr\n", "    return asr\n")
    report = grade("ex0", wrong, checks=["mrs_is_one_minus_asr", "privacy_loss_ignores_the_score_scale"])
    assert [c.name for c in report.checks] == ["mrs_is_one_minus_asr", "privacy_loss_ignores_the_score_scale"]
    assert list(failed(report)) == ["mrs_is_one_minus_asr"]
    with pytest.raises(ValueError, match=r"no check named 'mrs_is_one'; .*\(or one case of example, matches_reference, rejects_bad_input"):
        grade("ex0", wrong, checks=["mrs_is_one"])
    # collect(): the names and points a report gives, without running a check
    assert collect("ex0") == [(c.name, c.points) for c in grade("ex0", SOLUTION).checks]


def test_cli_grades_one_check():
    one = run_mlsec("grade", "ex0", "--solutions", "--check", "example")
    assert one.returncode == 0 and "mrs_is_one_minus_asr" in one.stdout, one.stdout + one.stderr
    assert "rejects_bad_input" not in one.stdout
    bad = run_mlsec("grade", "ex0", "--check", "nope")
    assert bad.returncode == 2 and "its checks are:" in bad.stderr


def test_a_variant_must_edit_one_place(tmp_path):
    with pytest.raises(ValueError, match="not once"):
        solution_variant("ex0", "text that is not in the solution", "x", tmp_path)


@pytest.mark.slow  # a judge per exercise, twice
def test_cli_grades_a_submission_folder(tmp_path, capsys):
    (tmp_path / f"{NAME}.py").write_text(SOLUTION.read_text())
    # the other exercises' files are missing: they score 0, so the run is not at full marks
    assert cli.main(["grade", "--all", "--path", str(tmp_path)]) == (0 if known() == [NAME] else 1)
    out = capsys.readouterr().out
    assert f"summary for {tmp_path}" in out
    full = re.search(rf"^\s+{NAME}\s+(\d+)/(\d+)$", out, re.M)  # the solution at full marks
    assert full and full[1] == full[2] and int(full[2]) > 0, out
    for other in set(known()) - {NAME}:
        assert f"{tmp_path / other}.py" in out and re.search(rf"^\s+{other}\s+0/\d+$", out, re.M)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["grade", "--all", "--path", str(empty)]) == 1
    out = capsys.readouterr().out
    assert "file not found:" in out and f"{empty / NAME}.py" in out
    rows = re.findall(r"^\s+(\S+)\s+(\d+)/(\d+)$", out, re.M)
    assert [r[0] for r in rows] == known() and all(r[1] == "0" for r in rows)
    grand_total = sum(int(r[2]) for r in rows)
    assert out.splitlines()[-1].split() == ["total", f"0/{grand_total}", "(0%)"]


def test_notebook_helpers_never_raise(capsys):
    assert grade_cell("ex99") is None
    assert "could not grade 'ex99': unknown exercise" in capsys.readouterr().out
    stub = load(STUB)
    assert try_it(stub.model_robustness_score, 0.2) is None
    assert capsys.readouterr().out.startswith("not implemented yet: ")
    assert try_it(load(SOLUTION).model_robustness_score, 0.25) == 0.75


def load(path):
    return load_file(path, f"loaded_{path.parent.name}")


@pytest.mark.parametrize("seed", range(20))
def test_solution_agrees_with_the_reference_metrics(seed):
    sol = load(SOLUTION)
    rng = np.random.default_rng(seed)
    n, k = rng.integers(5, 60), rng.integers(2, 6)
    y = rng.integers(k, size=n)
    clean = np.where(rng.random(n) < 0.8, y, rng.integers(k, size=n))
    clean[0] = y[0]  # at least one correct sample, so that the ASR is defined
    adv, target = rng.integers(k, size=n), (y + 1) % k
    probs = rng.dirichlet(np.ones(k), size=n)
    assert sol.attack_success_rate(y, clean, adv) == pytest.approx(metrics.attack_success_rate(y, clean, adv))
    assert sol.attack_success_rate(y, clean, probs) == pytest.approx(metrics.attack_success_rate(y, clean, probs))
    assert sol.targeted_attack_success_rate(y, clean, adv, target) == pytest.approx(
        metrics.targeted_attack_success_rate(y, clean, adv, target))
    asr = rng.random()
    assert sol.model_robustness_score(asr) == pytest.approx(metrics.model_robustness_score(asr))

    member = np.r_[True, False, rng.random(n) < 0.5]
    score = np.round(rng.random(n + 2), 1)
    assert sol.privacy_loss(member, score) == pytest.approx(metrics.privacy_loss(member, score))
    inventory = {f"c{i}": {f"k{j}": bool(rng.random() < 0.7) for j in range(1, 4)} for i in range(int(k))}
    assert sol.security_coverage(inventory) == pytest.approx(metrics.security_coverage(inventory))

    w = rng.normal(size=3)
    x = rng.normal(size=(n, 3))

    def predict(x):
        return (x @ w > 0).astype(int)

    def attack(x, labels, eps):
        return x - eps * np.sign(w) * (2 * labels - 1)[:, None]

    eps = [0, 0.1, 0.5, 1.0]
    got, want = sol.robustness_curve(predict, attack, x, predict(x), eps), metrics.robustness_curve(
        predict, attack, x, predict(x), eps)
    np.testing.assert_allclose(got["eps"], want.eps)  # the exercise returns a dict, the library a RobustnessCurve
    np.testing.assert_allclose(got["accuracy"], want.accuracy)
