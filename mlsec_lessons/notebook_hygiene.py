"""Keep a saved lesson honest: its prose's numbers come from its own cells, and it saves clean.

The course promises that every number is measured. Two things break that promise silently: prose
that keeps an old number after the code moved on, and a saved notebook that carries one machine's
state (widget models, timestamps, a home directory). :func:`problems` finds both; :func:`clean`
strips the second kind; :func:`execute` runs a notebook top to bottom and saves it clean.

The number rule: every decimal number in a markdown cell (``0.978``, ``1.5e-5``, ``97.8 %``) must
appear, at the precision written, in that notebook's code or saved outputs, or sit on a line that
cites where it comes from (a paper, an RFC, a CVE, an article of a law, the source material's
claim). Integers are not checked: they are counts and lesson numbers far more often than results.
A **Try this** section proposes settings rather than reporting results, so it is exempt.

>>> nb = {"cells": [{"cell_type": "markdown", "source": "Accuracy is 0.97."},
...                 {"cell_type": "code", "source": "", "outputs": [
...                     {"output_type": "stream", "name": "stdout", "text": "acc 0.9713"}]}]}
>>> problems(nb)
[]
>>> nb["cells"][0]["source"] = "Accuracy is 0.98, measured while writing this lesson."
>>> for p in problems(nb): print(p)
cell 0: 0.98 appears in no cell's code or output (line: 'Accuracy is 0.98, measured while writing this lesson.')
cell 0: announces a measurement the notebook does not show ('measured while writing')
"""
import json
import math
import re
from pathlib import Path

# a decimal, not part of a version string (1.20.1) or a word (v1.2, x2.5)
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(?:[eE]([-+]?\d+))?(?![\w]|\.\d)(\s*%)?")
BACKING_NUMBER = re.compile(r"(?<![\w.])-?\d*\.?\d+(?:[eE][-+]?\d+)?")

# a line carrying one of these says where its numbers come from
CITATION = re.compile(
    r"RFC\s?\d|CVE-\d|arXiv|et al\.|\bArt\.|\bArticle\b|\bRecital\b|\bAnnex\b|§|https?://|\bdoi\b|"
    r"\bNIST\b|\bFIPS\b|\bISO\b|\bOWASP\b|\bsource (?:claims|material|says|reports)|"
    r"\bthe source'?s?\b|\bseed\b|\bversion\b|==\d|[A-Z][a-z]+ & [A-Z][a-z]+",
    re.IGNORECASE)

UNSHOWN = ("measured while writing", "while writing this", "not shown", "in our runs",
           "when we measured", "we measured earlier")

MACHINE_PATH = re.compile(r"(?:/tmp/|/home/[\w.-]+|/root/|/Users/[\w.-]+|/work/|/var/folders/|"
                          r"[A-Za-z]:\\\\?Users\\\\?|/private/var/)")

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# tqdm's text rendering: "37%|███▋ | 37/100 [00:01<00:02, 30.1it/s]"
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]")

# "### 1.2 A signed manifest": a section number, not a result
SECTION_NUMBER = re.compile(r"^(#+\s*)\d+(?:\.\d+)+")

TRY_THIS = re.compile(r"^#+\s*Try this", re.IGNORECASE | re.MULTILINE)


def _text(source):
    return "".join(source) if isinstance(source, list) else source


def _output_texts(output):
    if "text" in output:
        yield _text(output["text"])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json"):
            yield value if isinstance(value, str) else (_text(value) if isinstance(value, list)
                                                         else json.dumps(value))
    if output.get("output_type") == "error":
        yield "\n".join(output.get("traceback", []))


def backing_text(nb):
    """All the code and saved output of a notebook, where its prose's numbers must come from."""
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        parts.append(_text(cell["source"]))
        for output in cell.get("outputs", []):
            parts.extend(_output_texts(output))
    return "\n".join(parts)


def _backing_values(text):
    values = []
    for token in BACKING_NUMBER.findall(text.replace("_", "")):
        try:
            values.append(float(token))
        except ValueError:
            continue
    return values


