"""DP-SGD from scratch in TensorFlow / Keras 3 (Abadi et al., 2016).

One step, the equation the lesson writes down::

    g_i   = grad loss(model(x_i), y_i)                      per example, vectorised
    g_i  <- g_i * min(1, C / ||g_i||_2)                     clip: one example moves the sum by <= C
    g     = (sum_i g_i + N(0, (sigma * C)^2 I)) / B         noise on the SUM, then average

The sum has L2 sensitivity ``C`` (add or remove one example), so the noisy sum is a
Gaussian mechanism with noise multiplier ``sigma``. Batches are Poisson samples (each
example joins with probability ``q``), which is what the accountant assumes when it
amplifies privacy by sampling; ``B`` is then the *expected* batch size, a public number.

``loss(model(x_i), y_i)`` is example i's own loss, a number. For a sequence model (one target per
token) pass ``sample_weight`` with ``y``'s shape: example i's loss is then ``sum_t w_it loss_it``, so
padding (weight 0) does not count and ``w_i = mask_i / mask_i.sum()`` makes it the mean over the
example's real tokens. Without weights a Keras loss reduces each example itself (for a sequence: the
mean over every position, padding included).
"""
import math

import keras
import numpy as np
import tensorflow as tf

from ..attacks import fgsm_rs_eps_step
from ..cache import PrivacySpend, cached_fit, fingerprint
from ..errors import InvalidParameterError, ParameterTypeError
from ..models import EpochBar, build, compile_for_training, in_notebook
from ..validation import as_generator, check_int, check_real
from . import accounting


def _losses(loss_fn, y, logits):
    """Each example's loss, unreduced: ``Loss.call`` skips the batch mean of a Keras loss."""
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn.call(y, logits)
    return tf.vectorized_map(lambda yl: tf.reduce_sum(loss_fn(yl[0][None], yl[1][None])), (y, logits))


def _example_losses(loss_fn, y, logits, sample_weight=None):
    """Each example's loss, shape ``(batch,)``: ``sum_t w_t loss_t`` over its targets with ``sample_weight``."""
    if sample_weight is None:
        return _losses(loss_fn, y, logits)
    weighted = loss_fn.call(y, logits) * tf.cast(sample_weight, tf.float32)
    return tf.reduce_sum(tf.reshape(weighted, [tf.shape(weighted)[0], -1]), axis=1)


def _per_example_loss(loss_fn, weighted=False):
    """``loss_fn(y, logits[, w])`` for a batch of one, as a scalar (Keras losses already reduce)."""
    if weighted:
        return lambda y, logits, w: tf.reduce_sum(_example_losses(loss_fn, y, logits, w))
    return lambda y, logits: tf.reduce_sum(loss_fn(y, logits))


def _inputs(model, x):
    """``x`` as a tensor of the model's input dtype: int token ids for a language model, float32 otherwise."""
    try:
        dtype = model.inputs[0].dtype
    except (AttributeError, IndexError, TypeError, ValueError):
        dtype = None  # a subclassed model has no declared input
    return tf.convert_to_tensor(x, dtype=dtype if dtype in ("int32", "int64") else tf.float32)


def _sublayers(layer):
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _sublayers(sub)


def _pfor_safe(model):
    """Whether ``tf.vectorized_map`` can run ``model``'s single-example gradient.

    Keras's ``EinsumDense`` (inside ``MultiHeadAttention``) is a broadcasting ``matmul``; pfor makes it a
    batched matmul that crashes TensorFlow 2.21's oneDNN kernels (a segfault, not an exception).
    """
    return not any(isinstance(layer, (keras.layers.EinsumDense, keras.layers.MultiHeadAttention))
                   for layer in _sublayers(model))


def per_example_gradients(model, loss_fn, x, y, sample_weight=None):
    """The gradient of each example's loss.

    Sequential models of Dense, Conv2D and Flatten layers (all the course's classifiers) take
    the fast path, :func:`layerwise_per_example_gradients`; other models fall back to
    ``tf.vectorized_map`` over single-example gradients, or, for a model with attention
    (a transformer), to a ``tf.map_fn`` loop (:func:`loop_per_example_gradients`). (The
    training step, :func:`make_dp_step`, vectorises an attention model under XLA instead.)

    Returns a list aligned with ``model.trainable_variables``; entry ``k`` has shape
    ``(batch,) + variable_k.shape``.
    """
    if _layerwise_supported(model):
        return layerwise_per_example_gradients(model, loss_fn, x, y, sample_weight)
    if _pfor_safe(model):
        return vmap_per_example_gradients(model, loss_fn, x, y, sample_weight)
    return loop_per_example_gradients(model, loss_fn, x, y, sample_weight)


