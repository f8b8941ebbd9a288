"""Grading the reference solutions with and without ``--sandbox``, and a class graded in a batch.

The cost of isolation: each exercise's reference solution is graded by
``mlsec_lessons.grading.grade(ex, solutions=True)`` in the default mode (the student's code in
its own worker process) and with ``sandbox=True`` (that worker inside bubblewrap), and the table
gives the ratio sandbox / default. The goal (issue 13) is that isolation costs 25 % or less of
grading time, a ratio of 1.25 or less. The grader that ran the student's code in the judge's own
process is gone, so the default mode is the peer: the table measures what the sandbox adds on
top of process isolation, not what process isolation costs.

The batch: a class of 20 copies of the ex0 reference solution (``s01/ex0_security_metrics.py``
... ``s20/``), graded by ``mlsec grade --batch DIR --jobs 2`` in the sandbox (without it, and the
table says so, where the sandbox is not available), then the same command again, which finds
every file unchanged and grades nothing.

Each grading starts from an empty model cache (a fresh ``MLSEC_CACHE_DIR``), so any model the
checks train is trained in the run: the time a student sees on a first run. The CPU time
(user + system of the judge, the worker and the sandbox's processes) is given beside the wall
time, because other programs on a shared machine disturb it less.

Usage::

    .venv/bin/python benchmarks/run.py grading                      # everything, writes results/grading.md
    MLSEC_BENCH_QUICK=1 .venv/bin/python benchmarks/run.py grading  # ex0 and ex3 only, and the batch
    .venv/bin/python benchmarks/bench_grading.py [--quick]          # print the table, write nothing
"""
import argparse
import contextlib
import csv
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ["ex0", "ex1", "ex2", "ex3", "capstone"]
QUICK = ["ex0", "ex3"]  # the light exercises: --quick grades only these
REPEATS = {"ex0": 3, "ex3": 3}  # the light exercises are graded 3 times per mode (the median counts)
BUDGETS_S = {"ex1": 90, "ex2": 90, "ex3": 60}  # from the issues, for the default mode
GOAL = 1.25  # issue 13: isolation costs 25 % or less of grading time
CLASS_SIZE = 20
JOBS = 2
QUICK_ENV = "MLSEC_BENCH_QUICK"


@dataclass
class Timing:
    """One grading run (or the median of several): seconds, and the score it gave."""

    wall: float
    cpu: float
    score: str  # "35/35", or what went wrong
    full: bool  # full marks


def run(quick=None):
    """Measure the cost of isolation per exercise and the batch; return the table for ``run.py``.

    Parameters
    ----------
    quick : bool, optional
        Grade ex0 and ex3 only (the heavy exercises take minutes each). Default: the
        ``MLSEC_BENCH_QUICK`` environment variable (``1`` for quick), else everything.

    Returns
    -------
    dict
        ``title``, ``columns``, ``rows`` and ``notes`` (the batch table is in the notes).
    """
    sys.path.insert(0, str(ROOT))
    from mlsec_lessons.grading import sandbox

    if quick is None:
        quick = os.environ.get(QUICK_ENV, "") not in ("", "0")
    problem = sandbox.problem()
    load = [os.getloadavg()[0]]
    measured = {name: _isolation_cost(name, problem) for name in EXERCISES if not quick or name in QUICK}
    rows = [_isolation_row(name, measured.get(name), problem) for name in EXERCISES]
    batch_table = _markdown_table(["run", "isolation", "seconds", "s per submission", "ratio to one ex0 grade",
                                   "graded / unchanged", "scores"], _batch_rows(problem))
    load.append(os.getloadavg()[0])
    return {
        "title": "Grading the reference solutions: the cost of `--sandbox`, and a class in a batch",
        "columns": ["exercise", "default s", "sandbox s", "sandbox / default", "isolation ≤ 25 %?",
                    "CPU s default / sandbox", "budget (default)", "within budget", "score default / sandbox"],
        "rows": rows,
        "notes": _notes(quick, batch_table, load),
    }


# ---------------------------------------------------------------------------- the cost of isolation

def _isolation_cost(name, problem):
    """Grade one reference solution in both modes.

    Parameters
    ----------
    name : str
        The exercise (``"ex0"``).
    problem : str or None
        Why the sandbox cannot run here (:func:`mlsec_lessons.grading.sandbox.problem`), or None.

    Returns
    -------
    (Timing, Timing or None)
        The default mode and the sandbox (None when it cannot run). Light exercises give the median
        of :data:`REPEATS` runs, taken in turn (default, sandbox, default, ...) so that a change in
        the machine's load falls on both modes alike.
    """
    default, boxed = [], []
    for _ in range(REPEATS.get(name, 1)):
        default.append(_grade_once(name, sandbox=False))
        if problem is None:
            boxed.append(_grade_once(name, sandbox=True))
    return _median(default), (_median(boxed) if boxed else None)


