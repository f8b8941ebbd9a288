"""Gradescope: the results format, `mlsec grade --format gradescope|json`, and the autograder bundle,
unpacked into a temporary root and run against a submission as Gradescope would."""
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlsec_lessons import cli
from mlsec_lessons.grading import batch, gradescope
from mlsec_lessons.grading.report import CheckResult, Report

ROOT = Path(__file__).resolve().parents[1]
NAME = "ex0_security_metrics"
SOLUTION = ROOT / "solutions" / f"{NAME}.py"
STUB = ROOT / "exercises" / f"{NAME}.py"
MLSEC = Path(sys.executable).with_name("mlsec")


def report(exercise=NAME, isolation=""):
    return Report(exercise, Path(f"{exercise}.py"), checks=[CheckResult("asr", 2, True),
                                                            CheckResult("mrs", 1, False, "1 - asr, please")],
                  isolation=isolation)


def test_results_follow_gradescopes_format():
    graded = report(isolation="sandbox (test)")
    results = gradescope.results_json(graded, 1.234)
    assert set(results) == {"score", "max_score", "execution_time", "output", "visibility", "tests"}
    assert (results["score"], results["max_score"], results["execution_time"]) == (2, 3, 1.2)
    assert results["visibility"] == "visible" and results["output"] == graded.table()
    assert "sandbox (test)" in results["output"]
    assert results["tests"] == [
        {"name": "asr", "score": 2, "max_score": 2, "status": "passed", "output": "", "visibility": "visible"},
        {"name": "mrs", "score": 0, "max_score": 1, "status": "failed", "output": "1 - asr, please",
         "visibility": "visible"}]
    both = gradescope.results_json([report(), report("ex1_adversarial_defense")], 2, visibility="after_published")
    assert (both["score"], both["max_score"]) == (4, 6) and both["tests"][2]["name"] == "ex1_adversarial_defense: asr"
    assert {t["visibility"] for t in both["tests"]} == {"after_published"}
    json.dumps(both)


def test_a_report_survives_the_trip_through_plain_data():
    original = report(isolation="sandbox (test)")
    again = batch.as_report(json.loads(json.dumps(batch.as_dict(original, 1.0))))
    assert (again.score, again.total, again.isolation, again.failed()) == (2, 3, "sandbox (test)", {"mrs": "1 - asr, please"})


def test_cli_writes_gradescope_and_json_results(tmp_path, capsys):
    out = tmp_path / "results" / "results.json"
    assert cli.main(["grade", "ex0", "--path", str(SOLUTION), "--format", "gradescope", "--output", str(out)]) == 0
    assert "total" in capsys.readouterr().out  # the table still goes to the log
    results = json.loads(out.read_text())
    assert results["score"] == results["max_score"] > 0 and results["execution_time"] > 0
    assert {t["status"] for t in results["tests"]} == {"passed"}

    assert cli.main(["grade", "ex0", "--path", str(STUB), "--format", "json"]) == 1
    plain = json.loads(capsys.readouterr().out)
    assert plain["exercise"] == NAME and plain["score"] == 0 and plain["total"] == results["max_score"]
    assert plain["grader_version"] == batch.grader_version() and plain["isolation"]
    assert all(c["message"] for c in plain["checks"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return gradescope.bundle("ex0", tmp_path_factory.mktemp("zip") / "autograder.zip")


def test_the_bundle_holds_the_scripts_and_the_course_source(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        run = zf.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "pyproject.toml", "requirements.lock", "README.md",
            f"solutions/{NAME}.py", f"exercises/{NAME}.py", "mlsec_lessons/cli.py",
            f"mlsec_lessons/grading/checks/{NAME}.py"} <= names
    tracked = subprocess.run(["git", "ls-files", "mlsec_lessons"], cwd=ROOT, capture_output=True, text=True).stdout
    assert set(tracked.split()) <= names  # the whole library
    for junk in (".venv/", ".git/", "__pycache__/", ".egg-info/", ".pyc", "tests/", "notebooks/"):
        assert not any(junk in n for n in names), junk
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert "pip install --quiet -c requirements.lock ." in setup and "python3.11" in setup
    assert f"grade {NAME} --path" in run and "--format gradescope" in run and "--sandbox" not in run
    assert "AUTOGRADER_ROOT" in run and "MLSEC" in run


def run_autograder(bundle, root, files):
    """Unpack ``bundle`` into ``root/source`` as Gradescope does, put ``files`` in ``root/submission``,
    run ``run_autograder`` with this environment's mlsec, and return results.json."""
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    for name, text in files.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_text(text)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MLSEC": str(MLSEC)}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((root / "results" / "results.json").read_text())


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_the_bundle_grades_a_submission(bundle, tmp_path):
    results = run_autograder(bundle, tmp_path, {f"{NAME}.py": SOLUTION.read_text()})
    assert results["score"] == results["max_score"] > 0, results["output"]
    assert len(results["tests"]) > 10 and {t["status"] for t in results["tests"]} == {"passed"}


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_the_bundle_finds_a_misnamed_file_or_says_what_is_missing(bundle, tmp_path):
    results = run_autograder(bundle, tmp_path / "renamed", {"upload/my_ex0.py": STUB.read_text()})
    assert results["score"] == 0 and results["max_score"] > 0 and "not implemented" in results["tests"][0]["output"]
    results = run_autograder(bundle, tmp_path / "nothing", {"notes.txt": "no code"})
    assert results["score"] == 0 and f"no {NAME}.py in the submission" in results["output"]


def test_cli_builds_the_bundle_and_refuses_bad_input(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ag.zip"
    assert cli.main(["gradescope", "ex0", "--output", str(out), "--sandbox"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert "--sandbox" in zf.read("run_autograder").decode() and "bubblewrap" in zf.read("setup.sh").decode()
    assert cli.main(["gradescope", "ex9", "--output", str(out)]) == 2
    assert capsys.readouterr().err.startswith("mlsec gradescope: error: unknown exercise 'ex9'")
    (tmp_path / "release" / "exercises").mkdir(parents=True)  # a copy of the course without solutions/
    monkeypatch.chdir(tmp_path / "release")
    assert cli.main(["gradescope", "ex0", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no solutions/ex0_security_metrics.py" in err and err.count("\n") == 1


def test_a_report_is_a_frame_of_frozen_checks():
    import dataclasses

    graded = report()
    frame = graded.to_frame()
    assert list(frame.columns) == ["name", "points", "earned", "passed", "message"]
    assert frame["earned"].tolist() == [2, 0] and frame["message"].tolist() == ["", "1 - asr, please"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graded.checks[0].passed = True
