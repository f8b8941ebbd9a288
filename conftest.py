"""Repository-wide pytest set-up, shared by the unit tests and the nbval notebook run."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")  # no display on CI; notebooks set inline themselves


def _without_stderr(outputs):
    # Warnings and progress bars go to stderr; they are not part of a lesson's result.
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval is a dev extra; plain unit-test runs do not need it
    IPyNbCell = None

if IPyNbCell is not None and not getattr(IPyNbCell.compare_outputs, "_ignores_stderr", False):
    _compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _without_stderr(test), _without_stderr(ref), skip_compare)

    compare_outputs._ignores_stderr = True
    IPyNbCell.compare_outputs = compare_outputs
