"""Adversarial training as compiled train steps, and ART's trainers used correctly.

Madry et al. (2018) train on the worst case inside the ball:

    min_theta  E_(x,y) [ max_{||delta|| <= eps} L(f_theta(x + delta), y) ]

The inner max is approximated by PGD (``method="pgd"``), by one FGSM step from a random
start with step ``1.25 * eps`` (``method="fgsm_rs"``, the "fast" adversarial training of
Wong et al., 2020), or by plain FGSM, one step of ``eps`` from ``x`` itself (``method="fgsm"``,
Goodfellow et al., 2015), which Wong et al. show can overfit catastrophically: the model learns
to resist its one-step attack and falls to PGD. Each batch's attack and update run inside one
``tf.function``; :func:`robustness_by_epoch` records FGSM and PGD accuracy after every epoch.
"""
import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from .. import attacks, models
from ..attacks import check_budget, compiled_pgd, fgsm_rs_eps_step, sample_ball
from ..cache import cached_arrays, cached_fit, fingerprint
from ..errors import InvalidParameterError
from ..reproducibility import quiet, seeded
from ..validation import as_generator, check_choice, check_fraction, check_int, check_real

METHODS = ("pgd", "fgsm_rs", "fgsm")


def attack_schedule(method, eps, *, steps=7, eps_step=None):
    """``(random_start, steps, eps_step)`` of the training attack for each method: the attacks module's rules.

    ``"fgsm"`` starts at ``x`` and takes one step of ``eps`` (a longer step from ``x`` is projected
    back to ``eps`` anyway); ``"fgsm_rs"`` one step of ``1.25 * eps`` from a random point of the
    ball; ``"pgd"`` ``steps`` steps of ``eps_step`` from a random point.

    Examples
    --------
    >>> attack_schedule("fgsm", 0.1)
    (False, 1, 0.1)
    >>> attack_schedule("fgsm_rs", 0.1)
    (True, 1, 0.125)
    """
    method = check_choice(method, "method", METHODS)
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    if method == "fgsm":
        return False, 1, eps  # Goodfellow et al.: one step from x itself
    if method == "fgsm_rs":
        return True, 1, fgsm_rs_eps_step(eps)  # Wong et al.: one step from a uniform random start
    return True, steps, eps_step


