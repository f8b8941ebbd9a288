"""Why a model must never be a pickle: a "model" file that runs code when it is loaded.

``pickle.load`` rebuilds an object by calling whatever callable the file names, with
whatever arguments the file holds (that is what ``__reduce__`` returns). So a pickle
is a program, not data. The payloads here are harmless on purpose: they only write a
small canary file, which proves the code ran. A real attacker would open a shell.

:func:`scan` runs picklescan, a scanner that lists the callables a pickle imports and
compares them with a denylist. It is defence in depth, not a guarantee: the
``"pathlib"`` payload calls a function that is not on the list, so a default scan
only calls it "suspicious" and reports no dangerous import. The fix is to never load
pickles from anyone you do not trust, and to ship models in formats that hold data
only (``.keras`` with ``safe_mode=True``, skops, safetensors).

:func:`compare_scanners` puts a second scanner that works another way beside it:
fickling decompiles the pickle into Python and analyses that program. Neither loads
the file, and they disagree on some of the lesson's files (:class:`ScannerComparison`
shows where; the lesson measures it).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> bad = make_malicious_pickle(d / "model.pkl", canary=d / "canary.txt")
>>> (d / "canary.txt").exists()     # writing the file ran nothing
False
>>> scan(bad).dangerous
['builtins.exec']
>>> load_with_pickle(bad).returncode, (d / "canary.txt").exists()   # doctest: +SKIP
(0, True)
>>> [v.verdict for v in compare_scanners({"model.pkl": bad}).verdicts]
['dangerous', 'dangerous']
"""
import argparse
import builtins
import contextlib
import io
import logging
import pickle
import subprocess
import sys
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InvalidParameterError
from ..records import OneRowFrame

CANARY_TEXT = "unpickling this 'model' ran code on your machine\n"
PAYLOADS = ("exec", "pathlib", "wrapped")
SCANNERS = ("picklescan", "fickling")
VERDICTS = ("dangerous", "suspicious", "error", "clean")


