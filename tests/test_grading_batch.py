"""`mlsec grade --batch`: a class graded folder by folder, in parallel, resumable, with a gradebook
and feedback; bad input is one line and exit 2. Most tests use a fake grader (the batch logic);
two grade ex0 for real."""
import csv
import json
import threading
import time
from pathlib import Path

import pytest

from mlsec_lessons import cli
from mlsec_lessons.grading import batch, grade

ROOT = Path(__file__).resolve().parents[1]
EX0, EX3 = "ex0_security_metrics", "ex3_secure_deployment"
SOLUTION = ROOT / "solutions" / f"{EX0}.py"
STUB = ROOT / "exercises" / f"{EX0}.py"


class FakeGrader:
    """Stands in for the grader: a file's text ``passed=N`` passes its first N of three checks (a
    stub passes none). Records every file graded and how many were graded at once; :meth:`many`
    stands in for :func:`batch.grade_files` (a group's files of one exercise, one after another)."""

    def __init__(self, delay=0.0, error=None):
        self.calls, self.delay, self.error = [], delay, error
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, name, path, sandbox=False, timeout=None):
        with self.lock:
            self.calls.append((Path(path).parent.name, name, sandbox))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            if self.error:
                raise self.error
            text = Path(path).read_text()
            passed = int(text.split("passed=")[1].split()[0]) if "passed=" in text else 0
            checks = [{"name": f"check_{i}", "points": i + 1, "passed": i < passed,
                       "message": "" if i < passed else f"wrong | see\nline {i}"} for i in range(3)]
            return {"exercise": name, "file": str(path), "score": sum(c["points"] for c in checks if c["passed"]),
                    "total": 6, "isolation": "sandbox (fake)" if sandbox else "process (fake)", "note": "",
                    "seconds": 0.1, "checks": checks}
        finally:
            with self.lock:
                self.running -= 1

    def many(self, name, paths, sandbox=False, timeout=None):
        return [self(name, path, sandbox, timeout) for path in paths]

    def students(self):
        return sorted(c[0] for c in self.calls if c[0] != "exercises")  # not the stubs' totals


@pytest.fixture
def fake(monkeypatch):
    grader = FakeGrader()
    monkeypatch.setattr(batch, "grade_files", grader.many)
    return grader


def make_class(root, students):
    """``{"alice": {"ex0_security_metrics.py": "passed=3", ...}}`` as folders below ``root``."""
    for student, files in students.items():
        (root / student).mkdir(parents=True)
        for name, text in files.items():
            (root / student / name).write_text(text)
    return root


@pytest.fixture
def klass(tmp_path):
    return make_class(tmp_path / "class", {
        "alice": {f"{EX0}.py": "passed=3", f"{EX3}.py": "passed=1"},
        "bob": {f"{EX0}.py": "passed=2", "notes.txt": "my notes"},
        "carol": {"readme.md": "nothing handed in"},
    })


