"""Input-preprocessing defenses (ART preprocessors) and the adaptive attacks that break them.

A preprocessing defense classifies ``f(t(x))`` instead of ``f(x)``. Against an attacker who
ignores ``t`` it can look strong; against one who attacks ``f(t(.))`` it rarely is
(Athalye, Carlini and Wagner, 2018):

* **BPDA** (Backward Pass Differentiable Approximation): run the real ``t`` forward and treat
  it as the identity backward, ``grad_x L(f(t(x))) ~ grad_z L(f(z)) at z = t(x)``. It works
  because ``t(x) ~ x`` is what makes ``t`` usable as a defense in the first place.
* **EOT** (Expectation over Transformation): for a random ``t``, step along the *average*
  gradient over many draws, ``E_t[grad L(f(t(x)))]``, not along one noisy draw.
"""
import dataclasses

import numpy as np

from ..attacks import check_norm, input_gradient, pgd, pgd_loop
from ..errors import InvalidParameterError
from ..models import predict_labels
from ..records import OneRowFrame
from ..reproducibility import quiet
from ..validation import check_bounds, check_int, check_real


def gaussian_noise(sigma=0.01, bounds=(0.0, 1.0)):
    """The source's "defense": add N(0, sigma^2) noise to every input at prediction time (ART).

    Examples
    --------
    >>> t = gaussian_noise(0.1)
    >>> x = np.full((2, 3), 0.5, dtype="float32")
    >>> t(x)[0].shape
    (2, 3)
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.defences.preprocessor import GaussianAugmentation

    sigma = check_real(sigma, "sigma", min_value=0)
    return GaussianAugmentation(sigma=sigma, augmentation=False, clip_values=check_bounds(bounds, "bounds"),
                                apply_fit=False, apply_predict=True)


def feature_squeezing(bit_depth=1, bounds=(0.0, 1.0)):
    """Bit-depth reduction (Xu et al., 2018) by ART: round every pixel to ``2**bit_depth`` levels.

    Examples
    --------
    >>> transform(feature_squeezing(1), np.array([[0.2, 0.6]]))
    array([[0., 1.]], dtype=float32)
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.defences.preprocessor import FeatureSqueezing

    return FeatureSqueezing(clip_values=check_bounds(bounds, "bounds"),
                            bit_depth=check_int(bit_depth, "bit_depth", min_value=1))


