"""Defenses against evasion, and how to evaluate them honestly.

* ``adversarial_training``: PGD, fast (FGSM-RS) and plain FGSM adversarial training as compiled steps, robustness
  measured epoch by epoch (catastrophic overfitting); ART's trainers used correctly
* ``preprocessing``: input transforms (Gaussian noise, bit-depth reduction, median smoothing) and the
  adaptive attacks that break them (EOT, BPDA)
* ``detection``: an adversarial-input detector, its TPR/FPR, and an attacker who knows it is there
* ``evaluation``: AutoAttack (via ART) on a fixed subset, with eps, norm and subset size in the result
* ``smoothing``: randomized smoothing (Cohen et al., 2019): noise-trained base models, CERTIFY and PREDICT
"""
from . import detection, evaluation, preprocessing, smoothing
from .adversarial_training import (
           EpochCurve,
           adversarial_train,
           art_adversarial_training,
           art_madry_training,
           art_progress_bars_off,
           attack_schedule,
           robustness_by_epoch,
)
from .detection import AdversarialDetector, detector_aware_pgd
from .evaluation import autoattack
from .preprocessing import adaptive_pgd, evaluate_preprocessing

__all__ = ["EpochCurve", "attack_schedule", "robustness_by_epoch", "adversarial_train",
           "art_adversarial_training", "art_madry_training", "art_progress_bars_off", "AdversarialDetector",
           "detector_aware_pgd", "autoattack", "adaptive_pgd", "evaluate_preprocessing",
           "detection", "evaluation", "preprocessing", "smoothing"]
