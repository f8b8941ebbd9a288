"""`mlsec grade exN --solutions` for every exercise, timed against ex0 in the same run.

ex0 grades plain numpy functions, so its time is the grader's floor: a Python process, pytest,
the course's imports. Each exercise has a budget from its issue; the table says whether the
wall time is within it, and gives the CPU time too, which other programs on a shared machine
disturb less. The model cache is empty for each run (a fresh temporary folder), so any model
the checks train is trained here: the time a student sees on a first run.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS_S = {"ex1": 90, "ex2": 90, "ex3": 60}  # from the issues; ex0 is the peer


def _grade(exercise):
    """(wall seconds, CPU seconds of the grading processes, exit code) of one cold grading run."""
    mlsec = Path(sys.executable).with_name("mlsec")
    command = [str(mlsec)] if mlsec.exists() else [sys.executable, "-m", "mlsec_lessons.cli"]
    with tempfile.TemporaryDirectory() as cache:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command + ["grade", exercise, "--solutions"], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "MLSEC_CACHE_DIR": cache})
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, done.stdout.strip().splitlines()[-1]


def run():
    sys.path.insert(0, str(ROOT))
    from mlsec_lessons.grading import known

    names = [name.split("_")[0] for name in known()]
    results = {name: _grade(name) for name in names}
    floor = results["ex0"][0]
    rows = []
    for name, (wall, cpu, code, total) in results.items():
        budget = BUDGETS_S.get(name)
        verdict = "peer" if name == "ex0" else ("yes" if wall <= budget else "no")
        rows.append([name, f"{wall:.1f}", f"{cpu:.1f}", f"{wall / floor:.1f}", f"{budget} s" if budget else "",
                     verdict, total.split("total", 1)[-1].strip(), "0" if code == 0 else str(code)])
    return {
        "title": "Grading the reference solutions (`mlsec grade exN --solutions`)",
        "columns": ["exercise", "wall s", "CPU s", "ratio to ex0", "budget", "within budget", "score",
                    "exit code"],
        "rows": rows,
        "notes": ("One cold run each (an empty model cache), in sequence. CPU s: user + system time of the "
                  "grader and its pytest subprocess. The solutions must score full marks with exit code 0."),
    }