def _train_step(model, optimizer, lo, hi):
    """One compiled step: craft x_adv against the current weights, then descend on it."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32), spec,
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def step(x, y, x_start, eps, eps_step, steps):
        # the inner max: the engine of attacks.pgd, last iterate (as Madry et al. train), nothing masked
        x_adv = compiled_pgd(model, keep_best=False)(x, y, x_start, tf.fill(tf.shape(x), lo), tf.fill(tf.shape(x), hi),
                                                     tf.ones_like(x), eps, eps_step, steps)
        x_adv = tf.stop_gradient(x_adv)  # the attack is data, not part of the model's graph
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x_adv, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def adversarial_train(data, arch="small_cnn", *, method="pgd", eps=0.1, steps=7, eps_step=None, epochs=20,
                      batch_size=64, learning_rate=1e-3, seed=0, cache=True, progress=None, on_epoch_end=None):
    """Train (or load from the cache) a model on adversarial examples crafted on the fly.

    Parameters
    ----------
    data : Dataset
        Uses ``x_train``, ``y_train``, ``input_shape``, ``n_classes`` and ``clip``.
    arch : str, default="small_cnn"
        A name from :data:`mlsec_lessons.models.ARCHITECTURES`.
    method : {"pgd", "fgsm_rs", "fgsm"}, default="pgd"
        PGD adversarial training (Madry), FGSM from a random start (Wong et al., 2020), or plain
        FGSM from ``x`` (Goodfellow et al., 2015; prone to catastrophic overfitting): see
        :func:`attack_schedule`.
    eps : float, default=0.1
        L-inf radius of the training attack.
    steps : int, default=7
        PGD steps per batch (ignored by the FGSM methods, which take one).
    eps_step : float or None
        PGD step size; ``None`` means ``2.5 * eps / steps`` (ignored by the FGSM methods).
    epochs, batch_size : int
    learning_rate : float
        Adam's learning rate.
    seed : int
    cache : bool, default=True
        Load the weights if this exact training was done before; ``False`` always trains.
    progress : bool or None
        Epoch progress bar; ``None`` shows it only inside a notebook.
    on_epoch_end : callable or None
        ``on_epoch_end(epoch, model)`` after each epoch (0-based) of a training that runs; needs
        ``cache=False``, since a model loaded from the cache has no epochs to report.

    Returns
    -------
    Fitted
        ``.model`` is compiled and outputs logits; ``.provenance`` says whether it came from the
        cache, where, and how many seconds it trained (0.0 when loaded).

    Examples
    --------
    >>> from mlsec_lessons import data
    >>> from mlsec_lessons.defenses import adversarial_train
    >>> robust = adversarial_train(data.load_digits(), method="fgsm_rs", eps=0.1).model   # doctest: +SKIP
    """
    method = check_choice(method, "method", METHODS)
    eps, steps, _ = check_budget(eps, steps=steps, eps_step=eps_step)
    epochs, batch_size = check_int(epochs, "epochs", min_value=1), check_int(batch_size, "batch_size", min_value=1)
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    if data.clip is None:
        raise InvalidParameterError(f"data {data.name!r} has no valid input range (clip=None); "
                                    "adversarial training needs one")
    if len(data.x_train) != len(data.y_train):
        raise InvalidParameterError(f"x_train has {len(data.x_train)} rows but y_train has {len(data.y_train)}")
    random_start, n_steps, alpha = attack_schedule(method, eps, steps=steps, eps_step=eps_step)
    if on_epoch_end is not None and (cache or not callable(on_epoch_end)):
        raise InvalidParameterError("on_epoch_end must be a callable, with cache=False: a model loaded from the "
                                    "cache has no epochs to report")

    def build():
        return models.compile_for_training(models.build(arch, data.input_shape, data.n_classes), learning_rate)

    def fit(model):
        _fit(model, data, random_start, n_steps, alpha, eps, epochs, batch_size, learning_rate, seed, progress,
             on_epoch_end)

    config = dict(arch=arch, method=method, eps=eps, steps=n_steps, eps_step=alpha, epochs=epochs,
                  batch_size=batch_size, learning_rate=learning_rate, data=fingerprint(data.x_train, data.y_train))
    return cached_fit(f"{data.name}-{arch}-adv", config, build, fit, seed=seed, cache=cache)


def _fit(model, data, random_start, steps, eps_step, eps, epochs, batch_size, learning_rate, seed, progress,
         on_epoch_end):
    """The training loop: each batch attacked (from a random start, or from x), then one Adam step on it."""
    lo, hi = (float(c) for c in data.clip)
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)  # variables exist before tracing
    step = _train_step(model, optimizer, lo, hi)
    rng = as_generator(seed)
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int32)
    scalars = tf.constant(eps, tf.float32), tf.constant(eps_step, tf.float32), tf.constant(steps, tf.int32)
    show = models.in_notebook() if progress is None else progress
    bar = models.EpochBar(epochs, f"adversarial training ({steps}-step attack)") if show else None
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            x_start = sample_ball(x[idx], eps, bounds=data.clip, seed=rng) if random_start else x[idx]
            loss = step(x[idx], y[idx], x_start, *scalars)
        if bar is not None:
            bar.on_epoch_end(0, {"adv_loss": float(loss)})
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
    if bar is not None:
        bar.on_train_end()


# --------------------------------------------------------------------------- epoch by epoch
@dataclasses.dataclass(frozen=True)
class EpochCurve:
    """Held-out accuracy after each epoch of one adversarial training: on clean inputs, under FGSM, under PGD.

    Attributes
    ----------
    method : str
        The training method (:data:`METHODS`).
    eps : float
        The L-inf budget of the training attack and of both evaluation attacks.
    pgd_steps : int
        Steps of the evaluation PGD (step ``2.5 * eps / pgd_steps``, random start).
    clean, fgsm, pgd : ndarray of shape (epochs,)
        Accuracy on the held-out images after epoch 1, 2, ...
    """

    method: str
    eps: float
    pgd_steps: int
    clean: np.ndarray
    fgsm: np.ndarray
    pgd: np.ndarray

    @property
    def epochs(self):
        """1, 2, ..., the number of epochs trained."""
        return np.arange(1, len(self.clean) + 1)

    def to_frame(self):
        """One row per epoch: clean, FGSM and PGD accuracy, and the FGSM - PGD gap."""
        import pandas as pd

        return pd.DataFrame({"clean": self.clean, "FGSM": self.fgsm, f"PGD-{self.pgd_steps}": self.pgd,
                             "FGSM - PGD": self.fgsm - self.pgd},
                            index=pd.Index(self.epochs, name="epoch"))


def robustness_by_epoch(data, x_val, y_val, arch="small_cnn", *, method="fgsm", eps=0.1, epochs=20, pgd_steps=10,
                        batch_size=64, learning_rate=1e-3, seed=0, cache=True):
    """Train adversarially and measure held-out FGSM and PGD accuracy after every epoch (or load the curve).

    Catastrophic overfitting (Wong et al., 2020) shows only epoch by epoch: a model trained on one
    FGSM step resists FGSM more and more while its PGD accuracy stalls or collapses. The training is
    :func:`adversarial_train`'s (``cache=False``, with ``on_epoch_end``); the curve is what is cached.

    Parameters
    ----------
    data : Dataset
        Trained on ``x_train``, ``y_train``.
    x_val, y_val : ndarray
        Held-out images and labels the attacks run on after each epoch.
    arch : str, default="small_cnn"
    method : {"pgd", "fgsm_rs", "fgsm"}, default="fgsm"
        The training method; ``"pgd"`` uses :func:`adversarial_train`'s default PGD settings.
    eps : float, default=0.1
        L-inf budget of the training attack and of the evaluation attacks.
    epochs, pgd_steps, batch_size : int
    learning_rate : float
    seed : int
        Seeds the training; the evaluation PGD's random start uses seed 0 every epoch.
    cache : bool, default=True
        Load the curve if this exact run was measured before; ``False`` always trains.

    Returns
    -------
    (EpochCurve, Provenance)

    Examples
    --------
    >>> curve, _ = robustness_by_epoch(d, d.x_test, d.y_test, method="fgsm", eps=0.3, epochs=30)   # doctest: +SKIP
    >>> curve.to_frame().tail(1)                                                                # doctest: +SKIP
    """
    method = check_choice(method, "method", METHODS)
    pgd_steps = check_int(pgd_steps, "pgd_steps", min_value=1)
    x_val, y_val = np.asarray(x_val, np.float32), np.asarray(y_val)
    if len(x_val) != len(y_val) or len(x_val) == 0:
        raise InvalidParameterError(f"x_val ({len(x_val)} rows) and y_val ({len(y_val)}) must be non-empty and "
                                    "of the same length")
    train = dict(arch=arch, method=method, eps=eps, epochs=epochs, batch_size=batch_size,
                 learning_rate=learning_rate, seed=seed)

    def compute():
        rows = []

        def measure(epoch, model):
            x_fgsm = attacks.fgsm(model, x_val, y_val, eps, bounds=data.clip)
            x_pgd = attacks.pgd(model, x_val, y_val, eps, steps=pgd_steps, seed=0, bounds=data.clip)
            rows.append([models.accuracy(model, x, y_val) for x in (x_val, x_fgsm, x_pgd)])

        adversarial_train(data, cache=False, progress=False, on_epoch_end=measure, **train)
        return dict(zip(("clean", "fgsm", "pgd"), np.array(rows, dtype=np.float64).T))

    config = dict(train, pgd_steps=pgd_steps, data=fingerprint(data.x_train, data.y_train),
                  val=fingerprint(x_val, y_val))
    arrays, provenance = cached_arrays(f"{data.name}-{arch}-adv-epochs", config, compute, cache=cache)
    return EpochCurve(method, float(eps), pgd_steps, arrays["clean"], arrays["fgsm"], arrays["pgd"]), provenance


# --------------------------------------------------------------------------- ART's trainers
@contextlib.contextmanager
def art_progress_bars_off(*modules):
    """ART's trainers draw tqdm bars with no switch to turn them off; swap in a plain iterator."""
    saved = [(m, m.trange, m.tqdm) for m in modules]
    for m in modules:
        m.trange = lambda n, *a, **k: range(n)
        m.tqdm = lambda it, *a, **k: it
    try:
        yield
    finally:
        for m, trange, tqdm in saved:
            m.trange, m.tqdm = trange, tqdm


