"""The course claims the whole OWASP ML Top 10: lesson 00's taxonomy table must back that claim.

Each row of the table names a lesson and, after each "§", the start of a section heading in that
lesson's notebook, e.g. ``11 poisoning and backdoors § 1. Label flipping``. For a ``covered`` row
the notebook must exist with that title, each section must exist and hold code, and nbval must
run that code (``make test`` collects ``notebooks/``, nothing excludes the notebook, and no cell of
the section is skipped). A row whose lesson has not shipped must say so in its status,
``not covered yet (lesson NN, planned)``; those rows are listed (a warning, and in the test ids),
with a reminder when the lesson has shipped since.
"""
import json
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE_MAP = ROOT / "notebooks" / "00_course_map.ipynb"
OWASP_IDS = [f"ML{i:02d}" for i in range(1, 11)]
LESSON = re.compile(r"(?P<number>\d\d) (?P<title>[^§]+?)(?P<sections>(?: § [^§]+)*)")
NOT_COVERED = re.compile(r"not covered yet \(lesson (?P<number>\d\d), planned\)")
SKIP_TAGS = {"nbval-skip", "skip-execution", "raises-exception"}
SKIP_COMMENTS = ("# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION")


def _markdown(nb_path):
    return ["".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "markdown"]


def taxonomy_rows():
    """``{id: {"threat", "lesson", "status"}}`` from the OWASP table of lesson 00."""
    rows = {}
    for text in _markdown(COURSE_MAP):
        if "| ID | Threat |" not in text:
            continue
        for line in text.split("\n"):
            m = re.match(r"\| (ML\d\d) \|(.*)\|\s*$", line)
            if m:
                cols = [c.strip() for c in m.group(2).split("|")]
                assert m.group(1) not in rows, f"{m.group(1)} appears twice in lesson 00's table"
                rows[m.group(1)] = {"threat": cols[0], "lesson": cols[-2], "status": cols[-1]}
    return rows


ROWS = taxonomy_rows()


def parse_lesson(cell):
    """``("11", "poisoning and backdoors", ["1. Label flipping", ...])`` from a Lesson cell."""
    m = LESSON.fullmatch(cell)
    if m is None:
        raise AssertionError(f"lesson cell {cell!r} is not 'NN title' or 'NN title § section § ...'")
    sections = [s.strip() for s in m.group("sections").split("§") if s.strip()]
    return m.group("number"), m.group("title").strip(), sections


def notebook_for(number):
    found = sorted((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    assert len(found) <= 1, f"two notebooks share the number {number}: {found}"
    return found[0] if found else None


def headings(cells):
    """``[(cell index, level, text)]`` for every markdown heading, in order."""
    out = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).split("\n"):
                m = re.match(r"(#+)\s+(.*\S)", line)
                if m:
                    out.append((i, len(m.group(1)), m.group(2)))
    return out


def section_code_cells(cells, prefix):
    """The code cells of the section whose heading starts with ``prefix`` (None if there is none)."""
    hs = headings(cells)
    for k, (i, level, text) in enumerate(hs):
        if text == prefix or (text.startswith(prefix) and not text[len(prefix)].isalnum()):
            end = next((j for j, lv, _ in hs[k + 1:] if lv <= level), len(cells))
            return [c for c in cells[i + 1:end] if c["cell_type"] == "code"]
    return None


def skipped(cell):
    tags = set(cell.get("metadata", {}).get("tags", []))
    first = "".join(cell["source"]).lstrip().split("\n", 1)[0].strip()
    return bool(tags & SKIP_TAGS) or first.upper().startswith(SKIP_COMMENTS)


def nbval_collects(nb_path, root=ROOT):
    """Does ``make test`` run this notebook under nbval? A reason string if not, else ``None``."""
    makefile = (root / "Makefile").read_text()
    # the recipe is every tab-indented line under ``test:``; the pytest line among them must collect notebooks/
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n?)+)", makefile, re.M)
    pytest_lines = [line for line in (test_recipe.group(1).splitlines() if test_recipe else []) if "pytest" in line]
    if not any(" notebooks " in f" {line} " for line in pytest_lines):
        return "the Makefile's test target does not collect notebooks/"
    if "--nbval" not in makefile:
        return "the Makefile runs pytest without nbval"
    rel = nb_path.relative_to(root).as_posix()
    for name in ("Makefile", "pyproject.toml", "conftest.py"):
        text = (root / name).read_text() if (root / name).exists() else ""
        if re.search(rf"--ignore[-a-z]*[= ]\S*{re.escape(nb_path.name)}|--deselect[= ]\S*{re.escape(nb_path.name)}",
                     text) or (name == "conftest.py" and "collect_ignore" in text and nb_path.name in text):
            return f"{name} excludes {rel}"
    return None


def test_the_table_lists_every_owasp_item_once():
    assert sorted(ROWS) == OWASP_IDS, f"lesson 00's OWASP table has {sorted(ROWS)}, expected ML01-ML10"


