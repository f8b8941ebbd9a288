"""Evasion attacks: one compiled PGD engine, of which FGSM and FGSM-RS are settings, and ART's beside it.

PGD (Madry et al., 2018) repeats a step that raises an objective ``J`` and projects back:

    x_{t+1} = Proj_{B(x, eps) ∩ [lo, hi]} ( x_t + alpha * d(m ⊙ grad_x J(f(x_t), y)) )

where ``d(g) = sign(g)`` for the L-inf ball and ``g / ||g||_2`` for the L2 ball. Three knobs make
one engine serve every attack in the course:

* ``objective=``: the per-example ``J(logits, y)`` to raise; the cross-entropy by default (a
  fraud detector's attacker lowers the fraud log-odds instead);
* ``mask=``: ``m``, 1 where the attacker may change the input (a fraudster's own features, a
  sticker's pixels), 0 elsewhere, as ART's ``ProjectedGradientDescent.generate(x, y, mask=...)``;
* ``bounds=``: the valid range ``[lo, hi]``, one pair for every value or one per feature.

FGSM (Goodfellow et al., 2015) is one L-inf step of size eps from ``x`` itself; FGSM-RS (Wong
et al., 2020) is one step of ``1.25 * eps`` from a random point of the ball. A targeted attack
*lowers* the objective of the target label instead.

PGD returns, per sample, the best point it visited (one that fools the model over one that does
not, then the higher objective), as AutoAttack does, so more steps never make it weaker. The loop
runs inside one compiled function per (model, norm, direction, keep-best, objective), with a
batch axis of any length, so a second call never retraces; an adversarial training step calls
the same function (:func:`compiled_pgd`).

The conventions every attack in the package follows: ``eps`` is positional; ``steps`` and
``eps_step`` are keyword-only; ``eps_step=None`` means :func:`default_eps_step`.
"""
import weakref

import numpy as np
import tensorflow as tf

from .errors import InvalidParameterError, ParameterTypeError, RunError
from .reproducibility import quiet, seeded_numpy_global
from .validation import as_generator, check_bounds, check_int, check_real, check_xy

_COMPILED = weakref.WeakKeyDictionary()  # model -> {key: tf.function}: the package's one compile cache
_TRACES = {"count": 0}                   # bumped only while TensorFlow traces a loop

EPS_STEP_FACTOR = 2.5
"""PGD's step when none is given is ``EPS_STEP_FACTOR * eps / steps`` (Madry et al., 2018)."""

FGSM_RS_FACTOR = 1.25
"""FGSM-RS steps ``FGSM_RS_FACTOR * eps`` from its random start (Wong et al., 2020)."""


# --------------------------------------------------------------------------- the one rule for each argument
def default_eps_step(eps, steps):
    """The step size when ``eps_step=None``: ``2.5 * eps / steps``.

    ``steps`` such steps cover 2.5 radii, enough to cross the ball from a random start and still
    walk along its surface (Madry et al., 2018).

    Examples
    --------
    >>> default_eps_step(0.1, 10)
    0.025
    """
    return EPS_STEP_FACTOR * eps / steps


def fgsm_rs_eps_step(eps):
    """FGSM-RS's single step from a uniform random start: ``1.25 * eps`` (Wong et al., 2020).

    Examples
    --------
    >>> fgsm_rs_eps_step(0.1)
    0.125
    """
    return FGSM_RS_FACTOR * eps


def check_norm(norm):
    """``norm`` as ``np.inf`` or ``2``, the two balls the attacks know.

    Examples
    --------
    >>> check_norm("inf")
    inf
    """
    if not isinstance(norm, bool):  # True == 1 in Python; a flag is not a norm
        if norm in (np.inf, "inf"):
            return np.inf
        if norm == 2:
            return 2
    raise InvalidParameterError(f"norm must be np.inf or 2, got {norm!r}")


def check_budget(eps, *, steps=1, eps_step=None):
    """``(eps, steps, eps_step)`` checked, with ``eps_step=None`` replaced by :func:`default_eps_step`.

    Examples
    --------
    >>> check_budget(0.1, steps=10)
    (0.1, 10, 0.025)
    """
    eps = check_real(eps, "eps", min_value=0)
    steps = check_int(steps, "steps", min_value=1)
    eps_step = default_eps_step(eps, steps) if eps_step is None else check_real(eps_step, "eps_step", min_value=0)
    return eps, steps, eps_step