class _Payload:
    """Pickles as "call ``func(*args)``", then "set its state to ``state``" if given:
    ``__reduce__`` is what an attacker controls."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


def make_malicious_pickle(path, canary, payload="exec"):
    """Write a pickle to ``path`` that, when unpickled, writes ``canary``. Returns ``path``.

    ``payload="exec"`` is the classic ``exec`` of a code string (scanners catch it);
    ``payload="pathlib"`` calls ``pathlib.Path.write_text`` (picklescan's denylist misses it);
    ``payload="wrapped"`` makes the same call but keeps its result in the state of an
    ``argparse.Namespace``, so the program uses every value it computes (fickling flags a call
    whose result is never used, not this one). Creating the file runs nothing; only loading it does.
    """
    canary = Path(canary).resolve()
    if payload == "exec":
        evil = _Payload(builtins.exec, (f"open({str(canary)!r}, 'w').write({CANARY_TEXT!r})",))
    elif payload == "pathlib":
        evil = _Payload(Path.write_text, (canary, CANARY_TEXT))
    elif payload == "wrapped":
        evil = _Payload(argparse.Namespace, (), {"weights": _Payload(Path.write_text, (canary, CANARY_TEXT))})
    else:
        raise InvalidParameterError(f"payload must be one of {PAYLOADS}, got {payload!r}")
    path = Path(path)
    path.write_bytes(pickle.dumps(evil, protocol=4))
    return path


def load_with_pickle(path, timeout=60):
    """Play the victim: ``pickle.load`` the file in a fresh Python process.

    The subprocess keeps the demonstration out of the notebook's own process and
    shows that the victim does not even need the attacker's code installed.
    Returns the ``subprocess.CompletedProcess``.
    """
    victim = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    return subprocess.run([sys.executable, "-c", victim, str(path)], capture_output=True, text=True,
                          timeout=timeout)


@dataclass(frozen=True)
class ScanReport(OneRowFrame):
    """What picklescan found: imports on its denylist (``dangerous``) and unknown ones (``suspicious``)."""

    path: str
    dangerous: list = field(default_factory=list)
    suspicious: list = field(default_factory=list)
    error: bool = False

    @property
    def flagged(self):
        """True if anything is dangerous or suspicious, or the file could not be parsed.

        Treat "suspicious" as a failure: an unknown callable in a model file is never good news.
        """
        return bool(self.dangerous or self.suspicious or self.error)


def scan(path, strict=False):
    """Scan a pickle (or a zip of pickles) with picklescan. Returns a :class:`ScanReport`.

    ``strict=True`` promotes every import not on picklescan's allowlist to dangerous.
    """
    from picklescan.scanner import SafetyLevel, scan_file_path

    with _quiet_scanner("picklescan"):  # it logs each finding as a warning; they are returned instead
        result = scan_file_path(str(path), strict=strict)
    names = {s: sorted(f"{g.module}.{g.name}" for g in result.globals if g.safety == s)
             for s in (SafetyLevel.Dangerous, SafetyLevel.Suspicious)}
    return ScanReport(str(path), names[SafetyLevel.Dangerous], names[SafetyLevel.Suspicious], result.scan_err)


def pack_in_zip(pickle_path, zip_path, member="archive/data.pkl"):
    """Store the pickle at ``pickle_path`` in a new zip at ``zip_path``, under the name ``member``.

    A PyTorch ``.pt`` file is a zip with its pickle inside, like this one. Scanners pick the
    members they read by name or by first bytes, so ``member`` decides what each one looks at.
    Returns ``zip_path``.
    """
    zip_path = Path(zip_path)
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(member, Path(pickle_path).read_bytes())
    return zip_path


@dataclass(frozen=True)
class ScanVerdict(OneRowFrame):
    """What one scanner said about one file, which it read without loading.

    ``verdict`` puts both scanners on one scale: ``"dangerous"`` (it names something that runs
    code), ``"suspicious"`` (something it cannot vouch for), ``"error"`` (it could not finish),
    ``"clean"`` (it reported nothing). ``scanner_says`` is the scanner's own word for it;
    ``findings`` is what it flagged: imports for picklescan, decompiled code for fickling;
    ``notes`` is what else it reported, such as a file or zip member it could not parse or skipped.
    """

    scanner: str
    file: str
    verdict: str
    scanner_says: str
    findings: tuple = ()
    notes: tuple = ()

    @property
    def flagged(self):
        """True unless the scanner reported nothing; "clean" still proves nothing."""
        return self.verdict != "clean"


@dataclass(frozen=True)
class ScannerComparison:
    """Every scanner's :class:`ScanVerdict` on every file, in the order scanned."""

    verdicts: tuple

    def verdict(self, file, scanner):
        """The verdict of ``scanner`` on the file labelled ``file``."""
        for v in self.verdicts:
            if v.file == file and v.scanner == scanner:
                return v.verdict
        raise InvalidParameterError(f"no verdict of {scanner!r} on {file!r}")

    def flagged_by(self, scanner):
        """The files ``scanner`` did not call clean, in the order scanned."""
        return [v.file for v in self.verdicts if v.scanner == scanner and v.flagged]

    def to_frame(self):
        """One row per file and scanner, findings and notes joined with "; "."""
        import pandas as pd

        rows = [{**asdict(v), "findings": "; ".join(v.findings) or "-", "notes": "; ".join(v.notes) or "-"}
                for v in self.verdicts]
        return pd.DataFrame(rows)

    def table(self):
        """One row per file, one verdict column per scanner."""
        frame = self.to_frame()
        files = list(dict.fromkeys(frame["file"]))
        scanners = list(dict.fromkeys(frame["scanner"]))
        return frame.pivot(index="file", columns="scanner", values="verdict").loc[files, scanners]


def compare_scanners(files, scanners=SCANNERS):
    """Scan each file with each scanner, loading none of them. Returns a :class:`ScannerComparison`.

    ``files`` maps a label (shown instead of the path) to a path, or is a list of paths (labelled
    by file name). A missing file or a directory is an :class:`~mlsec_lessons.errors.InvalidParameterError`;
    a file that is not a pickle gets whatever verdict its scanner gives it.
    """
    if not isinstance(files, dict):
        files = {Path(f).name: f for f in files}
    return ScannerComparison(tuple(scan_with(s, path, label) for label, path in files.items() for s in scanners))


def scan_with(scanner, path, label=None):
    """Scan one file with ``scanner`` (``"picklescan"`` or ``"fickling"``) without loading it.

    Returns a :class:`ScanVerdict` labelled ``label`` (the file's name by default). A zip is
    scanned the way each scanner's own command line scans one.
    """
    if scanner not in SCANNERS:
        raise InvalidParameterError(f"scanner must be one of {SCANNERS}, got {scanner!r}")
    path = _one_file(path)
    label = path.name if label is None else str(label)
    return (_picklescan_verdict if scanner == "picklescan" else _fickling_verdict)(path, label)


def _one_file(path):
    path = Path(path)
    if path.is_dir():
        raise InvalidParameterError(f"{str(path)!r} is a directory: scan each model file in it")
    if not path.is_file():
        raise InvalidParameterError(f"{str(path)!r} is not a file: there is nothing to scan")
    return path


@contextlib.contextmanager
def _quiet_scanner(logger_name):
    """Keep a scanner's log lines, prints and warnings out of the notebook; yield its log messages."""
    messages = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    log = logging.getLogger(logger_name)
    saved = log.level, log.propagate, log.handlers[:]
    log.handlers[:] = [Keep(logging.WARNING)]
    log.setLevel(logging.WARNING)
    log.propagate = False
    try:
        with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
              contextlib.redirect_stderr(io.StringIO())):
            warnings.simplefilter("ignore")
            yield messages
    finally:
        log.level, log.propagate, log.handlers[:] = saved


