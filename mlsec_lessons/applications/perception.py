"""Case 3, perception: attacks a camera could see, on the digits as a stand-in for road signs.

The source claims "99.9% attack resistance" and "zero successful adversarial attacks" for a
perception model defended by adversarial training. An L-inf budget of eps per pixel (what
adversarial training defends) is not what a physical attacker uses. Two attacks that are:

* an **adversarial patch** (Brown et al., 2017): one small square sticker, the same for every
  image, optimised so that wherever it is stuck the model misreads the image (or reads a
  chosen target class). The placement is random at every optimisation step (expectation over
  transformation, EOT), so the patch does not depend on where it lands. Inside the square the
  pixels may take any value in [0, 1]: no eps bounds them.
* **physical-style transformations** (Engstrom et al., 2019): small rotations, shifts and
  brightness changes, as a camera sees a sign from another angle in other light. The attack
  tries every transformation of a small grid and wins if any one of them fools the model; it
  needs only the model's predictions.
"""
import dataclasses
import itertools

import numpy as np
import tensorflow as tf
from scipy import ndimage

from .. import attacks
from ..errors import InvalidParameterError
from ..records import OneRowFrame
from ..validation import as_generator, check_int, check_real, check_xy


def _labels(model, x):
    """Predicted labels in one call (``model.predict`` costs tens of ms per call, and there are many)."""
    return np.argmax(model(np.asarray(x, dtype=np.float32), training=False).numpy(), axis=1)


