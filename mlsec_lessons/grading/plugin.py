"""The pytest plugin behind the grader: the *judge*.

It gives the checks two fixtures: ``impl``, the student's module, which lives in a separate
worker process (:mod:`.remote`; the student's code never runs in the judge), and ``ref``, the
reference solution, loaded here and never sent to the worker. It decides every check's outcome
and reports it to the grader over a pipe the worker does not hold, one JSON line per change,
each authenticated with an HMAC key the grader hands over on a pipe that is read, and closed,
before any student code runs (:mod:`.judge`, the process that runs one such pytest session per
file, reads it, then makes itself non-dumpable, so that a process of the same user cannot read
its memory or open its file descriptors; ``--sandbox`` also hides the judge entirely).
"""
import copy
import dataclasses
import hashlib
import hmac
import importlib.util
import json
import sys
import traceback
import warnings
from pathlib import Path

import pytest

from . import remote

TIMEOUT_PREFIX = "Timeout (>"  # how pytest-timeout's failure message starts
WORKER = pytest.StashKey()  # the student's worker, started in pytest_configure


@dataclasses.dataclass(frozen=True)
class Judging:
    """What the judge's process (:mod:`.judge`) hands the session grading one file: the reference
    solution's path, the file's :class:`Recorder`, and the worker it started for the file (None
    for a file that is not there)."""

    ref: str
    recorder: "Recorder"
    worker: object = None


JUDGING = None  # set by the judge's process for the session it runs now
KEPT = {}  # what the checks keep from one file's session to the next in the judge's process (kept)


def kept(name, make):
    """A copy of ``make()``'s value, made once in this process and kept for every file the judge
    grades after this one.

    Only for a value that depends on nothing but the checks and the reference (never on ``impl``).
    The original stays here and each session gets its own deep copy, so no session can change what
    the next one gets. A judge that grades twenty wrong variants then trains the reference's models
    once, not twenty times.
    """
    if name not in KEPT:
        KEPT[name] = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras: "Skipping variable loading for optimizer", its state is not copied
        return copy.deepcopy(KEPT[name])


def pytest_addoption(parser):
    group = parser.getgroup("mlsec grading")
    group.addoption("--impl", help="the file under test, e.g. exercises/ex0_security_metrics.py")
    group.addoption("--ref", help="the reference solution the checks compare with")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): how many points a check is worth")
    if JUDGING is not None:  # a session of the judge's process, which has read the key and is non-dumpable
        config.option.ref = JUDGING.ref
        config.pluginmanager.register(JUDGING.recorder, "mlsec-recorder")


def load(path, module_name):
    """Import a Python file as a module, here, in the judge: for the reference solution and the
    course's own tests, never for a student's file. Every failure is a one-line failure."""
    path = Path(path)
    if not path.is_file():
        pytest.fail(f"file not found: {path}", pytrace=False)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # some code (dataclasses, pickle) looks itself up here
    try:
        spec.loader.exec_module(module)
    except pytest.fail.Exception as e:  # pytest-timeout stopped an import that never ends
        pytest.fail(f"importing {path.name}: {message(e, path)}", pytrace=False)
    except SyntaxError as e:
        pytest.fail(f"{path.name} has a syntax error on line {e.lineno}: {e.msg}", pytrace=False)
    except (Exception, SystemExit) as e:
        pytest.fail(f"importing {path.name} raised {describe(e, path)}", pytrace=False)
    return module


@pytest.fixture(scope="session")
def impl(pytestconfig):
    """The student's module, in the worker the judge started for this file (again after a crash);
    the judge stops it when the session ends."""
    path = pytestconfig.getoption("impl")
    if not Path(path).is_file():
        pytest.fail(f"file not found: {path}", pytrace=False)
    if JUDGING is None or JUDGING.worker is None:
        pytest.fail("the student's code runs only in a worker of the judge's process "
                    "(python -m mlsec_lessons.grading.judge, which grading.grade starts)", pytrace=False)
    return remote.Student(JUDGING.worker)


@pytest.fixture(scope="session")
def exchange(impl):
    """A folder for files the judge hands to the student's code (keys, a work folder): a ``Path``
    inside it reaches the student's code as the path it has there, also inside the sandbox."""
    return impl._worker.exchange


