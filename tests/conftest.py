"""Fixtures that several test modules share.

* Every test runs against a scratch model cache, never the developer's own: :func:`isolated_cache`,
  the folder the repository's ``conftest.py`` points ``MLSEC_CACHE_DIR`` at for the whole run, the
  notebooks' too (subprocesses, such as the CLI, the kernels and the grader's judge and workers,
  inherit it). A test that must start from an empty cache asks
  for :func:`fresh_cache`; a module-scoped fixture uses :func:`scratch_cache`.
* Each trained model that several modules use is trained once per run, here.
"""
import contextlib
import os
import tempfile

import pytest

from mlsec_lessons import data, models
from mlsec_lessons.grading import grade_many
from mlsec_lessons.grading.exercises import solution_variant


@pytest.fixture(scope="session", autouse=True)
def private_tmpdir(run_temp_dir):
    """Under parallel workers, each worker's own TMPDIR: the grader's folders (``mlsec-judge-*``,
    ``mlsec-worker-*``) of one worker are out of reach of a hostile submission graded in another (the
    ``delete_the_temp_dirs`` cheat deletes every judge folder beside its own; one user's gradings share
    /tmp, which is why a class is graded in the sandbox)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield None
        return
    path = run_temp_dir / f"tmp-{worker}"
    path.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(path))
        mp.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        yield path


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(run_temp_dir):
    """The run's model cache: empty at the start of the run, shared by every test and notebook in it
    (and by every parallel worker: a model one trains, the others load; the cache writes each file
    atomically). Set again here, so that a test that moved it cannot move it for the next one."""
    path = run_temp_dir / "mlsec-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSEC_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty model cache for one test (to see a first run train and a second one load)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MLSEC_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def scratch_cache(tmp_path_factory):
    """``with scratch_cache() as path:`` an empty model cache, for a module- or session-scoped fixture."""
    @contextlib.contextmanager
    def use():
        path = tmp_path_factory.mktemp("cache")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLSEC_CACHE_DIR", str(path))
            yield path

    return use


@pytest.fixture(scope="module")
def graded_variants(tmp_path_factory):
    """``graded_variants(exercise, cases)``: {case: Report} for deliberately wrong variants of a solution,
    ``cases`` being {case: (text in the solution, its wrong replacement, the checks to run or None)}.

    The first test of a module that asks grades them all with one judge (``grade_many``): TensorFlow and
    the checks load once, not once per variant; every variant still gets its own worker and session."""
    graded = {}

    def grade(exercise, cases, **options):
        key = (exercise, tuple(cases), tuple(sorted(options.items())))
        if key not in graded:
            folder = tmp_path_factory.mktemp(f"variants-{exercise}")
            paths = []
            for i, (old, new, _) in enumerate(cases.values()):
                (folder / str(i)).mkdir()
                paths.append(solution_variant(exercise, old, new, folder / str(i)))
            reports = grade_many(exercise, paths, checks=[checks for _, _, checks in cases.values()], **options)
            graded[key] = dict(zip(cases, reports))
        return graded[key]

    return grade


@pytest.fixture(scope="session")
def digits():
    return data.load_digits()


@pytest.fixture(scope="session")
def small_cnn(digits):
    """A clean small CNN (not from the cache: the tests must not trust an earlier run's weights)."""
    return models.train(digits, "small_cnn", epochs=15, seed=0, cache=False).model
