"""The source's three application cases, measured instead of claimed (lesson 10).

* ``fraud``: a fraud detector's precision and recall at thresholds chosen on validation data, and
  the evasion rate of a white-box fraudster who changes only what they control, against a plain
  and an adversarially trained detector
* ``healthcare``: the accuracy breast cancer supports (cross-validated), and DP-SGD models'
  accuracy and membership-inference exposure (LiRA) at a few epsilons
* ``perception``: an adversarial patch (EOT over its placement) and a grid of rotations, shifts and
  brightness changes, against a plain, an adversarially trained and an augmentation-trained CNN
* ``plots``: one figure per case

Each case module has one function that trains (or loads from the cache) and measures, and returns
a small result object with a ``table()``.
"""
from .fraud import FraudCase, fraud_case
from .healthcare import HealthcareCase, healthcare_case
from .perception import PerceptionCase, perception_case

__all__ = ["FraudCase", "fraud_case", "HealthcareCase", "healthcare_case", "PerceptionCase", "perception_case"]