def _picklescan_verdict(path, label):
    from picklescan.scanner import SafetyLevel, scan_file_path

    with _quiet_scanner("picklescan") as messages:
        try:
            result = scan_file_path(str(path))
        except Exception as e:  # noqa: BLE001 -- a scanner that crashes on a file has given no verdict
            return ScanVerdict("picklescan", label, "error", "crashed", (), (f"{type(e).__name__}: {e}".replace(str(path), path.name),))
    levels = [g.safety for g in result.globals]
    findings = tuple(f"{g.module}.{g.name} ({g.safety.value})"
                     for g in sorted(result.globals, key=lambda g: (g.module, g.name))
                     if g.safety != SafetyLevel.Innocuous)
    if SafetyLevel.Dangerous in levels:
        verdict = "dangerous"
    elif SafetyLevel.Suspicious in levels:
        verdict = "suspicious"
    else:
        verdict = "error" if result.scan_err else "clean"
    says = next((s.value for s in (SafetyLevel.Dangerous, SafetyLevel.Suspicious) if s in levels),
                "scan error" if result.scan_err else "no dangerous import")
    # its other warnings repeat the findings; these say what it could not parse (paths shortened to a name)
    notes = tuple(m.replace(str(path), path.name) for m in messages if not m.endswith("FOUND"))
    return ScanVerdict("picklescan", label, verdict, says, findings, notes)


def _fickling_verdict(path, label):
    from fickling.analysis import Severity
    from fickling.loader import scan_file, scan_zip_archive

    notes = []
    with _quiet_scanner("fickling"):
        try:
            if zipfile.is_zipfile(path):  # as fickling's own command line does: each pickle member
                by_member = scan_zip_archive(str(path), graceful=True)
                scanned = [m for m in by_member if m != "<archive>"]  # "<archive>": the zip itself failed
                notes.append(f"scanned {len(scanned)} of {_zip_member_count(path)} zip members")
            else:
                by_member = {"": scan_file(str(path), graceful=True)}
        except Exception as e:  # noqa: BLE001 -- a scanner that crashes on a file has given no verdict
            return ScanVerdict("fickling", label, "error", "crashed", (), (f"{type(e).__name__}: {e}".replace(str(path), path.name),))
    severity, findings = Severity.LIKELY_SAFE, []
    for member, result in by_member.items():
        severity = max(severity, result.severity)
        prefix = f"{member}: " if member else ""
        findings += [prefix + _fickling_finding(r) for analysis in result.results for r in analysis.results
                     if r.severity > Severity.LIKELY_SAFE]
        notes += [prefix + e.replace(str(path), path.name) for e in result.errors]
    # fickling raises its severity when it cannot parse a file; say "error" when that is all it found
    if severity >= Severity.LIKELY_OVERTLY_MALICIOUS:
        verdict = "dangerous"
    elif findings:
        verdict = "suspicious"
    elif any(r.errors for r in by_member.values()):
        verdict = "error"
    else:
        verdict = "clean"
    return ScanVerdict("fickling", label, verdict, severity.name, tuple(dict.fromkeys(findings)), tuple(notes))


def _fickling_finding(result):
    """``"OvertlyBadEval: exec(...)"``: which analysis fired, on which decompiled code."""
    return f"{result.analysis_name}: {result.trigger}" if result.trigger else str(result.analysis_name)


def _zip_member_count(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(not info.is_dir() for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return "?"  # a broken zip: fickling's own error in the notes says why
