"""Gradient inversion: rebuild a client's training image from the update it sends (DLG / iDLG).

A server that sees one client's raw update (FedSGD: the gradient of its loss on its own images, or one
local step of FedAvg) can search for the input whose gradient matches it (Zhu, Liu and Han 2019, "Deep
Leakage from Gradients")::

    x* = argmin_x'  sum_k || grad_k(x', y) - g_k ||^2        g: the observed update, k: each weight tensor

The label comes first, for free (Zhao, Mopuri and Bilen 2020, iDLG): with softmax cross-entropy the
gradient of the last layer's bias is ``softmax(z) - onehot(y)``, negative at the true label and
positive everywhere else. The search needs gradients of a gradient, so the model must be twice
differentiable: a sigmoid MLP here, as in DLG (ReLU's second derivative is zero almost everywhere).

Three versions of the update are attacked, each by an attacker who knows how it was made:

* ``"raw"``: one image, the gradient as is;
* ``"clipped+noised"``: one image, clipped to L2 norm ``C`` and Gaussian-noised with std ``z * C``, the
  DP-SGD step of lesson 04 (:func:`mlsec_lessons.privacy.dp_sgd.privatize_gradients`); the attacker
  clips its own candidate's gradient to ``C`` before comparing;
* ``"batch"``: the mean gradient of ``B`` images; the attacker is *given* the ``B`` true labels and
  searches for ``B`` images at once, which favours the attack.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import fmin_l_bfgs_b

from .. import models
from ..cache import cached_fit, fingerprint
from ..errors import InvalidParameterError
from ..privacy.dp_sgd import clip_gradients, privatize_gradients
from ..records import OneRowFrame
from ..validation import as_generator, as_int_seed, check_choice, check_int, check_real, check_seed

IMAGE_SHAPE = (8, 8, 1)
N_CLASSES = 10
VARIANTS = ("raw", "clipped+noised", "batch")
_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def inversion_mlp(hidden=32):
    """The small model under attack: 64 pixels, ``hidden`` sigmoid units, 10 logits (2,410 weights at 32)."""
    hidden = check_int(hidden, "hidden", min_value=1)
    return keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Flatten(),
                             keras.layers.Dense(hidden, activation="sigmoid"), keras.layers.Dense(N_CLASSES)],
                            name="inversion_mlp")


def global_model(data, *, hidden=32, epochs=3, seed=0, cache=True):
    """The global model a server sends out some rounds in: :func:`inversion_mlp` trained centrally for a few epochs.

    Goes through :func:`mlsec_lessons.cache.cached_fit`. Returns its :class:`~mlsec_lessons.cache.Fitted`.
    """
    epochs = check_int(epochs, "epochs", min_value=0)
    hidden = check_int(hidden, "hidden", min_value=1)
    config = dict(hidden=hidden, epochs=epochs, batch_size=64, learning_rate=1e-2,
                  data=fingerprint(data.x_train, data.y_train))

    def build():
        return models.compile_for_training(inversion_mlp(hidden), learning_rate=1e-2)

    def fit(model):
        if epochs:
            models.fit_epochs(model, data.x_train, data.y_train, epochs=epochs, batch_size=64, seed=seed,
                              progress=False)

    return cached_fit("digits-inversion_mlp", config, build, fit, seed=seed, cache=cache)


def _check_batch(model, images, labels):
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    shape = tuple(model.inputs[0].shape[1:])
    if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
        raise InvalidParameterError(f"images must have shape (batch, {', '.join(map(str, shape))}), "
                                    f"got {images.shape}")
    if len(images) == 0:
        raise InvalidParameterError("images must hold at least one image, got a batch of 0")
    if len(labels) != len(images):
        raise InvalidParameterError(f"images has {len(images)} rows but labels has {len(labels)}")
    return images, labels


def client_gradient(model, images, labels):
    """The update a FedSGD client sends: the gradient of its mean cross-entropy, one array per weight tensor."""
    images, labels = _check_batch(model, images, labels)
    with tf.GradientTape() as tape:
        loss = _LOSS(labels, model(images, training=False))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def clipped_noised_gradient(model, images, labels, *, l2_norm_clip, noise_multiplier, seed=0):
    """The DP-SGD update of lesson 04: each image's gradient clipped to ``l2_norm_clip``, Gaussian noise of
    std ``noise_multiplier * l2_norm_clip`` on the sum, divided by the batch size."""
    images, labels = _check_batch(model, images, labels)
    check_real(noise_multiplier, "noise_multiplier", min_value=0)
    grads = privatize_gradients(model, _LOSS, images, labels, l2_norm_clip=l2_norm_clip,
                                noise_multiplier=noise_multiplier, seed=as_int_seed(check_seed(seed)))
    return [g.numpy() for g in grads]


def idlg_label(gradients):
    """iDLG: the label of a single-image update, the one entry where the last bias's gradient is negative.

    ``d loss / d b_last = softmax(z) - onehot(y)``: ``p_y - 1 < 0`` at the label, ``p_j > 0`` elsewhere.

    Examples
    --------
    >>> idlg_label([np.zeros((3, 4)), np.array([0.1, -0.3, 0.15, 0.05])])
    1
    """
    bias = np.asarray(gradients[-1], dtype=float)
    if bias.ndim != 1 or len(bias) < 2:
        raise InvalidParameterError(f"the last gradient must be the output bias's (a vector), got shape {bias.shape}")
    return int(np.argmin(bias))


def matching_objective(model, labels, observed, l2_norm_clip=None):
    """``f(x) -> (distance, d distance / d x)``: DLG's gradient-matching loss and its gradient, compiled.

    ``distance = sum_k ||grad_k(x, labels) - observed_k||^2``. Its gradient in ``x`` differentiates a
    gradient (the inner tape inside the outer one), which is why the model must be twice differentiable.
    """
    variables = model.trainable_variables
    target = [tf.constant(g, tf.float32) for g in observed]
    labels = tf.constant(labels)

    @tf.function  # one trace per objective: L-BFGS asks at one shape
    def objective(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                loss = _LOSS(labels, model(x, training=False))
            grads = inner.gradient(loss, variables)
            if l2_norm_clip is not None:  # the attacker clips its candidate as the client clipped (batch of one)
                grads = [g[0] for g in clip_gradients([g[None] for g in grads], l2_norm_clip)]
            distance = tf.add_n([tf.reduce_sum(tf.square(g - t)) for g, t in zip(grads, target)])
        return distance, outer.gradient(distance, x)

    return objective


def gradient_distance(model, images, labels, observed, l2_norm_clip=None):
    """``sum_k ||grad_k(images, labels) - observed_k||^2``: zero at the client's own images."""
    images, labels = _check_batch(model, images, labels)
    distance, _ = matching_objective(model, labels, observed, l2_norm_clip)(tf.constant(images))
    return float(distance)


