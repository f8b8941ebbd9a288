"""The course's threat map: lesson 00's OWASP tables must back every claim they make.

Lesson 00 has one table per OWASP list: the Machine Learning Security Top 10 (ML01-ML10), the Top 10
for LLM Applications 2025 (LLM01-LLM10) and the Top 10 for Agentic Applications 2026 (ASI01-ASI10).
Each list has one table, and each item of it one row.

The lesson column names a lesson and, after each "§", the start of a section heading in that lesson's
notebook, e.g. ``11 poisoning and backdoors § 1. Label flipping``; several lessons are separated by
``;``. The status says how much of the item the course shows:

* ``covered``, or ``partly covered: <what is missing>``: every notebook named must exist with that
  title, each section must exist and hold code, and nbval must run that code (``make test`` collects
  ``notebooks/``, nothing excludes the notebook, and no cell of the section is skipped);
* ``not covered yet (lesson NN, planned)``: the lesson that will cover it has not shipped; those rows
  are listed (a warning, and in the test ids), with a reminder when the lesson has shipped since;
* ``not covered: <reason>``: no lesson teaches it, and the lesson column says so with ``—``.

For the two newer lists the threat column must carry the item's official name.
"""
import json
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE_MAP = ROOT / "notebooks" / "00_course_map.ipynb"
LISTS = {  # the prefix of a list's IDs: its name and its IDs
    "ML": ("OWASP Machine Learning Security Top 10", [f"ML{i:02d}" for i in range(1, 11)]),
    "LLM": ("OWASP Top 10 for LLM Applications 2025", [f"LLM{i:02d}" for i in range(1, 11)]),
    "ASI": ("OWASP Top 10 for Agentic Applications 2026", [f"ASI{i:02d}" for i in range(1, 11)]),
}
OWASP_IDS = [item for _, ids in LISTS.values() for item in ids]
# https://genai.owasp.org/resource/owasp-top-10-for-llm-applications-2025/ and
# https://genai.owasp.org/resource/owasp-top-10-for-agentic-applications-for-2026/
OFFICIAL_NAMES = {
    "LLM01": "Prompt Injection", "LLM02": "Sensitive Information Disclosure", "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning", "LLM05": "Improper Output Handling", "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage", "LLM08": "Vector and Embedding Weaknesses", "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
    "ASI01": "Agent Goal Hijack", "ASI02": "Tool Misuse and Exploitation", "ASI03": "Identity and Privilege Abuse",
    "ASI04": "Agentic Supply Chain Vulnerabilities", "ASI05": "Unexpected Code Execution (RCE)",
    "ASI06": "Memory & Context Poisoning", "ASI07": "Insecure Inter-Agent Communication",
    "ASI08": "Cascading Failures", "ASI09": "Human-Agent Trust Exploitation", "ASI10": "Rogue Agents",
}
ROW = re.compile(r"\| ((?:ML|LLM|ASI)\d\d) \|(.*)\|\s*$")
LESSON = re.compile(r"(?P<number>\d\d) (?P<title>[^§;]+?)(?P<sections>(?: § [^§;]+)*)")
NO_LESSON = "—"
NOT_COVERED = re.compile(r"not covered yet \(lesson (?P<number>\d\d), planned\)")
# a reason is a phrase, not a word: "not covered: n/a" says nothing
PARTLY_COVERED = re.compile(r"partly covered: (?P<reason>\S.{14,})")
NOT_TAUGHT = re.compile(r"not covered: (?P<reason>\S.{14,})")
SKIP_TAGS = {"nbval-skip", "skip-execution", "raises-exception"}
SKIP_COMMENTS = ("# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION")


def _markdown(nb_path):
    return ["".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "markdown"]


def taxonomy_tables(markdown_cells):
    """``[[(id, {"threat", "lesson", "status"}), ...], ...]``: the rows of each OWASP table, in order.

    A table is a run of ``|`` lines whose header starts ``| ID | Threat |``.
    """
    tables = []
    for text in markdown_cells:
        current = None
        for line in text.split("\n"):
            if line.startswith("| ID | Threat |"):
                current = []
                tables.append(current)
            elif not line.startswith("|"):
                current = None
            elif current is not None and (m := ROW.match(line)):
                cols = [c.strip() for c in m.group(2).split("|")]
                current.append((m.group(1), {"threat": cols[0], "lesson": cols[-2], "status": cols[-1]}))
    return tables


def _prefix(item):
    return re.match(r"[A-Z]+", item).group()


TABLES = taxonomy_tables(_markdown(COURSE_MAP))
ROWS = {item: row for table in TABLES for item, row in table}
SEEN = [item for table in TABLES for item, _ in table]


def parse_lesson(cell):
    """``("11", "poisoning and backdoors", ["1. Label flipping", ...])`` from one lesson of a Lesson cell."""
    m = LESSON.fullmatch(cell)
    if m is None:
        raise AssertionError(f"lesson cell {cell!r} is not 'NN title' or 'NN title § section § ...'")
    sections = [s.strip() for s in m.group("sections").split("§") if s.strip()]
    return m.group("number"), m.group("title").strip(), sections


def parse_lessons(cell):
    """Every lesson of a Lesson cell: ``NN title § section ...; NN title § section ...``."""
    return [parse_lesson(part.strip()) for part in cell.split(";")]


def status_kind(status):
    """``covered``, ``partly-covered``, ``planned-NN``, ``not-covered`` or ``unknown``: for the test ids."""
    if status == "covered":
        return "covered"
    if PARTLY_COVERED.fullmatch(status):
        return "partly-covered"
    planned = NOT_COVERED.fullmatch(status)
    if planned:
        return f"planned-{planned.group('number')}"
    return "not-covered" if NOT_TAUGHT.fullmatch(status) else "unknown"


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


