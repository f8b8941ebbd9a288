"""How many pytest-xdist workers ``make test`` should start: one per core against one more, same session.

``make test`` starts one worker per core (``JOBS``). A worker is not always on the CPU: it waits for a
notebook's kernel, a grader's judge or a server's reply, for Ray's or Flower's processes to start, for a
browser. One more worker could fill that time, or only make every test slower by as much. Each run is
``make test``'s (or ``make test-fast``'s) pytest command, as ``bench_tests`` runs it (``make -n``), with
``JOBS`` set; the order alternates (test-fast with one worker per core first, make test with one more
first), so that a machine whose speed drifts over the hour is not charged to one side only.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tests import measure  # noqa: E402
from run import cpu_count  # noqa: E402

RUNS = {"fast": "`make test-fast`", "all": "`make test`"}  # in this order


def run():
    n = cpu_count()
    rows, walls = [], {}
    for run_name, command in RUNS.items():
        # one worker per core first for test-fast, last for make test: each side runs once early, once late
        order = (n, n + 1) if run_name == "fast" else (n + 1, n)
        for jobs in order:
            print(f"bench_workers: {run_name} with {jobs} workers ...", flush=True)
            rec = measure(run_name, jobs=jobs)
            if rec["exit_status"] != 0:
                raise RuntimeError(f"the {run_name} run with {jobs} workers failed: {rec['summary']}")
            walls[run_name, jobs] = rec["wall_s"]
            rows.append([f"{command}'s pytest", jobs, f"{rec['wall_s']:.0f}", rec["summary"], rec["when"]])
    for run_name, command in RUNS.items():
        rows.append([f"{command}: {n} workers / {n + 1} workers", "",
                     f"{walls[run_name, n] / walls[run_name, n + 1]:.2f}", "", ""])
    return {
        "title": f"make test's workers: one per core ({n}) against one more ({n + 1})",
        "columns": ["run", "workers", "wall seconds", "pytest's summary", "started"],
        "rows": rows,
        "notes": ("Wall seconds of each pytest run, collection included (the environment already installed). A "
                  "ratio above 1 means the extra worker is faster; `make test` keeps one worker per core unless it "
                  "is. Under either count, every process runs TensorFlow and OpenMP on one thread (`conftest.py`), "
                  "and the scopes go out longest first."),
    }
