"""Model theft (lesson 08): extraction through the prediction API, and a detector for it.

* ``client``: the served model as a thief sees it, an HTTP client that counts every query
* ``substitute``: the thief's own small network, trained on whatever the API answered
* ``extraction``: Copycat-style extraction with natural data, photos or noise; Jacobian-based
  augmentation (Papernot et al.); fidelity and budget curves
* ``prada``: PRADA (Juuti et al., 2019), the Shapiro-Wilk test on a client's query distances

Output defenses (label-only, rounding, reverse sigmoid) and per-subject quotas are options of the
real server: ``create_app(outputs=..., postprocessor=..., quota=..., monitors=...)`` in
:mod:`mlsec_lessons.deployment.server`.
"""
from .client import HttpVictim, QueryRefused
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

__all__ = ["HttpVictim", "QueryRefused", "Extraction", "copycat", "extraction_curve", "fidelity",
           "jacobian_augmentation", "photo_patches", "plot_extraction_curves", "query", "steal", "uniform_noise",
           "PRADA", "PradaStream", "Substitute"]