def _grade_once(name, sandbox):
    """Grade ``solutions/<name>.py`` once, from an empty model cache.

    Returns
    -------
    Timing
        Wall seconds, CPU seconds of the grading processes (:class:`_CpuSampler`), and the score
        (with the report's note, or the failed checks, when it is not full marks).
    """
    from mlsec_lessons.grading import grade

    with _cold_cache(), _CpuSampler() as cpu:
        start = time.perf_counter()
        report = grade(name, solutions=True, sandbox=sandbox)
        wall = time.perf_counter() - start
    score = f"{report.score}/{report.total}"
    if not report.full_marks:
        score += f" (failed: {report.note or ', '.join(report.failed())})"
    return Timing(wall, cpu.seconds, score, report.full_marks)


class _CpuSampler:
    """User + system CPU seconds of this process's descendants while the block runs.

    ``getrusage(RUSAGE_CHILDREN)`` misses the sandbox: the judge ends a sandboxed worker by killing
    bubblewrap, which never reaps the processes in its PID namespace, so their CPU time reaches no
    ancestor of this process. So the descendants are read from ``/proc`` every ``interval`` seconds
    and each one's last reading counts (a process misses at most its last ``interval``). Where
    there is no ``/proc``, ``getrusage`` is used.
    """

    def __init__(self, interval=0.05):
        self.interval, self.seen, self.seconds = interval, {}, 0.0
        self.proc = Path("/proc/self/stat").exists()
        self.ticks = os.sysconf("SC_CLK_TCK") if self.proc else 1
        self.done = threading.Event()

    def __enter__(self):
        self.before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.thread = threading.Thread(target=self._poll, daemon=True)
        if self.proc:
            self.thread.start()
        return self

    def __exit__(self, *_):
        self.done.set()
        if self.proc:
            self.thread.join()
            self.seconds = sum(self.seen.values()) / self.ticks
        else:
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.seconds = sum(getattr(after, f) - getattr(self.before, f) for f in ("ru_utime", "ru_stime"))

    def _poll(self):
        while not self.done.wait(self.interval):
            self._sample()

    def _sample(self):
        """Record the CPU ticks of every descendant, keyed by (pid, start time)."""
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
                    # after the name: state ppid ... utime(12) stime(13) ... starttime(20)
                    stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), fields[19])
        children, todo = {}, [os.getpid()]
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        while todo:
            for pid in children.get(todo.pop(), []):
                self.seen[(pid, stats[pid][2])] = stats[pid][1]
                todo.append(pid)


@contextlib.contextmanager
def _cold_cache():
    """``MLSEC_CACHE_DIR`` pointed at a fresh, empty folder for the duration (the judge inherits it)."""
    old = os.environ.get("MLSEC_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-cache-") as cache:
        os.environ["MLSEC_CACHE_DIR"] = cache
        try:
            yield cache
        finally:
            if old is None:
                os.environ.pop("MLSEC_CACHE_DIR", None)
            else:
                os.environ["MLSEC_CACHE_DIR"] = old


def _median(timings):
    """The median wall and CPU time of several runs; the scores, when they differ, all of them."""
    scores = sorted({t.score for t in timings})
    return Timing(statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings),
                  "; ".join(scores), all(t.full for t in timings))


def _isolation_row(name, measured, problem):
    """One row of the isolation table, or a row that says why it was not measured."""
    label = f"{name} (median of {REPEATS[name]})" if name in REPEATS else name
    budget = BUDGETS_S.get(name)
    budget_cell = f"{budget} s" if budget else ""
    if measured is None:
        return [label, "not measured (--quick)", "", "", "", "", budget_cell, "", ""]
    default, boxed = measured
    within = "" if budget is None else ("yes" if default.wall <= budget else "no")
    if boxed is None:
        return [label, f"{default.wall:.1f}", f"not measured: {problem}", "", "", f"{default.cpu:.1f} / -",
                budget_cell, within, default.score]
    ratio = boxed.wall / default.wall
    verdict = f"{'yes' if ratio <= GOAL else 'no'} ({(ratio - 1) * 100:+.0f} %)"
    if not (default.full and boxed.full):  # a run that failed checks did different work: no verdict
        verdict = "not comparable: the reference lost points"
    cpu = f"{default.cpu:.1f} / {boxed.cpu:.1f} ({boxed.cpu / default.cpu:.2f})"
    return [label, f"{default.wall:.1f}", f"{boxed.wall:.1f}", f"{ratio:.2f}", verdict, cpu, budget_cell, within,
            f"{default.score} / {boxed.score}"]


# ---------------------------------------------------------------------------- the batch

