"""Student stubs, generated from the solutions so that the two can never drift apart.

A solution marks the code a student writes, nbgrader-style::

    def model_robustness_score(asr):
        ### BEGIN SOLUTION hint: the share of attacked samples that survive
        return 1.0 - asr
        ### END SOLUTION

and the stub keeps everything else, with each marked region replaced by one line at the
region's indentation::

    def model_robustness_score(asr):
        raise NotImplementedError("the share of attacked samples that survive")

``solutions/exN_name.py`` becomes ``exercises/exN_name.py``; ``mlsec stubs`` writes them and
``mlsec stubs --check`` lists the ones that are out of date.
"""
import json
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
DEFAULT_HINT = "write your code here"


class MarkerError(ValueError):
    """The solution markers in a file do not pair up."""


def parse_hint(line):
    """The hint on a ``### BEGIN SOLUTION`` line, or :data:`DEFAULT_HINT` when it has none.

    Examples
    --------
    >>> parse_hint("    ### BEGIN SOLUTION hint: count flips among correct samples")
    'count flips among correct samples'
    """
    rest = line.strip()[len(BEGIN):].strip()
    if rest.startswith("hint:"):
        rest = rest[len("hint:"):].strip()
    return rest or DEFAULT_HINT


def make_stub(text, source="the solution"):
    """Replace every marked region of ``text`` with ``raise NotImplementedError("<hint>")``.

    Parameters
    ----------
    text : str
        The solution's source code.
    source : str, default="the solution"
        What to call the file in error messages and in the generated header.

    Returns
    -------
    str
        The stub: a header comment, then ``text`` with the regions replaced.

    Raises
    ------
    MarkerError
        When a region is nested in another, never closed, or closed without being opened.

    Examples
    --------
    >>> solution = "def f():\\n    ### BEGIN SOLUTION hint: return 1\\n    return 1\\n    ### END SOLUTION\\n"
    >>> print(make_stub(solution, "f.py").splitlines()[-1])
        raise NotImplementedError("return 1")
    """
    out, opened_at = [], None  # opened_at: line number of the BEGIN we are inside, if any
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if opened_at is not None:
                raise MarkerError(f"{source}, line {number}: {BEGIN} inside the region opened on line "
                                  f"{opened_at}; regions cannot nest")
            opened_at = number
            indent = line[:len(line) - len(line.lstrip())]
            # json.dumps writes a valid Python string literal, quotes and backslashes escaped
            out.append(f"{indent}raise NotImplementedError({json.dumps(parse_hint(line), ensure_ascii=False)})\n")
        elif marker.startswith(END):
            if opened_at is None:
                raise MarkerError(f"{source}, line {number}: {END} without a {BEGIN} before it")
            opened_at = None
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        raise MarkerError(f"{source}, line {opened_at}: {BEGIN} is never closed by {END}")
    return header(source) + "".join(out)


def header(source):
    """The comment on top of every stub: where it comes from, and who may edit it."""
    return (f"# Generated from {source} by `make stubs`: do not edit by hand in the\n"
            f"# course repository (change the solution, then run `make stubs`). Students: this is your\n"
            f"# copy; replace each `raise NotImplementedError(...)` with your code, then run the grader.\n")


def exercise_files(directory):
    """The exercise modules in ``directory``, in course order: ``ex0_*.py`` ... ``exN_*.py``, then ``capstone.py``."""
    directory = Path(directory)
    return sorted(directory.glob("ex*.py")) + sorted(directory.glob("capstone.py"))


def generate(root):
    """Every stub the solutions in ``root`` produce, as ``{exercises/<name>.py path: text}``."""
    root = Path(root)
    stubs = {}
    for solution in exercise_files(root / "solutions"):
        source = solution.relative_to(root).as_posix()
        stubs[root / "exercises" / solution.name] = make_stub(solution.read_text(encoding="utf-8"), source)
    return stubs


def outdated(root):
    """The stubs in ``root`` that are missing or differ from what the solutions generate,
    as ``{path: the text it should have}``."""
    return {path: text for path, text in generate(root).items()
            if not path.exists() or path.read_text(encoding="utf-8") != text}


def write(root):
    """Write the stubs that changed; return their paths."""
    changed = outdated(root)
    for path, text in changed.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(changed)
