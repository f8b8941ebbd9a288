"""Every number in a lesson's prose comes from that lesson's cells, and lessons are saved clean."""
import copy
import json
from pathlib import Path

import pytest

from mlsec_lessons import cli
from mlsec_lessons import notebook_hygiene as hygiene

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_saved_notebook_passes_the_check(path):
    found = hygiene.problems(json.loads(path.read_text()), hygiene.pinned_versions())
    assert not found, f"{path.name}:\n" + "\n".join(found)


def lesson(prose, output="", code=""):
    return {"metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": prose},
        {"cell_type": "code", "metadata": {}, "source": code,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": output}] if output else []}]}


@pytest.mark.parametrize("prose, output, code", [
    ("Robust accuracy is 0.84.", "robust 0.8391", ""),          # rounded to the precision written
    ("Robust accuracy is 84.0 %.", "robust 0.8400", ""),         # a percentage of a printed share
    ("A gap of 1.5e-5.", "gap 1.52e-05", ""),                    # scientific notation
    ("Steps of 2.5 eps.", "", "STEP = 2.5 * EPS"),               # a constant in the code
    ("The source claims 99.9% resistance.", "", ""),             # the source's own claim, cited
    ("CVE-2025-1550 bypassed safe mode in 3.8.0.", "", ""),      # a cited line
    ("### 1.2 A signed manifest", "", ""),                       # a section number
    ("Keras 3.13.1 does this.", "", ""),                         # a version, not a decimal
    ("## Try this\nSet eps = 0.45 and compare.", "", ""),        # proposals, not results
])
def test_backed_numbers_pass(prose, output, code):
    assert hygiene.problems(lesson(prose, output, code)) == []


@pytest.mark.parametrize("prose, output", [
    ("Robust accuracy is 0.85.", "robust 0.8391"),       # a stale number
    ("Robust accuracy is 0.839.", "robust 0.84"),        # more precision than anything printed
    ("A gap of 1.6e-5.", "gap 1.52e-05"),
    ("About 84.1 % of them.", "share 0.8400"),
    ("Accuracy 0.97 (measured while writing).", "0.97"),  # an unshown measurement, even when it matches
    ("Clean accuracy, not shown here, is high.", ""),
])
def test_unbacked_numbers_and_unshown_measurements_fail(prose, output):
    assert hygiene.problems(lesson(prose, output))


def test_try_this_exempts_only_what_follows_it():
    nb = lesson("Accuracy 0.91.\n\n## Try this\nSet eps = 0.45.")
    assert [n for _, n, _ in hygiene.unbacked_numbers(nb)] == ["0.91"]


@pytest.mark.parametrize("text", ["saved to /tmp/tmpab12/model.keras", "/home/alice/.cache/mlsec",
                                  "C:\\Users\\bob\\model", "/root/.cache/mlsec/model"])
def test_a_machine_path_in_an_output_fails(text):
    assert any("machine-specific path" in p for p in hygiene.problems(lesson("No numbers.", text)))


def noisy():
    nb = lesson("No numbers.", "done")
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb["cells"][1]["metadata"]["execution"] = {"iopub.execute_input": "2026-12-01T10:00:00Z"}
    nb["cells"][1]["outputs"] += [
        {"output_type": "display_data", "metadata": {},
         "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": "  0%|  | 0/5"}},
        {"output_type": "stream", "name": "stderr", "text": "100%|██████████| 40/40 [00:02<00:00, 17.5it/s]\n"}]
    return nb


def test_saved_noise_is_found_and_cleaned():
    nb = noisy()
    assert len(hygiene.saved_noise(nb)) == 4
    cleaned = hygiene.clean(copy.deepcopy(nb))
    assert hygiene.saved_noise(cleaned) == [] and hygiene.problems(cleaned) == []
    assert cleaned["cells"][1]["outputs"] == nb["cells"][1]["outputs"][:1]  # the real output stays


def test_cli_check_lists_problems_and_exits_1(tmp_path, capsys):
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps(lesson("Accuracy is 0.93.", "acc 0.90")))
    assert cli.main(["notebook", "check", str(path)]) == 1
    assert "0.93 appears in no cell" in capsys.readouterr().out
    path.write_text(json.dumps(lesson("Accuracy is 0.90.", "acc 0.90")))
    assert cli.main(["notebook", "check", str(path)]) == 0


def test_cli_refuses_a_missing_notebook(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["notebook", "check", str(tmp_path / "nope.ipynb")])
    assert exit_.value.code == 2 and "no such notebook" in capsys.readouterr().err


def test_execute_runs_a_notebook_and_saves_it_clean(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("The mean is 2.5."),
        nbformat.v4.new_code_cell("import sys\nfrom tqdm import tqdm\n"
                                  "for _ in tqdm(range(3), file=sys.stderr): pass\nprint(sum([2, 3]) / 2)")])
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    assert hygiene.execute(path, timeout=60) == []
    saved = json.loads(path.read_text())
    assert ["".join(o["text"]) for o in saved["cells"][1]["outputs"]] == ["2.5\n"]  # the bar is gone
    assert hygiene.saved_noise(saved) == []


def test_cleaning_saves_an_exercise_hint_cell_without_its_output():
    nb = lesson("No numbers.", "done")
    hint = copy.deepcopy(nb["cells"][1])
    hint["source"], hint["execution_count"] = "show_hint('ex1_adversarial_defense', 2)", 3
    nb["cells"].append(hint)
    cleaned = hygiene.clean(copy.deepcopy(nb))
    assert cleaned["cells"][-1]["outputs"] == [] and cleaned["cells"][-1]["execution_count"] is None
    assert cleaned["cells"][1]["outputs"] == nb["cells"][1]["outputs"]  # any other cell keeps its output
