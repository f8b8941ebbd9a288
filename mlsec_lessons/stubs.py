"""Student stubs, generated from the solutions so that the two can never drift apart.

A solution marks the code a student writes, nbgrader-style, with two hints::

    def model_robustness_score(asr):
        ### BEGIN SOLUTION hint: what is left of the correct samples once the attack's successes are gone
        ### HINT 2: return 1 - asr, after refusing a rate outside [0, 1]
        return 1.0 - asr
        ### END SOLUTION

and the stub keeps everything else, with each marked region replaced by one line at the
region's indentation::

    def model_robustness_score(asr):
        raise NotImplementedError("what is left of the correct samples once the attack's successes are gone")

The first hint, on the ``### BEGIN SOLUTION`` line, is what the stub shows: the idea and the
pitfall, never the code. The second, on an optional ``### HINT 2:`` line right after it, is
closer to the code; it lies inside the region, so no stub ever holds it, and students ask for
it with ``mlsec hint`` (:mod:`mlsec_lessons.grading.hints`). Each marker is one line.

``solutions/exN_name.py`` becomes ``exercises/exN_name.py``; ``mlsec stubs`` writes them and
``mlsec stubs --check`` lists the ones that are out of date.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import MLSecError

BEGIN = "### BEGIN SOLUTION"
HINT2 = "### HINT 2:"
END = "### END SOLUTION"
DEFAULT_HINT = "write your code here"


class MarkerError(MLSecError, ValueError):
    """The solution markers in a file do not pair up, or a hint 2 is out of place."""


@dataclass(frozen=True)
class Region:
    """One marked region: where it is, its two hints, and the solution code it holds."""
    start: int   # line number of its BEGIN marker (from 1)
    end: int     # line number of its END marker
    indent: str  # the BEGIN marker's indentation, which the stub's raise takes
    hint: str    # hint 1: the idea and the pitfall, shown by the stub
    hint2: str   # hint 2: closer to the code, on request only; "" when the region has none
    code: str    # the lines between the markers, hint 2 left out


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


def regions(text, source="the solution"):
    """The marked regions of ``text``, in order.

    Raises
    ------
    MarkerError
        When a region is nested in another, never closed, or closed without being opened, or
        when a ``### HINT 2:`` line is not the line right after a ``### BEGIN SOLUTION`` (anywhere
        else it could end up in a stub).

    Examples
    --------
    >>> text = "def f():\\n    ### BEGIN SOLUTION hint: one\\n    ### HINT 2: return 1\\n    return 1\\n    ### END SOLUTION\\n"
    >>> [(r.start, r.end, r.hint, r.hint2) for r in regions(text)]
    [(2, 5, 'one', 'return 1')]
    """
    found, start = [], None  # start: line number of the BEGIN we are inside, if any
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if start is not None:
                raise MarkerError(f"{source}, line {number}: {BEGIN} inside the region opened on line "
                                  f"{start}; regions cannot nest")
            start, indent, hint, hint2, code = number, line[:len(line) - len(line.lstrip())], parse_hint(line), "", []
        elif marker.startswith(HINT2):
            # only inside a region is it dropped from the stub; right after BEGIN, it reads as its pair
            if start is None or number != start + 1:
                raise MarkerError(f"{source}, line {number}: {HINT2} must be the line right after a {BEGIN}")
            hint2 = marker[len(HINT2):].strip()
        elif marker.startswith(END):
            if start is None:
                raise MarkerError(f"{source}, line {number}: {END} without a {BEGIN} before it")
            found.append(Region(start, number, indent, hint, hint2, "".join(code)))
            start = None
        elif start is not None:
            code.append(line)
    if start is not None:
        raise MarkerError(f"{source}, line {start}: {BEGIN} is never closed by {END}")
    return found


def make_stub(text, source="the solution"):
    """Replace every marked region of ``text`` with ``raise NotImplementedError("<hint 1>")``.

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
        As :func:`regions` does.

    Examples
    --------
    >>> solution = "def f():\\n    ### BEGIN SOLUTION hint: one\\n    return 1\\n    ### END SOLUTION\\n"
    >>> print(make_stub(solution, "f.py").splitlines()[-1])
        raise NotImplementedError("one")
    """
    lines, out, done = text.splitlines(keepends=True), [], 0  # done: the lines already copied or replaced
    for region in regions(text, source):
        out += lines[done:region.start - 1]
        # json.dumps writes a valid Python string literal, quotes and backslashes escaped
        out.append(f"{region.indent}raise NotImplementedError({json.dumps(region.hint, ensure_ascii=False)})\n")
        done = region.end
    return header(source) + "".join(out + lines[done:])


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
