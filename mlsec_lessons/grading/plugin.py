"""The pytest plugin behind the grader.

It gives the checks two fixtures, ``impl`` (the code under test, from ``--impl``) and ``ref``
(the reference solution, from ``--ref``), and writes each check's points and outcome to the
JSON file named by ``--grade-json``. The file is rewritten before and after every check, so
when the code under test kills the process, the record says which check was running.
"""
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

import pytest

TIMEOUT_PREFIX = "Timeout (>"  # how pytest-timeout's failure message starts


def pytest_addoption(parser):
    group = parser.getgroup("mlsec grading")
    group.addoption("--impl", help="the file under test, e.g. exercises/ex0_security_metrics.py")
    group.addoption("--ref", help="the reference solution the checks compare with")
    group.addoption("--grade-json", help="where to write each check's points and outcome")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): how many points a check is worth")
    if config.getoption("grade_json"):
        config.pluginmanager.register(Recorder(config.getoption("grade_json")), "mlsec-recorder")


def load(path, module_name):
    """Import a Python file as a module; turn every way this can fail into a one-line failure."""
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
    """The module under test. Loaded once; a failure to load fails every check with its reason."""
    recorder = pytestconfig.pluginmanager.get_plugin("mlsec-recorder")
    if recorder:
        recorder.note(loading=True)  # a crash from here on is the import's fault
    try:
        return load(pytestconfig.getoption("impl"), "mlsec_impl_under_test")
    finally:
        if recorder:
            recorder.note(loading=False)


@pytest.fixture(scope="session")
def ref(pytestconfig):
    """The reference solution."""
    return load(pytestconfig.getoption("ref"), "mlsec_reference_solution")


def describe(exc, path):
    """``TypeError: ... (line 12, in f)``, with the last line of ``path`` the traceback passes."""
    where = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == Path(path)]
    at = f" (line {where[-1].lineno}, in {where[-1].name})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def message(exc, impl_path):
    """One line that tells a student why a check failed."""
    if isinstance(exc, NotImplementedError):
        return f"not implemented: {exc}" if str(exc) else "not implemented yet"
    if isinstance(exc, AssertionError):
        # pytest appends its own explanation ("\nassert ...") to the check's message
        text = str(exc).split("\nassert ")[0]
        return " ".join(text.split()) or "a check failed"
    if isinstance(exc, pytest.fail.Exception):
        if exc.msg.startswith(TIMEOUT_PREFIX):
            seconds = float(exc.msg[len(TIMEOUT_PREFIX):].split("s)")[0])
            return f"took longer than {seconds:g} s: an endless loop, or far too slow"
        return exc.msg
    if isinstance(exc, SystemExit):
        return f"your code called exit({exc.code!r}); a function should return or raise instead"
    if isinstance(exc, AttributeError) and getattr(exc, "obj", None) is sys.modules.get("mlsec_impl_under_test"):
        return f"your file does not define {exc.name}"
    return f"raised {describe(exc, impl_path)}"


class Recorder:
    """Keeps the JSON record of a grading run up to date."""

    def __init__(self, path):
        self.path = Path(path)
        self.state = {"checks": [], "results": {}, "running": None, "loading": False, "finished": False}

    def note(self, **changes):
        self.state.update(changes)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a file

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