@pytest.fixture(scope="session")
def ref(pytestconfig):
    """The reference solution, in the judge only."""
    path = pytestconfig.getoption("ref")
    if not path or not Path(path).is_file():
        pytest.fail("needs the reference solution, which this copy of the course leaves out: "
                    "your instructor grades this check", pytrace=False)
    return load(path, remote.REFERENCE_MODULE)


def describe(exc, path):
    """``TypeError: ... (line 12, in f)``, with the last line of ``path`` the traceback passes."""
    if isinstance(exc, remote.StudentRaised):
        return f"{exc.type_name}: {_text(exc)}{exc.where}"
    where = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == Path(path)]
    at = f" (line {where[-1].lineno}, in {where[-1].name})" if where else ""
    return f"{type(exc).__name__}: {_text(exc)}{at}"


def _text(exc):
    try:
        return str(exc)
    except Exception:
        return "(its message could not be printed)"


def message(exc, impl_path):
    """One line that tells a student why a check failed."""
    if isinstance(exc, NotImplementedError):
        return f"not implemented: {_text(exc)}" if _text(exc) else "not implemented yet"
    if isinstance(exc, remote.Verdict):
        return _text(exc)
    if isinstance(exc, AssertionError):
        # pytest appends its own explanation ("\nassert ...") to the check's message
        text = _text(exc).split("\nassert ")[0]
        return " ".join(text.split()) or "a check failed"
    if isinstance(exc, pytest.fail.Exception):
        if exc.msg.startswith(TIMEOUT_PREFIX):
            seconds = float(exc.msg[len(TIMEOUT_PREFIX):].split("s)")[0])
            return f"took longer than {seconds:g} s: an endless loop, or far too slow"
        return exc.msg
    if isinstance(exc, remote.StudentRaised) and (isinstance(exc, SyntaxError) or isinstance(exc, AttributeError)
                                                  and _text(exc).startswith("your file does not define")):
        return _text(exc)
    if isinstance(exc, remote.StudentRaised):
        return f"raised {describe(exc, impl_path)}"
    return f"the grader's check raised {describe(exc, impl_path)} (a problem with your result's type or shape?)"


def sign(key, state):
    """One record line: the state and its HMAC."""
    body = json.dumps(state, sort_keys=True)
    return json.dumps({"state": state, "mac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()})


def verify(key, line):
    """The state in a record line, or None when its MAC is wrong or it is not a record at all."""
    try:
        record = json.loads(line)
        state = record["state"]
        body = json.dumps(state, sort_keys=True)
        expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
        return state if hmac.compare_digest(expected, str(record["mac"])) else None
    except (ValueError, KeyError, TypeError):
        return None


class Recorder:
    """Reports the grading of file number ``index`` to the grader, a signed JSON line per change."""

    def __init__(self, stream, key, index=0):
        self.stream = stream
        self.key = key
        self.state = {"index": index, "checks": [], "results": {}, "running": None, "finished": False}

    def note(self, **changes):
        self.state.update(changes)
        self.stream.write(sign(self.key, self.state) + "\n")
        self.stream.flush()

    def pytest_collection_finish(self, session):
        checks = []
        for item in session.items:
            marker = item.get_closest_marker("points")
            # a parametrized check is named by its id; a plain one by its function
            name = item.callspec.id if hasattr(item, "callspec") else item.name.removeprefix("test_")
            checks.append({"nodeid": item.nodeid, "name": name, "points": marker.args[0] if marker else 1})
        self.note(checks=checks)

    def pytest_runtest_logstart(self, nodeid):
        self.note(running=nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        results = self.state["results"]
        if report.failed and item.nodeid not in results:  # the first failure is the one to explain
            why = message(call.excinfo.value, item.config.getoption("impl"))
            results[item.nodeid] = {"passed": False, "message": why}
        elif report.when == "call" and report.passed:
            results[item.nodeid] = {"passed": True, "message": ""}
        self.note()
        return report

    def pytest_sessionfinish(self):
        self.note(running=None, finished=True)
