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
"""
import builtins
import logging
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidParameterError

CANARY_TEXT = "unpickling this 'model' ran code on your machine\n"
PAYLOADS = ("exec", "pathlib")


class _Payload:
    """Pickles as "call ``func(*args)``": ``__reduce__`` is what an attacker controls."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def make_malicious_pickle(path, canary, payload="exec"):
    """Write a pickle to ``path`` that, when unpickled, writes ``canary``. Returns ``path``.

    ``payload="exec"`` is the classic ``exec`` of a code string (scanners catch it);
    ``payload="pathlib"`` calls ``pathlib.Path.write_text`` (picklescan's denylist misses it).
    Creating the file runs nothing; only loading it does.
    """
    canary = Path(canary).resolve()
    if payload == "exec":
        evil = _Payload(builtins.exec, (f"open({str(canary)!r}, 'w').write({CANARY_TEXT!r})",))
    elif payload == "pathlib":
        evil = _Payload(Path.write_text, (canary, CANARY_TEXT))
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


@dataclass
class ScanReport:
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

    log = logging.getLogger("picklescan")
    level = log.level
    log.setLevel(logging.ERROR)  # picklescan logs each finding as a warning; we return them instead
    try:
        result = scan_file_path(str(path), strict=strict)
    finally:
        log.setLevel(level)
    names = {s: sorted(f"{g.module}.{g.name}" for g in result.globals if g.safety == s)
             for s in (SafetyLevel.Dangerous, SafetyLevel.Suspicious)}
    return ScanReport(str(path), names[SafetyLevel.Dangerous], names[SafetyLevel.Suspicious], result.scan_err)