def as_bounds(bounds, shape, name="bounds"):
    """``bounds`` as two float32 arrays ``(lo, hi)`` of ``shape``, with ``lo <= hi`` everywhere.

    Parameters
    ----------
    bounds : (lo, hi)
        Two numbers (the same range for every value, ``lo < hi``), or two arrays broadcastable to
        ``shape``: one range per feature, or per value.
    shape : tuple of int
        The shape of the batch the bounds apply to.
    name : str
        The argument's name, for the message.

    Examples
    --------
    >>> lo, hi = as_bounds((np.zeros(3), np.ones(3)), (2, 3))
    >>> lo.shape, float(hi.max())
    ((2, 3), 1.0)
    """
    if isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(np.ndim(b) == 0 for b in bounds):
        lo, hi = check_bounds(bounds, name)  # two numbers: lo < hi, finite
    else:
        try:
            lo, hi = (np.asarray(b, dtype=np.float32) for b in bounds)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"{name} must be a pair (lo, hi) of numbers or arrays, got {bounds!r}") from None
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(lo > hi):
            raise InvalidParameterError(f"{name} must be finite (lo, hi) with lo <= hi everywhere")
    try:
        return (np.broadcast_to(np.asarray(lo, np.float32), shape).copy(),
                np.broadcast_to(np.asarray(hi, np.float32), shape).copy())
    except ValueError:
        raise InvalidParameterError(f"{name} of shape {np.shape(lo)} cannot broadcast to the input shape {shape}") \
            from None


def as_mask(mask, shape):
    """``mask`` as a float32 0/1 array of ``shape`` (``None``: every value may change).

    Examples
    --------
    >>> as_mask([True, False], (1, 2)).tolist()
    [[1.0, 0.0]]
    """
    if mask is None:
        return np.ones(shape, np.float32)
    m = np.asarray(mask)
    if m.dtype != bool and (not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all()):
        raise InvalidParameterError("mask must hold only 0 (keep) and 1 (may change), or booleans")
    try:
        return np.broadcast_to(m.astype(np.float32), shape).copy()
    except ValueError:
        raise InvalidParameterError(f"mask of shape {m.shape} cannot broadcast to the input shape {shape}") from None


def check_model(model, name="model"):
    """``model`` if it is a Keras model that outputs logits, else a ``TypeError`` that says what to pass.

    A trainer's :class:`~mlsec_lessons.cache.Fitted` record holds the model as ``.model``.
    """
    if hasattr(model, "model") and not hasattr(model, "input_shape"):
        raise ParameterTypeError(f"{name} must be a Keras model; this {type(model).__name__} record holds it "
                                 f"as .model")
    if not callable(model) or not hasattr(model, "input_shape") or not hasattr(model, "output_shape"):
        raise ParameterTypeError(f"{name} must be a Keras model, got {type(model).__name__}")
    return model


# --------------------------------------------------------------------------- objectives
def cross_entropy(logits, y):
    """Per-example cross-entropy of ``logits`` against integer labels ``y``: the default objective.

    An objective takes ``(logits, y)`` and returns one value per example that the attack raises
    (an untargeted attack) or lowers (a targeted one). Pass a module-level function: the compile
    cache is keyed on it, so a new lambda per call would trace a new loop per call.
    """
    return tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


# --------------------------------------------------------------------------- the building blocks
def _direction(grad, norm):
    """The steepest-ascent step of unit size in the given norm."""
    if norm == np.inf:
        return tf.sign(grad)
    axes = list(range(1, len(grad.shape)))
    length = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True))
    return grad / tf.maximum(length, 1e-12)  # a zero gradient stays a zero step


