"""Two pickle scanners, picklescan and fickling, on the lesson's files: what each flags and where each misses.

The expected verdicts are what these pinned versions (picklescan 1.0.5, fickling 0.1.12) said when measured;
a change in either scanner's rules fails a test here, and the lesson's table must be re-read.
"""
import dataclasses
import logging
import pickle

import numpy as np
import pytest

from mlsec_lessons.deployment import unsafe_pickle
from mlsec_lessons.errors import InvalidParameterError


@pytest.fixture(scope="module")
def lesson_files(tmp_path_factory):
    """The lesson's files, and the canary every malicious one would write if it were ever loaded."""
    d = tmp_path_factory.mktemp("scanners")
    canary = d / "canary.txt"
    make = unsafe_pickle.make_malicious_pickle
    files = {payload: make(d / f"{payload}.pkl", canary, payload=payload) for payload in unsafe_pickle.PAYLOADS}
    files["exec in zip"] = unsafe_pickle.pack_in_zip(files["exec"], d / "model.zip")
    files["exec in zip, no .pkl name"] = unsafe_pickle.pack_in_zip(files["exec"], d / "model2.zip", "archive/data")
    (d / "numpy.pkl").write_bytes(pickle.dumps({"w": np.arange(4.0), "b": 0.5}))
    (d / "python.pkl").write_bytes(pickle.dumps({"w": [0.25, 0.5], "b": 0.5}))
    files["numpy data"], files["python data"] = d / "numpy.pkl", d / "python.pkl"
    return files, canary


@pytest.fixture(scope="module")
def comparison(lesson_files):
    files, _ = lesson_files
    return unsafe_pickle.compare_scanners(files)


def verdicts(comparison, file):
    return {s: comparison.verdict(file, s) for s in unsafe_pickle.SCANNERS}


def test_both_scanners_call_the_exec_payload_dangerous(comparison):
    assert verdicts(comparison, "exec") == {"picklescan": "dangerous", "fickling": "dangerous"}
    found = {v.scanner: v.findings for v in comparison.verdicts if v.file == "exec"}
    assert found["picklescan"] == ("builtins.exec (dangerous)",)
    assert "OvertlyBadEval: exec(...)" in found["fickling"]


def test_the_pathlib_payload_is_only_suspicious_to_both(comparison):
    assert verdicts(comparison, "pathlib") == {"picklescan": "suspicious", "fickling": "suspicious"}
    fickling = next(v for v in comparison.verdicts if v.file == "pathlib" and v.scanner == "fickling")
    # fickling's only reason: the call's result is never used, not that the call writes a file
    assert fickling.scanner_says == "SUSPICIOUS"
    assert fickling.findings == ("UnusedVariables: _var1: Path.write_text(...)",)


def test_the_wrapped_payload_is_clean_to_fickling_and_still_runs(comparison, tmp_path):
    assert verdicts(comparison, "wrapped") == {"picklescan": "suspicious", "fickling": "clean"}
    canary = tmp_path / "canary.txt"
    bad = unsafe_pickle.make_malicious_pickle(tmp_path / "m.pkl", canary, payload="wrapped")
    assert unsafe_pickle.load_with_pickle(bad).returncode == 0 and canary.exists()


def test_a_zip_is_scanned_inside_but_fickling_reads_only_pickle_names(comparison):
    assert verdicts(comparison, "exec in zip") == {"picklescan": "dangerous", "fickling": "dangerous"}
    assert verdicts(comparison, "exec in zip, no .pkl name") == {"picklescan": "dangerous", "fickling": "clean"}
    fickling = next(v for v in comparison.verdicts if v.file == "exec in zip, no .pkl name" and v.scanner == "fickling")
    assert fickling.notes == ("scanned 0 of 1 zip members",)


