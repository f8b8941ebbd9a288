"""Grade a file: run an exercise's checks under pytest, in a subprocess with a time limit.

The subprocess is what makes the grader safe: an endless loop, ``os._exit`` or a segfault in
the code under test ends that process, not the grader. The plugin's JSON record says which
check was running, so the grader marks that check failed and runs the remaining ones again.
"""
import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import exercises
from .report import CheckResult, Report

# SIGALRM fails the one check and goes on; without it (Windows), pytest-timeout's thread ends
# the process, and the grader goes on with the next check in a new one
TIMEOUT_METHOD = "signal" if hasattr(signal, "SIGALRM") else "thread"


DEFAULT_LIMITS = {"TIME_LIMIT": 60, "CHECK_TIME_LIMIT": 10}


def limits(name):
    """The time limits an exercise's checks module declares (``TIME_LIMIT = 120`` for the whole
    run, ``CHECK_TIME_LIMIT = 30`` for one check), else the defaults. Read without importing it.

    Examples
    --------
    >>> limits("ex0_security_metrics")
    {'TIME_LIMIT': 60, 'CHECK_TIME_LIMIT': 10}
    """
    found = dict(DEFAULT_LIMITS)
    tree = ast.parse(exercises.checks_file(name).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in found:
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def check_functions(name):
    """The names of an exercise's check functions (``test_x`` is check ``x``), read without importing them.

    Examples
    --------
    >>> check_functions("ex0_security_metrics")[:2]
    ['matches_reference', 'robustness_curve_matches_reference']
    """
    tree = ast.parse(exercises.checks_file(name).read_text(encoding="utf-8"))
    return [node.name.removeprefix("test_") for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


def grade(exercise, path=None, solutions=False, timeout=None, check_timeout=None, checks=None):
    """Run the checks of ``exercise`` on a file and return a :class:`Report`.

    Parameters
    ----------
    exercise : str
        ``"ex0"`` or ``"ex0_security_metrics"``.
    path : str or Path, optional
        The file to grade. Default: ``exercises/<name>.py`` in the repository.
    solutions : bool, default=False
        Grade ``solutions/<name>.py`` instead (the reference must score full marks).
    timeout : float, optional
        Seconds for the whole run; checks still running then fail. Default: the exercise's
        ``TIME_LIMIT`` (see :func:`limits`).
    check_timeout : float, optional
        Seconds for one check. Default: the exercise's ``CHECK_TIME_LIMIT``.
    checks : list of str, optional
        Run only these check functions (``"pgd_step_increases_the_loss"``; every case of a
        parametrized one), to iterate on one part of an exercise. Default: all of them.

    Raises
    ------
    ValueError
        For an unknown exercise or check name, or when both ``path`` and ``solutions`` are given.

    Examples
    --------
    >>> report = grade("ex0", solutions=True)  # doctest: +SKIP
    >>> report.score == report.total  # doctest: +SKIP
    True
    """
    name = exercises.resolve(exercise)
    if path is not None and solutions:
        raise ValueError(f"give path or solutions=True, not both (path={str(path)!r})")
    if path is None:
        path = exercises.repo_root() / ("solutions" if solutions else "exercises") / f"{name}.py"
    path = Path(path).absolute()
    declared = limits(name)
    timeout = declared["TIME_LIMIT"] if timeout is None else timeout
    check_timeout = declared["CHECK_TIME_LIMIT"] if check_timeout is None else check_timeout
    todo = [str(exercises.checks_file(name))]
    if checks is not None:
        known = check_functions(name)
        unknown = [c for c in checks if c not in known]
        if unknown or not checks:
            raise ValueError(f"{name} has no check named {', '.join(map(repr, unknown)) or '(none given)'}; "
                             f"its checks are: {', '.join(known)}")
        todo = [f"{todo[0]}::test_{c}" for c in checks]
    found, results, note = run_checks(name, path, timeout, check_timeout, todo)
    report = Report(name, path, note=note)
    for check in found:
        passed, message = results[check["nodeid"]]
        report.checks.append(CheckResult(check["name"], check["points"], passed, message))
    return report


def run_checks(name, path, timeout, check_timeout, todo):
    """Run the checks in ``todo`` (pytest node ids) until every one has an outcome;
    return (checks, {nodeid: (passed, message)}, note)."""
    deadline = time.monotonic() + timeout
    checks, results, stop = [], {}, ""
    with tempfile.TemporaryDirectory(prefix="mlsec-grade-") as tmp:
        while todo:
            left = deadline - time.monotonic()
            if left <= 0:
                stop = f"not run: the time limit of {timeout:g} s for the whole exercise ran out"
                break
            state, returncode, output = _pytest(todo, path, exercises.solution_file(name), Path(tmp),
                                                left, check_timeout)
            if state is None or not state["checks"]:  # pytest itself failed: a problem of the grader
                stop = f"the grader could not run the checks for {name}: {_tail(output)}"
                break
            checks = checks or state["checks"]  # the first run collects every check
            results.update({k: (r["passed"], r["message"]) for k, r in state["results"].items()})
            if state["finished"]:
                break
            why = _stopped(returncode, timeout)
            if state["loading"] or state["running"] is None:  # every check would die the same way
                stop = f"importing {path.name}: {why}" if state["loading"] else why
                break
            results.setdefault(state["running"], (False, why))
            todo = [str(exercises.CHECKS_DIR / c["nodeid"]) for c in checks if c["nodeid"] not in results]
    if not checks:
        return [], {}, stop
    return checks, {c["nodeid"]: results.get(c["nodeid"], (False, stop)) for c in checks}, ""


def _pytest(args, impl, ref, tmp, seconds, check_timeout):
    """One pytest process; returns (the plugin's record or None, return code or None on timeout, output)."""
    record = tmp / "record.json"
    record.unlink(missing_ok=True)
    ini = tmp / "pytest.ini"
    ini.write_text("[pytest]\n")
    command = [sys.executable, "-m", "pytest", *args, "-q",
               # the course's own pytest settings, conftest.py and plugins stay out of grading
               "-c", str(ini), "--rootdir", str(exercises.CHECKS_DIR), "--noconftest", "-p", "no:cacheprovider",
               "--import-mode=importlib", "-p", "pytest_timeout", "-p", "mlsec_lessons.grading.plugin",
               f"--timeout={check_timeout}", f"--timeout-method={TIMEOUT_METHOD}",
               f"--impl={impl}", f"--ref={ref}", f"--grade-json={record}"]
    # PYTHONDONTWRITEBYTECODE: leave no __pycache__ in a student's folder
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=hasattr(os, "killpg"))
    try:
        output, returncode = process.communicate(timeout=seconds)[0], process.returncode
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: the code under test may have forked
        else:
            process.kill()
        output, returncode = process.communicate()[0], None
    state = json.loads(record.read_text(encoding="utf-8")) if record.exists() else None
    return state, returncode, output


def _stopped(returncode, timeout):
    """Why the process stopped in the middle of a check."""
    if returncode is None:
        return f"still running when the time limit of {timeout:g} s for the whole exercise ran out"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the Python process crashed ({name})"
    return f"the Python process exited with code {returncode}: does the code call os._exit()?"


def _tail(output, lines=5):
    return " | ".join(output.strip().splitlines()[-lines:]) or "no output"
