"""Differential privacy: mechanisms, DP-SGD from scratch, accounting, and diffprivlib models.

* ``mechanisms``: Laplace and Gaussian mechanisms with their sensitivity, and the source's
  feature noise (which is not DP)
* ``accounting``: epsilon of DP-SGD with dp_accounting (RDP, PLD, classic conversion)
* ``dp_sgd``: per-example clipping and noise in TensorFlow, and a Poisson-sampled trainer
* ``dp_models``: diffprivlib models with bounds from domain knowledge
"""