def _project(x_adv, x0, eps, norm, lo, hi, mask):
    """Back into the eps-ball around x0 (masked values back to x0), then into [lo, hi]."""
    delta = (x_adv - x0) * mask
    if norm == np.inf:
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        axes = list(range(1, len(delta.shape)))
        length = tf.sqrt(tf.reduce_sum(tf.square(delta), axis=axes, keepdims=True))
        delta = delta * tf.minimum(1.0, eps / tf.maximum(length, 1e-12))
    return tf.minimum(tf.maximum(x0 + delta, lo), hi)  # clipping only shrinks delta


def _evaluate(model, objective, x, y, sign):
    """Per example: the objective the attacker raises, and whether the attack already succeeds."""
    logits = model(x, training=False)
    value = sign * tf.cast(objective(logits, y), tf.float32)
    on_label = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
    return value, (on_label if sign < 0 else tf.logical_not(on_label))  # targeted: success is *on* y


def _keep_better(best, best_obj, best_ok, x_new, obj_new, ok_new):
    """A successful point beats an unsuccessful one; between equals, the higher objective wins."""
    better = (ok_new & ~best_ok) | ((ok_new == best_ok) & (obj_new > best_obj))
    where = tf.reshape(better, [-1] + [1] * (len(best.shape) - 1))
    return tf.where(where, x_new, best), tf.where(better, obj_new, best_obj), best_ok | ok_new


def compiled_pgd(model, *, norm=np.inf, targeted=False, keep_best=True, objective=None):
    """The engine: PGD compiled once per (model, norm, direction, keep-best, objective).

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    norm : {np.inf, 2}, default=np.inf
    targeted : bool, default=False
        Lower the objective of ``y`` instead of raising it.
    keep_best : bool, default=True
        Return each sample's best point visited (an attack), or the last iterate (what
        adversarial training trains on, as Madry et al. do).
    objective : callable or None
        ``objective(logits, y)`` per example; ``None`` is :func:`cross_entropy`.

    Returns
    -------
    tf.function
        ``loop(x0, y, x_start, lo, hi, mask, eps, eps_step, steps)``: float32 tensors of the
        batch's shape for ``x0``, ``x_start``, ``lo``, ``hi`` and ``mask``, int32 labels, scalar
        ``eps`` and ``eps_step`` and an int32 ``steps``. Any batch length, no retrace; callable
        inside another ``tf.function`` (a training step).
    """
    norm = check_norm(norm)
    objective = cross_entropy if objective is None else objective
    per_model = _COMPILED.setdefault(check_model(model), {})
    key = ("pgd", norm, bool(targeted), bool(keep_best), objective)
    if key not in per_model:
        batch = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        scalar = tf.TensorSpec([], tf.float32)
        sign = -1.0 if targeted else 1.0  # targeted: walk *down* the objective of the target label
        model_ref = weakref.ref(model)  # a strong reference here would keep the cache entry alive forever

        @tf.function(input_signature=[batch, tf.TensorSpec([None], tf.int32), batch, batch, batch, batch,
                                      scalar, scalar, tf.TensorSpec([], tf.int32)])
        def loop(x0, y, x_start, lo, hi, mask, eps, eps_step, steps):
            _TRACES["count"] += 1  # Python side effect: runs at trace time only
            x_adv = best = x_start
            best_obj, best_ok = tf.fill(tf.shape(y), -np.inf), tf.zeros_like(y, dtype=tf.bool)
            for _ in tf.range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(x_adv)
                    value, success = _evaluate(model_ref(), objective, x_adv, y, sign)
                    total = tf.reduce_sum(value)  # inside the tape, or the tape never sees it
                grad = tape.gradient(total, x_adv) * mask  # masked values: no step
                if keep_best:  # remember the best point seen so far, as AutoAttack does
                    best, best_obj, best_ok = _keep_better(best, best_obj, best_ok, x_adv, value, success)
                x_adv = _project(x_adv + eps_step * _direction(grad, norm), x0, eps, norm, lo, hi, mask)
            if keep_best:
                return _keep_better(best, best_obj, best_ok, x_adv,
                                    *_evaluate(model_ref(), objective, x_adv, y, sign))[0]
            return x_adv

        per_model[key] = loop
    return per_model[key]


