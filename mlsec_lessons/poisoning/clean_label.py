"""A clean-label backdoor (Turner, Tsipras and Madry, 2019) with ART's ``PoisoningAttackCleanLabelBackdoor``.

The dirty-label backdoor of :mod:`.backdoor` relabels a 7 with a trigger as a 0: anyone who looks at
the image and its label sees the lie. Here the attacker poisons only images *of the target class*
and keeps their labels. A trigger on an ordinary 0 teaches little (the model reads the 0 from its
shape), so each chosen image is first pushed by PGD on a proxy model until its own features say
"not a 0", then stamped with the trigger. To fit the (correct) label the victim leans on the one
feature that still says 0: the trigger. Every label is right, so an audit of the labels has nothing
to find.

The control stamps the same trigger on the same images without the perturbation; the difference
in attack success rate is what the perturbation buys. :func:`label_audit` is the check it passes: a
k-nearest-neighbour vote on each label, which flags most of a dirty-label poison.
"""
import dataclasses

import numpy as np

from .. import models
from ..art_bridge import art_classifier
from ..attacks import check_budget
from ..cache import cached_arrays, fingerprint
from ..errors import InvalidParameterError
from ..reproducibility import quiet, seeded_numpy_global
from ..validation import as_int_seed, check_int, check_labels, check_real, check_seed
from ._common import check_class, check_images, with_train
from .backdoor import TRIGGERS, add_trigger, backdoor_success_rate

NORMS = ("inf", 1, 2)


def _check_norm(norm):
    norm = "inf" if norm in ("inf", np.inf) else norm
    if isinstance(norm, bool) or norm not in NORMS:
        raise InvalidParameterError(f"norm must be one of 'inf' (np.inf), 1 or 2, got {norm!r}")
    return norm


def poison_clean_label(x, y, proxy, target, eps=0.3, *, steps=20, eps_step=None, pp_poison=0.9, norm="inf",
                       kind="pattern", clip=(0.0, 1.0), seed=0, cache=True):
    """Poison images of the ``target`` class with ART's ``PoisoningAttackCleanLabelBackdoor``; labels stay as they are.

    ART draws ``int(pp_poison * n_target)`` of the target class's images **with replacement** from
    numpy's global generator (seeded here with ``seed``, the caller's state given back), runs
    untargeted PGD on the ``proxy`` model against each, then stamps the trigger. A drawn-twice image
    is poisoned once, so fewer distinct images are poisoned than ``pp_poison`` says (about
    ``1 - exp(-pp_poison)`` of the class). The poisoned arrays are cached (:func:`cached_arrays`).

    Parameters
    ----------
    x : array, shape (n, h, w, c)
        Training images in ``clip``.
    y : array of int, shape (n,)
        Their (true) labels.
    proxy : keras.Model
        The attacker's own model for the same task (outputs logits); PGD runs against it.
    target : int
    pp_poison : float in (0, 1)
        ART's share of the target class to draw.
    norm : {"inf", 1, 2}
        PGD's norm (``np.inf`` is accepted for ``"inf"``).
    eps : float > 0
        PGD's budget.
    steps : int >= 1
        PGD's steps (ART's ``max_iter``).
    eps_step : float >= 0 or None
        PGD's step; None: :func:`mlsec_lessons.attacks.default_eps_step` ``(eps, steps)``.
    kind : {"pattern", "pixel"}
        The trigger (:func:`~mlsec_lessons.poisoning.add_trigger`).
    clip : (lo, hi)
    seed : int
    cache : bool

    Returns
    -------
    x_poisoned : ndarray
        A copy of ``x`` with the poisoned rows in place; ``y`` needs no copy, it is unchanged.
    poison_idx : ndarray of int64
        Sorted indices of the rows that changed (every one of class ``target``).

    Examples
    --------
    >>> xp, idx = poison_clean_label(d.x_train, d.y_train, proxy, target=0)     # doctest: +SKIP
    >>> bool((d.y_train[idx] == 0).all())                                               # doctest: +SKIP
    True
    """
    x = check_images(x, y)
    n_classes = int(proxy.output_shape[-1])
    y = check_labels(y, n_classes=n_classes)
    target = check_class("target", target, n_classes)
    pp_poison = check_real(pp_poison, "pp_poison", min_value=0, max_value=1, include_boundaries="neither")
    norm = _check_norm(norm)
    eps = check_real(eps, "eps", min_value=0, include_boundaries="neither")  # a poison needs a budget
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    if kind not in TRIGGERS:
        raise InvalidParameterError(f"kind must be one of {TRIGGERS}, got {kind!r}")
    if int(pp_poison * np.sum(y == target)) == 0:
        raise InvalidParameterError(f"pp_poison={pp_poison} of the {int(np.sum(y == target))} images of class "
                                    f"{target} is no image at all")
    seed = as_int_seed(check_seed(seed))
    config = dict(data=fingerprint(x, y), proxy=fingerprint(*proxy.get_weights()), target=target, pp_poison=pp_poison,
                  norm=norm, eps=eps, eps_step=eps_step, steps=steps, kind=kind, clip=list(clip), seed=seed)

    def compute():
        x_poisoned = _run_art(x, y, proxy, target, pp_poison, norm, eps, eps_step, steps, kind, clip, seed)
        idx = np.flatnonzero((x_poisoned != x).reshape(len(x), -1).any(axis=1))
        return {"x_poisoned": x_poisoned, "poison_idx": idx.astype(np.int64)}

    arrays, _ = cached_arrays("clean-label-backdoor", config, compute, cache=cache)
    return arrays["x_poisoned"], arrays["poison_idx"]


