"""The course's structure: numbered notebooks, all listed in the README's course map."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def readme_course_map():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Course map")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def test_every_notebook_is_numbered_uniquely():
    numbers = []
    for nb in NOTEBOOKS:
        m = re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", nb.name)
        assert m, f"{nb.name}: notebooks are named NN_snake_case.ipynb"
        numbers.append(m.group(1))
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


def test_every_notebook_is_in_the_readme_course_map():
    course_map = readme_course_map()
    missing = [nb.name for nb in NOTEBOOKS if f"notebooks/{nb.name}" not in course_map]
    assert not missing, f"add these to the README's course map: {missing}"


def test_readme_links_point_at_files_that_exist():
    for link in re.findall(r"\((notebooks/[^)]+\.ipynb)\)", readme_course_map()):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make lab" in head and "make test" in head


def test_saved_notebooks_are_clean():
    for nb in NOTEBOOKS + sorted((ROOT / "exercises").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"{nb.name}: a saved error output"
                text = "".join(out.get("text", ""))
                for noise in ("WARNING:tensorflow", "retracing", "Traceback", "UserWarning"):
                    assert noise not in text, f"{nb.name}: '{noise}' in saved output"


def test_notebooks_use_the_course_kernel():
    for nb in NOTEBOOKS + sorted((ROOT / "exercises").glob("*.ipynb")):
        spec = json.loads(nb.read_text())["metadata"].get("kernelspec", {})
        assert spec.get("name") == "mlsec-lessons", f"{nb.name}: kernelspec is {spec}"


def test_cell_sources_have_no_control_characters():
    # a "\v" typed into a Python string in a notebook builder becomes a vertical tab, and
    # "$e^\varepsilon$" silently renders as "e^ arepsilon"
    bad = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
    for nb in NOTEBOOKS + sorted((ROOT / "exercises").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            found = bad.search("".join(cell["source"]))
            assert found is None, f"{nb.name}, cell {i}: control character {found.group()!r} in its source"


# the source's mistakes (shared/design.md) and the lessons that teach them
PITFALLS = {1: "01", 2: "03", 3: "02", 4: "03", 5: "03", 6: "03", 7: "03", 8: "03", 9: "04", 10: "05",
            11: "07", 12: "07", 13: "07", 14: "01", 15: "00"}
# where a mistake comes up again, the lesson says so in its own callout
PITFALLS_AGAIN = [(15, "10")]


@pytest.mark.parametrize("mistake, lesson", [*PITFALLS.items(), *PITFALLS_AGAIN])
def test_every_source_mistake_is_a_pitfall_callout(mistake, lesson):
    nb = next((ROOT / "notebooks").glob(f"{lesson}_*.ipynb"))
    markdown = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                       if c["cell_type"] == "markdown")
    callout = re.compile(rf"^> \*\*Pitfall \(source mistakes? (?:\d+, )*{mistake}\b", re.M)
    assert callout.search(markdown), f"{nb.name} has no '> **Pitfall (source mistake {mistake})' callout"


def _markdown_cells(nb):
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown"]


def _bullets_under(heading, text):
    section = re.search(rf"^## {heading}\s*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return None if section is None else re.findall(r"^[-*] ", section.group(1), re.M)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_opens_with_its_goals(nb):
    opening = _markdown_cells(nb)[0]
    assert "By the end of this lesson you will be able to" in opening, \
        f"{nb.name}: the first cell says what the student will be able to do"
    goals = opening.split("By the end of this lesson you will be able to", 1)[1]
    assert len(re.findall(r"^[-*] ", goals, re.M)) >= 2, f"{nb.name}: list the goals as bullets"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_ends_with_takeaways_and_try_this(nb):
    cells = _markdown_cells(nb)
    ending = "\n".join(cells[-2:])
    takeaways, try_this = _bullets_under("Takeaways", ending), _bullets_under("Try this", ending)
    assert takeaways is not None and 3 <= len(takeaways) <= 5, \
        f"{nb.name}: end with '## Takeaways' and 3-5 bullets (found {takeaways and len(takeaways)})"
    assert try_this is not None and 2 <= len(try_this) <= 3, \
        f"{nb.name}: '## Try this' follows the takeaways, with 2-3 bullets (found {try_this and len(try_this)})"
    assert ending.index("## Takeaways") < ending.index("## Try this")
    last = json.loads(nb.read_text())["cells"][-1]
    assert last["cell_type"] == "markdown" and "## Try this" in "".join(last["source"]), \
        f"{nb.name}: Try this is the last cell"