def sample_ball(x, eps, *, norm=np.inf, bounds=(0.0, 1.0), mask=None, seed=None):
    """A uniform random point of the eps-ball around each ``x``, on the masked values, inside ``bounds``.

    L-inf: each value moves by U(-eps, eps). L2: a uniformly random point of the L2 ball
    (direction from a Gaussian, radius ``eps * U^(1/d)``), the same start as ART's.

    Examples
    --------
    >>> x = np.full((2, 3), 0.5, dtype="float32")
    >>> bool(np.abs(sample_ball(x, 0.1, seed=0) - x).max() <= 0.1)
    True
    """
    x = np.asarray(x, dtype=np.float32)
    norm, eps = check_norm(norm), check_real(eps, "eps", min_value=0)
    lo, hi = as_bounds(bounds, x.shape)
    rng = as_generator(seed)
    if norm == np.inf:
        delta = rng.uniform(-eps, eps, size=x.shape)
    else:
        flat = rng.normal(size=(len(x), int(np.prod(x.shape[1:]))))
        flat /= np.linalg.norm(flat, axis=1, keepdims=True)
        radius = eps * rng.uniform(size=(len(x), 1)) ** (1.0 / flat.shape[1])
        delta = (flat * radius).reshape(x.shape)
    return np.clip(x + delta * as_mask(mask, x.shape), lo, hi).astype(np.float32)


def _enforce_ball(x_adv, x0, eps, norm, lo, hi):
    """Make ``||x_adv - x0|| <= eps`` and ``lo <= x_adv <= hi`` hold exactly, not just up to float32 rounding.

    ``x0 + delta`` is rounded to float32, which can land one ulp outside the ball; step such
    values (or shrink such rows) towards ``x0`` until the invariant holds in float64.
    """
    x_adv = np.clip(x_adv, lo, hi).astype(np.float32)
    x0 = np.asarray(x0, dtype=np.float32)
    for _ in range(50):
        delta = x_adv.astype(np.float64) - x0
        if norm == np.inf:
            bad = np.abs(delta) > eps
            if not bad.any():
                return x_adv
            x_adv[bad] = np.nextafter(x_adv[bad], x0[bad])
        else:
            length = np.sqrt(np.sum(delta.reshape(len(delta), -1) ** 2, axis=1))
            bad = length > eps
            if not bad.any():
                return x_adv
            shrink = (eps / length[bad] * (1 - 1e-6)).reshape((-1,) + (1,) * (delta.ndim - 1))
            x_adv[bad] = (x0[bad] + delta[bad] * shrink).astype(np.float32)
    raise RunError("could not place x_adv inside the eps-ball")  # pragma: no cover


def _check_attack_input(x, y, bounds, n_classes=None):
    """x as float32 inside bounds, y as int labels of the same length, bounds as arrays of x's shape."""
    x, y = check_xy(x, y, n_classes=n_classes)
    lo, hi = as_bounds(bounds, x.shape)
    if np.any(x < lo) or np.any(x > hi):
        raise InvalidParameterError(f"x lies outside bounds (min {x.min():.4g}, max {x.max():.4g}); "
                                    "an attack cannot keep the input valid if it starts invalid")
    return x, y.astype(np.int32), lo, hi


def _run(model, x, y, eps, *, steps, eps_step, norm, random_start, targeted, objective, mask, bounds, seed,
         batch_size, keep_best):
    """The engine on NumPy arrays, batch by batch."""
    norm = check_norm(norm)
    x, y, lo, hi = _check_attack_input(x, y, bounds, n_classes=check_model(model).output_shape[-1])
    mask = as_mask(mask, x.shape)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    loop = compiled_pgd(model, norm=norm, targeted=targeted, keep_best=keep_best, objective=objective)
    x_start = sample_ball(x, eps, norm=norm, bounds=(lo, hi), mask=mask, seed=seed) if random_start else x
    scalars = [tf.constant(eps, tf.float32), tf.constant(eps_step, tf.float32), tf.constant(steps, tf.int32)]
    out = [loop(*(a[i:i + batch_size] for a in (x, y, x_start, lo, hi, mask)), *scalars).numpy()
           for i in range(0, len(x), batch_size)]
    return _enforce_ball(np.concatenate(out), x, eps, norm, lo, hi)