def invert_gradient(model, observed, labels, *, l2_norm_clip=None, max_iter=500, seed=0):
    """DLG: the images whose gradient matches ``observed``, by L-BFGS-B in the pixel box [0, 1].

    Parameters
    ----------
    model : keras.Model
        The model the update was computed on (the server sent it, so it knows it).
    observed : list of arrays
        The update, aligned with ``model.trainable_variables``.
    labels : array-like of int
        One label per image searched for (:func:`idlg_label` for a single image).
    l2_norm_clip : float or None
        Clip the candidate's gradient to this norm before comparing (an update clipped by the client).
    max_iter : int
        L-BFGS iterations at most.
    seed : int, Generator or None
        The random start, uniform in [0, 1].

    Returns
    -------
    (numpy.ndarray, float, int)
        The images, shape ``(len(labels),) + input shape``, the final gradient distance, the iterations.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) == 0:
        raise InvalidParameterError("labels must hold at least one label, got none")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    if l2_norm_clip is not None:
        l2_norm_clip = check_real(l2_norm_clip, "l2_norm_clip", min_value=0, include_boundaries="neither")
    shape = (len(labels), *model.inputs[0].shape[1:])
    objective = matching_objective(model, labels, observed, l2_norm_clip)

    def f(v):
        distance, grad = objective(tf.constant(v.reshape(shape), tf.float32))
        return float(distance), grad.numpy().astype(np.float64).ravel()

    start = as_generator(seed).uniform(0.0, 1.0, size=int(np.prod(shape)))
    best, distance, info = fmin_l_bfgs_b(f, start, bounds=[(0.0, 1.0)] * start.size, maxiter=max_iter,
                                         factr=10.0, pgtol=1e-12)
    return best.reshape(shape).astype(np.float32), float(distance), int(info["nit"])


def image_errors(reconstruction, images):
    """MSE of every (true image, reconstruction) pair, shape ``(len(images), len(reconstruction))``."""
    diff = np.asarray(images, float)[:, None] - np.asarray(reconstruction, float)[None]
    return np.mean(diff.reshape(*diff.shape[:2], -1) ** 2, axis=2)


def label_only_mse(images, labels, public_images, public_labels):
    """What the labels alone give: the smallest MSE between one of ``images`` and the mean public image
    of its class. A reconstruction no closer than this has learnt nothing beyond the labels."""
    public_images, public_labels = np.asarray(public_images, float), np.asarray(public_labels)
    labels = np.asarray(labels).reshape(-1)
    missing = sorted(set(labels.tolist()) - set(public_labels.tolist()))
    if missing:
        raise InvalidParameterError(f"public_labels has no image of class {missing}")
    means = np.stack([public_images[public_labels == c].mean(axis=0) for c in labels])
    return float(np.min(np.diag(image_errors(means, images))))


def psnr(mse):
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``10 log10(1 / MSE)`` (inf for a perfect copy)."""
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(1.0 / mse))