def _run_art(x, y, proxy, target, pp_poison, norm, eps, eps_step, steps, kind, clip, seed):
    """ART's attack on the whole training set, with the true labels (so ART picks from the real target class)."""
    quiet()
    from art.attacks.poisoning import PoisoningAttackBackdoor, PoisoningAttackCleanLabelBackdoor

    n_classes = int(proxy.output_shape[-1])
    attack = PoisoningAttackCleanLabelBackdoor(
        PoisoningAttackBackdoor(lambda batch: add_trigger(batch, kind)),
        art_classifier(proxy, n_classes, x.shape[1:], clip), target=np.eye(n_classes)[target], pp_poison=pp_poison,
        norm=np.inf if norm == "inf" else norm, eps=eps, eps_step=eps_step, max_iter=steps)
    # no progress bar; all the drawn images in one batch: PGD treats each image on its own (no random start), so
    # the poison is the same as with ART's batches of 32, in a fifth of the eager gradient calls
    attack.attack.set_params(verbose=False, batch_size=max(1, int(pp_poison * np.sum(y == target))))
    with seeded_numpy_global(seed):           # ART draws the images from np.random
        x_poisoned, _ = attack.poison(x, np.eye(n_classes)[y])
    return x_poisoned.astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class CleanLabelBackdoor:
    """A clean-label backdoor and its control, each trained into a small CNN and measured.

    Attributes
    ----------
    poison_idx : ndarray of int64
        The poisoned training rows (all of the target class).
    labels : ndarray of int64
        Their labels in the poisoned training set.
    true_labels : ndarray of int64
        Their labels in the clean data: the same, since the attack changes no label.
    clean_accuracy, asr : float
        Of the model trained on the clean-label poison.
    control_clean_accuracy, control_asr : float
        Of the model trained with the trigger stamped on the same images, without the perturbation.
    model, control_model : keras.Model
    poisoned : Dataset
        The clean-label poisoned training set.
    """

    poison_idx: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    clean_accuracy: float
    asr: float
    control_clean_accuracy: float
    control_asr: float
    model: object
    control_model: object
    poisoned: object

    def to_frame(self):
        """Two rows (clean-label, control): poisoned images, labels changed, clean accuracy, ASR."""
        import pandas as pd

        n, changed = len(self.poison_idx), int(np.sum(self.labels != self.true_labels))
        return pd.DataFrame({"poisoned images": [n, n], "labels changed": [changed, changed],
                             "clean accuracy": [self.clean_accuracy, self.control_clean_accuracy],
                             "ASR": [self.asr, self.control_asr]},
                            index=["clean-label (PGD + trigger)", "control (trigger only)"])


