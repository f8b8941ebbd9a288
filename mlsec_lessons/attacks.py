"""Reference evasion attacks: FGSM and PGD (L-inf and L2), compiled with ``tf.function``.

PGD (Madry et al., 2018) repeats a step that increases the loss and projects back:

    x_{t+1} = Proj_{B(x, eps) ∩ [lo, hi]} ( x_t + alpha * d(grad_x L(f(x_t), y)) )

where ``d(g) = sign(g)`` for the L-inf ball and ``g / ||g||_2`` for the L2 ball. FGSM
(Goodfellow et al., 2015) is one L-inf step of size eps from ``x`` itself. A targeted attack
*decreases* the loss of the target label instead, so the step goes the other way.

PGD returns, per sample, the best point it visited (one that fools the model over one that
does not, then the higher loss), as AutoAttack does, so more steps never make it weaker.
The whole loop runs inside one compiled function per (model, norm, direction), with a
batch axis of any length, so a second call never retraces. ART's implementations of the same
attacks (:func:`art_fgsm`, :func:`art_pgd`) sit beside them for comparison.
"""
import weakref

import numpy as np
import tensorflow as tf

from .reproducibility import quiet

_COMPILED = weakref.WeakKeyDictionary()  # model -> {(norm, targeted, keep_best) or "gradient": tf.function}
_TRACES = {"count": 0}                   # bumped only while TensorFlow traces a loop


# --------------------------------------------------------------------------- validation
def _check_norm(norm):
    if norm in (np.inf, "inf"):
        return np.inf
    if not isinstance(norm, bool) and norm == 2:
        return 2
    raise ValueError(f"norm must be np.inf or 2, got {norm!r}")


