"""Grade a file: the judge runs an exercise's checks, the student's code runs in a worker.

The threat model: **the student's file is untrusted code.** Nothing it does may raise its grade
except computing correct results. So three processes take part:

* the grader (this module), which starts the judge, reads its authenticated record, and
  makes the report; the totals come from the checks the judge collected before any student
  code ran;
* the judge (:mod:`.judge`: a pytest session with :mod:`.plugin` per file it grades), which
  holds the checks and the reference solution and decides every verdict;
* the worker (:mod:`.worker`, under its :mod:`.keeper`), the only process that runs the
  student's code; it gets no path to the reference or the checks, answers with plain data
  (:mod:`.wire`), cannot use the library's answers (:mod:`.offlimits`), and lives under
  resource limits, in a bubblewrap sandbox with ``sandbox=True`` (:mod:`.sandbox`).

An endless loop, ``os._exit``, a crash or a process left running ends with the worker, never
with the judge or the grader; when the judge itself dies, the check it was running fails and the
grader runs the rest again in a new one.

:func:`grade_many` grades several files of one exercise with one judge, one after another, each
with its own worker, session, record and time limit: the judge's imports (TensorFlow, the checks)
are paid for once. A file that stops the judge costs its own check, or, past its time limit, its
remaining checks; the files after it go on in a new judge.
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
from ..errors import InvalidParameterError, ParameterTypeError, RunError
from . import exercises, offlimits, remote
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


def collect(exercise):
    """The checks of ``exercise`` as a report names them, with their points: ``[(name, points)]``.

    The judge only collects them (``pytest --collect-only``): no check runs and no student code is
    imported (so no sandbox is needed). A parametrized check is one entry per case, named by its
    case id, as in a report.

    Examples
    --------
    >>> collect("ex0")[:2]  # doctest: +SKIP
    [('matches_reference', 2), ('robustness_curve_matches_reference', 2)]
    """
    return [(c["name"], c["points"]) for c in _collected(exercises.resolve(exercise))]


_COLLECTED = {}  # (exercise, the checks file's mtime and size) -> the judge's collection


def _collected(name):
    """The judge's collection of ``name``'s checks (nodeid, name, points), remembered while the file is unchanged."""
    stat = exercises.checks_file(name).stat()
    key = (name, stat.st_mtime_ns, stat.st_size)
    if key not in _COLLECTED:
        with tempfile.TemporaryDirectory(prefix="mlsec-collect-") as nothing:  # a file that is not there
            todo = [str(exercises.checks_file(name)), "--collect-only"]
            declared = limits(name)
            found, _, note = run_plan(name, [(Path(nothing) / f"{name}.py", todo)], declared["TIME_LIMIT"],
                                      declared["CHECK_TIME_LIMIT"])[0]
        if not found:
            raise InvalidParameterError(f"could not collect the checks of {name}: {note}")
        _COLLECTED[key] = found
    return _COLLECTED[key]


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
        Run only these checks, to iterate on one part of an exercise: a check function
        (``"pgd_step_increases_the_loss"``; every case of a parametrized one) or one case of a
        parametrized check, by the name the report gives it (``"alg_none"``). Default: all of them.
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
    if path is not None and solutions:
        raise InvalidParameterError(f"give path or solutions=True, not both (path={str(path)!r})")
    if path is None:
        name = exercises.resolve(exercise)
        path = course.repo_root() / ("solutions" if solutions else "exercises") / f"{name}.py"
    return grade_many(exercise, [path], checks=None if checks is None else [checks], timeout=timeout,
                      check_timeout=check_timeout, sandbox=sandbox)[0]


def grade_many(exercise, paths, checks=None, timeout=None, check_timeout=None, sandbox=False):
    """Grade several files of one exercise: what ``[grade(exercise, p) for p in paths]`` returns, in one judge.

    The judge grades the files one after another, each with the same isolation, limits and checks
    that :func:`grade` gives one file: a pytest session of its own, a fresh worker for its code, and
    its own time limit, which starts when its grading starts. Only the judge's imports (TensorFlow,
    the checks) are shared, so a class, or a set of wrong variants, is graded without paying for
    them once per file. A file that crashes or hangs the judge costs its own check; the files after
    it are graded in a new judge.

    Parameters
    ----------
    exercise : str
        ``"ex1"`` or ``"ex1_adversarial_defense"``.
    paths : sequence of str or Path
        The files to grade; a missing one fails every check with "file not found".
    checks : sequence, optional
        One entry per path: ``None`` (every check) or a list of check names, as in :func:`grade`.
    timeout, check_timeout, sandbox
        As in :func:`grade`, for each file.

    Returns
    -------
    list of Report
        One per path, in order.

    Raises
    ------
    InvalidParameterError (a ValueError)
        For an unknown exercise or check name, no paths, or ``checks`` of another length.

    Examples
    --------
    >>> reports = grade_many("ex0", ["alice/ex0.py", "bob/ex0.py"])  # doctest: +SKIP
    >>> [r.score for r in reports]  # doctest: +SKIP
    [26, 14]
    """
    name = exercises.resolve(exercise)
    if sandbox:
        from .sandbox import require

        require()  # never a weaker isolation than the one asked for
    if isinstance(paths, (str, os.PathLike)):
        raise ParameterTypeError(f"paths must be a list of files, not one file ({str(paths)!r}): grade() grades one")
    paths = [Path(p).absolute() for p in paths]
    if not paths:
        raise InvalidParameterError(f"grade_many needs at least one file to grade for {name}")
    checks = [None] * len(paths) if checks is None else list(checks)
    if len(checks) != len(paths):
        raise InvalidParameterError(f"checks has {len(checks)} entries for {len(paths)} files: give one per file "
                                    "(None for every check)")
    declared = limits(name)
    timeout = declared["TIME_LIMIT"] if timeout is None else timeout
    check_timeout = declared["CHECK_TIME_LIMIT"] if check_timeout is None else check_timeout
    missing = {path for path in paths if not path.is_file()}
    # a missing file has nothing to run: each of its checks fails. For all of them, the exercise's collection
    # (made once per process) says which they are, so no judge starts for it; for some, a judge collects them
    # (pytest's order for the node ids asked is its own)
    collected_only = {i for i, (path, chosen) in enumerate(zip(paths, checks)) if path in missing and chosen is None}
    plan = [(path, _todo(name, chosen) + (["--collect-only"] if path in missing else []))
            for i, (path, chosen) in enumerate(zip(paths, checks)) if i not in collected_only]
    graded = iter(run_plan(name, plan, timeout, check_timeout, sandbox) if plan else [])
    reports = []
    for i, path in enumerate(paths):
        found, results, note = (_collected(name), {}, "") if i in collected_only else next(graded)
        report = Report(name, path, note=note, isolation=_level(sandbox))
        for check in found:
            passed, message = (False, f"file not found: {path}") if path in missing else results[check["nodeid"]]
            report.checks.append(CheckResult(check["name"], check["points"], passed, message))
        reports.append(report)
    return reports


def _todo(name, checks):
    """The pytest node ids that run ``checks`` (all of the exercise's when None)."""
    todo = [str(exercises.checks_file(name))]
    if checks is None:
        return todo
    if isinstance(checks, str):
        raise ParameterTypeError(f"checks must be a list of check names, not the string {checks!r}")
    known = check_functions(name)
    if not checks:
        raise InvalidParameterError(f"{name} has no check named (none given); its checks are: {', '.join(known)}")
    cases = {}  # a parametrized check's case, named as the report names it -> its node ids
    if any(c not in known for c in checks):
        for check in _collected(name):
            if "[" in check["nodeid"]:
                cases.setdefault(check["name"], []).append(str(exercises.CHECKS_DIR / check["nodeid"]))
    unknown = [c for c in checks if c not in known and c not in cases]
    if unknown:
        parametrized = sorted({node.split("::test_")[-1].split("[")[0] for nodes in cases.values() for node in nodes})
        raise InvalidParameterError(
            f"{name} has no check named {', '.join(map(repr, unknown))}; its checks are: {', '.join(known)}"
            + (f" (or one case of {', '.join(parametrized)}, named as the report names it)" if parametrized else ""))
    return [node for c in checks for node in ([f"{todo[0]}::test_{c}"] if c in known else cases[c])]


def _level(sandbox):
    if sandbox:
        from .sandbox import LEVEL

        return LEVEL
    return PROCESS_LEVEL


def run_plan(name, items, timeout, check_timeout, sandbox=False):
    """Run each item's checks (``(file, pytest node ids)``) until every one has an outcome; return,
    per item, (checks, {nodeid: (passed, message)}, note)."""
    outcomes = [{"checks": [], "results": {}, "stop": ""} for _ in items]
    todos = [list(todo) for _, todo in items]
    deadlines = [None] * len(items)  # each item's clock starts when a judge starts it
    pending = list(range(len(items)))
    with tempfile.TemporaryDirectory(prefix="mlsec-judge-") as tmp:
        config = worker_config(name, Path(tmp) / "shadows", timeout, sandbox)
        while pending:
            plan = [(i, items[i][0], todos[i]) for i in pending]
            states, current, returncode, output = judge(plan, name, Path(tmp), timeout, deadlines, check_timeout,
                                                        config, sandbox)
            for i, state in states.items():
                outcome = outcomes[i]
                outcome["checks"] = outcome["checks"] or state["checks"]  # the first run collects every check
                known = {c["nodeid"] for c in outcome["checks"]}
                outcome["results"].update({k: (bool(r["passed"]), str(r["message"]))
                                           for k, r in state["results"].items() if k in known})
            at = pending.index(current)
            for i in pending[:at]:  # the judge went on past them: each has finished, unless pytest itself failed
                if not states.get(i, {}).get("finished"):
                    outcomes[i]["stop"] = f"the grader could not run the checks for {name}: {_tail(output)}"
            pending = pending[at + 1:]
            if not states.get(current, {}).get("finished") and not _after_a_stop(
                    name, outcomes[current], states.get(current), returncode, output, timeout, deadlines[current]):
                todos[current] = [str(exercises.CHECKS_DIR / c["nodeid"]) for c in outcomes[current]["checks"]
                                  if c["nodeid"] not in outcomes[current]["results"]]
                pending.insert(0, current)
    return [_outcome(o) for o in outcomes]


def _after_a_stop(name, outcome, state, returncode, output, timeout, deadline):
    """The judge stopped in the middle of an item: record why. True when the item is over, False
    when its checks not run yet go on in a new judge."""
    if state is None or not state["checks"]:  # pytest itself failed: a problem of the grader
        outcome["stop"] = f"the grader could not run the checks for {name}: {_tail(output)}"
        return True
    why = _stopped(returncode, timeout)
    if state["running"] is None:  # it died between checks: every check would die the same way
        outcome["stop"] = why
        return True
    outcome["results"].setdefault(state["running"], (False, why))
    if deadline is not None and deadline - time.monotonic() <= 0:
        outcome["stop"] = f"not run: the time limit of {timeout:g} s for the whole exercise ran out"
        return True
    return all(c["nodeid"] in outcome["results"] for c in outcome["checks"])


def _outcome(outcome):
    checks, results, stop = outcome["checks"], outcome["results"], outcome["stop"]
    if not checks:
        return [], {}, stop
    return checks, {c["nodeid"]: results.get(c["nodeid"], (False, stop or "not run")) for c in checks}, ""


def worker_config(name, shadow_dir, timeout, sandbox):
    """The worker's resource limits, its off-limits shadows, and what its fork server imports."""
    shadows = offlimits.write_shadows(off_limits(name), shadow_dir)
    limits = {"memory": declared(name, "MEMORY_LIMIT", MEMORY_LIMIT), "cpu": int(timeout) + 60,
              "file_size": FILE_SIZE_LIMIT, "processes": PROCESS_LIMIT}
    course = Path(mlsec_lessons.__file__).resolve().parents[1]
    files = [str(course / f) for f in declared(name, "SANDBOX_FILES", []) if (course / f).is_file()]
    return {"shadows": shadows, "limits": limits, "shared": list(declared(name, "SHARED_CLASSES", [])),
            "files": files, "preload": list(declared(name, "PRELOAD", []))}


def judge(plan, name, tmp, timeout, deadlines, check_timeout, config, sandbox):
    """One judge process (:mod:`.judge`) for ``plan``, a list of (item, file, pytest node ids); returns
    ({item: its last authenticated state}, the item it stopped in, its return code or None
    when it was killed, the end of its output). It is killed when the item it grades runs past
    that item's deadline (``deadlines``, set here as each item starts: ``timeout`` from then)."""
    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps([{"index": i, "impl": str(path), "args": list(todo)} for i, path, todo in plan]))
    key = secrets.token_hex(32)
    # PYTHONDONTWRITEBYTECODE: leave no __pycache__ in a student's folder
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    # the key, the reference's path (off the judge's command line: /proc shows that to all) and the grader's
    # environment, which the judge takes only after it has forked its fork server (grading/forkserver.py)
    secret = json.dumps({"key": key, "ref": str(exercises.solution_file(name)), "env": env}).encode()
    key_read, key_write = os.pipe()
    if len(secret) > _pipe_capacity(key_write, len(secret)):
        os.close(key_read)
        os.close(key_write)
        raise RunError(f"the grader's environment is too large to hand to the judge ({len(secret)} bytes)")
    os.write(key_write, secret)
    os.close(key_write)
    record_read, record_write = os.pipe()
    home = tmp / "home"  # the judge starts in a scrubbed environment, as its fork server and workers do
    home.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "mlsec_lessons.grading.judge",
               f"--grade-fd={record_write}", f"--key-fd={key_read}", f"--plan={plan_file}", "-q",
               # the course's own pytest settings, conftest.py and plugins stay out of grading (an empty
               # configuration, which no file of a student's can delete before pytest reads it)
               "-c", os.devnull, "--rootdir", str(exercises.CHECKS_DIR), "--noconftest", "-p", "no:cacheprovider",
               "--import-mode=importlib", "-p", "pytest_timeout", "-p", "mlsec_lessons.grading.plugin",
               # each of these collects the garbage when a session ends (0.2 s each, with TensorFlow loaded)
               # to report exceptions nobody caught in __del__ or a thread: nothing a grade needs
               "-p", "no:unraisableexception", "-p", "no:threadexception",
               # the grade holds its own message for a failed check (plugin.message): pytest need not also
               # read and parse the source of every traceback entry, which cost a failed check more CPU than
               # running it (about 0.1 s each; a class of stubs fails hundreds)
               "--tb=no",
               f"--timeout={check_timeout}", f"--timeout-method={TIMEOUT_METHOD}",
               f"--module-name={name}", f"--worker-config={json.dumps(config)}"]
    if sandbox:
        command.append("--sandbox")
    start_env = {**remote.scrubbed_environment(home), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    first = plan[0][0]
    if deadlines[first] is None:  # the first item's clock includes the judge's start
        deadlines[first] = time.monotonic() + timeout
    with tempfile.TemporaryFile(dir=tmp) as output:
        process = subprocess.Popen(command, cwd=tmp, env=start_env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, pass_fds=(record_write, key_read),
                                   start_new_session=hasattr(os, "killpg"))
        os.close(record_write)
        os.close(key_read)
        states, current, returncode = _follow(process, record_read, key.encode(), first, deadlines, timeout,
                                              MAX_RECORD * len(plan))
        output.seek(max(0, output.seek(0, os.SEEK_END) - 4000))
        text = output.read().decode("utf-8", errors="replace")
    return states, current, returncode, text


def _pipe_capacity(fd, wanted):
    """How many bytes the pipe ``fd`` holds before a write blocks; made ``wanted`` or more where Linux allows."""
    try:
        import fcntl

        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, max(wanted, 65536))
    except (ImportError, AttributeError, OSError):
        return 65536  # POSIX promises less, but every pipe Linux and macOS make holds this much


def _follow(process, fd, key, first, deadlines, timeout, max_record):
    """Read the judge's record until it ends, or the item it grades runs past its deadline; the last
    valid state of each item, the item it stopped in, and the return code (None when it had to be
    killed)."""
    states, current, buffer, total = {}, first, b"", 0
    with os.fdopen(fd, "rb", buffering=0) as record:
        while True:
            left = deadlines[current] + GRACE - time.monotonic()
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
            if total > max_record:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                found = verify(key, line.decode("utf-8", errors="replace"))
                if found is None or not 0 <= found.get("index", -1) < len(deadlines):
                    continue
                index = found["index"]
                if index != current and deadlines[index] is None:  # the judge starts the next item
                    deadlines[index] = time.monotonic() + timeout
                states[index], current = found, index
    if process.poll() is None:
        try:
            process.wait(timeout=max(0.0, min(GRACE, deadlines[current] + GRACE - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    returncode = process.poll()
    if returncode is None:
        _kill(process)
    return states, current, returncode


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