def _batch_rows(problem):
    """Grade a class of :data:`CLASS_SIZE` copies of the ex0 reference twice; the two rows.

    The peer of the time per submission is one ex0 grading in the same isolation, the median of
    3 taken just before the batch (so that both see the same load on the machine).

    Parameters
    ----------
    problem : str or None
        Why the sandbox cannot run here; then the class is graded with ``--no-sandbox``.
    """
    isolation = "sandbox" if problem is None else "process (no sandbox: " + problem + ")"
    peer = _median([_grade_once("ex0", sandbox=problem is None) for _ in range(3)]).wall
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-class-") as tmp, _cold_cache():
        folder = _make_class(Path(tmp) / "class", CLASS_SIZE)
        for label in (f"first: {CLASS_SIZE} x ex0, --jobs {JOBS}", "second (resumed: nothing changed)"):
            seconds, counts, scores = _batch(folder, sandbox=problem is None)
            per = seconds / CLASS_SIZE
            ratio = f"{per / peer:.2f} (one: {peer:.1f} s)" if label.startswith("first") else ""
            rows.append([label, isolation, f"{seconds:.1f}", f"{per:.2f}", ratio, counts, scores])
    return rows


def _make_class(folder, size):
    """A class folder ``s01`` ... ``s<size>``, each with a copy of the ex0 reference solution."""
    reference = ROOT / "solutions" / "ex0_security_metrics.py"
    for i in range(1, size + 1):
        student = folder / f"s{i:02d}"
        student.mkdir(parents=True)
        shutil.copyfile(reference, student / reference.name)
    return folder


def _batch(folder, sandbox):
    """Run ``mlsec grade --batch folder --jobs JOBS`` once.

    Returns
    -------
    seconds : float
        Wall time of the whole command (start-up included).
    counts : str
        ``"graded / unchanged"`` as the command reports them, or its error.
    scores : str
        The distinct ``score/max`` pairs of the gradebook, with how many students got each.
    """
    mlsec = Path(sys.executable).with_name("mlsec")
    command = [str(mlsec)] if mlsec.exists() else [sys.executable, "-m", "mlsec_lessons.cli"]
    command += ["grade", "--batch", str(folder), "--jobs", str(JOBS)] + ([] if sandbox else ["--no-sandbox"])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, errors="replace")
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return seconds, f"exit code {done.returncode}: {done.stderr.strip().splitlines()[-1:]}", ""
    found = re.search(r"(\d+) files graded, (\d+) unchanged", done.stdout)
    counts = f"{found[1]} / {found[2]}" if found else done.stdout.strip()[:80]
    return seconds, counts, _gradebook_scores(folder.with_name(folder.name + "-grades") / "gradebook.csv")


def _gradebook_scores(path):
    """``"20 x 35/35"``: the gradebook's totals, counted."""
    with open(path, newline="", encoding="utf-8") as f:
        totals = [f"{row['total']}/{row['max_total']}" for row in csv.DictReader(f)]
    return ", ".join(f"{totals.count(t)} x {t}" for t in sorted(set(totals)))


# ---------------------------------------------------------------------------- the report

def _notes(quick, batch_table, load):
    """The table's notes, then the batch table. ``load``: the 1-minute load average at the start and end."""
    mode = ("**Quick run** (`MLSEC_BENCH_QUICK=1`): ex1, ex2 and the capstone were not graded." if quick
            else "A full run.")
    return (
        f"{mode} The peer is the default mode (the student's code in its own worker process): the in-process "
        "grader, where the student's code ran in the judge's process, is gone, so this compares the sandbox with "
        "process isolation only, not with no isolation. Goal (issue 13): isolation costs 25 % or less of grading "
        "time (sandbox / default ≤ 1.25). ex0 and ex3 are graded 3 times per mode, in turn, and the median is "
        "shown; ex1, ex2 and the capstone once per mode (minutes each). Every grading starts from an empty model "
        "cache. CPU s: user + system time of the judge, the worker and bubblewrap's processes (read from /proc "
        "while they run), with the ratio sandbox / default. The machine (2 cores) was shared with other work "
        f"while this ran (1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end), so the wall "
        "times are noisy, and the ratios of the single runs more so; the CPU times are steadier. The reference "
        "solutions must score full marks in both modes; where one does not, its times did different work and "
        "get no verdict.\n\n"
        f"### A class in a batch: `mlsec grade --batch DIR --jobs {JOBS}`\n\n"
        f"{batch_table}\n\n"
        f"{CLASS_SIZE} student folders (s01 ... s{CLASS_SIZE:02d}), each holding a copy of the ex0 reference "
        "solution, graded in the sandbox (the batch's default; with --no-sandbox where the sandbox cannot run, "
        "as the isolation column says). Seconds: the whole command, start-up included. "
        "Ratio to one ex0 grade: the time per submission over one ex0 grading in the same isolation "
        f"(`grade()`, the median of 3 just before the batch); below 1 when --jobs {JOBS} overlaps the students. "
        "The second run is the same command again: every file is unchanged (same SHA-256, grader version and "
        "isolation), so it only reads the state file and writes the gradebook and the feedback."
    )


def _markdown_table(columns, rows):
    """The same layout as ``run.py``'s tables."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def main(argv=None):
    """Print the table (no results file is written: ``run.py grading`` does that)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="grade ex0 and ex3 only, and the batch")
    result = run(quick=parser.parse_args(argv).quick)
    print(f"# {result['title']}\n\n{_markdown_table(result['columns'], result['rows'])}\n\n{result['notes']}")


if __name__ == "__main__":
    main()
