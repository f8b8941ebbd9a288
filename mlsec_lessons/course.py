"""Where the course lives on disk, and the fixtures its lessons share.

Nothing in here is part of a deployment: the model server, the grader and the attacks never need it.
"""
from pathlib import Path


def repo_root():
    """The course repository: the current directory if it has ``exercises/`` (the instructor's or the
    student's checkout, wherever the package is installed from), else the checkout this package is
    installed from (an editable install, as ``make lab`` makes)."""
    here = Path.cwd()
    if (here / "exercises").is_dir():
        return here
    return Path(__file__).resolve().parents[1]
