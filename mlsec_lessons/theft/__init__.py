"""Model theft (lesson 08): extraction through the prediction API, and a detector for it.

* ``client``: the served model as a thief sees it, an HTTP client that counts every query
* ``substitute``: the thief's own small network, trained on whatever the API answered
* ``extraction``: Copycat-style extraction with natural data, photos or noise; Jacobian-based
  augmentation (Papernot et al.); fidelity and budget curves
* ``equation_solving``: Tramer et al. (2016)'s exact extraction of a logistic regression from its
  confidence scores, d + 1 queries, and what rounding and label-only answers do to it
* ``prada``: PRADA (Juuti et al., 2019), the Shapiro-Wilk test on a client's query distances

Output defenses (label-only, rounding, reverse sigmoid) and per-subject quotas are options of the
real server: ``create_app(outputs=..., postprocessor=..., quota=..., monitors=...)`` in
:mod:`mlsec_lessons.deployment.server`.
"""
from .client import HttpVictim, QueryRefused
from .equation_solving import (
    LinearCopy,
    ServedClassifier,
    equation_solving,
    parameter_error,
    relative_weights,
    solving_curve,
)
from .extraction import (
    Extraction,
    copycat,
    extraction_curve,
    fidelity,
    jacobian_augmentation,
    photo_patches,
    plot_extraction_curves,
    query,
    steal,
    uniform_noise,
)
from .prada import PRADA, PradaStream
from .substitute import Substitute

__all__ = ["HttpVictim", "QueryRefused", "LinearCopy", "ServedClassifier", "equation_solving", "parameter_error",
           "relative_weights", "solving_curve", "Extraction", "copycat", "extraction_curve", "fidelity",
           "jacobian_augmentation", "photo_patches", "plot_extraction_curves", "query", "steal", "uniform_noise",
           "PRADA", "PradaStream", "Substitute"]