def train_clean_label(data, proxy, target, *, eps=0.3, steps=20, eps_step=None, pp_poison=0.9, norm="inf",
                      kind="pattern", epochs=15, batch_size=64, seed=0, cache=True):
    """Poison ``data`` with :func:`poison_clean_label`, train the victim and the control, measure both.

    Both small CNNs go through :func:`mlsec_lessons.models.train` (and so the model cache).

    Returns
    -------
    CleanLabelBackdoor

    Examples
    --------
    >>> result = train_clean_label(data.load_digits(), proxy, target=0)      # doctest: +SKIP
    >>> result.to_frame()                                                    # doctest: +SKIP
    """
    x_p, idx = poison_clean_label(data.x_train, data.y_train, proxy, target, eps, steps=steps, eps_step=eps_step,
                                  pp_poison=pp_poison, norm=norm, kind=kind,
                                  clip=data.clip or (0.0, 1.0), seed=seed, cache=cache)
    x_c = data.x_train.copy()
    x_c[idx] = add_trigger(data.x_train[idx], kind)
    poisoned = with_train(data, x_p, data.y_train, f"{data.name}-clean-label")
    trained = {}
    for name, d in (("victim", poisoned), ("control", with_train(data, x_c, data.y_train, f"{data.name}-trigger-only"))):
        model = models.train(d, "small_cnn", epochs=epochs, batch_size=batch_size, seed=seed, cache=cache,
                             progress=False).model
        trained[name] = (model, models.accuracy(model, data.x_test, data.y_test),
                         backdoor_success_rate(model, data.x_test, data.y_test, target, kind))
    (model, acc, asr), (control, c_acc, c_asr) = trained["victim"], trained["control"]
    return CleanLabelBackdoor(idx, poisoned.y_train[idx], data.y_train[idx], acc, asr, c_acc, c_asr, model, control, poisoned)


def label_audit(x, y, *, k=30, folds=5, seed=0):
    """Flag training rows whose label disagrees with their ``k`` nearest neighbours in another fold.

    A label audit that needs no trusted data: each row is predicted by a k-nearest-neighbour vote
    (pixel distance) among the rows of the other ``folds - 1`` folds, and flagged when the vote
    differs from its label (the "predicted label differs from the given one" rule of confident
    learning, Northcutt et al., 2021). A large ``k`` lets the many clean images of a class outvote
    the few poisoned look-alikes that carry the same trigger. It audits a label against the image,
    which is what a dirty-label poison gets wrong and a clean-label one does not.

    Parameters
    ----------
    x : array, shape (n, h, w[, c])
    y : array of int, shape (n,)
    k : int >= 1
    folds : int >= 2
    seed : int
        Shuffles the folds.

    Returns
    -------
    ndarray of bool, shape (n,)

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits()
    >>> y = d.y_train.copy(); y[:20] = (y[:20] + 1) % 10      # twenty wrong labels
    >>> flags = label_audit(d.x_train, y)
    >>> bool(flags[:20].all()), float(flags[20:].mean()) < 0.1
    (True, True)
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    x = check_images(x, y)
    y = check_labels(y)
    k = check_int(k, "k", min_value=1)
    folds = check_int(folds, "folds", min_value=2)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=as_int_seed(check_seed(seed)))
    pred = cross_val_predict(KNeighborsClassifier(k), x.reshape(len(x), -1), y, cv=splitter)
    return pred != y
