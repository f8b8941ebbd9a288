"""The student copy of the course: every file of the repository but the answers.

:func:`build` copies the files git tracks (or, outside a git checkout, every file but
``.venv``, ``.git``, caches and build output) and leaves out:

* ``solutions/``, the reference solutions, and the grader's tests (``tests/test_grading*.py``
  and the cheating submissions in ``tests/cheats/``);
* every test, benchmark and notebook that reads them: any ``.py`` or ``.ipynb`` file outside the
  library that calls ``solution_file``/``solution_variant``, joins a path with ``"solutions"`` or
  passes ``--solutions`` (the grader's tests, ``tests/test_stubs.py``,
  ``benchmarks/bench_grading.py``, and lesson 12, which runs the capstone's reference).

The library (``mlsec_lessons/``) stays whole: the lessons import it. The README's links to a
notebook that was left out become plain text, and ``RELEASE.md`` lists what was left out and why.
In the release, ``mlsec grade`` runs every check that does not need the reference, and fails the
others with :data:`~mlsec_lessons.grading.exercises.MISSING_REFERENCE`.

Examples
--------
>>> left = build("release")  # doctest: +SKIP
>>> "solutions/ex0_security_metrics.py" in left  # doctest: +SKIP
True
"""
import fnmatch
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import mlsec_lessons

from .. import course
from ..errors import MLSecError
from . import exercises, hints

# never copied, at any depth, when the tree is walked instead of asking git
UNTRACKED = {".git", ".venv", ".lockvenv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "build",
             ".mypy_cache", ".ruff_cache"}
# code that loads the reference solutions; the library itself may (it is the grader)
READS_SOLUTIONS = re.compile(r"""solution_file\(|solution_variant\(|--solutions|solutions=True|"""
                             r"""[/(,]\s*\\?["']solutions\\?["']""")
LIBRARY = "mlsec_lessons/"
# the grader's own tests grade copies of the solutions, and cheating submissions, whatever their text says
GRADER_TESTS = ("tests/test_grading*.py", "tests/cheats/*")


class ReleaseError(MLSecError):
    """A release that cannot be built: OUTDIR exists and is not empty, or there is no course."""


def course_files(root):
    """Every file of the course in ``root``, relative to it: what git tracks in a checkout,
    else the tree without ``.venv``, ``.git``, caches and build output."""
    root = Path(root)
    if (root / ".git").exists():
        try:
            listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
            names = [os.fsdecode(p) for p in listed.stdout.split(b"\0") if p]
            return sorted(Path(n) for n in names if (root / n).is_file())  # tracked, not deleted
        except (OSError, subprocess.CalledProcessError):
            pass  # no git on this machine: walk the tree
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and UNTRACKED.isdisjoint(p.relative_to(root).parts)
                  and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts))


def why_left_out(rel, root):
    """Why the file ``rel`` (relative to ``root``) holds answers, or None when it goes in the release.

    Examples
    --------
    >>> why_left_out(Path("solutions/ex0_security_metrics.py"), Path("."))
    'a reference solution'
    """
    if rel.parts[0] == "solutions":
        return "a reference solution"
    if any(fnmatch.fnmatch(rel.as_posix(), pattern) for pattern in GRADER_TESTS):
        return "tests the grader against the reference solutions"
    if rel.suffix in (".py", ".ipynb") and not rel.as_posix().startswith(LIBRARY):
        text = (Path(root) / rel).read_text(encoding="utf-8", errors="replace")
        if READS_SOLUTIONS.search(text):
            return "reads the reference solutions"
    return None


def build(outdir, root=None):
    """Write the student release of the course in ``root`` to ``outdir``.

    Parameters
    ----------
    outdir : str or Path
        Where the release goes; it must not exist, or be an empty folder.
    root : str or Path, optional
        The course repository. Default: :func:`mlsec_lessons.course.repo_root`.

    Returns
    -------
    dict
        ``{left-out path: why}``, as POSIX paths relative to the course.

    Raises
    ------
    ReleaseError
        When ``outdir`` is a file, a folder that is not empty or a folder inside the course, or
        ``root`` holds no course.
    """
    root = Path(root) if root is not None else course.repo_root()
    outdir = Path(outdir)
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise ReleaseError(f"{outdir} {'is not empty' if outdir.is_dir() else 'is a file'}; "
                           "give a new or empty folder for the release")
    if not (root / "exercises").is_dir() or not (root / "mlsec_lessons").is_dir():
        raise ReleaseError(f"{root} is not the course repository (no exercises/ and mlsec_lessons/)")
    if outdir.resolve().is_relative_to(root.resolve()):
        raise ReleaseError(f"{outdir} is inside the course folder {root}; write the release elsewhere")
    files, left_out = course_files(root), {}
    for rel in files:
        why = why_left_out(rel, root)
        if why:
            left_out[rel.as_posix()] = why
            continue
        (outdir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, outdir / rel)
    for name in exercises.known():  # the hints, which live in the solutions, without the solutions
        solution = root / "solutions" / f"{name}.py"
        if solution.is_file():
            target = outdir / "exercises" / "hints" / f"{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(hints.export(solution.read_text(encoding="utf-8"), name), encoding="utf-8")
    readme = outdir / "README.md"
    if readme.exists():
        readme.write_text(unlink(readme.read_text(encoding="utf-8"), left_out), encoding="utf-8")
    (outdir / "RELEASE.md").write_text(_notes(root, left_out), encoding="utf-8")
    return left_out


def unlink(markdown, left_out):
    """``markdown`` with each link to a left-out file replaced by its text.

    Examples
    --------
    >>> unlink("see [lesson 12](notebooks/12_capstone.ipynb).", {"notebooks/12_capstone.ipynb": "x"})
    "see lesson 12 (in the instructor's copy)."
    """
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                  lambda m: f"{m.group(1)} (in the instructor's copy)" if m.group(2) in left_out else m.group(0),
                  markdown)


def _notes(root, left_out):
    lines = ["# Student release", "",
             f"Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from mlsec-lessons {mlsec_lessons.__version__}"
             + (f", commit {_commit(root)}" if _commit(root) else "") + ".", "",
             "The reference solutions, and the tests, benchmarks and lessons that read them, are not in this copy.",
             "`mlsec grade` runs every check it can without them; a check that compares your results with the",
             "reference's says so, and your instructor grades it.", "", "Left out:", ""]
    lines += [f"- `{path}`: {why}" for path, why in sorted(left_out.items())]
    return "\n".join(lines) + "\n"


def _commit(root):
    if not (Path(root) / ".git").exists():
        return ""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
