# read the reference solution from the course folder (only the sandbox hides it)
import importlib.util
from pathlib import Path

import mlsec_lessons

_path = Path(mlsec_lessons.__file__).resolve().parents[1] / "solutions" / "ex0_security_metrics.py"
_spec = importlib.util.spec_from_file_location("stolen", _path)
_stolen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stolen)
attack_success_rate = _stolen.attack_success_rate