@dataclasses.dataclass(frozen=True, eq=False)
class Inversion(OneRowFrame):
    """One gradient-inversion attack and how close it came.

    ``true_image`` and ``reconstruction`` are the closest (true, rebuilt) pair: for a batch, the
    attacker's best case. ``mse`` and ``psnr`` compare that pair; ``label`` is what the attacker used.
    """

    variant: str
    batch_size: int
    l2_norm_clip: float | None
    noise_multiplier: float | None
    true_label: int
    label: int
    gradient_distance: float
    iterations: int
    mse: float
    psnr: float
    true_image: np.ndarray = dataclasses.field(repr=False)
    reconstruction: np.ndarray = dataclasses.field(repr=False)

    def to_frame(self, index=None):
        """One row of the numbers (the images left out)."""
        frame = super().to_frame(index)
        return frame.drop(columns=["true_image", "reconstruction"])


def observe_update(model, images, labels, *, variant="raw", l2_norm_clip=1.0, noise_multiplier=1.0, seed=0):
    """The update the server sees for ``variant``: ``"raw"`` or ``"batch"`` (:func:`client_gradient`) or
    ``"clipped+noised"`` (:func:`clipped_noised_gradient`)."""
    check_choice(variant, "variant", VARIANTS)
    if variant == "clipped+noised":
        return clipped_noised_gradient(model, images, labels, l2_norm_clip=l2_norm_clip,
                                       noise_multiplier=noise_multiplier, seed=seed)
    return client_gradient(model, images, labels)


