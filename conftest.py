"""Repository-wide pytest set-up, shared by the unit tests and the nbval notebook run."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # no display on CI; notebooks set inline themselves


def one_thread_each():
    """Under ``make test``'s parallel workers, one as many as the cores, TensorFlow and OpenMP run one thread
    per process: each worker already has a core, and a thread pool that spins on the other worker's core only
    slows both (lesson 03 twice side by side: 66 s with the default pools, 62 s with one thread each). Set
    before TensorFlow is imported; the notebooks' kernels and the CLI's processes inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers > 1 and workers >= cores:
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(name, "1")


one_thread_each()


def run_temp(config):
    """The run's scratch folder: pytest's base temp folder, or under ``make test``'s parallel workers
    (pytest-xdist, one ``popen-gwN`` folder each) the folder that holds all of theirs."""
    base = config._tmp_path_factory.getbasetemp()  # the tmp_path_factory fixture's, before any fixture runs
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


_zygote = {}  # the forked kernels: their module, the zygote's socket once started, the notebooks collected

SCOPE_SECONDS = Path(__file__).parent / "benchmarks" / "results" / "tests.json"


def scope_seconds():
    """Seconds of each test file and notebook in the last measured ``make test`` run (benchmarks/bench_tests.py)."""
    import json
    from collections import Counter

    try:
        tests = json.loads(SCOPE_SECONDS.read_text())["after"]["all"]["tests"]
    except (OSError, ValueError, KeyError):
        return {}
    seconds = Counter()
    for test in tests.values():
        seconds[test["file"]] += test["seconds"]
    return seconds


def pytest_collection_modifyitems(session, config, items):
    # The forked kernels (below) pay for their zygote's start from the second notebook on.
    _zygote["notebooks"] = len({item.nodeid.split("::")[0] for item in items if ".ipynb::" in item.nodeid})
    # Under make test's parallel workers (--dist loadscope --no-loadscope-reorder), a test file or notebook
    # goes to one worker, in collection order, as workers free up: the longest first (as last measured), so
    # that the short ones fill the end instead of one worker finishing a long lesson alone. A file not yet
    # measured goes first, as it may be long. Within a file, the order is untouched.
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    seconds = scope_seconds()
    first = {}
    for i, item in enumerate(items):
        first.setdefault(item.nodeid.split("::")[0], i)
    items.sort(key=lambda item: (-seconds.get(item.nodeid.split("::")[0], float("inf")),
                                 first[item.nodeid.split("::")[0]]))


def pytest_sessionstart(session):
    # One scratch model cache for the whole run, set before the first test or notebook: the notebooks'
    # kernels and the grader's processes inherit it, so a run never reads or fills the developer's own
    # cache, and a model that a test, a notebook or another parallel worker trained, the others load.
    # MLSEC_TEST_CACHE_DIR names another folder: benchmarks/bench_notebooks.py times a notebook's second run
    # against the cache its first run filled.
    path = Path(os.environ.get("MLSEC_TEST_CACHE_DIR") or run_temp(session.config) / "mlsec-cache")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["MLSEC_CACHE_DIR"] = str(path)


@pytest.fixture(scope="session")
def run_temp_dir(pytestconfig):
    return run_temp(pytestconfig)


def _without_stderr(outputs):
    # Warnings and progress bars go to stderr; they are not part of a lesson's result.
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


try:
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval is a dev extra; plain unit-test runs do not need it
    IPyNbCell = None

if IPyNbCell is not None and not getattr(NbvalKernelspecManager.get_kernel_spec, "_forks", False):
    # nbval's kernels (--nbval-current-env) are forked from one process per worker that has imported
    # TensorFlow and the rest once (tests/forked_kernels.py): about 5 s of CPU less per notebook.
    # MLSEC_FRESH_KERNELS=1 starts each one afresh, as JupyterLab does.
    _get_kernel_spec = NbvalKernelspecManager.get_kernel_spec

    def _forked_kernels():
        """tests/forked_kernels.py as a module (tests/ is not a package), loaded once; None where it is absent."""
        if "module" not in _zygote:
            import importlib.util

            script = Path(__file__).parent / "tests" / "forked_kernels.py"
            _zygote["module"] = None
            if script.exists():
                spec = importlib.util.spec_from_file_location("forked_kernels", script)
                _zygote["module"] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(_zygote["module"])
        return _zygote["module"]

    def get_kernel_spec(self, kernel_name):
        spec = _get_kernel_spec(self, kernel_name)
        if (kernel_name != CURRENT_ENV_KERNEL_NAME or os.environ.get("MLSEC_FRESH_KERNELS") == "1"
                or _zygote.get("notebooks", 2) < 2):
            return spec
        forked_kernels = _forked_kernels()
        if forked_kernels is None:  # a copy of the course without its tests: fresh kernels
            return spec
        if "socket" not in _zygote:
            _zygote["socket"] = forked_kernels.start_zygote()
        if _zygote["socket"] is None:
            return spec
        spec.argv = forked_kernels.kernel_argv()
        spec.env = {**spec.env, "MLSEC_KERNEL_ZYGOTE": _zygote["socket"]}
        return spec

    get_kernel_spec._forks = True
    NbvalKernelspecManager.get_kernel_spec = get_kernel_spec

if IPyNbCell is not None and not getattr(IPyNbCell.compare_outputs, "_ignores_stderr", False):
    _compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _without_stderr(test), _without_stderr(ref), skip_compare)

    compare_outputs._ignores_stderr = True
    IPyNbCell.compare_outputs = compare_outputs