def _single_example_loss_and_gradient(model, loss_fn, weighted):
    """``one(args) -> (loss, gradient)`` of one example, ``args`` its ``(x, y)`` or ``(x, y, w)``."""
    loss_one = _per_example_loss(loss_fn, weighted)
    variables = model.trainable_variables

    def one(args):
        xi, rest = args[0], [a[None] for a in args[1:]]
        with tf.GradientTape() as tape:
            loss = loss_one(rest[0], model(xi[None], training=True), *rest[1:])
        # an embedding's gradient is sparse (IndexedSlices); batched, it must be dense
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    return one


def _single_example_gradient(model, loss_fn, sample_weight):
    """``one(args)``: the gradient of one example's loss, ``args`` its ``(x, y)`` or ``(x, y, w)``."""
    loss_and_gradient = _single_example_loss_and_gradient(model, loss_fn, weighted=sample_weight is not None)
    return lambda args: loss_and_gradient(args)[1]


def _batch(x, y, sample_weight):
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def vmap_per_example_gradients(model, loss_fn, x, y, sample_weight=None):
    """Per-example gradients with ``tf.vectorized_map``: general, but slow for convolutions."""
    one = _single_example_gradient(model, loss_fn, sample_weight)
    # vectorized_map turns the single-example graph into batched ops (pfor), not a Python loop
    return tf.vectorized_map(one, _batch(x, y, sample_weight))


def loop_per_example_gradients(model, loss_fn, x, y, sample_weight=None):
    """Per-example gradients one example after another (``tf.map_fn``): any model, slower than pfor.

    A transformer's attention cannot go through :func:`vmap_per_example_gradients` (see ``_pfor_safe``);
    for the course's chat transformer, a batch of 32 sequences takes about 0.1 s on 2 cores.
    """
    one = _single_example_gradient(model, loss_fn, sample_weight)
    signature = [tf.TensorSpec(v.shape, v.dtype) for v in model.trainable_variables]
    return tf.map_fn(one, _batch(x, y, sample_weight), fn_output_signature=signature)


XLA_CHUNK = 16  # rows per compiled chunk of an attention model's DP step (_xla_clipped_sum)


def _xla_clipped_sum(model, loss_fn, l2_norm_clip, weighted, chunk=XLA_CHUNK):
    """``clipped_sum(x, y[, w]) -> (sums, losses)``: sum_i clip(g_i) for a model with attention, by XLA.

    pfor's batched matmul crashes oneDNN (``_pfor_safe``), and the ``tf.map_fn`` loop pays TensorFlow's
    cost per op once per example. Compiled by XLA, the vectorised gradient runs on XLA's own kernels,
    not oneDNN's, at about the cost of one ordinary batched backward pass. XLA compiles one shape, so
    the batch goes through in chunks of ``chunk`` rows, the last one padded with rows that count zero
    (their clip factor is multiplied by 0). Call it while tracing a ``tf.function``: each call makes
    a new compiled function. Cross-checked against :func:`loop_per_example_gradients` in the tests.
    """
    one = _single_example_loss_and_gradient(model, loss_fn, weighted)

    @tf.function(jit_compile=True)
    def clipped_chunk(valid, *rows):
        losses, grads = tf.vectorized_map(one, rows)
        scale = tf.minimum(1.0, l2_norm_clip / (tf.sqrt(_squared_norms(grads)) + 1e-12)) * valid
        return [tf.tensordot(scale, g, axes=1) for g in grads], losses * valid

    signature = ([tf.TensorSpec(v.shape, v.dtype) for v in model.trainable_variables],
                 tf.TensorSpec([chunk], tf.float32))

    def clipped_sum(*rows):
        n = tf.shape(rows[0])[0]
        pad = (chunk - n % chunk) % chunk

        def chunks(a):  # (n, ...) -> (chunks, chunk, ...), the padding rows zeros
            a = tf.pad(a, [[0, pad]] + [[0, 0]] * (len(a.shape) - 1))
            return tf.reshape(a, tf.concat([[-1, chunk], tf.shape(a)[1:]], axis=0))

        valid = chunks(tf.ones([n], tf.float32))
        sums, losses = tf.map_fn(lambda args: clipped_chunk(*args), (valid, *[chunks(a) for a in rows]),
                                 fn_output_signature=signature)
        return [tf.reduce_sum(s, axis=0) for s in sums], tf.reshape(losses, [-1])[:n]

    return clipped_sum


