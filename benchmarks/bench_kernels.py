"""nbval's kernels forked from a zygote (tests/forked_kernels.py) against kernels started afresh, same run.

The peer is what JupyterLab does: each notebook gets a new kernel, whose first cell imports the stack.
The course's test harness instead forks each kernel from one process per pytest worker that has imported
the stack once. One pytest run over ``COPIES`` copies of the import-floor notebook (bench_notebooks'
peer: TensorFlow, Keras, ART and the course) measures both ways, interleaved: seconds per run, per
notebook, and the ratio fresh / forked. The zygote's own start is inside the forked runs' time.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_notebooks import ROOT, floor_notebook  # noqa: E402

COPIES = 4   # notebooks per pytest run: about one worker's share of a lesson run is 10
REPEATS = 2  # interleaved runs each way; the faster one is kept


def time_run(paths, fresh, cache):
    env = {**os.environ, "MLSEC_TEST_CACHE_DIR": str(cache), "MLSEC_FRESH_KERNELS": "1" if fresh else "0"}
    start = time.perf_counter()
    # the notebooks are in a temporary folder, outside the repository: "-p conftest" (cwd=ROOT puts the repository
    # on sys.path) loads the repository's conftest.py, which is what forks the kernels
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "--nbval-cell-timeout=300", *map(str, paths)],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"nbval failed ({'fresh' if fresh else 'forked'} kernels):\n{done.stdout[-3000:]}")
    return time.perf_counter() - start


def run():
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(COPIES):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            paths.append(floor_notebook(folder))
        best = {True: float("inf"), False: float("inf")}
        for _ in range(REPEATS):
            for fresh in (True, False):
                best[fresh] = min(best[fresh], time_run(paths, fresh, Path(tmp) / "cache"))
    single = {}
    with tempfile.TemporaryDirectory() as tmp:  # one notebook: the harness starts no zygote, both ways are fresh
        path = floor_notebook(tmp)
        for fresh in (True, False):
            single[fresh] = time_run([path], fresh, Path(tmp) / "cache")
    rows = [[f"{COPIES} import-floor notebooks, one pytest run", f"{best[True]:.1f}", f"{best[False]:.1f}",
             f"{best[True] / COPIES:.1f}", f"{best[False] / COPIES:.1f}", f"{best[True] / best[False]:.2f}"],
            ["1 import-floor notebook, one pytest run", f"{single[True]:.1f}", f"{single[False]:.1f}",
             f"{single[True]:.1f}", f"{single[False]:.1f}", f"{single[True] / single[False]:.2f}"]]
    return {
        "title": "nbval's kernels: forked from a zygote against started afresh",
        "columns": ["run", "fresh s", "forked s", "fresh s / notebook", "forked s / notebook", "fresh / forked"],
        "rows": rows,
        "notes": (f"Wall time of `pytest --nbval-lax --nbval-current-env` over the notebooks, with "
                  "`MLSEC_FRESH_KERNELS=1` (each kernel started as JupyterLab starts it: the peer) and without "
                  f"(the test harness's forked kernels). Best of {REPEATS} interleaved runs for {COPIES} notebooks, "
                  "one run each for a single notebook, for which the harness starts no zygote (it would cost more than it "
                  "saves): both columns are then fresh kernels, and their ratio is the noise of one run. Pytest's own "
                  "start-up is in every run."),
    }