def test_benign_data_is_never_called_dangerous(comparison):
    assert verdicts(comparison, "python data") == {"picklescan": "clean", "fickling": "clean"}
    # fickling flags any import outside the standard library: numpy arrays are a false alarm, not a danger
    assert verdicts(comparison, "numpy data") == {"picklescan": "clean", "fickling": "suspicious"}
    fickling = next(v for v in comparison.verdicts if v.file == "numpy data" and v.scanner == "fickling")
    assert "NonStandardImports: from numpy import ndarray" in fickling.findings


def test_no_scanner_runs_the_payload(lesson_files, comparison):
    _, canary = lesson_files
    assert len(comparison.verdicts) == 2 * 7  # every file was scanned by both
    assert not canary.exists()


def test_flagged_by_and_the_tables(comparison, lesson_files):
    files, _ = lesson_files
    assert comparison.flagged_by("fickling") == ["exec", "pathlib", "exec in zip", "numpy data"]
    table = comparison.table()
    assert list(table.index) == list(files) and list(table.columns) == list(unsafe_pickle.SCANNERS)
    frame = comparison.to_frame()
    assert len(frame) == 14 and set(frame["verdict"]) <= set(unsafe_pickle.VERDICTS)
    assert str(files["exec"].parent) not in frame.to_csv()  # labels and file names, never this machine's paths
    with pytest.raises(dataclasses.FrozenInstanceError):
        comparison.verdicts[0].verdict = "clean"


@pytest.mark.parametrize("scanner", unsafe_pickle.SCANNERS)
def test_a_missing_file_or_a_directory_is_a_clear_error(tmp_path, scanner):
    with pytest.raises(InvalidParameterError, match="is not a file"):
        unsafe_pickle.scan_with(scanner, tmp_path / "missing.pkl")
    with pytest.raises(InvalidParameterError, match="is a directory"):
        unsafe_pickle.scan_with(scanner, tmp_path)


def test_an_unknown_scanner_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidParameterError, match="scanner must be one of"):
        unsafe_pickle.scan_with("clamav", tmp_path / "m.pkl")


def test_a_text_file_gets_a_verdict_that_says_it_was_not_read(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a pickle\n")
    picklescan = unsafe_pickle.scan_with("picklescan", text)
    # picklescan's result has no error for a file it could not parse; only its log says so
    assert picklescan.verdict == "clean" and picklescan.notes[0].startswith("WARNING: could not parse notes.txt")
    fickling = unsafe_pickle.scan_with("fickling", text)
    assert fickling.verdict == "error" and "Parse error" in fickling.notes[0]


def test_an_empty_file_is_an_error_verdict_not_a_crash(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    found = {s: unsafe_pickle.scan_with(s, empty) for s in unsafe_pickle.SCANNERS}
    assert {s: v.verdict for s, v in found.items()} == {"picklescan": "error", "fickling": "error"}
    assert found["picklescan"].scanner_says == "crashed"  # picklescan 1.0.5 raises OSError on an empty file


def test_the_scanners_print_and_log_nothing(lesson_files, capsys, caplog):
    files, _ = lesson_files
    before = logging.getLogger("picklescan").handlers[:], logging.getLogger("picklescan").propagate
    with caplog.at_level(logging.DEBUG):
        unsafe_pickle.compare_scanners({"exec": files["exec"], "zip": files["exec in zip"]})
    assert capsys.readouterr() == ("", "") and caplog.records == []
    assert (logging.getLogger("picklescan").handlers, logging.getLogger("picklescan").propagate) == before


def test_a_broken_zip_is_an_error_verdict_not_a_crash(lesson_files, tmp_path):
    files, _ = lesson_files
    whole = files["exec in zip"].read_bytes()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(whole[:40] + whole[-22:])  # the first header and the end record, nothing between
    found = {s: unsafe_pickle.scan_with(s, broken) for s in unsafe_pickle.SCANNERS}
    assert {s: v.verdict for s, v in found.items()} == {"picklescan": "error", "fickling": "error"}
    assert found["fickling"].notes[0] == "scanned 0 of ? zip members"
    assert all("BadZipFile" in " ".join(v.notes) for v in found.values())
