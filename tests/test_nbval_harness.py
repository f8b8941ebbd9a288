"""The notebook harness compares checked outputs but never stderr (warnings, progress bars)."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_nbval(tmp_path, stdout_saved, stderr_saved):
    cell = nbformat.v4.new_code_cell(
        "# NBVAL_CHECK_OUTPUT\nimport sys\nprint('result 42')\nprint('progress 37%', file=sys.stderr)",
        outputs=[nbformat.v4.new_output("stream", name="stdout", text=stdout_saved),
                 nbformat.v4.new_output("stream", name="stderr", text=stderr_saved)])
    cell.execution_count = 1  # nbval refuses a saved output from a cell that never ran
    nb = nbformat.v4.new_notebook(cells=[cell])
    path = tmp_path / "harness.ipynb"
    nbformat.write(nb, path)
    # cwd=ROOT puts the repository on sys.path, so "-p conftest" loads the course's harness set-up
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=60", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a Jupyter kernel under nbval, as make test runs the notebooks
def test_stderr_is_not_compared(tmp_path):
    done = run_nbval(tmp_path, "result 42\n", "a different progress bar\n")
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.slow  # a Jupyter kernel under nbval, as make test runs the notebooks
def test_checked_stdout_still_is(tmp_path):
    done = run_nbval(tmp_path, "result 41\n", "progress 37%\n")
    assert done.returncode == 1 and "result 41" in done.stdout, done.stdout[-2000:]
