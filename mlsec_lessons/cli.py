"""The ``mlsec`` command.

    mlsec grade ex0                        grade exercises/ex0_security_metrics.py
    mlsec grade ex0 --path my_ex0.py       grade another file
    mlsec grade ex0 --solutions            grade the reference solution (must score full marks)
    mlsec grade --all --path submissions/alice
                                           grade every exercise found in a folder
    mlsec stubs [--check]                  regenerate exercises/*.py from solutions/*.py

Exit codes: 0 at full marks (or stubs up to date), 1 otherwise, 2 for a usage error.
"""
import argparse
import sys
from pathlib import Path

from . import stubs
from .grading import exercises, report, runner


def build_parser():
    parser = argparse.ArgumentParser(prog="mlsec", description="mlsec-lessons: grade exercises, make stubs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = commands.add_parser("grade", help="grade an exercise (or --all of them)",
                                description=f"Known exercises: {', '.join(exercises.known())}.")
    grade.add_argument("exercise", nargs="?", help="ex0 or ex0_security_metrics")
    grade.add_argument("--all", action="store_true", help="grade every known exercise")
    grade.add_argument("--path", type=Path,
                       help="the file to grade; with --all, the folder that holds the files")
    grade.add_argument("--solutions", action="store_true", help="grade the reference solutions")
    grade.add_argument("--timeout", type=float, default=None, metavar="S",
                       help="seconds for one exercise (default: the exercise's own limit, 60 s unless it says)")
    grade.set_defaults(run=run_grade, parser=grade)

    stub = commands.add_parser("stubs", help="regenerate exercises/*.py from solutions/*.py")
    stub.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 and list the stubs that are out of date")
    stub.set_defaults(run=run_stubs, parser=stub)
    return parser


def run_grade(args):
    parser = args.parser  # errors show the usage of `mlsec grade`
    if args.all == bool(args.exercise):
        parser.error("name one exercise, or give --all")
    if args.solutions and args.path:
        parser.error("--solutions grades solutions/; it does not take --path")
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    if args.all:
        return grade_all(args.path, args.solutions, args.timeout)
    try:
        name = exercises.resolve(args.exercise)
    except ValueError as e:
        parser.error(str(e))
    result = runner.grade(name, args.path, args.solutions, args.timeout)
    print(result)
    return 0 if result.full_marks else 1


def grade_all(folder, solutions, timeout):
    """Grade every known exercise in ``folder``; a file that is missing scores 0."""
    if folder is None:
        folder = exercises.repo_root() / ("solutions" if solutions else "exercises")
    if not Path(folder).is_dir():
        print(f"mlsec grade: error: {folder} is not a folder", file=sys.stderr)
        return 2
    reports = []
    for name in exercises.known():
        reports.append(runner.grade(name, Path(folder) / f"{name}.py", timeout=timeout))
        print(reports[-1], end="\n\n")
    print(f"summary for {folder}")
    print(report.summary(reports))
    return 0 if all(r.full_marks for r in reports) else 1


def run_stubs(args):
    root = exercises.repo_root()
    if args.check:
        stale = stubs.outdated(root)
        for path in stale:
            print(f"{path.relative_to(root)} differs from what solutions/{path.name} generates")
        if stale:
            print("run `make stubs` to regenerate them")
        return 1 if stale else 0
    for path in stubs.write(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except stubs.MarkerError as e:
        print(f"mlsec: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