def _layerwise_supported(model):
    if not isinstance(model, keras.Sequential):
        return False
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            if (tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1
                    or layer.data_format != "channels_last"):
                return False
        elif not isinstance(layer, (keras.layers.Dense, keras.layers.Flatten)):
            return False
    owned = [id(w) for layer in model.layers for w in layer.trainable_weights]
    return sorted(owned) == sorted(id(v) for v in model.trainable_variables)


def _backward_record(model, loss_fn, x, y, sample_weight=None):
    """One batched forward and backward pass that keeps, for each Dense / Conv2D layer, its
    input ``h`` and ``dz = d(sum of losses) / d(pre-activation)``."""
    x = tf.convert_to_tensor(x)
    h, inputs, pre_activations, layers = x, [], [], []
    with tf.GradientTape() as tape:
        tape.watch(x)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Flatten):
                h = tf.reshape(h, [tf.shape(h)[0], -1])
                continue
            if isinstance(layer, keras.layers.Conv2D):
                z = tf.nn.conv2d(h, layer.kernel, strides=layer.strides, padding=layer.padding.upper())
            else:
                z = tf.matmul(h, layer.kernel)
            if layer.use_bias:
                z = z + layer.bias
            inputs.append(h)
            pre_activations.append(z)
            layers.append(layer)
            h = layer.activation(z)
        losses = _example_losses(loss_fn, y, h, sample_weight)
        total = tf.reduce_sum(losses)  # each example's own loss, summed
    return layers, inputs, tape.gradient(total, pre_activations), losses


def _conv_kernel_grads(layer, h, dz):
    """Per-example kernel gradients of a convolution: patches (outer) dz, summed over positions."""
    kh, kw = layer.kernel_size
    patches = tf.image.extract_patches(h, sizes=[1, kh, kw, 1], strides=[1, *layer.strides, 1],
                                       rates=[1, 1, 1, 1], padding=layer.padding.upper())
    dw = tf.einsum("bhwk,bhwc->bkc", patches, dz)
    return tf.reshape(dw, [-1, *layer.kernel.shape])


def layerwise_per_example_gradients(model, loss_fn, x, y, sample_weight=None):
    """Per-example gradients from ONE batched backward pass (Goodfellow 2015's trick).

    For a layer ``z = h W + b``, example i's gradient is ``dW_i = h_i^T dz_i`` and
    ``db_i = dz_i``, where ``dz_i = d loss_i / d z_i`` is what an ordinary backward pass of the
    summed loss already computes (example i's loss depends only on its own z_i). A
    convolution is the same outer product summed over positions, with ``h`` unfolded into
    patches. So the batch is never looped over.
    """
    by_variable = {}
    layers, inputs, dzs, _ = _backward_record(model, loss_fn, x, y, sample_weight)
    for layer, h, dz in zip(layers, inputs, dzs):
        if isinstance(layer, keras.layers.Conv2D):
            by_variable[id(layer.kernel)] = _conv_kernel_grads(layer, h, dz)
            bias_grad = tf.reduce_sum(dz, axis=[1, 2])
        else:
            by_variable[id(layer.kernel)] = tf.einsum("bi,bj->bij", h, dz)
            bias_grad = dz
        if layer.use_bias:
            by_variable[id(layer.bias)] = bias_grad
    return [by_variable[id(v)] for v in model.trainable_variables]


def _layerwise_clipped_sum(model, loss_fn, x, y, l2_norm_clip, sample_weight=None):
    """sum_i clip(g_i) without materialising the Dense layers' per-example gradients.

    ``||h_i^T dz_i||^2 = ||h_i||^2 ||dz_i||^2`` gives each example's Dense gradient norm
    (the "ghost norm", Li et al. 2022); the clipped sum is then ``h^T (w * dz)`` with
    ``w_i = min(1, C / ||g_i||)``: one matrix product instead of a batch of outer products.
    Convolution gradients are small here, so they are materialised.
    """
    layers, inputs, dzs, losses = _backward_record(model, loss_fn, x, y, sample_weight)
    sq, parts = 0.0, []
    for layer, h, dz in zip(layers, inputs, dzs):
        if isinstance(layer, keras.layers.Conv2D):
            dw, db = _conv_kernel_grads(layer, h, dz), tf.reduce_sum(dz, axis=[1, 2])
            sq += tf.reduce_sum(tf.reshape(tf.square(dw), [tf.shape(dw)[0], -1]), axis=1)
        else:
            dw, db = None, dz
            sq += tf.reduce_sum(tf.square(h), axis=1) * tf.reduce_sum(tf.square(dz), axis=1)
        if layer.use_bias:
            sq += tf.reduce_sum(tf.reshape(tf.square(db), [tf.shape(db)[0], -1]), axis=1)
        parts.append((layer, h, dz, dw, db))
    w = tf.minimum(1.0, l2_norm_clip / (tf.sqrt(sq) + 1e-12))  # ||w_i g_i|| <= C
    by_variable = {}
    for layer, h, dz, dw, db in parts:
        if dw is None:
            by_variable[id(layer.kernel)] = tf.matmul(h, dz * w[:, None], transpose_a=True)
        else:
            by_variable[id(layer.kernel)] = tf.tensordot(w, dw, axes=1)
        if layer.use_bias:
            by_variable[id(layer.bias)] = tf.tensordot(w, db, axes=1)
    return [by_variable[id(v)] for v in model.trainable_variables], losses