def _check_nonneg(name, value):
    if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_inputs(x, y, clip):
    """x as float32 inside clip, y as int labels of the same length."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (n, ...), got shape {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D integer labels, got shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"shape mismatch: x has {len(x)} samples but y has {len(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x holds NaN or infinite values")
    lo, hi = _check_clip(clip)
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"x lies outside clip={clip!r} (min {x.min():.4g}, max {x.max():.4g}); "
                         "an attack cannot keep the input valid if it starts invalid")
    return x, y.astype(np.int32), lo, hi


def _check_clip(clip):
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be a pair (lo, hi), got {clip!r}") from None
    if not lo < hi:
        raise ValueError(f"clip must be (lo, hi) with lo < hi, got {clip!r}")
    return lo, hi


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the building blocks
def _direction(grad, norm):
    """The steepest-ascent step of unit size in the given norm."""
    if norm == np.inf:
        return tf.sign(grad)
    axes = list(range(1, len(grad.shape)))
    length = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True))
    return grad / tf.maximum(length, 1e-12)  # a zero gradient stays a zero step


def _project(x_adv, x0, eps, norm, lo, hi):
    """Back into the eps-ball around x0, then into the valid range (clipping only shrinks delta)."""
    delta = x_adv - x0
    if norm == np.inf:
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        axes = list(range(1, len(delta.shape)))
        length = tf.sqrt(tf.reduce_sum(tf.square(delta), axis=axes, keepdims=True))
        delta = delta * tf.minimum(1.0, eps / tf.maximum(length, 1e-12))
    return tf.clip_by_value(x0 + delta, lo, hi)


def _loss(model, x, y):
    logits = model(x, training=False)
    return tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


def _objective(model, x, y, sign):
    """Per example: the loss the attacker raises, and whether the attack already succeeds."""
    logits = model(x, training=False)
    objective = sign * tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    on_label = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)
    return objective, (on_label if sign < 0 else tf.logical_not(on_label))  # targeted: success is *on* y


def _compiled_pgd(model, norm, targeted, keep_best):
    """One tf.function per (model, norm, direction, keep_best); any batch length, no retrace."""
    per_model = _COMPILED.setdefault(model, {})
    key = (norm, targeted, keep_best)
    if key not in per_model:
        shape = [None, *model.input_shape[1:]]
        sign = -1.0 if targeted else 1.0  # targeted: walk *down* the loss of the target label
        model_ref = weakref.ref(model)  # a strong reference here would keep the cache entry alive forever

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32), tf.TensorSpec([None], tf.int32),
                                      tf.TensorSpec(shape, tf.float32)] + [tf.TensorSpec([], tf.float32)] * 4
                     + [tf.TensorSpec([], tf.int32)])
        def loop(x0, y, x_start, eps, eps_step, lo, hi, steps):
            _TRACES["count"] += 1  # Python side effect: runs at trace time only
            x_adv = best = x_start
            best_obj, best_ok = tf.fill(tf.shape(y), -np.inf), tf.zeros_like(y, dtype=tf.bool)
            for _ in tf.range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(x_adv)
                    objective, success = _objective(model_ref(), x_adv, y, sign)
                    total = tf.reduce_sum(objective)
                grad = tape.gradient(total, x_adv)
                if keep_best:  # remember the best point seen so far, as AutoAttack does
                    best, best_obj, best_ok = _keep_better(best, best_obj, best_ok, x_adv, objective, success)
                x_adv = _project(x_adv + eps_step * _direction(grad, norm), x0, eps, norm, lo, hi)
            if keep_best:
                return _keep_better(best, best_obj, best_ok, x_adv, *_objective(model_ref(), x_adv, y, sign))[0]
            return x_adv

        per_model[key] = loop
    return per_model[key]


def _keep_better(best, best_obj, best_ok, x_new, obj_new, ok_new):
    """A successful point beats an unsuccessful one; between equals, the higher objective wins."""
    better = (ok_new & ~best_ok) | ((ok_new == best_ok) & (obj_new > best_obj))
    mask = tf.reshape(better, [-1] + [1] * (len(best.shape) - 1))
    return tf.where(mask, x_new, best), tf.where(better, obj_new, best_obj), best_ok | ok_new


def sample_ball(x, eps, norm=np.inf, clip=(0.0, 1.0), seed=None):
    """A uniform random point of the eps-ball around each ``x``, clipped to the valid range.

    L-inf: each pixel moves by U(-eps, eps). L2: a uniformly random point of the L2 ball
    (direction from a Gaussian, radius ``eps * U^(1/d)``), the same start as ART's.
    """
    norm, (lo, hi) = _check_norm(norm), _check_clip(clip)
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    if norm == np.inf:
        delta = rng.uniform(-eps, eps, size=x.shape)
    else:
        flat = rng.normal(size=(len(x), int(np.prod(x.shape[1:]))))
        flat /= np.linalg.norm(flat, axis=1, keepdims=True)
        radius = eps * rng.uniform(size=(len(x), 1)) ** (1.0 / flat.shape[1])
        delta = (flat * radius).reshape(x.shape)
    return np.clip(x + delta, lo, hi).astype(np.float32)


def _enforce_ball(x_adv, x0, eps, norm, lo, hi):
    """Make ``||x_adv - x0|| <= eps`` and ``lo <= x_adv <= hi`` hold exactly, not just up to float32 rounding.

    ``x0 + delta`` is rounded to float32, which can land one ulp outside the ball; step such
    pixels (or shrink such rows) towards ``x0`` until the invariant holds in float64.
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
    raise RuntimeError("could not place x_adv inside the eps-ball")  # pragma: no cover


def _run(model, x, y, eps, eps_step, steps, norm, start, targeted, clip, batch_size, keep_best):
    x, y, lo, hi = _check_inputs(x, y, clip)
    n_classes = model.output_shape[-1]
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y holds labels outside 0..{n_classes - 1} (min {y.min()}, max {y.max()})")
    batch_size = _check_positive_int("batch_size", batch_size)
    loop = _compiled_pgd(model, norm, bool(targeted), keep_best)
    x_start = x if start is None else start(x)
    scalars = [tf.constant(v, tf.float32) for v in (eps, eps_step, lo, hi)] + [tf.constant(steps, tf.int32)]
    out = [loop(x[i:i + batch_size], y[i:i + batch_size], x_start[i:i + batch_size], *scalars).numpy()
           for i in range(0, len(x), batch_size)]
    return _enforce_ball(np.concatenate(out), x, eps, norm, lo, hi)