# --------------------------------------------------------------------------- the attacks
def fgsm(model, x, y, eps, *, targeted=False, objective=None, mask=None, bounds=(0.0, 1.0), batch_size=1024):
    """Fast Gradient Sign Method: ``clip(x + eps * sign(m * grad_x J(f(x), y)))``.

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    x : ndarray of shape (n, ...)
        Inputs inside ``bounds``.
    y : ndarray of shape (n,)
        Integer labels: the true labels, or the target labels if ``targeted``.
    eps : float
        L-inf budget, >= 0.
    targeted : bool, default=False
        Step *down* the objective of ``y`` (make the model say ``y``) instead of up.
    objective : callable or None
        ``objective(logits, y)`` per example; ``None`` is :func:`cross_entropy`.
    mask : array-like or None
        Broadcastable to ``x``: 1 where the input may change, 0 where it may not.
    bounds : (lo, hi), default=(0.0, 1.0)
        Valid input range: two numbers, or two arrays broadcastable to ``x`` (one per feature).
    batch_size : int, default=1024

    Returns
    -------
    ndarray
        float32 adversarial inputs, ``|x_adv - x| <= eps`` and inside ``bounds``.

    Examples
    --------
    >>> import keras, numpy as np
    >>> from mlsec_lessons.attacks import fgsm
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, dtype="float32")
    >>> x_adv = fgsm(model, x, np.array([0, 1]), 0.1)
    >>> bool(np.abs(x_adv - x).max() <= 0.1)
    True
    """
    eps = check_real(eps, "eps", min_value=0)
    return _run(model, x, y, eps, steps=1, eps_step=eps, norm=np.inf, random_start=False, targeted=targeted,
                objective=objective, mask=mask, bounds=bounds, seed=None, batch_size=batch_size, keep_best=False)


def fgsm_rs(model, x, y, eps, *, targeted=False, objective=None, mask=None, bounds=(0.0, 1.0), seed=None,
            batch_size=1024):
    """FGSM from a random start (Wong et al., 2020): one step of :func:`fgsm_rs_eps_step` from a
    uniform point of the L-inf ball, projected back. The inner attack of fast adversarial training.

    Arguments as in :func:`fgsm`; ``seed`` seeds the random start.

    Examples
    --------
    >>> x_adv = fgsm_rs(model, d.x_test, d.y_test, 0.1, seed=0)     # doctest: +SKIP
    """
    eps = check_real(eps, "eps", min_value=0)
    return _run(model, x, y, eps, steps=1, eps_step=fgsm_rs_eps_step(eps), norm=np.inf, random_start=True,
                targeted=targeted, objective=objective, mask=mask, bounds=bounds, seed=seed,
                batch_size=batch_size, keep_best=False)


def pgd(model, x, y, eps, *, steps=40, eps_step=None, norm=np.inf, random_start=True, targeted=False,
        objective=None, mask=None, bounds=(0.0, 1.0), seed=None, batch_size=1024):
    """Projected Gradient Descent in the L-inf or L2 ball (Madry et al., 2018).

    Parameters
    ----------
    model, x, y, targeted, objective, mask, bounds, batch_size
        As in :func:`fgsm`.
    eps : float
        Radius of the ball, >= 0.
    steps : int, default=40
        Number of steps, >= 1.
    eps_step : float or None
        Step size alpha, >= 0; ``None`` means :func:`default_eps_step` (``2.5 * eps / steps``).
    norm : {np.inf, 2}, default=np.inf
    random_start : bool, default=True
        Start from a uniformly random point of the (masked) ball instead of ``x``.
    seed : int, Generator or None
        Seed of the random start.

    Returns
    -------
    ndarray
        float32 adversarial inputs inside the ball and inside ``bounds``: per sample, the best
        point visited.

    Examples
    --------
    >>> import keras, numpy as np
    >>> from mlsec_lessons.attacks import pgd
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, dtype="float32")
    >>> x_adv = pgd(model, x, np.array([0, 1]), 0.5, steps=10, eps_step=0.1, norm=2, seed=0)
    >>> bool(np.linalg.norm((x_adv - x).reshape(2, -1), axis=1).max() <= 0.5)
    True
    """
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    return _run(model, x, y, eps, steps=steps, eps_step=eps_step, norm=norm, random_start=random_start,
                targeted=targeted, objective=objective, mask=mask, bounds=bounds, seed=seed,
                batch_size=batch_size, keep_best=True)


