"""`mlsec release`: the student copy of the course holds no answers, still starts with `make lab`,
and grades its stubs 0 with a message for each check that needs the reference, never a traceback."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlsec_lessons import cli
from mlsec_lessons.grading import release
from mlsec_lessons.grading.exercises import known

ROOT = Path(__file__).resolve().parents[1]
MLSEC = Path(sys.executable).with_name("mlsec")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "course"
    return out, release.build(out, ROOT)


def files(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_the_release_leaves_out_the_answers(built):
    out, left_out = built
    shipped = files(out)
    assert not (out / "solutions").exists() and not any(n.startswith("solutions/") for n in shipped)
    assert not [n for n in shipped if re.fullmatch(r"tests/(test_(grading.*|stubs|gradescope|release)\.py|cheats/.*)", n)]
    for name in ("solutions/ex0_security_metrics.py", "tests/test_grading.py", "tests/test_stubs.py",
                 "benchmarks/bench_grading.py", "notebooks/12_capstone.ipynb"):  # lesson 12 runs the capstone's
        assert name in left_out and name not in shipped, name
    # nothing left outside the library loads the reference
    for name in shipped:
        if name.endswith((".py", ".ipynb")) and not name.startswith("mlsec_lessons/"):
            assert release.why_left_out(Path(name), out) is None, name
    notes = (out / "RELEASE.md").read_text()
    assert all(f"`{name}`" in notes for name in left_out)


def test_the_release_keeps_everything_else(built):
    out, left_out = built
    shipped = files(out)
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    tracked = {n for n in tracked if (ROOT / n).is_file()}
    hints = {f"exercises/hints/{name}.json" for name in known()}
    assert shipped == (tracked - set(left_out)) | {"RELEASE.md"} | hints
    assert {"Makefile", "README.md", "pyproject.toml", "requirements.lock", "exercises/ex0_security_metrics.py",
            "exercises/ex0_security_metrics.ipynb", "notebooks/01_security_metrics.ipynb",
            "mlsec_lessons/grading/checks/ex0_security_metrics.py"} <= shipped
    assert not any(part in n for n in shipped for part in (".git/", ".venv/", "__pycache__", ".egg-info"))
    readme = (out / "README.md").read_text()
    assert "(notebooks/12_capstone.ipynb)" not in readme and "(in the instructor's copy)" in readme
    for link in re.findall(r"\]\(((?:notebooks|exercises)/[^)]+)\)", readme):
        assert (out / link).exists(), link


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_make_lab_works_in_the_release(built):
    out, _ = built
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    dry = subprocess.run(["make", "-n", "lab"], cwd=out, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "pip install" in dry.stdout and "jupyter lab" in dry.stdout and str(out) in dry.stdout


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_the_stub_scores_zero_in_the_release(built):
    out, _ = built
    done = subprocess.run([str(MLSEC), "grade", "ex0"], cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert re.search(r"^\s+total\s+0/\d+", done.stdout, re.M), done.stdout
    assert "needs the reference solution, which this copy of the course leaves out" in done.stdout
    assert "not implemented: " in done.stdout  # the checks that need no reference still run


def test_the_hints_ship_without_the_solutions(built):
    out, _ = built
    done = subprocess.run([str(MLSEC), "hint", "ex0", "attack_success_rate"], cwd=out, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "hint 2:" in done.stdout, done.stdout + done.stderr
    shipped = (out / "exercises" / "hints" / "ex0_security_metrics.json").read_text()
    solution = (ROOT / "solutions" / "ex0_security_metrics.py").read_text()
    assert "attackable.sum()" in solution and "attackable.sum()" not in shipped  # hints, never the code


def test_cli_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("")
    (tmp_path / "file").write_text("")
    for target, error in [(tmp_path / "full", "is not empty"), (tmp_path / "file", "is a file"),
                          (ROOT / "build" / "release", "is inside the course folder")]:
        assert cli.main(["release", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mlsec release: error: ") and error in err and err.count("\n") == 1, err
    (tmp_path / "empty").mkdir()
    assert cli.main(["release", str(tmp_path / "empty")]) == 0
    assert "left out" in capsys.readouterr().out and (tmp_path / "empty" / "Makefile").exists()


def test_outside_git_the_tree_is_walked_without_environments_or_caches(tmp_path):
    course = tmp_path / "course"
    for name, text in {"exercises/ex9_demo.py": "stub", "solutions/ex9_demo.py": "answer",
                       "mlsec_lessons/grading/exercises.py": "solution_file(name)",  # the library stays
                       "tests/test_demo.py": "x = ROOT / 'solutions' / 'ex9_demo.py'",
                       "tests/test_fine.py": "assert True", "Makefile": "lab:",
                       ".venv/lib/site.py": "", "mlsec_lessons/__pycache__/x.pyc": "", "build/x.html": "",
                       "mlsec_lessons.egg-info/PKG-INFO": ""}.items():
        (course / name).parent.mkdir(parents=True, exist_ok=True)
        (course / name).write_text(text)
    left_out = release.build(tmp_path / "out", course)
    assert files(tmp_path / "out") == {"exercises/ex9_demo.py", "mlsec_lessons/grading/exercises.py",
                                       "tests/test_fine.py", "Makefile", "RELEASE.md"}
    assert left_out == {"solutions/ex9_demo.py": "a reference solution",
                        "tests/test_demo.py": "reads the reference solutions"}