# --------------------------------------------------------------------------- the attacks
def fgsm(model, x, y, eps, *, targeted=False, clip=(0.0, 1.0), batch_size=1024):
    """Fast Gradient Sign Method: ``clip(x + eps * sign(grad_x L(f(x), y)))``.

    Parameters
    ----------
    model : keras.Model
        Outputs logits.
    x : ndarray of shape (n, ...)
        Inputs inside ``clip``.
    y : ndarray of shape (n,)
        Integer labels: the true labels, or the target labels if ``targeted``.
    eps : float
        L-inf budget, >= 0.
    targeted : bool, default=False
        Step *down* the loss of ``y`` (make the model say ``y``) instead of up.
    clip : (lo, hi), default=(0.0, 1.0)
        Valid input range.
    batch_size : int, default=1024

    Returns
    -------
    ndarray
        float32 adversarial inputs, ``|x_adv - x| <= eps`` and inside ``clip``.

    Examples
    --------
    >>> import keras, numpy as np
    >>> from mlsec_lessons.attacks import fgsm
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, dtype="float32")
    >>> x_adv = fgsm(model, x, np.array([0, 1]), eps=0.1)
    >>> bool(np.abs(x_adv - x).max() <= 0.1)
    True
    """
    eps = _check_nonneg("eps", eps)
    return _run(model, x, y, eps, eps, 1, np.inf, None, targeted, clip, batch_size, keep_best=False)


def pgd(model, x, y, eps, eps_step, steps, *, norm=np.inf, random_start=True, targeted=False,
        clip=(0.0, 1.0), seed=None, batch_size=1024):
    """Projected Gradient Descent in the L-inf or L2 ball (Madry et al., 2018).

    Parameters
    ----------
    model, x, y, targeted, clip, batch_size
        As in :func:`fgsm`.
    eps : float
        Radius of the ball, >= 0.
    eps_step : float
        Step size alpha, >= 0 (a common choice: ``2.5 * eps / steps``).
    steps : int
        Number of steps, >= 1.
    norm : {np.inf, 2}, default=np.inf
    random_start : bool, default=True
        Start from a uniformly random point of the ball instead of ``x``.
    seed : int or None
        Seed of the random start.

    Returns
    -------
    ndarray
        float32 adversarial inputs inside the ball and inside ``clip``.

    Examples
    --------
    >>> import keras, numpy as np
    >>> from mlsec_lessons.attacks import pgd
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, dtype="float32")
    >>> x_adv = pgd(model, x, np.array([0, 1]), eps=0.5, eps_step=0.1, steps=10, norm=2, seed=0)
    >>> bool(np.linalg.norm((x_adv - x).reshape(2, -1), axis=1).max() <= 0.5)
    True
    """
    eps = _check_nonneg("eps", eps)
    eps_step = _check_nonneg("eps_step", eps_step)
    steps = _check_positive_int("steps", steps)
    norm, clip_range = _check_norm(norm), _check_clip(clip)
    start = (lambda x0: sample_ball(x0, eps, norm, clip_range, seed)) if random_start else None
    return _run(model, x, y, eps, eps_step, steps, norm, start, targeted, clip, batch_size, keep_best=True)


def trace_count():
    """How many times an attack loop has been traced (compiled) in this process.

    A call with a new model, norm or direction traces once; any later call with the same
    ones (whatever the batch length, eps or step count) must not add to it.
    """
    return _TRACES["count"]


# --------------------------------------------------------------------------- PGD on any gradient
def input_gradient(model, x, y):
    """``grad_x`` of the summed cross-entropy of ``model(x)`` on labels ``y`` (compiled once per model).

    The building block of adaptive attacks: a defense changes *where* this gradient is taken
    (after a transform, averaged over random draws), not how PGD steps.
    """
    per_model = _COMPILED.setdefault(model, {})
    if "gradient" not in per_model:
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        model_ref = weakref.ref(model)

        @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
        def gradient(x, y):
            _TRACES["count"] += 1
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(_loss(model_ref(), x, y))
            return tape.gradient(loss, x)

        per_model["gradient"] = gradient
    return per_model["gradient"](np.asarray(x, np.float32), np.asarray(y, np.int32)).numpy()