@pytest.mark.parametrize("item", OWASP_IDS, ids=[f"{i}-{ROWS.get(i, {}).get('status', 'missing')}" for i in OWASP_IDS])
def test_each_item_maps_to_a_lesson_section_that_runs(item):
    row = ROWS[item]
    number, title, sections = parse_lesson(row["lesson"])
    nb_path = notebook_for(number)
    planned = NOT_COVERED.fullmatch(row["status"])
    if planned:
        assert planned.group("number") == number, (
            f"{item}: the status names lesson {planned.group('number')} but the lesson column names {number}")
        return  # honest about not covering it; test_uncovered_items_are_listed names it
    assert row["status"] == "covered", (
        f"{item}: status {row['status']!r} must be 'covered' or 'not covered yet (lesson NN, planned)'")
    assert nb_path is not None, f"{item} is marked covered by lesson {number}, which does not exist"
    assert sections, f"{item}: a covered row must name the section that covers it ('{row['lesson']} § heading')"
    cells = json.loads(nb_path.read_text())["cells"]
    h1 = next((t for _, lv, t in headings(cells) if lv == 1), "")
    assert re.fullmatch(rf"{number} · {re.escape(title)}", h1, re.I), (
        f"{item}: the table says lesson {number} is {title!r}, but {nb_path.name} is titled {h1!r}")
    reason = nbval_collects(nb_path)
    assert reason is None, f"{item}: {nb_path.name} does not run under nbval: {reason}"
    for prefix in sections:
        code = section_code_cells(cells, prefix)
        assert code is not None, f"{item}: {nb_path.name} has no section heading starting with {prefix!r}"
        assert code, f"{item}: section {prefix!r} of {nb_path.name} has no code for nbval to run"
        assert not any(skipped(c) for c in code), f"{item}: nbval skips code in section {prefix!r} of {nb_path.name}"


def test_uncovered_items_are_listed():
    uncovered = {i: r for i, r in ROWS.items() if r["status"] != "covered"}
    notes = []
    for item, row in sorted(uncovered.items()):
        assert NOT_COVERED.fullmatch(row["status"]), f"{item}: {row['status']!r} does not say it is not covered"
        number = parse_lesson(row["lesson"])[0]
        shipped = notebook_for(number)
        notes.append(f"{item} {row['threat']}: {row['status']}" + (
            f" (but {shipped.name} exists now: point the row at its section and mark it covered)" if shipped else ""))
    if notes:
        warnings.warn("OWASP ML Top 10 items not covered yet: " + "; ".join(notes), UserWarning, stacklevel=1)


# the checks themselves, on small made-up inputs: they must be able to fail
def _cell(kind, text, tags=()):
    cell = {"cell_type": kind, "source": [text], "metadata": {"tags": list(tags)}}
    if kind == "code":
        cell["outputs"] = []
    return cell


def test_section_finder_stops_at_the_next_heading_of_its_level():
    cells = [_cell("markdown", "# 99 · Demo\n## 1. First\ntext"), _cell("code", "a = 1"),
             _cell("markdown", "### 1.1 Sub"), _cell("code", "b = 2"),
             _cell("markdown", "text\n## 2. Second: no code"), _cell("markdown", "## 3. Third"), _cell("code", "c")]
    assert ["".join(c["source"]) for c in section_code_cells(cells, "1. First")] == ["a = 1", "b = 2"]
    assert section_code_cells(cells, "2. Second") == []
    assert section_code_cells(cells, "4. Missing") is None
    assert section_code_cells(cells, "1. Fir") is None          # a prefix ends at a word boundary
    assert skipped(_cell("code", "# NBVAL_SKIP\nx")) and skipped(_cell("code", "x", tags=["nbval-skip"]))
    assert not skipped(_cell("code", "x = 1"))


def test_lesson_cells_parse_and_reject_free_text():
    assert parse_lesson("11 poisoning and backdoors § 1. Label flipping § 2. Backdoors") == (
        "11", "poisoning and backdoors", ["1. Label flipping", "2. Backdoors"])
    assert parse_lesson("08 model theft and monitoring") == ("08", "model theft and monitoring", [])
    with pytest.raises(AssertionError):
        parse_lesson("see lesson 11")
    assert NOT_COVERED.fullmatch("not covered yet (lesson 08, planned)")
    assert not NOT_COVERED.fullmatch("planned")


@pytest.mark.parametrize("recipe, collected", [
    ("test: deps\n\truff check .\n\tpytest tests notebooks --nbval-lax\n", True),
    ("test: deps\n\tpytest tests notebooks --nbval-lax\n", True),
    ("test: deps\n\truff check .\n\tpytest tests --nbval-lax\n", False),
    ("test: deps\n\techo notebooks\n\tpytest tests --nbval-lax\n", False),
])
def test_nbval_collects_reads_every_line_of_the_test_recipe(tmp_path, recipe, collected):
    (tmp_path / "notebooks").mkdir()
    nb = tmp_path / "notebooks" / "01_x.ipynb"
    nb.write_text("{}")
    (tmp_path / "Makefile").write_text(recipe + "\nother:\n\tpytest notebooks\n")
    assert (nbval_collects(nb, root=tmp_path) is None) == collected
