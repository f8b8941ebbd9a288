# what can a submission see and reach? model_robustness_score reports it in its error message
import json
import os
import socket
from pathlib import Path

import mlsec_lessons

PORT = 0  # the test serves on this port of 127.0.0.1
HERE = Path(__file__).resolve().parent
LIBRARY = Path(mlsec_lessons.__file__).resolve().parent


def attempt(action):
    try:
        action()
        return True
    except Exception:
        return False


def model_robustness_score(asr):
    found = {
        "secret_env": "MLSEC_PROBE_SECRET" in os.environ,
        "read_solutions": attempt(lambda: (LIBRARY.parent / "solutions" / "ex0_security_metrics.py").read_text()),
        "read_checks": attempt(lambda: (LIBRARY / "grading" / "checks" / "ex0_security_metrics.py").read_text()),
        # only inside the sandbox: in the default mode this would really write into the course
        "write_checks": Path("/submission").exists() and attempt(
            lambda: (LIBRARY / "grading" / "checks" / "probe.txt").write_text("x")),
        "read_classmate": attempt(lambda: (HERE.parent / "bob" / "ex0_security_metrics.py").read_text()),
        "network": attempt(lambda: socket.create_connection(("127.0.0.1", PORT), timeout=1)),
        "own_file": attempt(lambda: Path(__file__).read_text()),
    }
    raise RuntimeError("PROBE" + json.dumps(found) + "PROBE")