def pgd_loop(gradient, x, y, eps, eps_step, steps, *, norm=np.inf, random_start=True, clip=(0.0, 1.0),
             seed=None):
    """PGD that asks ``gradient(x_adv, y)`` for the direction to *raise*: the loop adaptive attacks share.

    The same step and projection as :func:`pgd`, in an eager Python loop, so the gradient can
    come from anywhere: through a defense's transform (BPDA), averaged over its random draws
    (EOT), or from a loss that also fools a detector.

    Examples
    --------
    >>> import numpy as np
    >>> from mlsec_lessons.attacks import pgd_loop
    >>> push_up = lambda x, y: np.ones_like(x)          # a gradient that always says "brighter"
    >>> x = np.full((1, 3), 0.5, dtype="float32")
    >>> pgd_loop(push_up, x, np.array([0]), eps=0.2, eps_step=0.05, steps=10, random_start=False)
    array([[0.7, 0.7, 0.7]], dtype=float32)
    """
    eps = _check_nonneg("eps", eps)
    eps_step = _check_nonneg("eps_step", eps_step)
    steps = _check_positive_int("steps", steps)
    norm = _check_norm(norm)
    x, y, lo, hi = _check_inputs(x, y, clip)
    x_adv = sample_ball(x, eps, norm, (lo, hi), seed) if random_start else x
    for _ in range(steps):
        g = tf.constant(gradient(x_adv, y), tf.float32)
        x_adv = _project(x_adv + eps_step * _direction(g, norm), x, eps, norm, lo, hi).numpy()
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
        raise ValueError(f"shape mismatch: x has {len(z)} samples but y has {len(y)}")
    others = z.copy()
    others[np.arange(len(y)), y] = -np.inf
    return (z[np.arange(len(y)), y] - tf.reduce_logsumexp(others, axis=1).numpy()).astype(np.float32)


# --------------------------------------------------------------------------- ART beside them
def _art_estimator(model, x, clip):
    """ART's classifier for a Keras model (built the right way), or an ART classifier as given."""
    if hasattr(model, "loss_gradient"):  # already an ART estimator
        return model
    from .art_bridge import art_classifier

    return art_classifier(model, model.output_shape[-1], x.shape[1:], clip)


def _one_hot(y, n):
    return np.eye(n, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def art_fgsm(model, x, y, eps, *, targeted=False, clip=(0.0, 1.0), norm=np.inf, batch_size=None):
    """ART's ``FastGradientMethod`` on the same model, one batch, no progress bar.

    ``model`` is a Keras model (wrapped with :func:`~mlsec_lessons.art_bridge.art_classifier`)
    or an ART classifier. Same arguments and result as :func:`fgsm`; ``batch_size=None``
    runs all of ``x`` as one batch (ART's own default is 32).

    Examples
    --------
    >>> x_adv = art_fgsm(model, d.x_test, d.y_test, eps=0.1)     # doctest: +SKIP
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import FastGradientMethod

    eps, norm = _check_nonneg("eps", eps), _check_norm(norm)
    x, y, _, _ = _check_inputs(x, y, clip)
    clf = _art_estimator(model, x, clip)
    batch_size = len(x) if batch_size is None else _check_positive_int("batch_size", batch_size)
    attack = FastGradientMethod(clf, norm=norm, eps=eps, eps_step=eps, targeted=targeted, batch_size=batch_size)
    return attack.generate(x, y=_one_hot(y, clf.nb_classes)).astype(np.float32)


def art_pgd(model, x, y, eps, eps_step, steps, *, norm=np.inf, random_start=True, targeted=False,
            clip=(0.0, 1.0), seed=None, batch_size=None):
    """ART's ``ProjectedGradientDescent`` on the same model, one batch, ``verbose=False``.

    Same arguments and result as :func:`pgd`; ``batch_size=None`` runs all of ``x`` as one
    batch (ART's own default is 32). ART draws its random start from NumPy's global
    generator, so ``seed`` seeds that.

    Examples
    --------
    >>> x_adv = art_pgd(model, d.x_test, d.y_test, 0.1, 0.01, 40, seed=0)     # doctest: +SKIP
    """
    quiet()  # ART warns on import that PyTorch is absent
    from art.attacks.evasion import ProjectedGradientDescent

    eps, eps_step = _check_nonneg("eps", eps), _check_nonneg("eps_step", eps_step)
    steps, norm = _check_positive_int("steps", steps), _check_norm(norm)
    if batch_size is not None:
        _check_positive_int("batch_size", batch_size)
    x, y, _, _ = _check_inputs(x, y, clip)
    clf = _art_estimator(model, x, clip)
    if seed is not None:
        np.random.seed(seed)
    attack = ProjectedGradientDescent(clf, norm=norm, eps=eps, eps_step=eps_step, max_iter=steps,
                                      targeted=targeted, num_random_init=int(bool(random_start)),
                                      batch_size=len(x) if batch_size is None else batch_size, verbose=False)
    return attack.generate(x, y=_one_hot(y, clf.nb_classes)).astype(np.float32)