# --------------------------------------------------------------------------- the patch
def placements(image_shape, size):
    """Every top-left corner (row, col) at which a ``size`` x ``size`` patch fits inside the image.

    Examples
    --------
    >>> placements((8, 8, 1), 7).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    h, w = image_shape[:2]
    size = _check_size(size, h, w)
    return np.array(list(itertools.product(range(h - size + 1), range(w - size + 1))))


def _check_size(size, h, w):
    return check_int(size, "size", min_value=1, max_value=min(h, w))


def apply_patch(x, patch, corners):
    """Paste ``patch`` over each image of ``x`` at its top-left corner (the pixels under it are lost).

    Parameters
    ----------
    x : ndarray of shape (n, h, w, c)
    patch : ndarray of shape (size, size, c)
    corners : ndarray of shape (n, 2) or (2,)
        Top-left (row, col) for each image, or one for all.

    Examples
    --------
    >>> out = apply_patch(np.zeros((1, 4, 4, 1)), np.ones((2, 2, 1)), [1, 2])
    >>> out[0, :, :, 0].astype(int).tolist()
    [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    """
    x, patch = np.array(x, dtype=np.float32), np.asarray(patch, dtype=np.float32)
    if x.ndim != 4 or patch.ndim != 3 or patch.shape[0] != patch.shape[1] or patch.shape[2] != x.shape[3]:
        raise InvalidParameterError(f"x must be (n, h, w, c) and patch (size, size, c); got {x.shape} and {patch.shape}")
    size = _check_size(patch.shape[0], *x.shape[1:3])
    corners = np.broadcast_to(np.asarray(corners, dtype=int), (len(x), 2))
    if corners.min() < 0 or np.any(corners > np.array(x.shape[1:3]) - size):
        raise InvalidParameterError(f"a corner puts the {size}x{size} patch outside the {x.shape[1]}x{x.shape[2]} image")
    for i, (r, c) in enumerate(corners):
        x[i, r:r + size, c:c + size] = patch
    return x


def _placement_operators(image_shape, size):
    """For every placement: a mask (1 where the patch goes) and a 0/1 matrix that moves the patch there.

    ``patched = x * (1 - mask[p]) + move[p] @ patch`` is differentiable in the patch, so one
    gather per batch places each image's patch wherever its random corner says.
    """
    h, w, c = image_shape
    corners = placements(image_shape, size)
    move = np.zeros((len(corners), h * w * c, size * size * c), np.float32)
    patch_index = np.arange(size * size * c).reshape(size, size, c)
    for p, (r, col) in enumerate(corners):
        image_index = np.arange(h * w * c).reshape(h, w, c)[r:r + size, col:col + size]
        move[p, image_index.ravel(), patch_index.ravel()] = 1.0
    return move.sum(axis=2), move  # mask (n_placements, h*w*c), move (n_placements, h*w*c, size*size*c)


def train_patch(model, x, y, size, target=None, *, steps=300, batch_size=128, learning_rate=0.05, seed=0):
    """Optimise one ``size`` x ``size`` patch that fools ``model`` wherever it is placed.

    Each step draws a batch of images and a random placement for each (EOT over the
    placement), and takes an Adam step on the patch that raises the cross-entropy of the
    true label (untargeted) or lowers that of ``target``; the patch is kept in [0, 1].

    Parameters
    ----------
    model : keras.Model
        Image classifier that outputs logits.
    x : ndarray of shape (n, h, w, c)
        Images in [0, 1] to optimise on (training images, not the test set).
    y : ndarray of shape (n,)
        Their labels.
    size : int
        Side of the square patch, in pixels.
    target : int or None
        The class the patch should produce; ``None`` for any wrong class.
    steps, batch_size : int
    learning_rate : float
    seed : int

    Returns
    -------
    ndarray of shape (size, size, c)

    Examples
    --------
    >>> patch = train_patch(model, d.x_train, d.y_train, 3)              # doctest: +SKIP
    """
    n_classes = model.output_shape[-1]
    x, y = check_xy(x, y, ndim=4, bounds=(0.0, 1.0), n_classes=n_classes)
    if target is not None:
        target = check_int(target, "target", min_value=0, max_value=n_classes - 1)
    steps, batch_size = check_int(steps, "steps", min_value=1), check_int(batch_size, "batch_size", min_value=1)
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    rng = as_generator(seed)
    mask, move = _placement_operators(x.shape[1:], size)
    patch = tf.Variable(rng.uniform(0, 1, size * size * x.shape[3]).astype(np.float32))
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    flat = x.reshape(len(x), -1)
    labels = (np.full(len(x), target) if target is not None else y).astype(np.int32)
    sign = 1.0 if target is not None else -1.0  # untargeted: climb the loss of the true label
    for _ in range(steps):
        # a fresh batch, and a random placement for each image in it (EOT over the placement)
        idx = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        where = rng.integers(0, len(mask), size=len(idx))
        grad = _patch_gradient(model, flat[idx], mask[where], move[where], patch.numpy(), labels[idx], x.shape[1:])
        optimizer.apply_gradients([(tf.constant(sign * grad), patch)])
        patch.assign(tf.clip_by_value(patch, 0.0, 1.0))  # a printed sticker has valid pixel values
    return patch.numpy().reshape(size, size, x.shape[3])


def _patch_gradient(model, images, mask, move, patch, labels, image_shape):
    """The gradient of the mean cross-entropy with respect to the patch, by the chain rule.

    ``patched = images * (1 - mask) + move @ patch`` for each image's placement, so the patch's
    gradient is ``move^T`` times the input gradient at the patched image: the attacks module's
    compiled :func:`~mlsec_lessons.attacks.input_gradient`, whatever the patch size or batch length.
    """
    patched = images * (1 - mask) + np.einsum("bij,j->bi", move, patch)
    grad_x = attacks.input_gradient(model, patched.reshape(-1, *image_shape), labels).reshape(len(images), -1)
    return np.einsum("bij,bi->j", move, grad_x) / len(images)  # the mean over the batch, as the loss is


@dataclasses.dataclass(frozen=True)
class PatchSuccess(OneRowFrame):
    """How often one patch succeeds, over the images the model gets right without it."""

    random_placement: float  # success averaged over every placement: a sticker stuck anywhere
    best_placement: float    # share of images for which some placement succeeds: an attacker who picks the spot
    n: int                   # images that counted


def patch_success_rate(model, x, y, patch, target=None):
    """Success of a patch at every placement, over the images the model gets right without it.

    Untargeted (``target=None``): the patched image is misclassified, the ASR of
    :func:`mlsec_lessons.metrics.attack_success_rate`. Targeted: it is read as ``target``
    (images of the target class do not count).

    Returns
    -------
    PatchSuccess
        ``random_placement``: success averaged over every placement (a sticker stuck anywhere);
        ``best_placement``: share of images for which *some* placement succeeds (an attacker who
        picks the spot); ``n``: how many images counted.

    Examples
    --------
    >>> patch_success_rate(model, d.x_test, d.y_test, patch).random_placement   # doctest: +SKIP
    """
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    eligible = _labels(model, x) == y
    if target is not None:
        eligible &= y != target
    if not eligible.any():
        raise InvalidParameterError("no image is classified correctly (and of another class than the target)")
    x, y = x[eligible], y[eligible]
    corners = placements(x.shape[1:], patch.shape[0])
    pred = _labels(model, np.concatenate([apply_patch(x, patch, c) for c in corners])).reshape(len(corners), len(x)).T
    hits = pred != y[:, None] if target is None else pred == target
    return PatchSuccess(random_placement=float(hits.mean()), best_placement=float(hits.any(axis=1).mean()),
                        n=int(eligible.sum()))


# --------------------------------------------------------------------------- physical-style transformations
def transform(x, angle=0.0, shift=(0, 0), brightness=1.0):
    """Rotate (degrees, about the centre), shift (pixels, bilinear, zero fill) and scale the brightness of images.

    Examples
    --------
    >>> img = np.zeros((1, 3, 3, 1)); img[0, 1, 1] = 0.5
    >>> transform(img, shift=(0, 1), brightness=2.0)[0, :, :, 0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise InvalidParameterError(f"x must be a batch of images (n, h, w, c), got shape {x.shape}")
    brightness = check_real(brightness, "brightness", min_value=0, include_boundaries="neither")
    out = x
    if angle:
        out = ndimage.rotate(out, angle, axes=(1, 2), reshape=False, order=1, mode="constant")
    if any(shift):
        out = ndimage.shift(out, (0, *shift, 0), order=1, mode="constant")
    return np.clip(out * brightness, 0.0, 1.0).astype(np.float32)


def transformation_grid(angles=(-10, 0, 10), shifts=(-0.5, 0, 0.5), brightness=(0.8, 1.0, 1.2)):
    """Every combination of a rotation, a shift (rows and columns) and a brightness factor.

    Examples
    --------
    >>> len(transformation_grid())
    81
    """
    return [dict(angle=a, shift=(dr, dc), brightness=b)
            for a, dr, dc, b in itertools.product(angles, shifts, shifts, brightness)]


@dataclasses.dataclass(frozen=True)
class SpatialAttackResult(OneRowFrame):
    """What the grid of physical-style transformations does to one model."""

    accuracy_random_transformation: float  # accuracy averaged over the grid: the camera's ordinary variation
    accuracy_worst_transformation: float   # share of images that every transformation leaves correct
    attack_success_rate: float             # of the images right as they are, the share some transformation flips


def spatial_attack(model, x, y, grid=None):
    """Grid search over physical-style transformations: is there one that makes the model wrong?

    Returns
    -------
    SpatialAttackResult
        ``accuracy_random_transformation``: accuracy averaged over the grid (the camera's
        ordinary variation); ``accuracy_worst_transformation``: share of images that every
        transformation leaves correct; ``attack_success_rate``: among the images classified
        correctly as they are, the share that some transformation flips.

    Examples
    --------
    >>> spatial_attack(model, d.x_test, d.y_test).attack_success_rate   # doctest: +SKIP
    """
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    grid = transformation_grid() if grid is None else grid
    if len(grid) == 0:
        raise InvalidParameterError("grid must hold at least one transformation")
    # every transformed copy in one forward pass: (n_transforms * n) small images
    pred = _labels(model, np.concatenate([transform(x, **t) for t in grid])).reshape(len(grid), len(x))
    correct = (pred == y).T
    clean = _labels(model, x) == y
    return SpatialAttackResult(accuracy_random_transformation=float(correct.mean()),
                               accuracy_worst_transformation=float(correct.all(axis=1).mean()),
                               attack_success_rate=float(np.mean(~correct[clean].all(axis=1))))


def random_transformations(x, copies=1, *, max_angle=10.0, max_shift=0.5, brightness=(0.8, 1.2), seed=0):
    """``copies`` randomly transformed versions of every image, drawn from the ranges of the attack's grid.

    Training on them (data augmentation) is the defense that matches this threat model, as
    adversarial training with an L-inf ball matches the L-inf one.

    Examples
    --------
    >>> random_transformations(np.zeros((4, 8, 8, 1)), copies=3).shape
    (12, 8, 8, 1)
    """
    x = np.asarray(x, dtype=np.float32)
    copies = check_int(copies, "copies", min_value=1)
    rng = as_generator(seed)
    out = []
    for _ in range(copies):
        for image in x:
            out.append(transform(image[None], angle=rng.uniform(-max_angle, max_angle),
                                 shift=tuple(rng.uniform(-max_shift, max_shift, 2)),
                                 brightness=rng.uniform(*brightness))[0])
    return np.stack(out)


def per_image_patch(model, x, y, size, corner, *, steps=50, eps_step=None):
    """A cross-check of :func:`train_patch`: PGD on the pixels of one square, for each image on its own.

    The course's PGD (:func:`mlsec_lessons.attacks.pgd`) with the square as its ``mask`` and an
    L-inf radius of 1 (any value in [0, 1]), from a grey square (``eps_step=None``: the course's
    :func:`~mlsec_lessons.attacks.default_eps_step` for that radius). A universal patch at the same
    corner is one of the points this attack may find for every image, so it should succeed at
    least as often.

    Returns
    -------
    ndarray
        The attacked images (the best point found for each).
    """
    x = np.asarray(x, dtype=np.float32)
    region = apply_patch(np.zeros_like(x[:1]), np.ones((size, size, x.shape[3])), corner)[0]
    start = apply_patch(x, np.full((size, size, x.shape[3]), 0.5), corner)  # a grey square to start from
    return attacks.pgd(model, start, y, 1.0, steps=steps, eps_step=eps_step, random_start=False, mask=region)


# --------------------------------------------------------------------------- the case, measured
@dataclasses.dataclass(frozen=True, eq=False)
class PerceptionCase:
    """What :func:`perception_case` measured, keyed by model name."""

    fitted: dict                             # name -> Fitted (the model and where it came from)
    clean: dict[str, float]                  # name -> clean test accuracy
    pgd: dict[str, float]                    # name -> ASR of PGD-40 at eps 0.1 (what adversarial training defends)
    spatial: dict[str, SpatialAttackResult]  # name -> spatial_attack(...)
    patches: dict[str, dict[int, np.ndarray]]             # name -> {size: patch}
    patch: dict[str, dict[int, dict[str, PatchSuccess]]]  # name -> {size: {"adversarial": ..., "random noise": ...}}
    config: dict

    @property
    def models(self):
        """name -> keras.Model."""
        return {name: f.model for name, f in self.fitted.items()}

    def to_frame(self):
        """Attack success rate of every attack on every model (among the test images each model gets right)."""
        import pandas as pd

        rows = {}
        for name in self.fitted:
            row = {"clean accuracy": self.clean[name], "PGD-40, eps 0.1": self.pgd[name],
                   "worst of the transformation grid": self.spatial[name].attack_success_rate}
            for size, r in self.patch[name].items():
                row[f"{size}x{size} patch, random place"] = r["adversarial"].random_placement
                row[f"{size}x{size} patch, best place"] = r["adversarial"].best_placement
            rows[name] = row
        return pd.DataFrame(rows).T


def perception_case(*, sizes=(2, 3, 4), patch_steps=50, n_eval=270, seed=0, cache=True):
    """Train (or load) three small CNNs and attack each with PGD, a transformation grid and patches.

    The models: the plain CNN and the PGD-trained CNN of lesson 03 (same settings, so the same
    cache entries), and one trained on randomly transformed copies of the training images.
    Clean accuracy and PGD use all 540 test images. The transformation grid and the patches
    (every placement of each) use the first ``n_eval`` of them, which keeps the forward passes
    to a few hundred thousand; the random-noise patch, a baseline, is measured on the plain CNN only.
    Patches are optimised on the training images.

    Examples
    --------
    >>> case = perception_case()                                     # doctest: +SKIP
    >>> case.to_frame()                                              # doctest: +SKIP
    """
    from .. import data, metrics, models
    from ..defenses import adversarial_train

    d = data.load_digits(seed=seed)
    augmented = dataclasses.replace(
        d, name="digits-transformed", y_train=np.tile(d.y_train, 2),
        x_train=np.concatenate([d.x_train, random_transformations(d.x_train, copies=1, seed=seed)]))
    trained = {
        "plain CNN": models.train(d, "small_cnn", epochs=30, seed=seed, cache=cache),
        "adversarially trained CNN (PGD, eps 0.1)": adversarial_train(d, method="pgd", eps=0.1, steps=5, epochs=15,
                                                                      seed=seed, cache=cache),
        "CNN trained on transformed images": models.train(augmented, "small_cnn", epochs=20, seed=seed, cache=cache),
    }
    clean, pgd, spatial, patches, patch = {}, {}, {}, {}, {}
    x_eval, y_eval = d.x_test[:n_eval], d.y_test[:n_eval]
    noise = as_generator(seed)
    for name, model in ((name, f.model) for name, f in trained.items()):
        y_clean = _labels(model, d.x_test)
        clean[name] = float(np.mean(y_clean == d.y_test))
        x_adv = attacks.pgd(model, d.x_test, d.y_test, 0.1, steps=40, eps_step=0.01, seed=seed)
        pgd[name] = metrics.attack_success_rate(d.y_test, y_clean, _labels(model, x_adv))
        spatial[name] = spatial_attack(model, x_eval, y_eval)
        patches[name], patch[name] = {}, {}
        for size in sizes:
            p = train_patch(model, d.x_train, d.y_train, size, steps=patch_steps, seed=seed)
            patches[name][size] = p
            patch[name][size] = {"adversarial": patch_success_rate(model, x_eval, y_eval, p)}
            if name == "plain CNN":  # does the optimisation matter, or would any sticker do?
                patch[name][size]["random noise"] = patch_success_rate(model, x_eval, y_eval,
                                                                       noise.uniform(0, 1, p.shape))
    return PerceptionCase(trained, clean, pgd, spatial, patches, patch,
                          dict(sizes=list(sizes), patch_steps=patch_steps, seed=seed, n_eval=len(y_eval),
                               grid=len(transformation_grid()), n_test=len(d.y_test)))