def _squared_norms(grads):
    batch = tf.shape(grads[0])[0]
    return tf.add_n([tf.reduce_sum(tf.reshape(tf.square(g), [batch, -1]), axis=1) for g in grads])


def clip_gradients(grads, l2_norm_clip):
    """Scale each example's whole gradient (all variables together) to L2 norm <= ``l2_norm_clip``."""
    scale = tf.minimum(1.0, l2_norm_clip / (tf.sqrt(_squared_norms(grads)) + 1e-12))  # ||g_i|| * scale <= C
    return [g * tf.reshape(scale, [-1] + [1] * (len(g.shape) - 1)) for g in grads]


def gradient_norms(model, loss_fn, x, y, sample_weight=None):
    """Each example's gradient L2 norm, all variables together: the number clipping compares with C.

    Where to put the clip norm C is read off this distribution (the Opacus tutorials' heuristic: a
    C near its median clips about half the examples). Computed on the private data, the choice is
    itself a release that no accountant counts: use public data, or a DP estimate of the quantile.

    Parameters
    ----------
    model : keras.Model
    loss_fn : callable
        As for :func:`privatize_gradients`.
    x, y : array-like
        One batch and its int labels.
    sample_weight : array-like or None
        Shape of ``y`` (:func:`privatize_gradients`).

    Returns
    -------
    ndarray of shape (batch,)

    Examples
    --------
    >>> from mlsec_lessons import models
    >>> m = models.build("logistic", (4,), 3)
    >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    >>> gradient_norms(m, loss, np.ones((5, 4), "float32"), np.zeros(5, "int64")).shape
    (5,)
    """
    if len(x) != len(y):
        raise InvalidParameterError(f"x has {len(x)} rows but y has {len(y)}")
    _check_sample_weight(sample_weight, y, loss_fn)
    if sample_weight is not None:
        sample_weight = tf.convert_to_tensor(sample_weight, dtype=tf.float32)
    grads = per_example_gradients(model, loss_fn, _inputs(model, x), tf.convert_to_tensor(y), sample_weight)
    return np.sqrt(_squared_norms(grads).numpy())


def clipped_gradient_sum(model, loss_fn, x, y, l2_norm_clip, sample_weight=None):
    """sum_i clip(g_i): the quantity whose L2 sensitivity is ``l2_norm_clip``."""
    return _clipped_sum_and_losses(model, loss_fn, x, y, l2_norm_clip, sample_weight)[0]


def _clipped_sum_and_losses(model, loss_fn, x, y, l2_norm_clip, sample_weight=None):
    x = _inputs(model, x)
    y = tf.convert_to_tensor(y)
    if sample_weight is not None:
        sample_weight = tf.convert_to_tensor(sample_weight, dtype=tf.float32)
    if _layerwise_supported(model):
        return _layerwise_clipped_sum(model, loss_fn, x, y, l2_norm_clip, sample_weight)
    clipped = clip_gradients(per_example_gradients(model, loss_fn, x, y, sample_weight), l2_norm_clip)
    losses = _example_losses(loss_fn, y, model(x, training=False), sample_weight)
    return [tf.reduce_sum(g, axis=0) for g in clipped], losses


def _noise(shape, std, seed, index):
    if seed is None:
        return tf.random.normal(shape, stddev=std)
    # stateless: the same seed gives the same noise, and each variable gets its own stream
    return tf.random.stateless_normal(shape, seed=[seed, index], stddev=std)


