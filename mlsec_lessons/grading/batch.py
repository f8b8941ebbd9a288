"""Grade a class: one folder per student, several students at a time, resumable.

Students are graded in small groups (``GROUP``), ``jobs`` groups at a time: a group's files of one
exercise share a judge (:func:`mlsec_lessons.grading.grade_many`), so TensorFlow and the checks
load once per group, while each file still runs in its own worker, with its own limits.

The class folder holds one folder per student, named by the student's id, and each holds the
student's exercise files, named like the stubs::

    submissions/
        alice/ex0_security_metrics.py
        alice/ex1_adversarial_defense.py
        bob/ex0_security_metrics.py

:func:`grade_class` grades every exercise file it finds (or the exercises it is given). An
exercise that a student did not hand in scores 0 of its total, which comes from grading the
stub, never the student's code. Anything else in a student's folder is ignored, with a warning,
and listed in the student's feedback.

It writes, by default to ``<class folder>-grades/`` beside the class folder:

* ``gradebook.csv``: ``student``, ``<ex>_score`` and ``<ex>_max`` per exercise, ``total``,
  ``max_total``, ``isolation`` and ``grader_version``;
* ``feedback/<student>.md``: each exercise's checks, with the reason for each failure;
* ``.mlsec-grades.json``: what is graded already. A grade is reused while the student's file
  (its SHA-256), the grader (:func:`grader_version`) and the isolation asked for are the same,
  so a second run grades only new and changed files, and an interrupted run goes on where it
  stopped.

Examples
--------
>>> summary = grade_class("submissions", jobs=4)  # doctest: +SKIP
>>> summary.gradebook  # doctest: +SKIP
PosixPath('submissions-grades/gradebook.csv')
"""
import csv
import hashlib
import inspect
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import mlsec_lessons
from mlsec_lessons import grading

from .. import course
from ..errors import InvalidParameterError, MLSecError, ParameterTypeError
from ..validation import check_int
from . import exercises, gradescope
from .report import CheckResult, Report

STATE_NAME = ".mlsec-grades.json"
FORMATS = ("csv", "json", "gradescope")
# modules of the grading package that never change a verdict: editing them keeps the grades
TOOLING = {"batch.py", "gradescope.py", "release.py", "notebook.py"}
GROUP = 4  # students graded together: one judge per exercise grades their files (grade_many)


class BatchError(MLSecError):
    """Input the batch cannot grade (a missing or empty class folder, an unknown exercise), or a
    grader that cannot run (no sandbox): one line that says what is wrong."""


@dataclass
class Student:
    """A student's folder: the exercise files in it, and the entries the grader ignores."""

    name: str
    folder: Path
    files: dict = field(default_factory=dict)  # exercise name -> Path
    stray: list = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    """What :func:`grade_class` did, and where it wrote the results."""

    students: list  # [(student name, {exercise: result dict}, stray names)], sorted by name
    exercises: list
    gradebook: Path
    output: Path
    feedback: Path
    graded: int = 0  # exercise files graded in this run
    reused: int = 0  # unchanged since an earlier run
    warnings: list = field(default_factory=list)

    def to_frame(self):
        """The gradebook as a table: a row per student, each exercise's score and the total."""
        import pandas as pd

        rows = [{"student": name, **{n: results[n]["score"] for n in self.exercises},
                 "total": sum(r["score"] for r in results.values()),
                 "max_total": sum(r["total"] for r in results.values())} for name, results, _ in self.students]
        return pd.DataFrame(rows, columns=["student", *self.exercises, "total", "max_total"])


