"""Backdoors (Gu et al., 2017, "BadNets") with ART's ``PoisoningAttackBackdoor``.

The attacker stamps a small trigger on a fraction of the training images and relabels them
as the ``target`` class. The model learns the task *and* the rule "trigger means target":
clean accuracy barely moves, so ordinary validation does not notice, while any input with
the trigger goes to the target class. Two numbers describe it: clean accuracy, and the
attack success rate (ASR), the share of triggered test inputs from the *other* classes that
the model puts in the target class.
"""
import numpy as np

from .. import models
from ..errors import InvalidParameterError
from ..reproducibility import quiet
from ..validation import as_generator, check_fraction, check_int, check_labels
from ._common import check_class, check_images, with_train

TRIGGERS = ("pattern", "pixel")


def add_trigger(x, kind="pattern", distance=1, value=1.0):
    """Stamp the trigger on a copy of ``x`` with ART's perturbation functions.

    ``"pattern"`` is ART's ``add_pattern_bd``: four pixels in a checkerboard near the
    bottom-right corner; ``"pixel"`` is ``add_single_bd``, one pixel there.

    Parameters
    ----------
    x : array, shape (n, h, w) or (n, h, w, c)
        Images, channels last.
    kind : {"pattern", "pixel"}, default="pattern"
    distance : int, default=1
        Distance of the trigger from the bottom-right corner (1 = the corner pixel itself).
    value : float, default=1.0
        Pixel value of the trigger (the maximum of the digits' [0, 1] range).

    Examples
    --------
    >>> import numpy as np
    >>> x = add_trigger(np.zeros((2, 8, 8, 1), np.float32))
    >>> int(x.sum() / 2), float(x[0, 7, 7, 0]), float(x[0, 6, 6, 0])
    (4, 1.0, 1.0)
    """
    quiet()  # ART's import warns about PyTorch
    from art.attacks.poisoning.perturbations import add_pattern_bd, add_single_bd

    if kind not in TRIGGERS:
        raise InvalidParameterError(f"kind must be one of {TRIGGERS}, got {kind!r}")
    x = check_images(x)
    h, w = x.shape[1:3]
    # the pattern reaches 2 pixels further in than `distance`
    if check_int(distance, "distance", min_value=1) + (2 if kind == "pattern" else 0) > min(h, w):
        raise InvalidParameterError(f"distance must be an integer with the trigger inside a {h}x{w} image, got {distance!r}")
    if kind == "pattern":
        return add_pattern_bd(x, distance=int(distance), pixel_value=value)
    return add_single_bd(x, distance=int(distance), pixel_value=value).astype(np.float32)


def poison_backdoor(x, y, fraction, target, *, kind="pattern", n_classes=None, seed=0):
    """Backdoor ``round(fraction * len(x))`` training images with ART's ``PoisoningAttackBackdoor``.

    The poisoned images are drawn from the classes other than ``target``; each gets the
    trigger and the label ``target`` and *replaces* its clean original, so the training set
    keeps its size and ``fraction`` is the share of it the attacker controls.

    Parameters
    ----------
    x : array, shape (n, h, w[, c])
    y : array of int, shape (n,)
    fraction : float in [0, 1]
    target : int
        The class triggered inputs should land in.
    kind : {"pattern", "pixel"}
    n_classes : int or None
        Defaults to ``y.max() + 1``.
    seed : int

    Returns
    -------
    x_poisoned, y_poisoned : ndarrays
        Copies of ``x`` and ``y`` with the poison in place.
    poison_idx : ndarray of int64
        Sorted indices of the poisoned rows (ground truth for evaluating a defense).

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.zeros((100, 8, 8, 1), np.float32), np.repeat(np.arange(10), 10)
    >>> xp, yp, idx = poison_backdoor(x, y, 0.05, target=0)
    >>> len(idx), yp[idx].tolist(), bool(np.all(y[idx] != 0)), float(xp[idx].sum() / len(idx))
    (5, [0, 0, 0, 0, 0], True, 4.0)
    """
    quiet()
    from art.attacks.poisoning import PoisoningAttackBackdoor

    x = check_images(x, y)
    y = check_labels(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    y = check_labels(y, n_classes=n_classes)
    target = check_class("target", target, n_classes)
    fraction = check_fraction(fraction, "fraction")
    if kind not in TRIGGERS:
        raise InvalidParameterError(f"kind must be one of {TRIGGERS}, got {kind!r}")
    candidates = np.flatnonzero(y != target)
    n_poison = int(round(fraction * len(x)))
    if n_poison > len(candidates):
        raise InvalidParameterError(f"fraction={fraction} asks for {n_poison} poisoned images but only {len(candidates)} "
                         f"are outside the target class {target}")
    rng = as_generator(seed)
    poison_idx = np.sort(rng.choice(candidates, size=n_poison, replace=False))
    x_poisoned, y_poisoned = x.copy(), y.copy()
    if n_poison:
        attack = PoisoningAttackBackdoor(lambda batch: add_trigger(batch, kind))
        x_poisoned[poison_idx], y_poisoned[poison_idx] = attack.poison(x[poison_idx], y=np.full(n_poison, target))
    return x_poisoned, y_poisoned, poison_idx


def backdoor_success_rate(model, x, y, target, kind="pattern"):
    """Share of triggered inputs from classes other than ``target`` that ``model`` assigns to ``target``.

    Examples
    --------
    >>> backdoor_success_rate(model, d.x_test, d.y_test, target=0)      # doctest: +SKIP
    0.97
    """
    x = check_images(x, y)
    y = check_labels(y)
    keep = y != check_class("target", target, int(model.output_shape[-1]))
    if not keep.any():
        raise InvalidParameterError(f"every input is of the target class {target}; the ASR needs inputs from other classes")
    return float(np.mean(models.predict_labels(model, add_trigger(x[keep], kind)) == target))


def train_backdoored(data, fraction, target, *, kind="pattern", epochs=15, batch_size=64, seed=0, cache=True):
    """Poison ``data``'s training split with :func:`poison_backdoor` and train a small CNN on it.

    The model cache is keyed by the poisoned data itself (through its fingerprint), so a
    second call with the same arguments loads the weights instead of training.

    Returns
    -------
    (model, poison_idx, poisoned)
        The trained model (loaded from the model cache when it holds one), the indices of the
        poisoned training rows, and the poisoned :class:`~mlsec_lessons.data.Dataset`.

    Examples
    --------
    >>> model, idx, poisoned = train_backdoored(data.load_digits(), 0.05, target=0)   # doctest: +SKIP
    """
    x_p, y_p, idx = poison_backdoor(data.x_train, data.y_train, fraction, target, kind=kind,
                                    n_classes=data.n_classes, seed=seed)
    poisoned = with_train(data, x_p, y_p, f"{data.name}-backdoor")
    model = models.train(poisoned, "small_cnn", epochs=epochs, batch_size=batch_size, seed=seed, cache=cache,
                         progress=False).model
    return model, idx, poisoned