def privatize_gradients(model, loss_fn, x, y, *, l2_norm_clip, noise_multiplier, seed=None,
                        denominator=None, sample_weight=None):
    """The DP-SGD gradient: clipped per-example gradients, summed, noised, averaged.

    Parameters
    ----------
    model : keras.Model
    loss_fn : callable
        ``loss_fn(y_true, logits)``, e.g. ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``.
    x, y : array-like
        One batch: inputs (float features, or int token ids for a language model) and int labels
        (one per example, or one per token: shape ``(batch, length)``).
    l2_norm_clip : float
        C: each example's gradient is scaled to L2 norm at most C.
    noise_multiplier : float
        sigma: Gaussian noise of std ``sigma * C`` is added to the sum. 0 gives the
        clipped, non-private gradient.
    seed : int or None
        Seed of the noise (stateless), or None for TensorFlow's global generator.
    denominator : float or None
        What the noisy sum is divided by: the batch size by default. With Poisson
        sampling pass the expected batch size, so the divisor reveals nothing.
    sample_weight : array-like or None
        Shape of ``y``: example i's loss becomes ``sum_t w_it loss_it`` (0 for padding; see the
        module's docstring). Needs a ``keras.losses.Loss``.

    Returns
    -------
    list of tf.Tensor
        Aligned with ``model.trainable_variables``.

    Examples
    --------
    >>> from mlsec_lessons import models
    >>> m = models.build("logistic", (4,), 3)
    >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    >>> g = privatize_gradients(m, loss, np.ones((8, 4), "float32"), np.zeros(8, "int64"),
    ...                         l2_norm_clip=1.0, noise_multiplier=1.1, seed=0)
    >>> [tuple(t.shape) for t in g]
    [(4, 3), (3,)]
    """
    l2_norm_clip = check_real(l2_norm_clip, "l2_norm_clip", min_value=0, include_boundaries="neither")
    noise_multiplier = check_real(noise_multiplier, "noise_multiplier", min_value=0)
    if seed is not None:
        seed = check_int(seed, "seed", min_value=0)  # a stateless TF seed: an int, not a Generator
    if len(x) != len(y):
        raise InvalidParameterError(f"x has {len(x)} rows but y has {len(y)}")
    _check_sample_weight(sample_weight, y, loss_fn)
    if denominator is None:
        denominator = len(x)
    denominator = check_real(denominator, "denominator", min_value=0, include_boundaries="neither")
    sums = clipped_gradient_sum(model, loss_fn, x, y, l2_norm_clip, sample_weight)
    std = noise_multiplier * l2_norm_clip  # the sum's sensitivity is C, so the noise scales with C
    return [(s + _noise(tf.shape(s), std, seed, k)) / denominator for k, s in enumerate(sums)]


def fgsm_rs_examples(model, loss_fn, x, y, eps, seed):
    """FGSM with a random start (Wong et al. 2020): the inputs DP adversarial training learns from.

    Each adversarial example depends only on its own record and the current (already private)
    weights, so training on it and clipping its gradient keeps DP-SGD's guarantee.
    """
    start = x + tf.random.stateless_uniform(tf.shape(x), seed=seed, minval=-eps, maxval=eps)
    start = tf.clip_by_value(start, 0.0, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(start)
        loss = tf.reduce_sum(_losses(loss_fn, y, model(start, training=False)))
    step = start + fgsm_rs_eps_step(eps) * tf.sign(tape.gradient(loss, start))
    return tf.clip_by_value(tf.clip_by_value(step, x - eps, x + eps), 0.0, 1.0)


def make_dp_step(model, loss_fn, optimizer, l2_norm_clip, noise_multiplier, expected_batch, adversarial_eps=0.0):
    """A compiled DP-SGD step; the batch dimension is dynamic so Poisson batches never retrace.

    With ``adversarial_eps > 0`` each batch is first replaced by its :func:`fgsm_rs_examples`. A model
    with attention gets its clipped gradient sum from :func:`_xla_clipped_sum` (about twice as fast as the
    loop: ``benchmarks/results/dp_sgd.md``).

    Returns ``step(x, y, seed, sample_weight=None) -> loss`` and ``noise_step(seed)`` for an empty
    batch, whose clipped sum is zero but whose noise must still be released: skipping the step would
    tell an observer that the batch was empty. Both update ``model`` through ``optimizer``; reuse
    them (with :func:`run_dp_sgd`) to train the same model object again without retracing. ``y``
    has the model's output shape less its last (class) axis: one label per example, or per token.
    """
    spec_x = tf.TensorSpec([None] + list(model.inputs[0].shape[1:]), model.inputs[0].dtype)
    spec_y = tf.TensorSpec([None] + list(model.outputs[0].shape[1:-1]), tf.int64)
    spec_w = tf.TensorSpec(spec_y.shape, tf.float32)
    spec_seed = tf.TensorSpec([2], tf.int64)
    std = noise_multiplier * l2_norm_clip

    sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]

    def apply_noisy(sums, seed):
        # one draw for all variables, split after: fewer ops per step than a draw per variable
        noise = tf.split(tf.random.stateless_normal([sum(sizes)], seed=seed, stddev=std), sizes)
        noisy = [(s + tf.reshape(z, tf.shape(s))) / expected_batch for s, z in zip(sums, noise)]
        optimizer.apply_gradients(zip(noisy, model.trainable_variables))

    by_xla = not (_layerwise_supported(model) or _pfor_safe(model))  # attention: see _xla_clipped_sum

    def update(x, y, seed, w):
        if adversarial_eps > 0:
            x = fgsm_rs_examples(model, loss_fn, x, y, adversarial_eps, seed + tf.constant([0, 1 << 40], tf.int64))
        if by_xla:  # traced once per signature, so compiled once per step function
            sums, losses = _xla_clipped_sum(model, loss_fn, l2_norm_clip, w is not None)(*_batch(x, y, w))
        else:
            sums, losses = _clipped_sum_and_losses(model, loss_fn, x, y, l2_norm_clip, w)
        apply_noisy(sums, seed)
        return tf.reduce_mean(losses)  # the loss before the step, for the progress bar

    plain = tf.function(lambda x, y, seed: update(x, y, seed, None), input_signature=[spec_x, spec_y, spec_seed])
    weighted = tf.function(update, input_signature=[spec_x, spec_y, spec_seed, spec_w])  # traced on first use

    def step(x, y, seed, sample_weight=None):
        if sample_weight is None:
            return plain(x, y, seed)
        _check_weighted_loss(loss_fn)
        return weighted(x, y, seed, sample_weight)

    @tf.function(input_signature=[spec_seed])
    def noise_step(seed):
        apply_noisy([tf.zeros_like(v) for v in model.trainable_variables], seed)

    return step, noise_step


