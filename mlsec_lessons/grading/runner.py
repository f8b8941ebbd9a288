"""Grade a file: the judge runs an exercise's checks, the student's code runs in a worker.

The threat model: **the student's file is untrusted code.** Nothing it does may raise its grade
except computing correct results. So three processes take part:

* the grader (this module), which starts the judge, reads its authenticated record, and
  makes the report; the totals come from the checks the judge collected before any student
  code ran;
* the judge (pytest with :mod:`.plugin`), which holds the checks and the reference solution
  and decides every verdict;
* the worker (:mod:`.worker`, under its :mod:`.keeper`), the only process that runs the
  student's code; it gets no path to the reference or the checks, answers with plain data
  (:mod:`.wire`), cannot use the library's answers (:mod:`.offlimits`), and lives under
  resource limits, in a bubblewrap sandbox with ``sandbox=True`` (:mod:`.sandbox`).

An endless loop, ``os._exit``, a crash or a process left running ends with the worker, never
with the judge or the grader; when the judge itself dies, the check it was running fails and the
grader runs the rest again in a new one.
"""
import ast
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlsec_lessons

from .. import course
from ..errors import InvalidParameterError
from . import exercises, offlimits
from .plugin import verify
from .processes import kill_tree
from .report import CheckResult, Report

# SIGALRM fails the one check and goes on; without it (Windows), pytest-timeout's thread ends
# the process, and the grader goes on with the next check in a new one
TIMEOUT_METHOD = "signal" if hasattr(signal, "SIGALRM") else "thread"

DEFAULT_LIMITS = {"TIME_LIMIT": 60, "CHECK_TIME_LIMIT": 10}
GRACE = 2  # seconds past the time limit for the judge to finish its report, then it is killed
MAX_RECORD = 4 * 2**20  # bytes of record the grader reads from one judge
PROCESS_LEVEL = "process (the student's code in its own worker process; files and network not isolated)"
MEMORY_LIMIT = 8 * 2**30  # bytes of address space (TensorFlow alone maps about 2 GiB); MEMORY_LIMIT in a checks module
FILE_SIZE_LIMIT = 256 * 2**20
PROCESS_LIMIT = 64  # processes of one submission at a time (the keeper's watchdog; RLIMIT_NPROC too, in the sandbox)