def _is_backed(mantissa, exponent, percent, values):
    decimals = len(mantissa.split(".")[1])
    written = float(mantissa)
    scales = [1.0]
    if exponent is not None:
        scales = [10.0 ** int(exponent)]
    elif percent:
        scales = [0.01, 1.0]  # 97.8 % is backed by 0.978 or by a printed 97.8
    for scale in scales:
        for value in values:
            if exponent is not None:
                # compare mantissas: 1.5e-5 is backed by 1.52e-05 or 1.5e-05
                if value == 0:
                    continue
                if round(value / scale, decimals) == written:
                    return True
            elif math.isclose(round(abs(value) / scale, decimals), written, abs_tol=10 ** -(decimals + 3)):
                return True
    return False


def unbacked_numbers(nb, also=""):
    """``(cell index, number, line)`` for each decimal in the prose that no code or output backs.

    ``also`` is further backing text, such as the course's pinned versions (``flwr`` 1.42).
    """
    values = _backing_values(backing_text(nb) + "\n" + also)
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = _text(cell["source"])
        match = TRY_THIS.search(source)
        if match:
            source = source[:match.start()]
        for line in source.splitlines():
            line = SECTION_NUMBER.sub(r"\1", line)
            if CITATION.search(line):
                continue
            for m in NUMBER.finditer(line):
                mantissa, exponent, percent = m.group(1), m.group(2), m.group(3)
                if not _is_backed(mantissa, exponent, percent, values):
                    found.append((index, m.group(0).strip(), line.strip()))
        if match:
            break  # everything after Try this is exempt, later cells included
    return found


def problems(nb, also=""):
    """Every way a notebook breaks the rules above, as one readable line each."""
    found = [f"cell {i}: {number} appears in no cell's code or output (line: {line!r})"
             for i, number, line in unbacked_numbers(nb, also)]
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            lower = _text(cell["source"]).lower()
            for phrase in UNSHOWN:
                if phrase in lower:
                    found.append(f"cell {index}: announces a measurement the notebook does not show ({phrase!r})")
                    break
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                path = MACHINE_PATH.search(text)
                if path:
                    found.append(f"cell {index}: a machine-specific path in its output ({path.group()!r})")
                    break
    found.extend(saved_noise(nb))
    return found


def saved_noise(nb):
    """Widget state, execution timestamps and progress bars that a clean save drops."""
    found = []
    if "widgets" in nb.get("metadata", {}):
        found.append("metadata: saved widget state")
    for index, cell in enumerate(nb["cells"]):
        if "execution" in cell.get("metadata", {}):
            found.append(f"cell {index}: saved execution timestamps")
        for output in cell.get("outputs", []):
            if _is_progress_bar(output):
                found.append(f"cell {index}: a saved progress bar")
    return found


def _is_progress_bar(output):
    if WIDGET_MIME in output.get("data", {}):
        return True
    if output.get("output_type") != "stream":
        return False
    text = _text(output.get("text", ""))
    # a closed tqdm bar leaves a lone newline behind once its carriage returns are applied
    return not text.strip() or bool(PROGRESS_BAR.search(text))


def clean(nb):
    """Drop widget state, execution timestamps and progress bars, in place; return ``nb``.

    An exercise's hint cell (the one that calls ``show_hint(``) loses its output too: the saved
    notebook shows the second hint only when the student runs that cell.
    """
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if "outputs" in cell:
            hint = "show_hint(" in "".join(cell.get("source", ""))
            cell["outputs"] = [] if hint else [o for o in cell["outputs"] if not _is_progress_bar(o)]
            if hint:
                cell["execution_count"] = None
    return nb


def execute(path, timeout=600, kernel_name="python3"):
    """Run the notebook at ``path`` top to bottom in its own folder and save it cleaned.

    ``python3`` is the kernel of the interpreter running this, so the course's own environment runs it.

    Returns the list of :func:`problems` left in the saved notebook (empty when it is clean).
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    clean(nb)
    nbformat.write(nb, path)
    return problems(nb, pinned_versions())


def pinned_versions():
    """The course's pins (``flwr==1.42.0``), which back a version written in the prose."""
    root = Path(__file__).resolve().parents[1]
    return "\n".join(p.read_text() for p in (root / "pyproject.toml", root / "requirements.lock") if p.exists())


def check(paths):
    """``{path: problems}`` for each notebook in ``paths`` that has any."""
    report = {}
    also = pinned_versions()
    for path in paths:
        found = problems(json.loads(Path(path).read_text()), also)
        if found:
            report[str(path)] = found
    return report