@pytest.mark.parametrize("prefix", LISTS)
def test_each_list_has_one_table_with_every_item_once(prefix):
    name, expected = LISTS[prefix]
    tables = [table for table in TABLES if any(_prefix(item) == prefix for item, _ in table)]
    assert len(tables) == 1, f"lesson 00 has {len(tables)} tables with {name} items, expected one"
    found = [item for item, _ in tables[0]]
    strays = [item for item in found if _prefix(item) != prefix]
    assert not strays, f"the {name} table also lists {strays}: one table per list"
    twice = sorted({item for item in SEEN if SEEN.count(item) > 1 and _prefix(item) == prefix})
    assert not twice, f"{twice} appear more than once in lesson 00's tables"
    assert sorted(found) == expected, f"lesson 00's {name} table has {sorted(found)}, expected {expected[0]}-{expected[-1]}"


@pytest.mark.parametrize("item", sorted(OFFICIAL_NAMES))
def test_each_newer_item_carries_its_official_name(item):
    row = ROWS.get(item)
    assert row is not None, f"{item} is missing from lesson 00's tables"
    assert row["threat"] == OFFICIAL_NAMES[item], (
        f"{item}: lesson 00 calls it {row['threat']!r}; OWASP calls it {OFFICIAL_NAMES[item]!r}")


@pytest.mark.parametrize("item", OWASP_IDS,
                         ids=[f"{i}-{status_kind(ROWS[i]['status']) if i in ROWS else 'missing'}" for i in OWASP_IDS])
def test_each_item_maps_to_a_lesson_section_that_runs(item):
    row = ROWS.get(item)
    assert row is not None, f"{item} is missing from lesson 00's tables"
    if NOT_TAUGHT.fullmatch(row["status"]):
        assert row["lesson"] == NO_LESSON, (
            f"{item} is marked not covered, but its lesson column names {row['lesson']!r}: write {NO_LESSON}")
        return  # honest about not covering it, and why
    lessons = parse_lessons(row["lesson"])
    planned = NOT_COVERED.fullmatch(row["status"])
    if planned:
        named = [number for number, _, _ in lessons]
        assert planned.group("number") in named, (
            f"{item}: the status names lesson {planned.group('number')} but the lesson column names {named}")
        return  # honest about not covering it yet; test_uncovered_items_are_listed names it
    assert row["status"] == "covered" or PARTLY_COVERED.fullmatch(row["status"]), (
        f"{item}: status {row['status']!r} must be 'covered', 'partly covered: <what is missing>', "
        "'not covered yet (lesson NN, planned)' or 'not covered: <reason>'")
    for number, title, sections in lessons:
        nb_path = notebook_for(number)
        assert nb_path is not None, f"{item} is marked {row['status']!r} by lesson {number}, which does not exist"
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
    notes = []
    for item, row in sorted(ROWS.items()):
        assert status_kind(row["status"]) != "unknown", f"{item}: {row['status']!r} is not a status the map knows"
        planned = NOT_COVERED.fullmatch(row["status"])
        if not planned:
            continue
        shipped = notebook_for(planned.group("number"))
        notes.append(f"{item} {row['threat']}: {row['status']}" + (
            f" (but {shipped.name} exists now: point the row at its section and mark it covered)" if shipped else ""))
    if notes:
        warnings.warn("OWASP items not covered yet: " + "; ".join(notes), UserWarning, stacklevel=1)


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
    assert parse_lessons("13 LLM and agent security § 4. Improper; 07 secure deployment § 2. Why") == [
        ("13", "LLM and agent security", ["4. Improper"]), ("07", "secure deployment", ["2. Why"])]
    with pytest.raises(AssertionError):
        parse_lesson("see lesson 11")
    with pytest.raises(AssertionError):
        parse_lessons(NO_LESSON)
    assert NOT_COVERED.fullmatch("not covered yet (lesson 08, planned)")
    assert not NOT_COVERED.fullmatch("planned")


@pytest.mark.parametrize("status, kind", [
    ("covered", "covered"),
    ("partly covered: shown on image classifiers only", "partly-covered"),
    ("not covered yet (lesson 08, planned)", "planned-08"),
    ("not covered: the course runs a single agent", "not-covered"),
    ("not covered: n/a", "unknown"),                   # a reason, not a shrug
    ("not covered", "unknown"),
    ("partly covered", "unknown"),
    ("mostly covered: a little is missing here", "unknown"),
    ("Covered", "unknown"),
])
def test_the_status_vocabulary(status, kind):
    assert status_kind(status) == kind


def test_tables_are_read_one_by_one():
    cell = ("text\n| ID | Threat | Lesson | Status |\n|---|---|---|---|\n"
            "| LLM01 | Prompt Injection | 13 x § 2. y | covered |\n"
            "| LLM02 | Sensitive | — | not covered: no reason worth the name |\n"
            "\nprose | ML01 | not a row |\n"
            "| ID | Threat | Lesson | Status |\n|---|---|---|---|\n| ASI01 | Agent Goal Hijack | — | covered |\n")
    tables = taxonomy_tables([cell, "| ML01 | Input | 02 x | covered |"])  # a row outside a table is not read
    assert [[item for item, _ in t] for t in tables] == [["LLM01", "LLM02"], ["ASI01"]]
    assert tables[0][1][1] == {"threat": "Sensitive", "lesson": NO_LESSON,
                               "status": "not covered: no reason worth the name"}


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
