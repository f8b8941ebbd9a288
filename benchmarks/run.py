"""Run the benchmarks and write each one's table to benchmarks/results/<name>.md.

Usage: python benchmarks/run.py [NAME ...]     (default: every benchmarks/bench_*.py)

A benchmark module defines ``run() -> dict`` with keys ``title``, ``columns``, ``rows`` and
``notes``. It measures against a peer in the same run and reports a ratio, so the table
means the same on a fast laptop and on a slow CI machine.
"""
import datetime
import importlib.util
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def markdown_table(columns, rows):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names):
    paths = sorted(HERE.glob("bench_*.py"))
    if names:
        known = {p.stem.removeprefix("bench_"): p for p in paths}
        unknown = [n for n in names if n not in known]
        if unknown:
            sys.exit(f"unknown benchmark(s) {unknown}; available: {sorted(known)}")
        paths = [known[n] for n in names]
    RESULTS.mkdir(exist_ok=True)
    for path in paths:
        print(f"running {path.stem} ...", flush=True)
        result = load(path).run()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = (f"# {result['title']}\n\n{markdown_table(result['columns'], result['rows'])}\n\n"
                f"{result.get('notes', '')}\n\nMeasured {stamp} on {platform.machine()}, "
                f"{cpu_count()} CPU cores, Python {platform.python_version()}.\n")
        out = RESULTS / f"{path.stem.removeprefix('bench_')}.md"
        out.write_text(text)
        print(text)
        print(f"wrote {out.relative_to(HERE.parent)}")


def cpu_count():
    """The cores this process may run on (its affinity), where the system says; else all of them."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main(sys.argv[1:])
