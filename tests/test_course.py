"""The course's structure: numbered notebooks, all listed in the README's course map."""
import json
import re
from pathlib import Path

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