def poisson_batches(n, sample_rate, steps, seed):
    """Index arrays of ``steps`` Poisson-sampled batches: each example joins each batch w.p. q.

    ``seed`` is an int, a numpy Generator (drawn from as it is) or None.
    """
    rng = as_generator(seed)
    for _ in range(steps):
        yield np.flatnonzero(rng.random(n) < sample_rate)


def run_dp_sgd(step, noise_step, x, y, *, sample_rate, steps, seed, on_step=None, sample_weight=None):
    """The DP-SGD loop: ``steps`` Poisson batches of ``(x, y)``, each one a ``step`` (or a ``noise_step``).

    Batch ``t`` is drawn from ``numpy.random.default_rng(seed)`` and its noise is seeded with
    ``(seed, t)``, so one seed fixes the whole run. ``on_step(t, loss)`` (loss None for an empty
    batch) is called after each step.

    Parameters
    ----------
    step, noise_step : callables
        From :func:`make_dp_step`.
    x, y : arrays or tensors
        The training rows and their int64 labels.
    sample_rate : float
        q: each row joins each batch with this probability.
    steps : int
    seed : int
    sample_weight : array or None
        Per-target weights, the shape of ``y`` (:func:`privatize_gradients`).

    Returns
    -------
    list of float
        The mean loss of each non-empty batch, before its step.
    """
    seed = check_int(seed, "seed", min_value=0)
    x = tf.constant(x) if not tf.is_tensor(x) else x
    y = tf.constant(np.asarray(y, dtype=np.int64)) if not tf.is_tensor(y) else y
    w = None if sample_weight is None else tf.constant(np.asarray(sample_weight, dtype=np.float32))
    losses = []
    for t, idx in enumerate(poisson_batches(int(x.shape[0]), sample_rate, steps, seed)):
        step_seed = tf.constant([seed, t], tf.int64)
        if len(idx) == 0:
            noise_step(step_seed)  # an empty batch still releases its noise
            loss = None
        else:
            batch_weight = None if w is None else tf.gather(w, idx)
            loss = float(step(tf.gather(x, idx), tf.gather(y, idx), step_seed, batch_weight))
            losses.append(loss)
        if on_step is not None:
            on_step(t, loss)
    return losses


def schedule(n, batch_size, epochs):
    """``(sample_rate, steps)`` of a DP-SGD run: ``q = batch_size / n`` and ``epochs * round(n / batch_size)`` steps."""
    return batch_size / n, epochs * max(1, round(n / batch_size))