def declared(name, variable, default=None):
    """The value a checks module assigns to ``variable`` (a literal), read without importing it."""
    tree = ast.parse(exercises.checks_file(name).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == variable:
                return ast.literal_eval(node.value)
    return default


def limits(name):
    """The time limits an exercise's checks module declares (``TIME_LIMIT = 120`` for the whole
    run, ``CHECK_TIME_LIMIT = 30`` for one check), else the defaults. Read without importing it.

    Examples
    --------
    >>> limits("ex0_security_metrics")
    {'TIME_LIMIT': 60, 'CHECK_TIME_LIMIT': 10}
    """
    return {key: declared(name, key, default) for key, default in DEFAULT_LIMITS.items()}


def off_limits(name):
    """The library modules and names an exercise asks students to write rather than import
    (``OFF_LIMITS`` in its checks module; see :mod:`.offlimits`)."""
    return declared(name, "OFF_LIMITS", {})


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


def grade(exercise, path=None, solutions=False, timeout=None, check_timeout=None, checks=None, sandbox=False):
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
    sandbox : bool, default=False
        Run the student's code in the bubblewrap sandbox (:mod:`.sandbox`): no network, no view
        of ``solutions/``, the checks or other students' files. Raises
        :class:`~mlsec_lessons.grading.sandbox.SandboxUnavailable` where it cannot run.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an unknown exercise or check name, or when both ``path`` and ``solutions`` are given.

    Examples
    --------
    >>> report = grade("ex0", solutions=True)  # doctest: +SKIP
    >>> report.score == report.total  # doctest: +SKIP
    True
    """
    name = exercises.resolve(exercise)
    if sandbox:
        from .sandbox import require

        require()  # never a weaker isolation than the one asked for
    if path is not None and solutions:
        raise InvalidParameterError(f"give path or solutions=True, not both (path={str(path)!r})")
    if path is None:
        path = course.repo_root() / ("solutions" if solutions else "exercises") / f"{name}.py"
    path = Path(path).absolute()
    declared = limits(name)
    timeout = declared["TIME_LIMIT"] if timeout is None else timeout
    check_timeout = declared["CHECK_TIME_LIMIT"] if check_timeout is None else check_timeout
    todo = [str(exercises.checks_file(name))]
    if checks is not None:
        known = check_functions(name)
        unknown = [c for c in checks if c not in known]
        if unknown or not checks:
            raise InvalidParameterError(f"{name} has no check named {', '.join(map(repr, unknown)) or '(none given)'}; "
                             f"its checks are: {', '.join(known)}")
        todo = [f"{todo[0]}::test_{c}" for c in checks]
    if not path.is_file():  # nothing to run: collect the checks and their points, and fail each one
        found, _, note = run_checks(name, path, timeout, check_timeout, [*todo, "--collect-only"], sandbox)
        results = {c["nodeid"]: (False, f"file not found: {path}") for c in found}
    else:
        found, results, note = run_checks(name, path, timeout, check_timeout, todo, sandbox)
    report = Report(name, path, note=note, isolation=_level(sandbox))
    for check in found:
        passed, message = results[check["nodeid"]]
        report.checks.append(CheckResult(check["name"], check["points"], passed, message))
    return report


def _level(sandbox):
    if sandbox:
        from .sandbox import LEVEL

        return LEVEL
    return PROCESS_LEVEL


def run_checks(name, path, timeout, check_timeout, todo, sandbox=False):
    """Run the checks in ``todo`` (pytest node ids) until every one has an outcome;
    return (checks, {nodeid: (passed, message)}, note)."""
    deadline = time.monotonic() + timeout
    checks, results, stop = [], {}, ""
    with tempfile.TemporaryDirectory(prefix="mlsec-judge-") as tmp:
        config = worker_config(name, Path(tmp) / "shadows", timeout, sandbox)
        while todo:
            left = deadline - time.monotonic()
            if left <= 0:
                stop = f"not run: the time limit of {timeout:g} s for the whole exercise ran out"
                break
            state, returncode, output = judge(todo, path, name, Path(tmp), left, check_timeout, config, sandbox)
            if state is None or not state["checks"]:  # pytest itself failed: a problem of the grader
                stop = f"the grader could not run the checks for {name}: {_tail(output)}"
                break
            checks = checks or state["checks"]  # the first run collects every check
            results.update({k: (bool(r["passed"]), str(r["message"])) for k, r in state["results"].items()
                            if k in {c["nodeid"] for c in checks}})
            if state["finished"]:
                break
            why = _stopped(returncode, timeout)
            if state["running"] is None:  # it died between checks: every check would die the same way
                stop = why
                break
            results.setdefault(state["running"], (False, why))
            todo = [str(exercises.CHECKS_DIR / c["nodeid"]) for c in checks if c["nodeid"] not in results]
    if not checks:
        return [], {}, stop
    return checks, {c["nodeid"]: results.get(c["nodeid"], (False, stop or "not run")) for c in checks}, ""


def worker_config(name, shadow_dir, timeout, sandbox):
    """The worker's resource limits and its off-limits shadows."""
    shadows = offlimits.write_shadows(off_limits(name), shadow_dir)
    limits = {"memory": declared(name, "MEMORY_LIMIT", MEMORY_LIMIT), "cpu": int(timeout) + 60,
              "file_size": FILE_SIZE_LIMIT, "processes": PROCESS_LIMIT}
    course = Path(mlsec_lessons.__file__).resolve().parents[1]
    files = [str(course / f) for f in declared(name, "SANDBOX_FILES", []) if (course / f).is_file()]
    return {"shadows": shadows, "limits": limits, "shared": list(declared(name, "SHARED_CLASSES", [])),
            "files": files}


def judge(args, impl, name, tmp, seconds, check_timeout, config, sandbox):
    """One judge (pytest) process; returns (its last authenticated record or None, return code or
    None on timeout, the end of its output)."""
    ini = tmp / "pytest.ini"
    ini.write_text("[pytest]\n")
    key = secrets.token_hex(32)
    record_read, record_write = os.pipe()
    key_read, key_write = os.pipe()
    # the key, and the reference's path, which stays off the judge's command line (/proc shows that to all)
    os.write(key_write, json.dumps({"key": key, "ref": str(exercises.solution_file(name))}).encode())
    os.close(key_write)
    command = [sys.executable, "-m", "pytest", *args, "-q",
               # the course's own pytest settings, conftest.py and plugins stay out of grading
               "-c", str(ini), "--rootdir", str(exercises.CHECKS_DIR), "--noconftest", "-p", "no:cacheprovider",
               "--import-mode=importlib", "-p", "pytest_timeout", "-p", "mlsec_lessons.grading.plugin",
               f"--timeout={check_timeout}", f"--timeout-method={TIMEOUT_METHOD}",
               f"--impl={impl}", f"--module-name={name}",
               f"--grade-fd={record_write}", f"--key-fd={key_read}", f"--worker-config={json.dumps(config)}"]
    if sandbox:
        command.append("--sandbox")
    # PYTHONDONTWRITEBYTECODE: leave no __pycache__ in a student's folder
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryFile(dir=tmp) as output:
        process = subprocess.Popen(command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, pass_fds=(record_write, key_read),
                                   start_new_session=hasattr(os, "killpg"))
        os.close(record_write)
        os.close(key_read)
        state, returncode = _follow(process, record_read, key.encode(), seconds)
        output.seek(max(0, output.seek(0, os.SEEK_END) - 4000))
        text = output.read().decode("utf-8", errors="replace")
    return state, returncode, text


def _follow(process, fd, key, seconds):
    """Read the judge's record until it ends or ``seconds`` pass; the last valid state, and the
    return code (None when it had to be killed)."""
    deadline, state, buffer, total = time.monotonic() + seconds + GRACE, None, b"", 0
    with os.fdopen(fd, "rb", buffering=0) as record:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([record], [], [], min(left, 1.0))
            if not ready:
                if process.poll() is not None:
                    break
                continue
            chunk = record.read(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_RECORD:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                found = verify(key, line.decode("utf-8", errors="replace"))
                if found is not None:
                    state = found
    if process.poll() is None:
        try:
            process.wait(timeout=max(0.0, min(GRACE, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    returncode = process.poll()
    if returncode is None:
        _kill(process)
    return state, returncode


def _kill(process):
    """Kill the judge and, without waiting for its worker's keeper to do it, the whole tree below it."""
    kill_tree(process.pid)
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the judge's group
        except OSError:
            pass
    process.kill()
    process.wait()


def _stopped(returncode, timeout):
    """Why the judge stopped in the middle of a check."""
    if returncode is None:
        return f"still running when the time limit of {timeout:g} s for the whole exercise ran out"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the grader's process was stopped ({name}) while this check ran"
    return f"the grader's process exited with code {returncode} while this check ran"


def _tail(output, lines=5):
    return " | ".join(output.strip().splitlines()[-lines:]) or "no output"