def attack(model, images, labels, *, variant="raw", l2_norm_clip=1.0, noise_multiplier=1.0, max_iter=500, seed=0):
    """Observe one client's update of ``images`` and invert it, as the server would; score it against the truth.

    Single-image variants read the label off the update (:func:`idlg_label`); ``"batch"`` hands the
    attacker the true labels. See the module docstring for what each variant means.

    Returns
    -------
    Inversion

    Examples
    --------
    >>> from mlsec_lessons.data import load_digits
    >>> d = load_digits()
    >>> model = global_model(d).model                                                  # doctest: +SKIP
    >>> attack(model, d.x_train[:1], d.y_train[:1]).mse < 1e-4                         # doctest: +SKIP
    True
    """
    images, labels = _check_batch(model, images, labels)
    check_choice(variant, "variant", VARIANTS)
    check_real(noise_multiplier, "noise_multiplier", min_value=0)
    if variant != "batch" and len(images) != 1:
        raise InvalidParameterError(f"variant {variant!r} attacks one image, got a batch of {len(images)}")
    observed = observe_update(model, images, labels, variant=variant, l2_norm_clip=l2_norm_clip,
                              noise_multiplier=noise_multiplier, seed=seed)
    guess = labels if variant == "batch" else np.array([idlg_label(observed)])
    clip = l2_norm_clip if variant == "clipped+noised" else None
    rebuilt, distance, iterations = invert_gradient(model, observed, guess, l2_norm_clip=clip,
                                                    max_iter=max_iter, seed=seed)
    errors = image_errors(rebuilt, images)
    i, j = np.unravel_index(np.argmin(errors), errors.shape)
    noise = noise_multiplier if variant == "clipped+noised" else None
    return Inversion(variant, len(images), clip, noise, int(labels[i]), int(guess[j]), distance, iterations,
                     float(errors[i, j]), psnr(errors[i, j]), images[i], rebuilt[j])


def analytic_input(gradients):
    """The input of a single-image update, read off a first Dense layer with a bias by one division.

    ``d loss / d W1[:, j] = x * delta_j`` and ``d loss / d b1[j] = delta_j``, so any unit ``j`` with
    ``delta_j != 0`` gives ``x`` exactly (Phong et al. 2017); the unit with the largest ``|delta_j|``
    is the least sensitive to rounding. For a batch the same division gives a mixture of its images.

    Examples
    --------
    >>> x = np.array([0.2, 0.7]); delta = np.array([0.5, -0.1, 0.0])
    >>> analytic_input([np.outer(x, delta), delta]).tolist()
    [0.2, 0.7]
    """
    kernel, bias = (np.asarray(g, dtype=float) for g in gradients[:2])
    if kernel.ndim != 2 or bias.shape != kernel.shape[1:]:
        raise InvalidParameterError(f"the first two gradients must be a Dense kernel and its bias, "
                                    f"got shapes {kernel.shape} and {bias.shape}")
    j = int(np.argmax(np.abs(bias)))
    if bias[j] == 0:
        raise InvalidParameterError("every first-layer bias gradient is 0: the update carries no input")
    return kernel[:, j] / bias[j]


def plot_inversions(results, axes=None):
    """Each attack's true image above its reconstruction, titled with the variant, MSE and label.

    Parameters
    ----------
    results : sequence of Inversion
    axes : array of matplotlib Axes, shape (2, len(results)), optional
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, len(results), figsize=(2.2 * len(results), 4.6), dpi=100,
                               layout="constrained", squeeze=False)
    for col, r in zip(np.asarray(axes).T, results):
        col[0].imshow(r.true_image.squeeze(), cmap="gray", vmin=0, vmax=1)
        name = r.variant if r.noise_multiplier is None else f"clipped, z={r.noise_multiplier:g}"
        col[0].set_title(f"{name}, B={r.batch_size}\ntrue label {r.true_label}", fontsize="small")
        col[1].imshow(r.reconstruction.squeeze(), cmap="gray", vmin=0, vmax=1)
        col[1].set_title(f"rebuilt (label {r.label})\nMSE {r.mse:.3g}", fontsize="small")
        for ax in col:
            ax.set_xticks([])
            ax.set_yticks([])
    return axes
