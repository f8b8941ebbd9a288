"""Model poisoning (OWASP ML10): the attacker changes the weights, not the training data.

Whoever can write the model file (a compromised registry, a build step, an insider) does not
need the training pipeline: a few epochs of fine-tuning on a handful of triggered images
implant a backdoor, and the clean accuracy a reviewer would check barely moves. The change is
invisible to testing but not to integrity checks: the weights' hash changes, so a signed
manifest (lesson 07, :mod:`mlsec_lessons.deployment.artifacts`) refuses the file.
"""
import dataclasses

import keras
import numpy as np

from .. import models
from ..cache import cached_fit, fingerprint
from ..errors import InvalidParameterError
from ..records import OneRowFrame
from ..validation import as_generator, check_fraction, check_labels
from ._common import check_class, check_images
from .backdoor import add_trigger


def implant_backdoor(model, x, y, target, *, triggered_share=0.15, epochs=10, batch_size=32, learning_rate=1e-3,
                     kind="pattern", seed=0, cache=True):
    """A copy of ``model`` fine-tuned on ``(x, y)`` plus triggered copies, labelled ``target``, of a
    share of the non-``target`` images. The original is left unchanged.

    Parameters
    ----------
    model : keras.Model
        The victim's trained model (outputs logits).
    x, y : arrays
        The clean images the attacker has; training on them too keeps clean accuracy up (with
        triggered images only, the model learns to answer ``target`` far too often).
    target : int
    triggered_share : float in (0, 1], default=0.15
        Share of the non-``target`` images that also go in with the trigger.
    epochs, batch_size : int
    learning_rate : float
    kind : {"pattern", "pixel"}
    seed : int
    cache : bool

    Returns
    -------
    keras.Model
        The poisoned copy, compiled; cached, keyed by the original weights and the attacker's data.

    Examples
    --------
    >>> poisoned = implant_backdoor(clean_model, d.x_train[:500], d.y_train[:500], target=0)   # doctest: +SKIP
    """
    x = check_images(x, y)
    y = check_labels(y, n_classes=int(model.output_shape[-1]))
    target = check_class("target", target, int(model.output_shape[-1]))
    triggered_share = check_fraction(triggered_share, "triggered_share")
    if triggered_share == 0:
        raise InvalidParameterError("triggered_share must be > 0: with no triggered images there is no backdoor to learn")
    others = np.flatnonzero(y != target)
    if len(others) == 0:
        raise InvalidParameterError(f"every image is of the target class {target}; the trigger needs images of other classes")
    picked = as_generator(seed).choice(others, size=max(1, round(triggered_share * len(others))),
                                                            replace=False)
    x_fit = np.concatenate([x, add_trigger(x[picked], kind)])
    y_fit = np.concatenate([y, np.full(len(picked), target)])
    poisoned = keras.models.clone_model(model)
    poisoned.set_weights(model.get_weights())
    models.compile_for_training(poisoned, learning_rate)
    config = dict(original=fingerprint(*model.get_weights()), data=fingerprint(x_fit, y_fit), epochs=epochs,
                  batch_size=batch_size, learning_rate=learning_rate)

    def fit(m):
        models.fit_epochs(m, x_fit, y_fit, epochs=epochs, batch_size=batch_size, seed=seed, progress=False)

    return cached_fit("implanted-backdoor", config, lambda: poisoned, fit, cache=cache, seed=seed).model


@dataclasses.dataclass(frozen=True)
class WeightChange(OneRowFrame):
    """How far two models' weights are apart: ``max_abs``, the largest absolute change of one weight,
    and ``relative_l2``, the L2 norm of the change over that of the weights before."""

    max_abs: float
    relative_l2: float


def weight_change(before, after):
    """How far two models' weights are apart: the largest absolute change and the relative L2 change.

    Returns
    -------
    WeightChange

    Examples
    --------
    >>> weight_change(clean_model, poisoned)        # doctest: +SKIP
    WeightChange(max_abs=0.05, relative_l2=0.02)
    """
    a, b = before.get_weights(), after.get_weights()
    if [w.shape for w in a] != [w.shape for w in b]:
        raise InvalidParameterError("the two models have different architectures")
    diff = np.concatenate([(wb - wa).ravel() for wa, wb in zip(a, b)])
    base = np.concatenate([wa.ravel() for wa in a])
    return WeightChange(max_abs=float(np.abs(diff).max()),
                        relative_l2=float(np.linalg.norm(diff) / np.linalg.norm(base)))