def spatial_smoothing(window_size=3, bounds=(0.0, 1.0)):
    """A median filter over ``window_size x window_size`` patches (ART's ``SpatialSmoothing``).

    Examples
    --------
    >>> x = np.zeros((1, 3, 3, 1), dtype="float32"); x[0, 1, 1] = 1.0     # one bright pixel
    >>> float(spatial_smoothing(3)(x)[0].max())
    0.0
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.defences.preprocessor import SpatialSmoothing

    return SpatialSmoothing(window_size=check_int(window_size, "window_size", min_value=1), channels_first=False,
                            clip_values=check_bounds(bounds, "bounds"))


def transform(preprocessor, x):
    """``t(x)`` as float32; ART preprocessors return ``(x, y)``."""
    return np.asarray(preprocessor(np.asarray(x, np.float32))[0], dtype=np.float32)


def defended_predict(model, preprocessor, x):
    """Labels of the defended classifier ``f(t(x))``. A random ``t`` draws afresh on every call."""
    return predict_labels(model, transform(preprocessor, x))


def adaptive_pgd(model, preprocessor, x, y, eps, *, steps=40, eps_step=None, eot_samples=1, norm=np.inf,
                 bounds=(0.0, 1.0), seed=None):
    """PGD against ``f(t(.))``: BPDA through ``t``, and EOT over ``eot_samples`` draws of it.

    Each step evaluates the real ``t`` (``eot_samples`` times if it is random), takes the
    model's input gradient at each ``t(x_adv)`` and steps along their mean.

    Parameters
    ----------
    model : keras.Model
        The undefended classifier (logits).
    preprocessor : callable
        ``preprocessor(x) -> (t(x), _)``, e.g. an ART preprocessor.
    x, y, eps, steps, eps_step, norm, bounds, seed
        As in :func:`mlsec_lessons.attacks.pgd`.
    eot_samples : int, default=1
        Draws of ``t`` averaged per step; 1 for a deterministic ``t``.

    Returns
    -------
    ndarray
        Adversarial inputs in the eps-ball around ``x``.

    Examples
    --------
    >>> x_adv = adaptive_pgd(model, feature_squeezing(1), x, y, 0.1, steps=40, eps_step=0.01)   # doctest: +SKIP
    """
    eot_samples = check_int(eot_samples, "eot_samples", min_value=1)

    def gradient(x_adv, labels):
        # BPDA: the gradient at t(x_adv) stands in for the gradient at x_adv (t ~ identity)
        return np.mean([input_gradient(model, transform(preprocessor, x_adv), labels)
                        for _ in range(eot_samples)], axis=0)

    return pgd_loop(gradient, x, y, eps, steps=steps, eps_step=eps_step, norm=norm, bounds=bounds, seed=seed)


@dataclasses.dataclass(frozen=True)
class PreprocessingResult(OneRowFrame):
    """Accuracy of a defended classifier ``f(t(.))``, clean and under two attacks, with their setting."""

    clean: float          # on the clean inputs
    non_adaptive: float   # under PGD against the bare model
    adaptive: float       # under PGD through the defense (BPDA, EOT)
    eps: float
    norm: str             # "inf" or "2"
    steps: int
    eot_samples: int
    n: int


def evaluate_preprocessing(model, preprocessor, x, y, eps, *, steps=40, eps_step=None, eot_samples=1, norm=np.inf,
                           bounds=(0.0, 1.0), seed=0, x_non_adaptive=None):
    """Accuracy of ``f(t(.))``: clean, under an attack that ignores ``t``, and under the adaptive one.

    The non-adaptive attack is PGD against the bare model (the defense is added after the
    fact, as the source's evaluation assumes). The adaptive attack is :func:`adaptive_pgd`.

    ``x_non_adaptive``, when given, is that PGD's output already computed with these settings: it does
    not depend on the defense, so a table of defenses for one model attacks the bare model once.

    Returns
    -------
    PreprocessingResult

    Examples
    --------
    >>> r = evaluate_preprocessing(model, spatial_smoothing(3), x, y, 0.15, steps=20, eps_step=0.02)  # doctest: +SKIP
    >>> r.clean, r.non_adaptive, r.adaptive     # lesson 03, 270 digits     # doctest: +SKIP
    (0.811, 0.344, 0.193)
    """
    y = np.asarray(y)
    if x_non_adaptive is None:
        x_oblivious = pgd(model, x, y, eps, steps=steps, eps_step=eps_step, norm=norm, bounds=bounds, seed=seed)
    else:
        x_oblivious = np.asarray(x_non_adaptive, dtype=np.float32)
        if x_oblivious.shape != np.shape(x):
            raise InvalidParameterError(f"x_non_adaptive has shape {x_oblivious.shape}, x has {np.shape(x)}: "
                                        "give the PGD examples of these very inputs")
    x_adaptive = adaptive_pgd(model, preprocessor, x, y, eps, steps=steps, eps_step=eps_step,
                              eot_samples=eot_samples, norm=norm, bounds=bounds, seed=seed)
    return PreprocessingResult(
        clean=float(np.mean(defended_predict(model, preprocessor, x) == y)),
        non_adaptive=float(np.mean(defended_predict(model, preprocessor, x_oblivious) == y)),
        adaptive=float(np.mean(defended_predict(model, preprocessor, x_adaptive) == y)),
        eps=float(eps), norm="inf" if check_norm(norm) == np.inf else "2", steps=int(steps),
        eot_samples=int(eot_samples), n=int(len(y)))
