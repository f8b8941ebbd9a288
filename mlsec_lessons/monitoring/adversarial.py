"""Lesson 03's adversarial-input detector, run on live traffic.

The detector scores each input; the monitor reports, per window, the share of inputs it flags. On
clean traffic that share is about the detector's false-positive rate; a share far above it means
someone is sending inputs the detector was trained to recognise. It knows only the attack it was
trained on: lesson 03 showed a detector-aware attacker getting past it, and inputs crafted on a
different model (a stolen copy) may not look like its training attack at all.
"""
from ..errors import InvalidParameterError
from ..validation import check_real
from .window import WindowedMonitor


class AdversarialInputMonitor(WindowedMonitor):
    """Per window, the share of inputs ``detector`` flags; alert above ``max_rate``.

    Parameters
    ----------
    detector : fitted AdversarialDetector
        Anything with ``predict(x)`` returning 1 for "adversarial"
        (:class:`~mlsec_lessons.defenses.detection.AdversarialDetector`).
    window : int, default=50
    max_rate : float, default=0.2
        Alert when more than this share of a window is flagged.
    """

    name = "adversarial-input detector"

    def __init__(self, detector, window=50, max_rate=0.2):
        self.detector = detector
        self.window = window
        self.max_rate = max_rate
        self.check_settings()  # a bad setting fails here, not on the request that completes a window

    def check_settings(self):
        super().check_settings()
        check_real(self.max_rate, "max_rate", min_value=0, max_value=1, include_boundaries="left")
        if not callable(getattr(self.detector, "predict", None)):
            raise InvalidParameterError(f"detector needs a predict(x) method, got {self.detector!r}")

    def evaluate(self, x):
        rate = float(self.detector.predict(x).mean())
        return ({"flagged": rate}, rate > self.max_rate,
                f"{rate:.0%} of a window of {len(x)} inputs flagged as adversarial (alert above {self.max_rate:.0%})")