def mlsec(capsys, *args):
    """``mlsec ARGS`` in this process: (exit code, stdout, stderr); argparse's exit is a code too."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the class folder
def test_students_exercises_and_stray_files(klass):
    (klass / "roster.csv").write_text("alice,bob\n")
    (klass / ".DS_Store").write_text("")
    (klass / "bob" / "old").mkdir()
    students, names, warnings = batch.find_students(klass)
    assert [s.name for s in students] == ["alice", "bob", "carol"]
    assert names == [EX0, EX3]  # every exercise someone handed in, in course order
    assert sorted(students[0].files) == [EX0, EX3] and students[1].stray == ["notes.txt", "old/"]
    assert any("roster.csv is not a student folder" in w for w in warnings)
    assert any("bob/notes.txt is not an exercise file" in w for w in warnings)
    assert not any("DS_Store" in w for w in warnings)  # hidden entries are not students
    assert batch.find_students(klass, ["ex0"])[1] == [EX0]


@pytest.mark.parametrize("setup, error", [
    (lambda root: root / "nowhere", "nowhere does not exist"),
    (lambda root: (root / "file.txt", (root / "file.txt").write_text(""))[0], "file.txt is not a folder"),
    (lambda root: root, "holds no student folders"),
    (lambda root: make_class(root, {"alice": {"notes.txt": ""}}), "no student folder in .* holds an exercise file"),
])
def test_bad_class_folders_are_one_line_errors(tmp_path, setup, error):
    with pytest.raises(batch.BatchError, match=error) as raised:
        batch.find_students(setup(tmp_path))
    assert "\n" not in str(raised.value)


def test_an_unknown_exercise_is_an_error(klass):
    with pytest.raises(batch.BatchError, match="unknown exercise 'ex9'; known exercises: ex0_security_metrics"):
        batch.find_students(klass, ["ex9"])


# --------------------------------------------------------------------------- grading and its outputs
def test_gradebook_and_feedback(klass, fake):
    summary = batch.grade_class(klass, jobs=2, progress=lambda line: None)
    assert summary.gradebook == klass.with_name("class-grades") / "gradebook.csv"
    assert fake.students() == ["alice", "alice", "bob"] and summary.graded == 3
    table = rows(summary.gradebook)
    assert list(table[0]) == ["student", f"{EX0}_score", f"{EX0}_max", f"{EX3}_score", f"{EX3}_max",
                              "total", "max_total", "isolation", "grader_version"]
    assert [(r["student"], r[f"{EX0}_score"], r[f"{EX3}_score"], r["total"], r["max_total"]) for r in table] == [
        ("alice", "6", "1", "7", "12"), ("bob", "3", "0", "3", "12"), ("carol", "0", "0", "0", "12")]
    assert table[0]["isolation"] == "sandbox (fake)" and table[2]["isolation"] == "not run"
    assert {r["grader_version"] for r in table} == {batch.grader_version()}

    bob = (summary.feedback / "bob.md").read_text()
    assert bob.startswith("# bob: 3/12 points")
    assert f"## {EX0}: 3/6" in bob and "| check_2 | 0/3 | FAIL | wrong \\| see line 2 |" in bob
    assert f"No `{EX3}.py` in your submission: 0 of 6 points." in bob
    assert "## Files the grader ignored" in bob and "- `notes.txt`" in bob
    assert "ignored" not in (summary.feedback / "alice.md").read_text()
    assert sorted(p.name for p in summary.feedback.iterdir()) == ["alice.md", "bob.md", "carol.md"]


def test_a_second_run_grades_only_what_changed(klass, fake, monkeypatch):
    lines = []
    batch.grade_class(klass, progress=lines.append)
    assert len(fake.calls) == 5  # three files, and both stubs for the totals of the files carol and bob lack
    assert sum(line.startswith("[") for line in lines) == 3  # one line per student

    fake.calls.clear()
    summary = batch.grade_class(klass, progress=lines.append)
    assert fake.calls == [] and summary.graded == 0 and summary.reused == 3
    (klass / "bob" / f"{EX0}.py").write_text("passed=3")
    summary = batch.grade_class(klass, progress=lines.append)
    assert fake.students() == ["bob"] and summary.reused == 2
    assert rows(summary.gradebook)[1]["total"] == "6"

    fake.calls.clear()  # another isolation, or another grader: everything again
    batch.grade_class(klass, sandbox=False, progress=lines.append)
    assert fake.students() == ["alice", "alice", "bob"]
    fake.calls.clear()
    monkeypatch.setattr(batch, "grader_version", lambda: "9.9.9+checks-changed")
    batch.grade_class(klass, sandbox=False, progress=lines.append)
    assert len(fake.calls) == 5 and rows(klass.with_name("class-grades") / "gradebook.csv")[0]["grader_version"] \
        == "9.9.9+checks-changed"


def test_students_are_graded_in_parallel(tmp_path, monkeypatch):
    klass = make_class(tmp_path / "class", {f"s{i}": {f"{EX0}.py": "passed=1"} for i in range(6)})
    grader = FakeGrader(delay=0.3)
    monkeypatch.setattr(batch, "grade_files", grader.many)
    start = time.monotonic()
    batch.grade_class(klass, jobs=3, progress=lambda line: None)
    assert grader.most == 3 and time.monotonic() - start < 6 * 0.3


def test_a_groups_files_of_one_exercise_share_a_judge(tmp_path, monkeypatch):
    klass = make_class(tmp_path / "class", {f"s{i}": {f"{EX0}.py": "passed=1", f"{EX3}.py": "passed=2"}
                                            for i in range(5)})
    grader, judges = FakeGrader(), []

    def many(name, paths, sandbox=False, timeout=None):
        judges.append((name, sorted(Path(p).parent.name for p in paths)))
        return grader.many(name, paths, sandbox, timeout)

    monkeypatch.setattr(batch, "grade_files", many)
    summary = batch.grade_class(klass, jobs=1, progress=lambda line: None)
    groups = [(name, students) for name, students in judges if students != ["exercises"]]  # not the stubs' totals
    first, last = [f"s{i}" for i in range(batch.GROUP)], [f"s{i}" for i in range(batch.GROUP, 5)]
    assert groups == [(EX0, first), (EX3, first), (EX0, last), (EX3, last)], groups
    assert summary.graded == 10 and [s for s, _, _ in summary.students] == [f"s{i}" for i in range(5)]


def test_json_and_gradescope_formats(klass, fake, tmp_path):
    out = tmp_path / "out"
    batch.grade_class(klass, fmt="json", output=out / "grades.json", progress=lambda line: None)
    data = json.loads((out / "grades.json").read_text())
    assert [s["student"] for s in data["students"]] == ["alice", "bob", "carol"]
    assert data["students"][1]["stray"] == ["notes.txt"] and data["students"][2]["exercises"][EX0]["file"] is None
    assert (out / "gradebook.csv").exists() and (out / "feedback" / "alice.md").exists()

    batch.grade_class(klass, fmt="gradescope", output=out / "gs.json", progress=lambda line: None)
    results = json.loads((out / "gs.json").read_text())
    assert {s: (r["score"], r["max_score"]) for s, r in results.items()} == {
        "alice": (7, 12), "bob": (3, 12), "carol": (0, 12)}
    assert results["alice"]["tests"][0]["name"] == f"{EX0}: check_0"
    assert len(fake.calls) == 5  # the second run, into the same folder, graded nothing again


def test_cli_batch_uses_the_sandbox_unless_told_not_to(klass, fake, capsys, tmp_path):
    code, out, err = mlsec(capsys, "grade", "--batch", klass, "--jobs", 2)
    assert code == 0 and "3 students, 3 files graded" in out and "gradebook:" in out
    assert {sandbox for _, _, sandbox in fake.calls} == {True}
    assert "warning: bob/notes.txt is not an exercise file; ignored" in err
    assert "[1/3]" in err and "[3/3]" in err
    fake.calls.clear()
    code, out, err = mlsec(capsys, "grade", "--batch", klass, "--no-sandbox", "--exercise", "ex0",
                           "--output", tmp_path / "x" / "book.csv")
    assert code == 0 and {sandbox for _, _, sandbox in fake.calls} == {False}
    assert list(rows(tmp_path / "x" / "book.csv")[0])[1:3] == [f"{EX0}_score", f"{EX0}_max"]


def test_cli_bad_input_is_one_line_and_exit_2(klass, fake, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    for args, error in [
        (["--batch", tmp_path / "nowhere"], "nowhere does not exist"),
        (["--batch", tmp_path / "empty"], "holds no student folders"),
        (["--batch", klass, "--exercise", "ex9"], "unknown exercise 'ex9'"),
        (["--batch", klass, "--jobs", 0], "--jobs must be in [1, inf], got 0"),
        (["--batch", klass, "--output", klass / "grades.csv"], "is inside the class folder"),
        (["--batch", klass, "--format", "json", "--output", tmp_path / "gradebook.csv"], "where the CSV gradebook goes"),
    ]:
        code, out, err = mlsec(capsys, "grade", *args)
        assert code == 2 and err.startswith("mlsec grade: error: ") and error in err, (args, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fake.calls == []
    for args in (["ex0", "--batch", klass], ["--batch", klass, "--format", "text"], ["ex0", "--jobs", 2],
                 ["ex0", "--no-sandbox"], ["--all", "--format", "json"], ["ex0", "--format", "csv"]):
        code, _, err = mlsec(capsys, "grade", *args)
        assert code == 2 and "Traceback" not in err and "mlsec grade: error:" in err, (args, err)


def test_a_grader_that_cannot_run_stops_the_class_in_one_line(klass, monkeypatch, capsys):
    grader = FakeGrader(error=RuntimeError("--sandbox needs bubblewrap, which is not installed: "
                                           "`sudo apt-get install bubblewrap`"))
    monkeypatch.setattr(batch, "grade_files", grader.many)
    code, out, err = mlsec(capsys, "grade", "--batch", klass)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("mlsec grade: error: --sandbox needs bubblewrap") and "Traceback" not in err


# --------------------------------------------------------------------------- the real grader
@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_a_class_graded_for_real(tmp_path, capsys):
    klass = make_class(tmp_path / "class", {"alice": {f"{EX0}.py": SOLUTION.read_text()},
                                            "bob": {f"{EX0}.py": STUB.read_text()},
                                            "carol": {"ex0.py": SOLUTION.read_text()}})  # misnamed: not graded
    reference = grade("ex0", SOLUTION)
    code, out, err = mlsec(capsys, "grade", "--batch", klass, "--no-sandbox", "--jobs", 2)
    assert code == 0 and "2 files graded" in out, out + err
    table = {r["student"]: r for r in rows(tmp_path / "class-grades" / "gradebook.csv")}
    total = str(reference.total)
    assert [table[s][f"{EX0}_score"] for s in ("alice", "bob", "carol")] == [total, "0", "0"]
    assert {table[s][f"{EX0}_max"] for s in table} == {total}
    assert table["alice"]["isolation"] == getattr(reference, "isolation", "process")
    carol = (tmp_path / "class-grades" / "feedback" / "carol.md").read_text()
    assert f"No `{EX0}.py` in your submission" in carol and "- `ex0.py`" in carol
    assert "not implemented: " in (tmp_path / "class-grades" / "feedback" / "bob.md").read_text()

    code, out, err = mlsec(capsys, "grade", "--batch", klass, "--no-sandbox")
    assert code == 0 and "0 files graded, 2 unchanged" in out


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_a_class_graded_in_the_sandbox(tmp_path, capsys):
    if not batch.has_sandbox():
        pytest.skip("this grader has no sandbox")
    klass = make_class(tmp_path / "class", {"alice": {f"{EX0}.py": SOLUTION.read_text()}})
    code, out, err = mlsec(capsys, "grade", "--batch", klass)
    if code == 2 and "sandbox" in err:
        pytest.skip(f"no sandbox on this machine: {err.strip()}")
    assert code == 0, err
    row = rows(tmp_path / "class-grades" / "gradebook.csv")[0]
    assert row[f"{EX0}_score"] == row[f"{EX0}_max"] and row["isolation"].startswith("sandbox")