def trace_count():
    """How many times an attack loop has been traced (compiled) in this process.

    A call with a new model, norm, direction or objective traces once; any later call with the
    same ones (whatever the batch length, eps, mask, bounds or step count) must not add to it.
    """
    return _TRACES["count"]


# --------------------------------------------------------------------------- PGD on any gradient
def input_gradient(model, x, y, *, objective=None):
    """``grad_x`` of the summed objective (cross-entropy by default) of ``model(x)`` on ``y``, compiled once.

    The building block of adaptive attacks: a defense changes *where* this gradient is taken
    (after a transform, averaged over random draws), not how PGD steps.
    """
    objective = cross_entropy if objective is None else objective

    def build(model_ref):
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)

        @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
        def gradient(x, y):
            _TRACES["count"] += 1
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(objective(model_ref()(x, training=False), y))
            return tape.gradient(total, x)

        return gradient

    gradient = compiled(model, ("gradient", objective), build)
    return gradient(np.asarray(x, np.float32), np.asarray(y, np.int32)).numpy()


def compiled(model, key, build):
    """``build(model_ref)``, made once for ``model`` under ``key`` and kept while the model lives.

    The package's one compile cache: a ``tf.function`` traced per model, not per call. ``build``
    gets a weak reference to the model, since a strong one inside the cached function would keep
    the cache entry alive forever.
    """
    per_model = _COMPILED.setdefault(check_model(model), {})
    if key not in per_model:
        per_model[key] = build(weakref.ref(model))
    return per_model[key]


def pgd_loop(gradient, x, y, eps, *, steps=40, eps_step=None, norm=np.inf, random_start=True, mask=None,
             bounds=(0.0, 1.0), seed=None):
    """PGD that asks ``gradient(x_adv, y)`` for the direction to *raise*: the loop adaptive attacks share.

    The same step and projection as :func:`pgd`, in an eager Python loop, so the gradient can
    come from anywhere: through a defense's transform (BPDA), averaged over its random draws
    (EOT), or from a loss that also fools a detector. It returns the last iterate.

    Examples
    --------
    >>> import numpy as np
    >>> from mlsec_lessons.attacks import pgd_loop
    >>> push_up = lambda x, y: np.ones_like(x)          # a gradient that always says "brighter"
    >>> x = np.full((1, 3), 0.5, dtype="float32")
    >>> pgd_loop(push_up, x, np.array([0]), 0.2, steps=10, eps_step=0.05, random_start=False)
    array([[0.7, 0.7, 0.7]], dtype=float32)
    """
    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    norm = check_norm(norm)
    x, y, lo, hi = _check_attack_input(x, y, bounds)
    mask = as_mask(mask, x.shape)
    x_adv = sample_ball(x, eps, norm=norm, bounds=(lo, hi), mask=mask, seed=seed) if random_start else x
    for _ in range(steps):
        g = tf.constant(gradient(x_adv, y), tf.float32) * mask
        x_adv = _project(x_adv + eps_step * _direction(g, norm), x, eps, norm, lo, hi, mask).numpy()
    return _enforce_ball(x_adv, x, eps, norm, lo, hi)


# --------------------------------------------------------------------------- diagnostics
def true_label_log_odds(model, x, y, batch_size=1024):
    """``log p_y - log(1 - p_y)`` from the logits: above 0 means the model favours the true label.

    Computed as ``z_y - logsumexp_{j != y} z_j``, which stays finite where ``p_y`` rounds to 1.

    Examples
    --------
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    >>> model.set_weights([np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")])
    >>> true_label_log_odds(model, np.array([[2.0, 0.0]], dtype="float32"), np.array([0]))
    array([2.], dtype=float32)
    """
    z = np.asarray(model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0))
    y = np.asarray(y)
    if len(z) != len(y):
        raise InvalidParameterError(f"shape mismatch: x has {len(z)} samples but y has {len(y)}")
    others = z.copy()
    others[np.arange(len(y)), y] = -np.inf
    return (z[np.arange(len(y)), y] - tf.reduce_logsumexp(others, axis=1).numpy()).astype(np.float32)