def privacy_spend(noise_multiplier, sample_rate, steps, delta, l2_norm_clip):
    """The :class:`~mlsec_lessons.cache.PrivacySpend` of a run, from the RDP accountant; inf without noise."""
    epsilon = accounting.epsilon(noise_multiplier, sample_rate, steps, delta) if noise_multiplier > 0 else math.inf
    return PrivacySpend(epsilon=float(epsilon), delta=float(delta), noise_multiplier=float(noise_multiplier),
                        sample_rate=float(sample_rate), steps=int(steps), l2_norm_clip=float(l2_norm_clip))


def _check_weighted_loss(loss_fn):
    if not isinstance(loss_fn, keras.losses.Loss):
        raise ParameterTypeError("sample_weight needs a keras.losses.Loss (its unreduced per-target values), "
                                 f"got {type(loss_fn).__name__}")


def _check_sample_weight(sample_weight, y, loss_fn=None):
    if sample_weight is None:
        return
    if loss_fn is not None:
        _check_weighted_loss(loss_fn)
    weights = np.asarray(sample_weight)
    if weights.shape != np.shape(y):
        raise InvalidParameterError(f"sample_weight must have y's shape {np.shape(y)}, got {weights.shape}")
    if not np.issubdtype(weights.dtype, np.number) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InvalidParameterError("sample_weight must hold finite, non-negative numbers")


def _check_dp_args(n, *, l2_norm_clip, noise_multiplier, batch_size, epochs, learning_rate, momentum, delta,
                   adversarial_eps):
    check_int(epochs, "epochs", min_value=1)
    check_int(batch_size, "batch_size", min_value=1)
    if batch_size > n:
        raise InvalidParameterError(f"batch_size={batch_size} is larger than the {n} training examples")
    check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    check_real(delta, "delta", min_value=0, max_value=1, include_boundaries="neither")
    check_real(l2_norm_clip, "l2_norm_clip", min_value=0, include_boundaries="neither")
    check_real(noise_multiplier, "noise_multiplier", min_value=0)
    check_real(momentum, "momentum", min_value=0, max_value=1, include_boundaries="left")
    # inputs lie in [0, 1], so a larger budget means nothing
    check_real(adversarial_eps, "adversarial_eps", min_value=0, max_value=1)