def find_students(folder, names=None):
    """The students in a class folder, the exercises to grade, and warnings about stray entries.

    Parameters
    ----------
    folder : str or Path
        The class folder, one folder per student.
    names : list of str, optional
        The exercises to grade (``"ex0"`` or full names). Default: every exercise of which some
        student has a file.

    Returns
    -------
    students : list of Student
    names : list of str
        Full exercise names, in course order.
    warnings : list of str

    Raises
    ------
    BatchError
        When the folder is missing or holds no student folders, or for an unknown exercise.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchError(f"{folder} {'is not a folder' if folder.exists() else 'does not exist'}")
    known = exercises.known()
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    warnings = [f"{folder / p.name} is not a student folder; ignored" for p in entries if not p.is_dir()]
    students = [_student(p, known) for p in entries if p.is_dir()]
    if not students:
        raise BatchError(f"{folder} holds no student folders: it needs one folder per student, "
                         f"named by the student's id, with files such as {known[0]}.py")
    for s in students:
        warnings += [f"{s.name}/{name} is not an exercise file; ignored" for name in s.stray]
    try:
        chosen = {exercises.resolve(n) for n in names} if names else {e for s in students for e in s.files}
    except ValueError as e:
        raise BatchError(str(e)) from None
    if not chosen:
        raise BatchError(f"no student folder in {folder} holds an exercise file ({', '.join(f'{n}.py' for n in known)})")
    return students, [n for n in known if n in chosen], warnings


def _student(folder, known):
    student = Student(folder.name, folder)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix == ".py" and path.stem in known:
            student.files[path.stem] = path
        else:
            student.stray.append(path.name + ("/" if path.is_dir() else ""))
    return student


def grader_version():
    """``<package version>+<hash>``: the hash covers the checks, the grader and the reference
    solutions, so that any change to what decides a grade makes :func:`grade_class` grade again.

    Examples
    --------
    >>> grader_version().startswith(mlsec_lessons.__version__ + "+")
    True
    """
    package = Path(__file__).parent
    digest = hashlib.sha256()
    files = [p for p in sorted(package.rglob("*.py")) if p.name not in TOOLING or p.parent != package]
    files += sorted((course.repo_root() / "solutions").glob("*.py"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{mlsec_lessons.__version__}+{digest.hexdigest()[:10]}"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def grade_file(name, path, sandbox=False, timeout=None):
    """Grade one file (:func:`grade_files`); return :func:`as_dict` of its report."""
    return grade_files(name, [path], sandbox, timeout)[0]


def grade_files(name, paths, sandbox=False, timeout=None):
    """Grade files of one exercise with one judge (:func:`mlsec_lessons.grading.grade_many`: each
    file its own worker, session and time limit); return :func:`as_dict` of each report, in order,
    with an equal share of the judge's seconds each.

    ``sandbox`` goes to the grader only when it has that option; otherwise the report says
    ``isolation: process``, and so does the gradebook.
    """
    options = {"sandbox": sandbox} if has_sandbox() else {}
    start = time.monotonic()
    reports = grading.grade_many(name, list(paths), timeout=timeout, **options)
    share = (time.monotonic() - start) / len(reports)
    return [as_dict(report, share) for report in reports]


def has_sandbox():
    """Whether this version of the grader takes ``sandbox=``."""
    return "sandbox" in inspect.signature(grading.grade).parameters


def as_dict(report, seconds=None):
    """A report as plain data (for JSON): exercise, file, score, total, isolation, note, checks."""
    return {"exercise": report.exercise, "file": str(report.path), "score": report.score, "total": report.total,
            "isolation": getattr(report, "isolation", "") or "process", "note": report.note,
            "seconds": None if seconds is None else round(seconds, 2),
            "checks": [{"name": c.name, "points": c.points, "passed": c.passed, "message": c.message}
                       for c in report.checks]}


def as_report(result):
    """The :class:`Report` that :func:`as_dict` came from (for Gradescope's format)."""
    return Report(result["exercise"], Path(result["file"] or f"{result['exercise']}.py"), note=result["note"],
                  checks=[CheckResult(c["name"], c["points"], c["passed"], c["message"]) for c in result["checks"]],
                  isolation=result["isolation"])


def missing(name, totals):
    """The result of an exercise a student did not hand in: every check failed, 0 of the total."""
    checks = [{"name": c, "points": p, "passed": False, "message": f"no {name}.py in the submission"}
              for c, p in totals]
    total = sum(p for _, p in totals)
    return {"exercise": name, "file": None, "score": 0, "total": total, "isolation": "not run",
            "note": f"no {name}.py in the submission: 0 of {total} points", "seconds": None, "checks": checks}


def missing_report(name, path, **options):
    """The :class:`Report` of a file that is not there: the checks of ``name``, each failed with
    ``file not found``, 0 of the total. The grader only collects the checks and their points (no
    check runs); ``options`` go to it.
    """
    return grading.grade(name, path, **options)


def grade_class(folder, names=None, jobs=1, output=None, fmt="csv", sandbox=True, timeout=None, progress=None):
    """Grade every student's folder in ``folder``; write the gradebook and the feedback files.

    Parameters
    ----------
    folder : str or Path
        The class folder: one folder per student, named by the student's id.
    names : list of str, optional
        The exercises to grade. Default: every exercise some student handed in.
    jobs : int, default=1
        Gradings at the same time. Each grades a group of up to ``GROUP`` students, one judge per
        exercise for the group's files (every file still in its own worker, with its own limits).
    output : str or Path, optional
        The gradebook (``fmt="csv"``) or the JSON file (``"json"``, ``"gradescope"``); the CSV
        gradebook (``gradebook.csv``), ``feedback/`` and the state file go in the same folder.
        Default: ``<folder>-grades/gradebook.csv`` (or ``grades.json``, ``gradescope.json``).
    fmt : {"csv", "json", "gradescope"}
        ``"json"``: every result with its checks; ``"gradescope"``: ``{student: Gradescope results}``.
    sandbox : bool, default=True
        Grade with ``sandbox=True``. A grader without a sandbox raises, and so does this.
    timeout : float, optional
        Seconds per exercise (default: each exercise's own limit).
    progress : callable, optional
        Called with one line per graded student. Default: print it to stderr.

    Returns
    -------
    Summary

    Raises
    ------
    BatchError
        For bad input (see :func:`find_students`), a bad ``output`` or ``jobs``, or a grade that
        cannot run (no sandbox); the message is one line.
    """
    if fmt not in FORMATS:
        raise BatchError(f"unknown format {fmt!r}; the batch writes {', '.join(FORMATS)}")
    try:
        jobs = check_int(jobs, "jobs", min_value=1)
    except (InvalidParameterError, ParameterTypeError) as e:  # the command line's --jobs: one line
        raise BatchError(f"--{e}") from None
    students, names, warnings = find_students(folder, names)
    output, gradebook = _outputs(Path(folder), output, fmt)
    feedback = gradebook.parent / "feedback"
    feedback.mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    if sandbox and not has_sandbox():
        warnings.append("this grader has no sandbox: student code runs in a separate process only, "
                        "and the gradebook says so (isolation: process)")
    for line in warnings:
        progress(f"warning: {line}")

    state_file = gradebook.parent / STATE_NAME
    state = _load_state(state_file)
    version = grader_version()
    totals = {n: _totals(n, state, version, sandbox) for n in names if any(n not in s.files for s in students)}
    _save_state(state_file, state)

    stop = threading.Event()
    done, graded, reused = {}, 0, 0
    size = max(1, min(GROUP, -(-len(students) // jobs)))  # every job busy, and a group's judges shared
    groups = [students[i:i + size] for i in range(0, len(students), size)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_grade_group, g, names, totals, state["grades"], version, sandbox, timeout, stop)
                   for g in groups]
        try:
            for future in as_completed(futures):
                for student, results, fresh, seconds in future.result():
                    state["grades"].update(fresh)
                    graded += len(fresh)
                    reused += sum(r["file"] is not None for r in results.values()) - len(fresh)
                    done[student.name] = (student.name, results, student.stray)
                    _write_feedback(feedback / f"{student.name}.md", student, results, version)
                    progress(_progress_line(len(done), len(students), student.name, results, len(fresh), seconds))
                _save_state(state_file, state)  # after each group: an interrupted run resumes here
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise
    summary = Summary([done[name] for name in sorted(done)], names, gradebook, output, feedback, graded, reused,
                      warnings)
    _write_gradebook(gradebook, summary.students, names, version)
    if fmt == "json":
        _write_json(output, {"grader_version": version, "exercises": names, "students": [
            {"student": s, "stray": stray, "exercises": results} for s, results, stray in summary.students]})
    elif fmt == "gradescope":
        _write_json(output, {s: gradescope.results_json([as_report(r) for r in results.values()],
                                                        sum(r["seconds"] or 0 for r in results.values()))
                             for s, results, _ in summary.students})
    return summary


def _outputs(folder, output, fmt):
    """(the file of ``fmt``, the CSV gradebook): the same file for csv, ``gradebook.csv`` beside it otherwise."""
    default = {"csv": "gradebook.csv", "json": "grades.json", "gradescope": "gradescope.json"}[fmt]
    output = Path(output) if output else folder.resolve().with_name(f"{folder.resolve().name}-grades") / default
    if output.is_dir():
        raise BatchError(f"--output {output} is a folder; name the file to write")
    gradebook = output if fmt == "csv" else output.with_name("gradebook.csv")
    if fmt != "csv" and gradebook == output:
        raise BatchError(f"--output {output} is where the CSV gradebook goes; give the {fmt} file another name")
    try:
        output.resolve().relative_to(folder.resolve())
    except ValueError:
        return output, gradebook
    raise BatchError(f"--output {output} is inside the class folder {folder}; write the grades elsewhere")


def _totals(name, state, version, sandbox):
    """``[(check, points)]`` of an exercise, from grading its stub (the course's own code, so no
    student's; in the sandbox when the batch uses it, so that a missing sandbox stops it at once)."""
    cached = state["totals"].get(name)
    if cached and cached["grader_version"] == version:
        return [tuple(c) for c in cached["checks"]]
    stub = course.repo_root() / "exercises" / f"{name}.py"
    try:
        result = grade_file(name, stub, sandbox)
    except Exception as e:  # noqa: BLE001 (any failure of the grader itself is one line, not a traceback)
        raise BatchError(f"{e} (grading the stub of {name}, for its points)") from None
    checks = [(c["name"], c["points"]) for c in result["checks"]]
    if not checks:
        raise BatchError(f"could not count the points of {name}: {result['note'] or 'the grader found no checks'}")
    state["totals"][name] = {"grader_version": version, "checks": checks}
    return checks


def _grade_group(students, names, totals, cache, version, sandbox, timeout, stop):
    """Grade a group of students' files, one judge per exercise, reusing unchanged grades; return
    [(student, results, fresh, seconds)], in the group's order."""
    results, fresh = ({s.name: {} for s in students} for _ in range(2))
    seconds = {s.name: 0.0 for s in students}
    for name in names:
        if stop.is_set():
            break
        todo = []
        for student in students:
            path = student.files.get(name)
            if path is None:
                results[student.name][name] = missing(name, totals[name])
                continue
            key, digest = f"{student.name}/{name}", sha256(path)
            entry = cache.get(key)
            if entry and (entry["sha256"], entry["grader_version"], entry["sandbox"]) == (digest, version, sandbox):
                results[student.name][name] = entry["result"]
                continue
            todo.append((student, path, key, digest))
        if not todo:
            continue
        try:
            graded = grade_files(name, [path for _, path, _, _ in todo], sandbox, timeout)
        except Exception as e:  # noqa: BLE001 (e.g. no sandbox on this machine: stop the class, in one line)
            stop.set()
            raise BatchError(f"{e} (grading {', '.join(f'{key}.py' for _, _, key, _ in todo)})") from None
        for (student, path, key, digest), result in zip(todo, graded):
            result["file"] = path.name
            results[student.name][name] = result
            seconds[student.name] += result["seconds"] or 0.0
            fresh[student.name][key] = {"sha256": digest, "grader_version": version, "sandbox": sandbox,
                                        "result": result}
    return [(s, results[s.name], fresh[s.name], seconds[s.name]) for s in students]


def _progress_line(i, n, student, results, fresh, seconds):
    parts = [f"{name.split('_')[0]} {r['score']}/{r['total']}" + (" (missing)" if r["file"] is None else "")
             for name, r in results.items()]
    score, total = sum(r["score"] for r in results.values()), sum(r["total"] for r in results.values())
    reused = len([r for r in results.values() if r["file"] is not None]) - fresh
    note = f", {reused} unchanged" if reused else ""
    return f"[{i:>{len(str(n))}}/{n}] {student}: {', '.join(parts)}; total {score}/{total} ({seconds:.1f} s{note})"


def _isolation(results):
    levels = sorted({r["isolation"] for r in results.values() if r["file"] is not None})
    return "; ".join(levels) or "not run"


def _write_gradebook(path, students, names, version):
    columns = ["student"] + [f"{n}_{x}" for n in names for x in ("score", "max")]
    columns += ["total", "max_total", "isolation", "grader_version"]
    with _atomic(path) as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for student, results, _ in students:
            row = [student] + [results[n][x] for n in names for x in ("score", "total")]
            row += [sum(r["score"] for r in results.values()), sum(r["total"] for r in results.values()),
                    _isolation(results), version]
            writer.writerow(row)


def _write_feedback(path, student, results, version):
    score, total = sum(r["score"] for r in results.values()), sum(r["total"] for r in results.values())
    lines = [f"# {student.name}: {score}/{total} points", "",
             f"Graded by the mlsec-lessons grader {version} (isolation: {_isolation(results)}).", "",
             "| exercise | points |", "|---|---:|"]
    lines += [f"| {name} | {r['score']}/{r['total']} |" for name, r in results.items()]
    lines += [f"| **total** | **{score}/{total}** |", ""]
    for name, r in results.items():
        lines += [f"## {name}: {r['score']}/{r['total']}", ""]
        if r["file"] is None:
            lines += [f"No `{name}.py` in your submission: 0 of {r['total']} points.", ""]
            continue
        lines += [f"File `{r['file']}`, isolation: {r['isolation']}.", ""]
        if r["note"]:
            lines += [f"**{_cell(r['note'])}**", ""]
        lines += ["| check | points | result | why it failed |", "|---|---:|---|---|"]
        lines += [f"| {_cell(c['name'])} | {c['points'] if c['passed'] else 0}/{c['points']} | "
                  f"{'pass' if c['passed'] else 'FAIL'} | {_cell(c['message'])} |" for c in r["checks"]]
        lines.append("")
    if student.stray:
        lines += ["## Files the grader ignored", "",
                  "Only files named like the exercises (`ex0_security_metrics.py`, ...) are graded.", ""]
        lines += [f"- `{name}`" for name in student.stray] + [""]
    with _atomic(path) as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


def _cell(text):
    """Text that stays inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _write_json(path, data):
    with _atomic(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def _load_state(path):
    empty = {"format": 1, "grades": {}, "totals": {}}
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except (OSError, ValueError) as e:
        raise BatchError(f"cannot read {path} ({e}); delete it to grade everything again") from None
    if not isinstance(state, dict) or state.get("format") != 1:
        raise BatchError(f"{path} is not a state file of this grader; delete it to grade everything again")
    return state


def _save_state(path, state):
    _write_json(path, state)


class _atomic:
    """Write a text file through a temporary one, so that an interrupted run never leaves half a file."""

    def __init__(self, path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, kind, *_):
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