# --------------------------------------------------------------------------- ART beside them
def art_estimator(model, input_shape, bounds=(0.0, 1.0)):
    """ART's classifier for a Keras model (built the right way), or an ART classifier as given.

    Parameters
    ----------
    model : keras.Model or ART classifier
    input_shape : tuple of int
        One input's shape, without the batch axis.
    bounds : (lo, hi)
        Two numbers: ART's ``clip_values``.
    """
    if hasattr(model, "loss_gradient"):  # already an ART estimator
        return model
    from .art_bridge import art_classifier

    return art_classifier(model, model.output_shape[-1], input_shape, check_bounds(bounds, "bounds"))


def one_hot(y, n_classes):
    """Integer labels as float32 one-hot rows, the label format ART's attacks take.

    Examples
    --------
    >>> one_hot([1, 0], 3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    return np.eye(n_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def art_fgsm(model, x, y, eps, *, targeted=False, norm=np.inf, mask=None, bounds=(0.0, 1.0), batch_size=None):
    """ART's ``FastGradientMethod`` on the same model, one batch, no progress bar.

    ``model`` is a Keras model (wrapped with :func:`~mlsec_lessons.art_bridge.art_classifier`)
    or an ART classifier. Same arguments and result as :func:`fgsm` (``bounds``: two numbers);
    ``batch_size=None`` runs all of ``x`` as one batch (ART's own default is 32).

    Examples
    --------
    >>> x_adv = art_fgsm(model, d.x_test, d.y_test, 0.1)     # doctest: +SKIP
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import FastGradientMethod

    eps, norm = check_real(eps, "eps", min_value=0), check_norm(norm)
    x, y, _, _ = _check_attack_input(x, y, check_bounds(bounds, "bounds"))
    clf = art_estimator(model, x.shape[1:], bounds)
    batch_size = len(x) if batch_size is None else check_int(batch_size, "batch_size", min_value=1)
    attack = FastGradientMethod(clf, norm=norm, eps=eps, eps_step=eps, targeted=targeted, batch_size=batch_size)
    kwargs = {} if mask is None else {"mask": as_mask(mask, x.shape)}
    return attack.generate(x, y=one_hot(y, clf.nb_classes), **kwargs).astype(np.float32)


def art_pgd(model, x, y, eps, *, steps=40, eps_step=None, norm=np.inf, random_start=True, targeted=False,
            mask=None, bounds=(0.0, 1.0), seed=None, batch_size=None):
    """ART's ``ProjectedGradientDescent`` on the same model, one batch, ``verbose=False``.

    Same arguments and result as :func:`pgd` (``bounds``: two numbers; ``mask`` is passed to
    ``generate(x, y, mask=...)``); ``batch_size=None`` runs all of ``x`` as one batch (ART's own
    default is 32). ART draws its random start from NumPy's global generator: ``seed`` seeds it
    for this call only (:func:`mlsec_lessons.reproducibility.seeded_numpy_global`).

    Examples
    --------
    >>> x_adv = art_pgd(model, d.x_test, d.y_test, 0.1, steps=40, eps_step=0.01, seed=0)     # doctest: +SKIP
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import ProjectedGradientDescent

    eps, steps, eps_step = check_budget(eps, steps=steps, eps_step=eps_step)
    norm = check_norm(norm)
    if batch_size is not None:
        check_int(batch_size, "batch_size", min_value=1)
    x, y, _, _ = _check_attack_input(x, y, check_bounds(bounds, "bounds"))
    clf = art_estimator(model, x.shape[1:], bounds)
    attack = ProjectedGradientDescent(clf, norm=norm, eps=eps, eps_step=eps_step, max_iter=steps,
                                      targeted=targeted, num_random_init=int(bool(random_start)),
                                      batch_size=len(x) if batch_size is None else batch_size, verbose=False)
    kwargs = {} if mask is None else {"mask": as_mask(mask, x.shape)}
    with seeded_numpy_global(seed):
        return attack.generate(x, y=one_hot(y, clf.nb_classes), **kwargs).astype(np.float32)
