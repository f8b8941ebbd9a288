"""The test harness: the slow marker (``make test-fast`` leaves the slow tests out, ``make test`` runs
everything) and the scratch model cache every test runs against.

The slow tests are the grader's wrong-variant runs (a worker process per variant, one judge per module), the
real deployments and the federated simulation; benchmarks/bench_tests.py measures what each file
costs with and without them."""
import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (test file, test function): each must carry @pytest.mark.slow (or its module's pytestmark)
MUST_BE_SLOW = [
    ("test_grading.py", "test_wrong_solutions_lose_points"),
    ("test_grading.py", "test_each_stub_scores_zero_and_shows_its_hints"),
    ("test_grading.py", "test_cli_grades_a_submission_folder"),
    ("test_cli_deploy.py", "test_serve_with_tls_answers_and_exits_cleanly_on_ctrl_c"),
    ("test_grading_ex1.py", "test_wrong_solutions_lose_points"),
    ("test_grading_ex1.py", "test_library_answers_earn_nothing"),
    ("test_grading_ex2.py", "test_wrong_solutions_lose_points"),
    ("test_grading_ex3.py", "test_mistake_loses_points"),
    ("test_grading_ex4.py", "test_wrong_solutions_lose_points"),
    ("test_grading_capstone.py", "test_wrong_solutions_lose_points"),
    ("test_grading_cheats.py", "test_the_library_answers_earn_nothing_in_each_exercise"),
    ("test_federated.py", "test_deployment_runs_fedavg_across_processes"),
    ("test_federated.py", "test_fedavg_learns"),
]


def is_slow_mark(node):
    """``pytest.mark.slow`` (called or not)."""
    node = node.func if isinstance(node, ast.Call) else node
    return isinstance(node, ast.Attribute) and node.attr == "slow" and ast.unparse(node) == "pytest.mark.slow"


def slow_functions(path):
    """The test functions of ``path`` that are marked slow, by themselves or by the module's pytestmark."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                      and any(is_slow_mark(m) for m in ast.walk(n.value)) for n in tree.body)
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and (module_slow or any(is_slow_mark(d) for d in n.decorator_list))}


def test_the_slow_marker_is_registered():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert any(m.split(":")[0] == "slow" for m in settings["markers"]), settings["markers"]


@pytest.mark.parametrize("file, function", MUST_BE_SLOW, ids=[f"{f}::{n}" for f, n in MUST_BE_SLOW])
def test_the_slow_tests_are_marked(file, function):
    path = ROOT / "tests" / file
    names = {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)}
    assert function in names, f"{file} has no {function}: update MUST_BE_SLOW"
    assert function in slow_functions(path), f"{file}::{function} runs for long: mark it @pytest.mark.slow"


def test_the_marker_detection_sees_both_forms(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text("import pytest\n@pytest.mark.slow\ndef test_a(): pass\ndef test_b(): pass\n")
    assert slow_functions(path) == {"test_a"}
    path.write_text("import pytest\npytestmark = [pytest.mark.slow]\ndef test_a(): pass\n")
    assert slow_functions(path) == {"test_a"}


def make_dry_run(target):
    """The commands ``make TARGET`` would run (``make -n``), one per line."""
    done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_fast_lints_then_leaves_the_slow_tests_out():
    lines = make_dry_run("test-fast")
    pytest_lines = [line for line in lines if "-m pytest" in line]
    assert len(pytest_lines) == 1 and '-m "not slow"' in pytest_lines[0] and " tests" in pytest_lines[0], lines
    ruff = [i for i, line in enumerate(lines) if "ruff check ." in line]
    assert ruff and ruff[0] < lines.index(pytest_lines[0]), "test-fast runs ruff before the tests"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_runs_everything():
    lines = make_dry_run("test")
    pytest_lines = [line for line in lines if "-m pytest" in line]
    assert any("ruff check ." in line for line in lines[:lines.index(pytest_lines[0])]), "make test lints first too"
    assert len(pytest_lines) == 1, pytest_lines
    words = pytest_lines[0].split()
    assert {"tests", "notebooks", "exercises"} <= set(words), pytest_lines[0]
    assert words.count("-m") == 1, f"make test selects by marker: {pytest_lines[0]}"  # only python -m pytest


# --------------------------------------------------------------------------- the scratch model cache
def test_every_test_uses_a_scratch_model_cache(isolated_cache, run_temp_dir):
    """tests/conftest.py's autouse fixture: never the developer's own cache, and subprocesses inherit it."""
    from mlsec_lessons import cache

    assert cache.cache_dir() == isolated_cache and isolated_cache.is_relative_to(run_temp_dir)
    seen = subprocess.run([sys.executable, "-c", "from mlsec_lessons import cache; print(cache.cache_dir())"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert Path(seen.stdout.strip()) == isolated_cache, seen.stderr


def test_the_run_sets_the_scratch_cache_before_the_first_test_or_notebook(monkeypatch, tmp_path):
    """The repository's conftest.py sets it at session start, for the notebooks too: nbval's cells take no
    fixtures, and their kernels inherit the process's environment."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest_under_test", ROOT / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    monkeypatch.delenv("MLSEC_CACHE_DIR")
    for worker, run in [(None, tmp_path), ("gw1", tmp_path.parent)]:  # under xdist: the folder of all workers
        if worker:
            monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        else:
            monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
        factory = SimpleNamespace(getbasetemp=lambda: tmp_path)
        root.pytest_sessionstart(SimpleNamespace(config=SimpleNamespace(_tmp_path_factory=factory)))
        assert os.environ["MLSEC_CACHE_DIR"] == str(run / "mlsec-cache") and (run / "mlsec-cache").is_dir()


def test_fresh_cache_is_empty_and_the_tests_own(fresh_cache, isolated_cache):
    from mlsec_lessons import cache

    assert cache.cache_dir() == fresh_cache != isolated_cache and not any(fresh_cache.iterdir())


# --------------------------------------------------------------------------- the order of the scopes
def test_parallel_workers_take_the_longest_scopes_first(monkeypatch):
    """The repository's conftest.py orders test files and notebooks longest first (as last measured), a file not
    yet measured before them all, and keeps each one's tests together and in their order; without xdist it
    leaves the order alone. make test hands the scopes out in that order (--no-loadscope-reorder)."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    assert root.scope_seconds().get("tests/test_markers.py"), "benchmarks/results/tests.json measures no run"
    monkeypatch.setattr(root, "scope_seconds", lambda: {"tests/test_a.py": 1.0, "notebooks/02.ipynb": 30.0,
                                                        "tests/test_b.py": 5.0})
    ids = ["notebooks/02.ipynb::Cell 0", "notebooks/02.ipynb::Cell 1", "tests/test_a.py::test_x",
           "tests/test_b.py::test_y", "tests/test_a.py::test_z", "tests/test_new.py::test_w"]

    def order(worker):
        if worker:
            monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        else:
            monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
        items = [SimpleNamespace(nodeid=i) for i in ids]
        root.pytest_collection_modifyitems(None, None, items)
        return [i.nodeid for i in items]

    assert order(None) == ids
    assert order("gw0") == ["tests/test_new.py::test_w", "notebooks/02.ipynb::Cell 0", "notebooks/02.ipynb::Cell 1",
                            "tests/test_b.py::test_y", "tests/test_a.py::test_x", "tests/test_a.py::test_z"]
    assert "--no-loadscope-reorder" in next(line for line in make_dry_run("test") if "-m pytest" in line)