def art_adversarial_training(model, data, *, eps=0.1, ratio=0.5, epochs=5, batch_size=64, learning_rate=1e-3,
                             seed=0):
    """ART's ``AdversarialTrainer`` with an FGSM attack, used the right way.

    The source wrote ``robust_model = trainer.fit(...)``. ``fit`` trains the classifier *in
    place* and returns ``None``; and ART's TF2 classifier can only train if it was given an
    optimizer. So: build the classifier with an optimizer, call ``fit``, keep the classifier.

    Parameters
    ----------
    model : keras.Model
        Outputs logits; it is trained in place.
    data : Dataset
    eps : float, default=0.1
    ratio : float, default=0.5
        Share of each batch replaced by adversarial examples.
    epochs, batch_size : int
    learning_rate : float
    seed : int

    Returns
    -------
    (classifier, returned)
        The trained ART classifier, and what ``fit`` returned (``None``: the lesson checks it).

    Examples
    --------
    >>> clf, returned = art_adversarial_training(model, d, eps=0.1, epochs=2)   # doctest: +SKIP
    >>> returned is None                                                        # doctest: +SKIP
    True
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import FastGradientMethod
    from art.defences.trainer import AdversarialTrainer
    from art.defences.trainer import adversarial_trainer as module

    from ..art_bridge import art_classifier

    eps = check_real(eps, "eps", min_value=0)
    ratio = check_fraction(ratio, "ratio", include_boundaries="right")
    clf = art_classifier(model, data.n_classes, data.input_shape, data.clip, learning_rate)
    attack = FastGradientMethod(clf, eps=eps, batch_size=batch_size)
    trainer = AdversarialTrainer(clf, attacks=attack, ratio=ratio)
    # ART shuffles with NumPy's global generator: seeded for the fit, the caller's state given back after
    with seeded(seed), art_progress_bars_off(module):
        returned = trainer.fit(data.x_train, np.eye(data.n_classes)[data.y_train], nb_epochs=epochs,
                               batch_size=batch_size)
    return clf, returned


def art_madry_training(model, data, *, eps=0.1, steps=7, eps_step=None, epochs=10, batch_size=64,
                       learning_rate=1e-3, seed=0):
    """ART's ``AdversarialTrainerMadryPGD`` (PGD adversarial training), for comparison with ours.

    Returns the trained ART classifier (``fit`` returns ``None``; the classifier is trained in place).

    Examples
    --------
    >>> clf = art_madry_training(model, d, eps=0.1, epochs=10)   # doctest: +SKIP
    """
    quiet()
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.defences.trainer import adversarial_trainer as module

    from ..art_bridge import art_classifier

    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    clf = art_classifier(model, data.n_classes, data.input_shape, data.clip, learning_rate)
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=epochs, batch_size=batch_size, eps=eps, eps_step=eps_step,
                                         max_iter=steps, num_random_init=1)
    with seeded(seed), art_progress_bars_off(module):
        trainer.fit(data.x_train, np.eye(data.n_classes)[data.y_train])
    return clf