def fit_dp_sgd(model, x, y, *, l2_norm_clip=1.0, noise_multiplier=1.1, batch_size=64, epochs=10,
               learning_rate=0.05, momentum=0.9, delta=1e-5, seed=0, adversarial_eps=0.0, progress=False,
               sample_weight=None):
    """Train ``model`` in place with DP-SGD on ``(x, y)``, and say what privacy it spent.

    Each of ``epochs * round(n / batch_size)`` steps draws a Poisson batch with
    ``q = batch_size / n``, takes a :func:`privatize_gradients` step (divided by the expected
    batch size) with SGD and momentum (:func:`make_dp_step`, :func:`run_dp_sgd`).

    Parameters
    ----------
    model : keras.Model
        Outputs logits; its current weights are the starting point.
    x, y : arrays
        Training rows (int token ids for a model whose input is int) and integer labels, one per
        row or one per token.
    l2_norm_clip, noise_multiplier, batch_size, epochs, learning_rate, momentum, delta, adversarial_eps
        As in :func:`train_dp_sgd`.
    seed : int
        Seeds the batches and the noise (not the initial weights: those are ``model``'s).
    progress : bool or str, default=False
        A tqdm bar over epochs with the loss and the epsilon spent so far; a string is its title.
    sample_weight : array or None
        Per-target weights, the shape of ``y``; for a language model, the padding mask over each
        row's count of real tokens (:func:`privatize_gradients`).

    Returns
    -------
    PrivacySpend
    """
    x = _inputs(model, x).numpy()
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise InvalidParameterError(f"x has {len(x)} rows but y has {len(y)}")
    _check_sample_weight(sample_weight, y)
    n = len(x)
    _check_dp_args(n, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier, batch_size=batch_size,
                   epochs=epochs, learning_rate=learning_rate, momentum=momentum, delta=delta,
                   adversarial_eps=adversarial_eps)
    seed = check_int(seed, "seed", min_value=0)
    sample_rate, steps = schedule(n, batch_size, epochs)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    step, noise_step = make_dp_step(model, loss_fn, optimizer, l2_norm_clip, noise_multiplier,
                                    float(sample_rate * n), adversarial_eps)
    steps_per_epoch = max(1, round(1 / sample_rate))
    on_step, bar, recent = None, None, []
    if progress:
        bar = EpochBar(steps // steps_per_epoch, progress if isinstance(progress, str) else f"DP-SGD {model.name}")

        def on_step(t, loss):
            if loss is not None:
                recent.append(loss)
            if (t + 1) % steps_per_epoch == 0:
                spent = privacy_spend(noise_multiplier, sample_rate, t + 1, delta, l2_norm_clip).epsilon
                bar.on_epoch_end(t // steps_per_epoch, {"loss": np.mean(recent[-steps_per_epoch:]), "epsilon": spent})

    run_dp_sgd(step, noise_step, x, y, sample_rate=sample_rate, steps=steps, seed=seed, on_step=on_step,
               sample_weight=sample_weight)
    if bar is not None:
        bar.on_train_end()
    return privacy_spend(noise_multiplier, sample_rate, steps, delta, l2_norm_clip)


def train_dp_sgd(data, arch="small_cnn", *, l2_norm_clip=1.0, noise_multiplier=1.1, batch_size=64, epochs=10,
                 learning_rate=0.05, momentum=0.9, delta=1e-5, seed=0, cache=True, progress=None,
                 adversarial_eps=0.0, **arch_kwargs):
    """Train a model with DP-SGD (or load it from the cache), and account for the privacy spent.

    Builds ``arch`` (initial weights seeded by ``seed``) and trains it with :func:`fit_dp_sgd`,
    through :func:`mlsec_lessons.cache.cached_fit`. The RDP accountant gives the epsilon spent
    (shown on the progress bar in notebooks).

    Parameters
    ----------
    data : Dataset
        Uses ``x_train``, ``y_train``, ``input_shape``, ``n_classes``.
    arch : str, default="small_cnn"
    l2_norm_clip : float, default=1.0
    noise_multiplier : float, default=1.1
        0 trains with clipping but no noise (``epsilon = inf``): the non-private peer.
    batch_size : int, default=64
        The expected Poisson batch size.
    epochs : int, default=10
    learning_rate : float, default=0.05
    momentum : float, default=0.9
        SGD momentum; post-processing of private gradients costs no privacy.
    delta : float, default=1e-5
        Should be well below 1 / n.
    seed : int, default=0
        Seeds the initial weights, the batches and the noise.
    cache : bool, default=True
    progress : bool or None
        ``None`` shows a bar only inside a notebook.
    adversarial_eps : float, default=0.0
        Above 0, DP adversarial training: every step learns from FGSM-RS examples within this
        L-inf budget (:func:`fgsm_rs_examples`) instead of the clean batch. Robust and private;
        the privacy accounting is unchanged.

    Returns
    -------
    Fitted
        ``.model`` is compiled and outputs logits; ``.privacy`` is the :class:`PrivacySpend`
        (epsilon, delta, noise_multiplier, sample_rate, steps, l2_norm_clip); ``.config`` holds the
        settings (``adversarial_eps`` among them); ``.provenance`` where the weights came from.

    Examples
    --------
    >>> from mlsec_lessons import data
    >>> run = train_dp_sgd(data.load_digits(), "mlp", hidden=(64,), learning_rate=0.2)  # doctest: +SKIP
    >>> run.privacy.steps, round(run.privacy.sample_rate, 4), round(run.privacy.epsilon, 2)  # doctest: +SKIP
    (200, 0.0509, 4.53)
    """
    n = len(data.x_train)
    if len(data.y_train) != n:
        raise InvalidParameterError(f"x_train has {n} rows but y_train has {len(data.y_train)}")
    _check_dp_args(n, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier, batch_size=batch_size,
                   epochs=epochs, learning_rate=learning_rate, momentum=momentum, delta=delta,
                   adversarial_eps=adversarial_eps)
    seed = check_int(seed, "seed", min_value=0)
    sample_rate, steps = schedule(n, batch_size, epochs)
    config = dict(arch=arch, arch_kwargs=arch_kwargs, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
                  batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, momentum=momentum, seed=seed,
                  adversarial_eps=float(adversarial_eps), data=fingerprint(data.x_train, data.y_train))
    show = in_notebook() if progress is None else progress

    def build_model():
        # compiled for evaluate/predict and ART; training uses its own loop and optimizer
        return compile_for_training(build(arch, data.input_shape, data.n_classes, **arch_kwargs))

    def fit(model):
        fit_dp_sgd(model, data.x_train, data.y_train, l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
                   batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, momentum=momentum,
                   delta=delta, seed=seed, adversarial_eps=adversarial_eps,
                   progress=f"DP-SGD {arch} on {data.name}" if show else False)

    return cached_fit(f"{data.name}-{arch}-dpsgd", config, build_model, fit, seed=seed, cache=cache,
                      privacy=privacy_spend(noise_multiplier, sample_rate, steps, delta, l2_norm_clip))
