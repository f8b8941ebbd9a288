"""Every notebook under nbval, timed against the import floor measured in the same run.

The peer is a notebook that only imports the stack (TensorFlow, Keras, ART, mlsec_lessons):
the time no lesson can go below. The ratio says how much a lesson adds to it.

Each notebook runs first with an empty model cache of its own (cold: it trains what it needs,
as on a fresh CI machine), then again with that cache filled (warm: what a student re-running
it sees). The budget is held against the cold run.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# seconds under nbval, from each lesson's issue; the rest get DEFAULT_BUDGET_S
BUDGETS_S = {"00": 45.0, "01": 45.0, "05": 90.0, "06": 90.0, "08": 90.0, "09": 90.0, "10": 90.0, "12": 90.0,
             "13": 120.0}
DEFAULT_BUDGET_S = 60.0
WARM_BUDGETS_S = {"13": 45.0}  # the lessons whose issue also sets a budget for a filled cache
REPEATS = 2      # keep the faster run: the slower one mostly measures the machine


def budget_s(path):
    """A lesson's time budget: ``notebooks/05_x.ipynb`` has ``BUDGETS_S["05"]``."""
    number = path.name[:2] if path.parent.name == "notebooks" else None
    return BUDGETS_S.get(number, DEFAULT_BUDGET_S)


def warm_budget_s(path):
    """A lesson's budget with a filled cache, or None where its issue sets none."""
    return WARM_BUDGETS_S.get(path.name[:2]) if path.parent.name == "notebooks" else None


def time_notebook(path, cache, repeats=REPEATS):
    """Best wall time of ``repeats`` nbval runs with ``MLSEC_CACHE_DIR=cache``, and "passed" or "FAILED"."""
    best = float("inf")
    # the repository's conftest.py uses MLSEC_TEST_CACHE_DIR for the run; each notebook starts a kernel of its own,
    # as in JupyterLab, not one forked from tests/forked_kernels.py's zygote
    env = {**os.environ, "MLSEC_TEST_CACHE_DIR": str(cache), "MLSEC_FRESH_KERNELS": "1"}
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                               "--nbval-current-env", "--nbval-cell-timeout=300", str(path)],
                              cwd=ROOT, capture_output=True, text=True, env=env)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            return best, "FAILED"
    return best, "passed"


def floor_notebook(folder):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import mlsec_lessons\nmlsec_lessons.quiet()\nimport tensorflow, keras, art\n"
        "from mlsec_lessons import data, models, metrics")]
    path = Path(folder) / "floor.ipynb"
    nbformat.write(nb, path)
    return path


def run():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        floor, _ = time_notebook(floor_notebook(tmp), Path(tmp) / "floor-cache")
        rows = [["import floor (peer)", f"{floor:.1f}", "", "1.00", "", ""]]
        for path in notebooks:
            cache = Path(tmp) / f"cache-{path.stem}"  # empty: this notebook trains what it needs
            cold, status = time_notebook(path, cache, repeats=1)
            warm, warm_status = time_notebook(path, cache) if status == "passed" else (float("nan"), status)
            budget, warm_budget = budget_s(path), warm_budget_s(path)
            within = cold <= budget and status == warm_status == "passed"
            within &= warm_budget is None or warm <= warm_budget
            limits = f"{budget:.0f} s" + ("" if warm_budget is None else f", warm {warm_budget:.0f} s")
            rows.append([str(path.relative_to(ROOT)), f"{cold:.1f}", f"{warm:.1f}", f"{warm / floor:.2f}",
                         warm_status, f"{'yes' if within else 'NO'} ({limits})"])
    return {
        "title": "Notebooks under nbval",
        "columns": ["notebook", "cold s", "warm s", "warm / import floor", "nbval", "cold within budget"],
        "rows": rows,
        "notes": ("Wall time of `pytest --nbval-lax --nbval-current-env NOTEBOOK`. Cold: one run with an empty "
                  "model cache of its own, so the notebook trains every model it uses. Warm: best of "
                  f"{REPEATS} runs after that, with the cache filled."),
    }
