"""A backdoor that survives transfer learning (OWASP ML07; Gu et al., 2017, section 5).

A vendor publishes a pretrained network. The victim keeps its feature extractor (every layer
but the last), puts a new head on it for their own task and trains only the head on their own
clean data. If the vendor's network was backdoored, the trigger still drives the extractor to
the same place in feature space, and the new head maps that place to one class of the *new*
task: the backdoor comes along, retargeted to whichever class the head puts it in.

Digits make two tasks: the vendor trains on 0-4, the victim fine-tunes on 5-9.
"""
import keras
import numpy as np

from .. import models
from ..cache import cached_fit, fingerprint
from ..data import Dataset
from ..errors import InvalidParameterError
from ..validation import check_fraction, check_labels
from ._common import check_images
from .backdoor import add_trigger, train_backdoored


def split_tasks(data, task_a=(0, 1, 2, 3, 4), task_b=(5, 6, 7, 8, 9)):
    """Two Datasets from one: ``data`` restricted to the classes ``task_a`` and to ``task_b``,
    each relabelled 0..k-1 in the order given.

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> a, b = split_tasks(load_digits())
    >>> a.n_classes, b.n_classes, sorted(set(b.y_train.tolist()))
    (5, 5, [0, 1, 2, 3, 4])
    """
    classes_a, classes_b = [int(c) for c in task_a], [int(c) for c in task_b]
    for name, classes in (("task_a", classes_a), ("task_b", classes_b)):
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c < data.n_classes for c in classes):
            raise InvalidParameterError(f"{name} must list at least two distinct classes of {data.name!r} "
                             f"(0..{data.n_classes - 1}), got {classes}")
    if set(classes_a) & set(classes_b):
        raise InvalidParameterError(f"task_a and task_b share classes {sorted(set(classes_a) & set(classes_b))}")

    def subset(classes, tag):
        remap = np.full(data.n_classes, -1)
        remap[classes] = np.arange(len(classes))
        tr, te = np.isin(data.y_train, classes), np.isin(data.y_test, classes)
        return Dataset(f"{data.name}-{tag}", data.x_train[tr], remap[data.y_train[tr]], data.x_test[te],
                       remap[data.y_test[te]], n_classes=len(classes), clip=data.clip,
                       info={**data.info, "classes": classes})

    return subset(classes_a, "task-a"), subset(classes_b, "task-b")


def pretrain(task_a, *, backdoor_fraction=0.0, target=0, kind="pattern", epochs=15, seed=0):
    """The vendor's small CNN on task A: clean (``backdoor_fraction=0``) or backdoored with
    :func:`~mlsec_lessons.poisoning.backdoor.train_backdoored`. Cached either way."""
    if check_fraction(backdoor_fraction, "backdoor_fraction") == 0:
        return models.train(task_a, "small_cnn", epochs=epochs, seed=seed, progress=False).model
    return train_backdoored(task_a, backdoor_fraction, target, kind=kind, epochs=epochs, seed=seed)[0]


def fine_tune(pretrained, task_b, *, freeze=True, epochs=15, batch_size=64, learning_rate=1e-3, seed=0, cache=True):
    """The victim's model: ``pretrained``'s feature extractor with a new head for ``task_b``.

    Parameters
    ----------
    pretrained : keras.Sequential
        The vendor's model; every layer but the last is reused (weights copied, not shared).
    task_b : Dataset
        The victim's clean data.
    freeze : bool, default=True
        Train only the new head (the common recipe for a small data set); ``False`` fine-tunes
        every layer (then keep ``learning_rate`` small).
    epochs, batch_size : int
    learning_rate : float
        Adam's; a head alone trains well at 1e-2 to 3e-2.
    seed : int
    cache : bool

    Returns
    -------
    keras.Sequential
        Compiled, outputs logits; cached, keyed by the pretrained weights and the victim's data.
    """
    if not isinstance(pretrained, keras.Sequential) or len(pretrained.layers) < 2:
        raise InvalidParameterError(f"pretrained must be a keras.Sequential with at least two layers, "
                         f"got {type(pretrained).__name__}")
    copy = keras.models.clone_model(pretrained)  # new layers: fine-tuning must not touch the vendor's model
    copy.set_weights(pretrained.get_weights())
    extractor = keras.Sequential([keras.Input(shape=task_b.input_shape), *copy.layers[:-1]], name="extractor")
    extractor.trainable = not freeze
    model = keras.Sequential([extractor, keras.layers.Dense(task_b.n_classes)], name="fine_tuned")
    models.compile_for_training(model, learning_rate)
    config = dict(pretrained=fingerprint(*pretrained.get_weights()), data=fingerprint(task_b.x_train, task_b.y_train),
                  freeze=bool(freeze), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate)

    def fit(m):
        models.fit_epochs(m, task_b.x_train, task_b.y_train, epochs=epochs, batch_size=batch_size, seed=seed,
                          progress=False)

    return cached_fit(f"{task_b.name}-fine-tuned", config, lambda: model, fit, cache=cache, seed=seed).model


def trigger_class(model, x_probe, kind="pattern"):
    """The class ``model`` gives most often to triggered ``x_probe``: what an attacker learns from a few queries."""
    x_probe = check_images(x_probe)
    return int(np.bincount(models.predict_labels(model, add_trigger(x_probe, kind))).argmax())


def retargeted_asr(model, x, y, target, kind="pattern"):
    """Share of triggered inputs whose true class is not ``target`` that ``model`` puts in ``target``."""
    x = check_images(x, y)
    y = check_labels(y)
    keep = y != target
    if not keep.any():
        raise InvalidParameterError(f"every input is of class {target}; the ASR needs inputs from other classes")
    return float(np.mean(models.predict_labels(model, add_trigger(x[keep], kind)) == target))
