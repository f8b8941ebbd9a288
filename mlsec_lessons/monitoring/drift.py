"""Input drift: do the inputs the model sees now come from the distribution it was trained on?

For each window of live inputs and each input feature (pixel), a two-sample Kolmogorov-Smirnov test
compares the window with a reference sample (the training inputs). With 64 pixels there are 64
tests, so the smallest p-value is multiplied by 64 (Bonferroni): the window is flagged when that
corrected p-value is below ``alpha``, which bounds the false-alarm rate per window by ``alpha``
when nothing changed. This is the feature-wise test that drift libraries such as alibi-detect
use by default.

A drift alarm says the traffic changed, not why: a new camera, a new user group, or someone
sending inputs that were never meant to be digits (noise, photos) to copy the model.
"""
import numpy as np
from scipy import stats

from ..errors import InvalidParameterError
from ..validation import check_real
from .window import WindowedMonitor


def ks_drift(reference, window):
    """Bonferroni-corrected p-value of per-feature KS tests of ``window`` against ``reference``.

    Returns ``(p_value, statistics)``: the smallest p-value times the number of features (at most 1),
    and the KS statistic of each feature.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(500, 3))
    >>> ks_drift(ref, rng.normal(size=(50, 3)))[0] > 0.05, ks_drift(ref, rng.normal(1, 1, (50, 3)))[0] < 0.01
    (True, True)
    """
    reference, window = np.asarray(reference, np.float64), np.asarray(window, np.float64)
    reference, window = reference.reshape(len(reference), -1), window.reshape(len(window), -1)
    if reference.shape[1] != window.shape[1]:
        raise InvalidParameterError(f"window has {window.shape[1]} features per input, the reference {reference.shape[1]}")
    if len(reference) < 2 or len(window) < 2:
        raise InvalidParameterError("reference and window need at least 2 inputs each")
    result = stats.ks_2samp(reference, window, axis=0)
    p = np.nan_to_num(result.pvalue, nan=1.0)  # a feature constant in both samples has not drifted
    return float(min(1.0, p.min() * p.size)), np.nan_to_num(result.statistic)


class DriftMonitor(WindowedMonitor):
    """Flag windows of live inputs whose distribution differs from ``reference`` (:func:`ks_drift`).

    Parameters
    ----------
    reference : array-like
        Inputs the model was trained on (or any sample of the traffic that is known to be normal).
    window : int, default=50
        Inputs per test.
    alpha : float, default=0.01
        Flag a window when its corrected p-value is below ``alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> monitor = DriftMonitor(rng.random((500, 4)), window=50)
    >>> monitor.observe("alice", rng.random((50, 4))), len(monitor.observe("bob", 0.5 * rng.random((50, 4))))
    ([], 1)
    """

    name = "drift"

    def __init__(self, reference, window=50, alpha=0.01):
        self.reference = reference
        self.window = window
        self.alpha = alpha
        self.check_settings()  # a bad setting fails here, not on the request that completes a window

    def check_settings(self):
        super().check_settings()
        check_real(self.alpha, "alpha", min_value=0, max_value=1, include_boundaries="neither")
        if np.ndim(self.reference) < 2 or len(self.reference) < 2:
            raise InvalidParameterError(f"reference must hold at least 2 inputs, got shape {np.shape(self.reference)}")

    def evaluate(self, x):
        p, statistic = ks_drift(self.reference, x)
        worst = int(np.argmax(statistic))
        return ({"drift_p": p, "drift_ks": float(statistic[worst])}, p < self.alpha,
                f"input drift: KS test p={p:.2g} (Bonferroni over {statistic.size} features) < {self.alpha}; "
                f"largest shift on feature {worst} (KS statistic {statistic[worst]:.2f})")
