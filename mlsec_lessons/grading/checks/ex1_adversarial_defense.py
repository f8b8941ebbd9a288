"""Checks for exercise 1, adversarial defense.

``impl`` is the student's module, ``ref`` the reference solution, both on the digits split of
:func:`mlsec_lessons.data.load_digits`. Four kinds of checks:

* the PGD step and the attack, on a small fixed model: the step matches the reference, stays in
  the eps-ball and the pixel range, moves each pixel by ``eps_step``, raises the loss, and takes
  ``eps_step`` by keyword only (the course's convention: ``eps`` positional, ``steps`` and
  ``eps_step`` keyword-only);
* one step of adversarial training (``_train_step``) on a fixed model, batch and optimizer: the
  update it applies is the gradient of the mean loss on the batch's PGD examples (the judge
  computes both that gradient and the clean one), and the loss it reports is theirs;
* the robust model, trained by the student's code: its accuracy under the *reference's* PGD
  (an attack the student did not write, so a weak attack cannot flatter the model) is within
  5 points of the reference model's;
* the detector: its score on fixed clean and adversarial inputs equals the reference's, and on
  the reference's robust model it has at least the reference's detection rate, at no more than
  its false-positive rate, on held-out data;
* the report of ``evaluate_robustness`` on a fixed model and a fixed attack: the same numbers
  as the reference's;
* ``certify`` (randomized smoothing), on classifiers the judge passes as callables: each noisy
  batch comes back to the judge, which records it, so the judge knows every label the student's
  code saw and recomputes CERTIFY from them exactly (the class from the first ``n0`` samples of a
  row, the one-sided Clopper-Pearson bound from the next ``n``); on a linear rule, whose smoothed
  radius is known in closed form (the distance to the boundary), the radius is at most the true
  one and close to it; the boundary ``p_lower = 1/2``, the seed and the argument checks each have
  their own check.

Training is the expensive part, so each robust model is trained once (module-scoped fixtures).
A check that needs the reference model first calls the student's code on something cheap, so
that an unfinished file fails fast instead of waiting for the reference to train.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import beta, norm

from mlsec_lessons.data import load_digits
from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.grading.expect import expect_close, expect_value_error, show
from mlsec_lessons.grading.plugin import kept
from mlsec_lessons.grading.remote import seed
from mlsec_lessons.models import compile_for_training, fit_epochs, small_cnn

# the library's answers to this exercise (the data loaders and models stay allowed)
OFF_LIMITS = {"mlsec_lessons.attacks": "*", "mlsec_lessons.art_bridge": "*", "mlsec_lessons.metrics": "*",
              "mlsec_lessons.defenses.adversarial_training": "*", "mlsec_lessons.defenses.detection": "*",
              "mlsec_lessons.defenses.preprocessing": "*", "mlsec_lessons.defenses.evaluation": "*",
              "mlsec_lessons.defenses.smoothing": "*", "mlsec_lessons.privacy_attacks.auditing": ["clopper_pearson"]}

TIME_LIMIT = 150  # seconds for the whole run; the solution needs about 30 on a laptop
CHECK_TIME_LIMIT = 60  # one check, including the training its fixtures do
# imported once by the fork server each worker is forked from (grading/forkserver.py): ~3 s a worker
PRELOAD = ["numpy", "tensorflow", "keras"]

EPS = 0.1
ROBUST_TOLERANCE = 0.05  # accuracy under attack: within 5 points of the reference model
TPR_TOLERANCE, FPR_TOLERANCE = 0.05, 0.03


def points(n):
    return pytest.mark.points(n)


def loss(model, x, y):
    """The per-sample cross-entropy, computed here so that the student's loss is not trusted."""
    return keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True).numpy()


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), axis=1) == y))


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def small(digits):
    """64 held-out digits, as tensors."""
    return tf.constant(digits.x_test[:64]), tf.constant(digits.y_test[:64])


@pytest.fixture(scope="module")
def tiny_model(digits):
    """A small CNN, seeded, trained for one quick epoch: cheap, and its gradients are not tiny. The
    judge trains it once (kept) and builds it afresh from those weights for each file it grades."""
    def train():
        keras.utils.set_random_seed(0)
        model = compile_for_training(small_cnn())
        fit_epochs(model, digits.x_train, digits.y_train, epochs=1, batch_size=64, seed=0, progress=False)
        return model.get_weights()

    weights = kept("ex1 tiny_model", train)
    keras.utils.set_random_seed(0)  # the same state after this fixture, trained now or earlier
    model = compile_for_training(small_cnn())
    model.set_weights(weights)
    return model


def robust(module, digits):
    seed(module, 0)
    defense = module.AdversarialDefense(eps=EPS)
    return defense, defense.train_robust_model(digits.x_train, digits.y_train)


@pytest.fixture(scope="module")
def impl_robust(impl, digits):
    """The student's defense and the model its ``train_robust_model`` returns."""
    return robust(impl, digits)


@pytest.fixture(scope="module")
def ref_robust(ref, digits):
    return robust(ref, digits)


@pytest.fixture(scope="module")
def strong_attack(ref):
    """The fixed evaluation attack: the reference's PGD with 10 steps and a random start."""
    attack = ref.AdversarialDefense(eps=EPS, steps=10, eps_step=EPS / 4)

    def run(model, x, y):
        keras.utils.set_random_seed(1)
        return attack.adversarial_examples(model, x, y)
    return run


@pytest.fixture(scope="module")
def ref_test_attacked(ref_robust, strong_attack, digits):
    """The held-out digits attacked, once, by the fixed attack against the reference model."""
    return strong_attack(ref_robust[1], digits.x_test, digits.y_test)


def numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


# --------------------------------------------------------------------------- the PGD step
@points(2)
def test_pgd_step_matches_reference(impl, ref, tiny_model, small):
    x, y = small
    x_adv = x + 0.03  # a point inside the ball (the pixels at 1 go past the range: the step clips them)
    got = numpy(impl.pgd_step(tiny_model, x_adv, x, y, 0.1, eps_step=0.05, clip=(0.0, 1.0)))
    want = numpy(ref.pgd_step(tiny_model, x_adv, x, y, 0.1, eps_step=0.05, clip=(0.0, 1.0)))
    assert got.shape == want.shape, f"pgd_step returned shape {got.shape}, expected {want.shape}"
    wrong = np.mean(np.abs(got - want) > 1e-5)
    assert wrong < 0.01, (
        f"pgd_step(model, x + 0.03, x, y, eps=0.1, eps_step=0.05) differs from the reference on {wrong:.0%} "
        "of the pixels: step by eps_step * sign(gradient of the loss), then clip into [x - eps, x + eps], "
        "then into the clip range")


@points(2)
def test_pgd_step_stays_in_eps_ball_and_clip(impl, tiny_model, small):
    x, y = small
    x_adv = x
    for step in range(6):  # 6 steps of 0.07 could go 0.42 away: only the projection keeps them in
        x_adv = tf.constant(numpy(impl.pgd_step(tiny_model, x_adv, x, y, 0.1, eps_step=0.07, clip=(0.0, 1.0))), tf.float32)
        distance = float(np.max(np.abs(x_adv.numpy() - x.numpy())))
        assert distance <= 0.1 + 1e-6, (
            f"after {step + 1} steps of pgd_step(eps=0.1, eps_step=0.07) a pixel is {distance:.3g} away from "
            "the clean image: project back onto the eps-ball, clip(x_adv, x - eps, x + eps), after every step")
        lo, hi = float(x_adv.numpy().min()), float(x_adv.numpy().max())
        assert lo >= 0.0 and hi <= 1.0, (
            f"after {step + 1} steps of pgd_step the pixels range from {lo:.3g} to {hi:.3g}, outside "
            "clip=(0.0, 1.0): clip into the valid range after the projection")


@points(1)
def test_pgd_step_moves_each_pixel_by_eps_step(impl, tiny_model, small):
    x, y = small
    moved = np.abs(numpy(impl.pgd_step(tiny_model, x, x, y, 0.5, eps_step=0.01, clip=(0.0, 1.0))) - x.numpy())
    inner = (x.numpy() > 0.05) & (x.numpy() < 0.95)  # pixels that no clipping can stop
    share = np.mean(np.isclose(moved[inner], 0.01, atol=1e-6))
    assert share > 0.9, (
        f"with eps=0.5 and eps_step=0.01, only {share:.0%} of the pixels moved by exactly 0.01 (the largest "
        f"move was {moved.max():.3g}): each pixel moves by eps_step times the sign of its gradient")


@points(2)
def test_pgd_step_increases_the_loss(impl, tiny_model, small):
    x, y = small
    before = loss(tiny_model, x, y)
    after = loss(tiny_model, tf.constant(numpy(impl.pgd_step(tiny_model, x, x, y, 0.1, eps_step=0.02,
                                                                    clip=(0.0, 1.0))), tf.float32), y)
    up = np.mean(after > before)
    assert up > 0.9 and after.mean() > before.mean(), (
        f"one pgd_step raised the loss on only {up:.0%} of the samples (mean loss {before.mean():.3g} -> "
        f"{after.mean():.3g}): step along +sign(gradient), up the loss, not down")


SIGNATURE = "pgd_step(model, x_adv, x, y, eps, *, eps_step, clip=(0.0, 1.0))"


@points(1)
def test_pgd_step_takes_eps_step_by_keyword(impl, tiny_model, small):
    x, y = small
    # first the call every attack of the course takes: eps positional, eps_step named, clip by default
    try:
        named = numpy(impl.pgd_step(tiny_model, x, x, y, 0.1, eps_step=0.05))
    except TypeError as e:
        raise AssertionError(f"pgd_step(model, x, x, y, 0.1, eps_step=0.05) raised TypeError: {e}. The "
                             f"signature is {SIGNATURE}: clip has the default (0.0, 1.0)") from None
    assert named.shape == tuple(x.shape), f"pgd_step returned shape {named.shape}, expected {tuple(x.shape)}"
    # then the old call, eps_step in the sixth place: it must be refused, not read as something else
    try:
        impl.pgd_step(tiny_model, x, x, y, 0.1, 0.05)
    except TypeError:
        return
    except (NotImplementedError, AssertionError):  # a stub's hint, or the grader's own verdict
        raise
    except Exception as e:
        raise AssertionError(f"pgd_step(model, x, x, y, 0.1, 0.05) raised {type(e).__name__}: {e}; with "
                             f"{SIGNATURE} Python itself refuses that call with a TypeError") from None
    raise AssertionError(
        "pgd_step(model, x, x, y, 0.1, 0.05) was accepted: your pgd_step takes eps_step by position. eps_step "
        "(and clip) are keyword-only, as steps and eps_step are in every attack of the course, so that a step "
        f"size is never read as a budget or a range: write the signature as {SIGNATURE}, with the bare * after eps")


# --------------------------------------------------------------------------- the attack
@points(1)
def test_perturb_respects_eps(impl, tiny_model, small):
    x, y = small
    for eps in (0.02, 0.2):
        seed(impl, 0)
        x_adv = numpy(impl.AdversarialDefense(eps=eps, steps=4).perturb(tiny_model, x, y))
        distance = float(np.max(np.abs(x_adv - x.numpy())))
        assert distance <= eps + 1e-6 and distance > eps / 2, (
            f"AdversarialDefense(eps={eps}).perturb moved a pixel by at most {distance:.3g}: the random start "
            f"and every step must use the defense's own eps ({eps})")
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, (
            f"AdversarialDefense(eps={eps}).perturb returned pixels outside clip=(0.0, 1.0)")


@points(2)
def test_perturb_is_as_strong_as_reference(impl, ref, request, tiny_model, small, digits):
    impl.AdversarialDefense().perturb(tiny_model, *small)  # fails fast while unfinished
    _, model = request.getfixturevalue("ref_robust")
    x, y = tf.constant(digits.x_test), tf.constant(digits.y_test)
    results = {}
    for name, module in (("yours", impl), ("reference", ref)):
        seed(module, 0)
        perturb = module.AdversarialDefense(eps=EPS).perturb
        results[name] = accuracy(model, numpy((perturb if module is impl else tf.function(perturb))(model, x, y)),
                                 digits.y_test)
    assert results["yours"] <= results["reference"] + 0.05, (
        f"your perturb leaves the reference's robust model {results['yours']:.3f} accuracy on the held-out "
        f"digits; the reference's PGD with the same settings leaves {results['reference']:.3f}: "
        "your attack is too weak (random start, then `steps` steps of pgd_step)")


@points(2)
def test_rejects_bad_input(impl, tiny_model, small):
    x, y = (v.numpy() for v in small)
    D = impl.AdversarialDefense
    cases = [
        ("for eps=-0.1", D(eps=-0.1).adversarial_examples, tiny_model, x, y),
        ("for steps=0", D(steps=0).adversarial_examples, tiny_model, x, y),
        ("for eps_step=0", D(eps_step=0.0).adversarial_examples, tiny_model, x, y),
        ("for X outside clip=(0.0, 1.0)", D().adversarial_examples, tiny_model, x * 16, y),
        ("when y has fewer labels than X has rows", D().adversarial_examples, tiny_model, x, y[:-1]),
        ("for an empty X_train", D().train_robust_model, x[:0], y[:0]),
        ("when y_test has fewer labels than X_test has rows", D().evaluate_robustness, tiny_model, x, y[:-1]),
    ]
    for why, fn, *args in cases:
        expect_value_error(fn, why, *args)


# --------------------------------------------------------------------------- adversarial training
STEP_LR = 0.01  # plain SGD, so that the update is -STEP_LR times the gradient the step applied
STEP_TOLERANCE = 0.15  # relative distance to the judge's adversarial gradient (another random start: ~0.05)


def worker_sgd(impl):
    """A Keras SGD optimizer made in the student's process, where ``_train_step`` runs: a Keras
    optimizer cannot travel there, and the step must use the optimizer it is given."""
    for path in (("keras",), ("tf", "keras")):
        try:
            module = impl
            for name in path:
                module = getattr(module, name)
            return module.optimizers.SGD(learning_rate=STEP_LR)
        except AttributeError:
            continue
    raise AssertionError("the grader makes the optimizer for _train_step with your file's Keras: keep the "
                         "exercise's `import keras` (or `import tensorflow as tf`)")


def mean_loss_and_gradient(model, x, y):
    """The batch's mean cross-entropy (the model in training mode) and its gradient, flattened."""
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True),
                                                                            from_logits=True))
    gradients = tape.gradient(value, model.trainable_variables)
    return float(value), np.concatenate([g.numpy().ravel() for g in gradients])


@pytest.fixture(scope="module")
def step_model(tiny_model):
    """A copy of the tiny model for one call of the student's ``_train_step``. It lives as long
    as the module: the worker keeps one copy per judge model (its id and weights), which the
    student's step changes, so no other model may come to share its id."""
    model = keras.models.clone_model(tiny_model)
    model.set_weights(tiny_model.get_weights())
    return model


@pytest.fixture(scope="module")
def student_step(impl, ref, step_model, small):
    """One call of the student's ``_train_step`` on a fixed batch: the loss it returned and the
    gradient it applied (the change of the weights over -STEP_LR), next to the judge's own mean
    loss and gradient on the clean batch and on its PGD examples (the reference's perturb)."""
    x, y = small
    before = [w.copy() for w in step_model.get_weights()]
    seed(impl, 0)
    defense = impl.AdversarialDefense(eps=EPS)
    reported = defense._train_step(step_model, worker_sgd(impl), x, y)
    # the same judge model, sent again, is the worker's copy the step changed: read it back
    defense.grader_readback_ = step_model
    after = defense.grader_readback_
    assert isinstance(after, keras.Model) and len(after.get_weights()) == len(before), (
        "the model given to _train_step no longer has its layers after the step")
    applied = np.concatenate([(b - a).ravel() for b, a in zip(before, after.get_weights())]) / STEP_LR
    clean_loss, clean_gradient = mean_loss_and_gradient(step_model, x, y)
    seed(ref, 0)
    x_adv = ref.AdversarialDefense(eps=EPS).perturb(step_model, x, y)
    adv_loss, adv_gradient = mean_loss_and_gradient(step_model, x_adv, y)
    return {"reported": reported, "applied": applied, "clean": (clean_loss, clean_gradient),
            "adversarial": (adv_loss, adv_gradient)}


def distance(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@points(3)
def test_train_step_updates_on_pgd_examples(student_step):
    applied = student_step["applied"]
    _, adv = student_step["adversarial"]
    _, clean = student_step["clean"]
    call = f"_train_step(model, SGD(learning_rate={STEP_LR}), x, y) with eps={EPS} on 64 held-out digits"
    assert np.all(np.isfinite(applied)), f"after {call} some weights are NaN or infinite"
    assert np.linalg.norm(applied) > 0, (
        f"{call} left the weights as they were: take the gradient of the loss with respect to "
        "model.trainable_variables and apply it with the optimizer the step is given (apply_gradients)")
    off, off_clean = distance(applied, adv), distance(applied, clean)
    if off <= STEP_TOLERANCE:
        return
    scale = np.linalg.norm(applied) / np.linalg.norm(adv)
    cosine = float(applied @ adv / np.linalg.norm(applied) / np.linalg.norm(adv))
    if off_clean < off:
        why = ("it is the gradient on the clean batch: replace the batch by its PGD examples (perturb) "
               "before the gradient step, and differentiate the loss on those")
    elif cosine < 0:
        why = "the weights moved up the loss: apply the gradient itself, the optimizer descends it"
    elif scale > 4:  # a sum over the 64 samples is 64 times the mean
        why = (f"it is {scale:.3g} times as large as the gradient of the mean loss: average the loss over "
               "the batch (tf.reduce_mean), do not sum it")
    else:
        why = ("differentiate the mean cross-entropy of the model (in training mode) on the PGD examples "
               "with respect to model.trainable_variables, and apply that with the optimizer")
    raise AssertionError(
        f"the update {call} applied is {off:.0%} away from the gradient of the mean loss on the batch's PGD "
        f"examples (and {off_clean:.0%} from the gradient on the clean batch): {why}")


@points(1)
def test_train_step_returns_the_loss_on_pgd_examples(student_step):
    adv_loss, _ = student_step["adversarial"]
    clean_loss, _ = student_step["clean"]
    try:
        reported = np.asarray(student_step["reported"], dtype=float)
    except (TypeError, ValueError):  # None, a string, a handle: not a number
        reported = np.asarray([])
    assert reported.size == 1 and np.isfinite(reported).all(), (
        f"_train_step must return the batch's loss, one number; it returned {show(student_step['reported'])}")
    value = float(reported.reshape(()))
    if abs(value - adv_loss) <= 0.05 * adv_loss:
        return
    why = ("that is the loss on the clean batch: report the loss the step descended, on the PGD examples"
           if abs(value - clean_loss) < abs(value - adv_loss) else
           "the mean cross-entropy over the batch of PGD examples, before the update")
    raise AssertionError(
        f"_train_step returned the loss {value:.4g}; the mean loss on the batch's PGD examples is {adv_loss:.4g} "
        f"(on the clean batch {clean_loss:.4g}): {why}")


@points(4)
def test_robust_model_within_5_points_of_reference(impl_robust, ref_robust, strong_attack, ref_test_attacked, digits):
    x, y = digits.x_test, digits.y_test
    _, model = impl_robust
    got = accuracy(model, strong_attack(model, x, y), y)
    want = accuracy(ref_robust[1], ref_test_attacked, y)
    assert got >= want - ROBUST_TOLERANCE, (
        f"your robust model keeps {got:.3f} accuracy on the held-out digits under the grader's PGD "
        f"(eps={EPS}, 10 steps), the reference's {want:.3f}; it needs {want - ROBUST_TOLERANCE:.3f}: train "
        "each batch on its PGD examples (perturb), not on the clean batch")


@points(1)
def test_robust_model_keeps_clean_accuracy(impl_robust, ref_robust, digits):
    got, want = accuracy(impl_robust[1], digits.x_test, digits.y_test), accuracy(ref_robust[1], digits.x_test,
                                                                                   digits.y_test)
    assert got >= want - ROBUST_TOLERANCE, (
        f"your robust model's clean accuracy on the held-out digits is {got:.3f}, the reference's {want:.3f}")


# --------------------------------------------------------------------------- detection
@points(1)
def test_squeeze_matches_reference(impl, ref, small):
    x = small[0].numpy()
    for bits in (1, 2, 3):
        expect_close(impl.AdversarialDefense(squeeze_bits=bits).squeeze(x),
                     ref.AdversarialDefense(squeeze_bits=bits).squeeze(x),
                     f"AdversarialDefense(squeeze_bits={bits}).squeeze(X)",
                     f"{2 ** bits} evenly spaced levels from 0 to 1")


def probabilities(model, x):
    return tf.nn.softmax(model(x, training=False)).numpy()


@points(2)
def test_detector_score_matches_reference(impl, ref, tiny_model, tiny_attacked, digits):
    # 64 clean held-out digits and 64 adversarial ones, on the tiny model: fixed inputs, a fixed model
    x = np.concatenate([digits.x_test[:64], np.asarray(tiny_attacked[64:128], dtype=np.float32)])
    defense = impl.AdversarialDefense()
    defense.detector_model_ = tiny_model  # the model the detector watches, as fit_detector records it
    got = defense.detector_score(x)
    reference = ref.AdversarialDefense()
    reference.detector_model_ = tiny_model
    want = reference.detector_score(x)
    call = "detector_score(X) on 64 clean and 64 adversarial digits"
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        got = None
    assert got is not None and got.shape == want.shape, (
        f"{call} must return one score per row of X, an array of shape {want.shape}; got {show(got)}")
    if np.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    p, q = probabilities(tiny_model, x), probabilities(tiny_model, reference.squeeze(x))
    logits = (tiny_model(x, training=False).numpy(), tiny_model(reference.squeeze(x), training=False).numpy())
    known = [(-want, "the score has the wrong sign: higher must be more suspicious"),
             ((p - q).sum(axis=1), "take the absolute value of each difference before the sum (the L1 distance)"),
             (np.sqrt(((p - q) ** 2).sum(axis=1)), "that is the L2 distance; the score is the L1 distance, "
                                                    "the sum of the absolute differences"),
             (np.abs(p - q).max(axis=1), "that is the largest difference; the score is the L1 distance, "
                                         "the sum of the absolute differences"),
             (np.abs(logits[0] - logits[1]).sum(axis=1), "compare the softmax probabilities, not the logits"),
             (np.zeros_like(want), "compare the prediction on X with the one on squeeze(X), not with itself")]
    why = next((why for value, why in known if np.allclose(got, value, rtol=1e-4, atol=1e-5)),
               "the L1 distance between the softmax outputs of detector_model_ on X and on squeeze(X)")
    worst = int(np.argmax(np.abs(got - want)))
    raise AssertionError(f"{call} differs from the reference: row {worst} scores {got[worst]:.4g}, expected "
                         f"{want[worst]:.4g}: {why}")


@points(1)
def test_detector_threshold_sets_the_false_positive_rate(impl, tiny_model, digits):
    x = digits.x_train
    for fpr in (0.05, 0.2):
        flagged = float(np.mean(impl.AdversarialDefense(fpr=fpr).fit_detector(tiny_model, x).detect_attack(x)))
        assert abs(flagged - fpr) <= 0.01, (
            f"with fpr={fpr}, the detector flags {flagged:.3f} of the clean data it was fitted on: set the "
            f"threshold at the (1 - fpr) quantile of the clean scores, so that a share fpr lies above it")


@points(3)
def test_detector_matches_reference_tpr_at_fpr(impl, ref, request, tiny_model, digits):
    impl.AdversarialDefense().fit_detector(tiny_model, digits.x_train[:64])  # fails fast while unfinished
    _, model = request.getfixturevalue("ref_robust")
    attacked = request.getfixturevalue("ref_test_attacked")
    fooled = np.argmax(model(attacked, training=False), axis=1) != digits.y_test
    rates = {}
    for name, module in (("yours", impl), ("the reference's", ref)):
        detector = module.AdversarialDefense(eps=EPS).fit_detector(model, digits.x_train)
        flagged_adv, flagged_clean = (np.asarray(detector.detect_attack(x)) for x in (attacked[fooled], digits.x_test))
        assert flagged_adv.dtype == bool and flagged_adv.shape == (fooled.sum(),), (
            f"detect_attack(X) must return one bool per row of X, got {show(flagged_adv)}")
        rates[name] = float(flagged_adv.mean()), float(flagged_clean.mean())
    (tpr, fpr), (ref_tpr, ref_fpr) = rates["yours"], rates["the reference's"]
    assert tpr >= ref_tpr - TPR_TOLERANCE and fpr <= ref_fpr + FPR_TOLERANCE, (
        f"your detector flags {tpr:.3f} of the {fooled.sum()} held-out adversarial examples that fool the model "
        f"and {fpr:.3f} of the clean held-out digits; the reference flags {ref_tpr:.3f} and {ref_fpr:.3f} "
        f"(needed: at least {ref_tpr - TPR_TOLERANCE:.3f} and at most {ref_fpr + FPR_TOLERANCE:.3f})")


# --------------------------------------------------------------------------- the report
KEYS = ("clean_accuracy", "adversarial_accuracy", "attack_success_rate", "model_robustness_score")


def report(defense, model, x, y, attack):
    """``defense.evaluate_robustness(...)``, checked to be a dict with the four keys."""
    result = defense.evaluate_robustness(model, x, y, attack=attack)
    assert isinstance(result, dict) and set(KEYS) <= set(result), (
        f"evaluate_robustness must return a dict with the keys {', '.join(KEYS)}, got {show(result)}")
    return result


def expect_report(got, want, call, why):
    for key in KEYS:
        expect_close(got[key], want[key], f"{call}['{key}']", why)


@pytest.fixture(scope="module")
def tiny_attacked(tiny_model, strong_attack, digits):
    """The held-out digits attacked by the fixed attack against the tiny model."""
    return strong_attack(tiny_model, digits.x_test, digits.y_test)


@points(2)
def test_evaluate_matches_reference_on_a_fixed_attack(impl, ref, tiny_model, tiny_attacked, digits):
    fixed = lambda model, X, y: tiny_attacked  # noqa: E731 (the same adversarial examples for both)
    expect_report(report(impl.AdversarialDefense(eps=EPS), tiny_model, digits.x_test, digits.y_test, fixed),
                  report(ref.AdversarialDefense(eps=EPS), tiny_model, digits.x_test, digits.y_test, fixed),
                  "evaluate_robustness(model, X_test, y_test, attack) on the held-out digits",
                  "accuracies on X_test, ASR = flips among the samples correct before the attack, MRS = 1 - ASR")


@points(2)
def test_evaluate_asr_counts_flips_among_correct_samples(impl, ref, tiny_model, digits):
    order = np.random.default_rng(0).permutation(len(digits.x_test))
    # an "attack" that swaps the images: it breaks correct samples, and fixes some wrong ones
    swap = lambda model, X, y: X[order]  # noqa: E731
    expect_report(report(impl.AdversarialDefense(eps=EPS), tiny_model, digits.x_test, digits.y_test, swap),
                  report(ref.AdversarialDefense(eps=EPS), tiny_model, digits.x_test, digits.y_test, swap),
                  "evaluate_robustness with an attack that also fixes some misclassified samples",
                  "ASR counts the flips among the samples correct before the attack; 1 - adv_acc / clean_acc "
                  "(the source's formula) counts the fixed samples against the attack")


@points(1)
def test_evaluate_uses_the_held_out_data_it_is_given(impl_robust, digits):
    defense, model = impl_robust  # a defense, and its model, that have seen the training data
    # held-out digits on which the model is right exactly half the time, far from its training accuracy
    right = np.argmax(model(digits.x_test, training=False), axis=1) == digits.y_test
    wrong = np.flatnonzero(~right)
    keep = np.r_[wrong, np.flatnonzero(right)[:len(wrong)]] if len(wrong) else np.arange(len(right))
    x, y = digits.x_test[keep], digits.y_test[keep]
    unchanged = lambda model, X, y: X  # noqa: E731 (only the clean accuracy matters here)
    got = report(defense, model, x, y, unchanged)
    expect_close(got["clean_accuracy"], accuracy(model, x, y),
                 f"evaluate_robustness(model, X_test, y_test)['clean_accuracy'] after train_robust_model, on "
                 f"{len(x)} held-out digits",
                 "the accuracy on X_test, the held-out data given, never on the training data")


@points(1)
def test_evaluate_with_its_own_attack_matches_reference(impl, ref, request, tiny_model, small, digits):
    x = small[0].numpy()  # first a cheap call, on samples the tiny model gets right: fails fast while unfinished
    impl.AdversarialDefense().evaluate_robustness(tiny_model, x, np.argmax(tiny_model(x), axis=1))
    _, model = request.getfixturevalue("ref_robust")
    results = {}
    for name, module in (("yours", impl), ("the reference's", ref)):
        seed(module, 0)
        results[name] = module.AdversarialDefense(eps=EPS).evaluate_robustness(model, digits.x_test, digits.y_test)
    got, want = results["yours"]["adversarial_accuracy"], results["the reference's"]["adversarial_accuracy"]
    assert abs(got - want) <= 0.05, (
        f"evaluate_robustness with its own PGD reports adversarial_accuracy {got:.3f} for the reference's robust "
        f"model on the held-out digits, the reference {want:.3f}: attack with perturb, then compare predictions")


# --------------------------------------------------------------------------- certify (randomized smoothing)
ABSTAIN = -1
SPACING = 1000.0  # rows this far apart (in the first feature) cannot lend each other a noisy copy


class Recorder:
    """A base classifier for ``certify``, passed as its bound method ``classify``: every batch the
    student's code sends comes back here (a callback), and is kept with the labels given, in order.

    ``rule(batch)`` gives the labels; ``rows`` are the rows of ``X``. :meth:`per_row` gives each row
    its noisy copies (each copy goes to its nearest row) and their labels, in the order drawn."""

    def __init__(self, rule, rows):
        self.rule, self.rows = rule, np.asarray(rows, dtype=float)
        self.batches, self.labels = [], []

    def classify(self, batch):
        batch = np.asarray(batch, dtype=float)
        if batch.ndim != self.rows.ndim or batch.shape[1:] != self.rows.shape[1:]:
            raise InvalidParameterError(f"classify takes a batch of noisy inputs, shape (m, *X.shape[1:]) = (m, "
                             f"{', '.join(map(str, self.rows.shape[1:]))}), got shape {batch.shape}")
        labels = np.asarray(self.rule(batch), dtype=np.int64)
        self.batches.append(batch)
        self.labels.append(labels)
        return labels

    def per_row(self):
        """``[(noise, labels)]``, one pair per row of ``X``: the copies drawn around it, minus it."""
        if not self.batches:
            return [(np.zeros((0, *self.rows.shape[1:])), np.zeros(0, dtype=np.int64)) for _ in self.rows]
        copies, labels = np.concatenate(self.batches), np.concatenate(self.labels)
        flat, centres = copies.reshape(len(copies), -1), self.rows.reshape(len(self.rows), -1)
        nearest = np.argmin(((flat[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
        return [(copies[nearest == i] - self.rows[i], labels[nearest == i]) for i in range(len(self.rows))]


def linear_rows(distances, sigma, spacing=SPACING):
    """Rows ``(i * spacing, d_i)``: the second feature is the signed distance to the boundary of
    :func:`linear_rule` (its normal is the unit vector (0, 1)); the first keeps the rows apart."""
    return np.array([[i * spacing, d] for i, d in enumerate(distances)], dtype=np.float32)


def linear_rule(batch):
    """Class 7 on the positive side of the line ``z_2 = 0``, class 2 on the other: under noise
    ``N(0, sigma^2 I)`` a row at signed distance ``d`` is labelled 7 with probability
    ``Phi(d / sigma)``, so the smoothed classifier's exact L2 radius there is ``|d|``."""
    return np.where(batch[:, 1] > 0, 7, 2)


def constant_rule(batch):
    return np.full(len(batch), 4)


def run_certify(impl, recorder, X, sigma, **options):
    """``impl.certify(recorder.classify, X, sigma, **options)``, its result checked to be a dict of
    three arrays with one value per row; returned as (prediction, radius, p_lower)."""
    result = impl.certify(recorder.classify, X, sigma, **options)
    keys = ("prediction", "radius", "p_lower")
    assert isinstance(result, dict) and set(keys) <= set(result), (
        f"certify must return a dict with the keys {', '.join(keys)}, got {show(result)}")
    arrays = []
    for key in keys:
        try:
            value = np.asarray(result[key], dtype=float)
        except (TypeError, ValueError):
            value = None
        assert value is not None and value.shape == (len(X),), (
            f"certify(...)['{key}'] must hold one number per row of X ({len(X)}), got {show(result[key])}")
        arrays.append(value)
    return tuple(arrays)


def one_sided(k, n, alpha):
    """The one-sided (1 - alpha) Clopper-Pearson lower bound on p from k hits in n: the p at which
    k or more hits have probability alpha, the alpha quantile of Beta(k, n - k + 1), 0 for k = 0
    (tests/test_grading_ex1.py checks it against scipy's binomtest and the library's interval)."""
    with np.errstate(invalid="ignore"):
        return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def top_classes(labels, n0):
    """The classes the selection samples (the first ``n0``) give most often: one, unless tied."""
    counts = np.bincount(labels[:n0])
    return [int(c) for c in np.flatnonzero(counts == counts.max())]


def expected_certificate(labels, top, sigma, n0, n, alpha):
    """CERTIFY on the labels of one row, in the order drawn, with the top class ``top``:
    ``(prediction, radius, p_lower)``."""
    k = int(np.sum(labels[n0:n0 + n] == top))
    p_lower = one_sided(k, n, alpha)
    if p_lower <= 0.5:
        return ABSTAIN, 0.0, p_lower
    return top, sigma * float(norm.ppf(p_lower)), p_lower


def diagnose_bound(got, labels, top, sigma, n0, n, alpha):
    """Why a row's ``p_lower`` (or radius) differs from the one-sided bound: the known mistakes."""
    selection, estimation = labels[:n0], labels[n0:n0 + n]
    k = int(np.sum(estimation == top))
    with np.errstate(all="ignore"):
        known = [(one_sided(k, n, alpha / 2), "that is the lower end of a two-sided interval (the bound at "
                                              "alpha / 2); CERTIFY's bound is one-sided, at alpha itself"),
                 (k / n, "that is the point estimate k / n; the certificate needs a lower confidence bound"),
                 (float(beta.ppf(alpha, k, n - k)) if k < n else np.nan,
                  "that is the alpha quantile of Beta(k, n - k): the one-sided bound is that of Beta(k, n - k + 1)"),
                 (float(beta.ppf(alpha, k + 1, n - k)) if k < n else np.nan,
                  "that is the alpha quantile of Beta(k + 1, n - k): the one-sided bound is that of Beta(k, n - k + 1)"),
                 (one_sided(int(np.sum(labels[:n] == top)), n, alpha),
                  "that counts the selection samples too: count the top class among the n fresh estimation "
                  "samples only"),
                 (one_sided(int(np.sum(selection == top)), n0, alpha),
                  "that is the bound from the n0 selection samples: estimate from n fresh samples")]
    return next((why for value, why in known if np.isclose(got, value, rtol=1e-6, atol=1e-9)),
                "the one-sided (1 - alpha) Clopper-Pearson lower bound: the alpha quantile of Beta(k, n - k + 1), "
                "k being how many of the n estimation samples the top class got")


def expect_certificates(got, recorder, sigma, n0, n, alpha, call):
    """Assert that ``got`` = (prediction, radius, p_lower) is CERTIFY on the samples ``recorder`` saw."""
    prediction, radius, p_lower = got
    for i, (_, labels) in enumerate(recorder.per_row()):
        assert len(labels) == n0 + n, (
            f"{call} drew {len(labels)} noisy copies of row {i}; CERTIFY draws n0 = {n0} for the selection, then "
            f"n = {n} fresh ones for the estimation, {n0 + n} in all")
        # a tie in the selection may go either way (the docstring's rule is np.argmax's, the smallest label)
        tops = top_classes(labels, n0)
        wants = {top: expected_certificate(labels, top, sigma, n0, n, alpha) for top in tops}
        top = next((t for t in tops if prediction[i] == t or np.isclose(p_lower[i], wants[t][2], rtol=1e-6,
                                                                          atol=1e-9)), tops[0])
        want_class, want_radius, want_p = wants[top]
        where = f"{call}, row {i}"
        if not np.isclose(p_lower[i], want_p, rtol=1e-6, atol=1e-9):
            k = int(np.sum(labels[n0:] == top))
            raise AssertionError(
                f"{where}: the top class of the {n0} selection samples is {top}, and {k} of the {n} estimation "
                f"samples agree; p_lower is {p_lower[i]:.6g}, expected {want_p:.6g}: "
                + diagnose_bound(p_lower[i], labels, top, sigma, n0, n, alpha))
        assert prediction[i] == want_class, (
            f"{where}: p_lower = {want_p:.6g} and the selection samples' top class is {top}; the prediction is "
            f"{prediction[i]:g}, expected {want_class} "
            + ("(abstain, -1: the bound is not above 1/2)" if want_class == ABSTAIN else
               "(the top class of the n0 selection samples, as the bound is above 1/2)"))
        if not np.isclose(radius[i], want_radius, rtol=1e-6, atol=1e-9):
            why = ("the radius of an abstention is 0" if want_class == ABSTAIN else
                   "that is Phi^-1(p_lower) without sigma: the radius is sigma * Phi^-1(p_lower)"
                   if np.isclose(radius[i], want_radius / sigma, rtol=1e-6) else
                   "the radius is sigma * Phi^-1(p_lower), the normal quantile (scipy.stats.norm.ppf)")
            raise AssertionError(f"{where}: the radius is {radius[i]:.6g}, expected {want_radius:.6g}: {why}")


@points(3)
def test_certify_matches_certify_on_its_own_samples(impl):
    # rows on both sides of the boundary, from hopeless (abstain) to far (a large radius)
    sigma, n0, n, alpha = 0.5, 31, 400, 0.01  # n0 odd: two classes cannot tie in the selection
    X = linear_rows(sigma * np.array([-1.5, -0.3, 0.05, 0.4, 1.0, 2.2]), sigma)
    recorder = Recorder(linear_rule, X)
    got = run_certify(impl, recorder, X, sigma, n0=n0, n=n, alpha=alpha, seed=0)
    expect_certificates(got, recorder, sigma, n0, n, alpha,
                        f"certify(classify, X, sigma={sigma}, n0={n0}, n={n}, alpha={alpha})")


@points(2)
def test_certify_radius_is_at_most_the_true_radius_and_close(impl):
    sigma, n, alpha = 0.4, 20_000, 1e-6  # 7 rows at alpha = 1e-6: a radius above the true one is a mistake
    distances = sigma * np.array([0.5, 1.0, 1.5, 2.0, 2.5, -1.0, -2.0])
    X = linear_rows(distances, sigma)
    prediction, radius, _ = run_certify(impl, Recorder(linear_rule, X), X, sigma, n0=100, n=n, alpha=alpha, seed=0)
    call = f"certify(classify, X, sigma={sigma}, n0=100, n={n}, alpha={alpha}) on a linear classifier"
    want = np.where(distances > 0, 7, 2)
    assert np.array_equal(prediction, want), (
        f"{call}: the rows lie at distances {np.round(distances, 2).tolist()} from the boundary (class 7 on the "
        f"positive side, 2 on the other) and are far enough to certify; the predictions are "
        f"{prediction.astype(int).tolist()}, expected {want.tolist()}")
    true = np.abs(distances)  # P(class) = Phi(|d| / sigma) there, so sigma * Phi^-1(pA) = |d|
    over = np.flatnonzero(radius > true + 1e-9)
    assert not len(over), (
        f"{call}: the certified radius of row {over[0]} is {radius[over[0]]:.4g}, more than the true radius "
        f"{true[over[0]]:.4g} (its distance to the boundary; the smoothed classifier changes its answer there). "
        f"Radii {np.round(radius, 3).tolist()}, true {np.round(true, 3).tolist()}: "
        + ("the radius is sigma * Phi^-1(p_lower), with sigma" if np.all(radius > true * 1.5) else
           "the radius must come from a lower confidence bound on pA, not from the estimate k / n"))
    short = np.flatnonzero(radius < true - 0.25 * sigma)
    assert not len(short), (
        f"{call}: with n = {n} samples the radius of row {short[0]} should be within 0.25 sigma of the true "
        f"radius {true[short[0]]:.4g}, got {radius[short[0]]:.4g}; radii {np.round(radius, 3).tolist()}: the "
        "one-sided bound at alpha, on the n estimation samples, gives a radius close to the true one")


@points(1)
def test_certify_bound_is_one_sided_at_alpha(impl):
    # a classifier that never changes its answer: k = n, and the one-sided bound is alpha ** (1 / n)
    sigma, n, alpha = 0.5, 1000, 0.001
    X = linear_rows([0.0, 0.0, 0.0], sigma)
    recorder = Recorder(constant_rule, X)
    prediction, radius, p_lower = run_certify(impl, recorder, X, sigma, n0=10, n=n, alpha=alpha, seed=0)
    want = alpha ** (1 / n)
    call = f"certify(classify, X, sigma={sigma}, n0=10, n={n}, alpha={alpha}) for a classifier that always answers 4"
    if not np.allclose(p_lower, want, rtol=1e-9):
        labels = np.full(10 + n, 4)
        raise AssertionError(f"{call}: p_lower is {show(p_lower)}, expected alpha ** (1 / n) = {want:.6g}, the "
                             "one-sided bound when all n samples agree: "
                             + diagnose_bound(p_lower[0], labels, 4, sigma, 10, n, alpha))
    assert np.array_equal(prediction, [4, 4, 4]), f"{call}: the predictions are {show(prediction)}, expected [4, 4, 4]"
    expect_close(radius, np.full(3, sigma * norm.ppf(want)), f"{call}['radius']", "sigma * Phi^-1(p_lower)")


@points(1)
def test_certify_abstains_when_the_bound_is_exactly_one_half(impl):
    sigma = 0.5
    X = linear_rows([0.0], sigma)
    # all samples agree, so the one-sided bound is alpha ** (1 / n): exactly 1/2 for these two
    for n, alpha in ((1, 0.5), (2, 0.25)):
        prediction, radius, p_lower = run_certify(impl, Recorder(constant_rule, X), X, sigma, n0=1, n=n,
                                                  alpha=alpha, seed=0)
        call = f"certify(classify, X, sigma={sigma}, n0=1, n={n}, alpha={alpha}) for a classifier that always answers 4"
        expect_close(p_lower, [0.5], f"{call}['p_lower']", f"alpha ** (1 / n) = {alpha} ** (1 / {n}) = 0.5")
        assert prediction[0] == ABSTAIN and radius[0] == 0, (
            f"{call}: p_lower is exactly 1/2, and the result is class {prediction[0]:g} with radius {radius[0]:.4g}; "
            "CERTIFY abstains (class -1, radius 0) unless p_lower > 1/2: Phi^-1(1/2) = 0 certifies nothing")
    # just above one half: certified, with a small radius
    prediction, radius, _ = run_certify(impl, Recorder(constant_rule, X), X, sigma, n0=1, n=1, alpha=0.6, seed=0)
    call = f"certify(classify, X, sigma={sigma}, n0=1, n=1, alpha=0.6) for a classifier that always answers 4"
    assert prediction[0] == 4, f"{call}: p_lower = 0.6 > 1/2, so the class is 4, got {prediction[0]:g}"
    expect_close(radius, [sigma * norm.ppf(0.6)], f"{call}['radius']", "sigma * Phi^-1(0.6)")


@points(1)
def test_certify_picks_the_class_from_the_selection_samples(impl):
    # the first n0 copies of the row are labelled 1, every later one 2: the selection says 1, and
    # not one fresh estimation sample agrees, so CERTIFY abstains with p_lower = 0
    n0 = n = 50
    sigma = 0.5
    X = linear_rows([0.0], sigma)
    seen = []

    def first_n0_say_one(batch):
        labels = np.where(np.arange(len(seen), len(seen) + len(batch)) < n0, 1, 2)
        seen.extend(labels)
        return labels

    prediction, radius, p_lower = run_certify(impl, Recorder(first_n0_say_one, X), X, sigma, n0=n0, n=n, alpha=0.01,
                                              seed=0)
    call = (f"certify(classify, X, sigma={sigma}, n0={n0}, n={n}) for a classifier that answers 1 for the first "
            f"{n0} noisy copies and 2 for every later one")
    if prediction[0] == 2:
        why = ("the class came from the estimation samples: pick it from the n0 selection samples, then count it "
               "among the n fresh ones")
    elif prediction[0] == 1:
        why = ("the selection samples were counted in the estimation too: count the top class among n fresh "
               "samples, drawn after the selection ones")
    else:
        why = "count the top class of the selection samples (1) among the n fresh estimation samples (never)"
    assert prediction[0] == ABSTAIN and p_lower[0] == 0 and radius[0] == 0, (
        f"{call}: expected an abstention (-1) with p_lower 0, got class {prediction[0]:g}, p_lower {p_lower[0]:.4g}: "
        f"{why}")


@points(1)
def test_certify_draws_n0_then_n_fresh_gaussian_samples(impl):
    sigma, n0, n = 0.3, 200, 2000
    X = linear_rows([0.1, -0.2], sigma)
    recorder = Recorder(linear_rule, X)
    run_certify(impl, recorder, X, sigma, n0=n0, n=n, alpha=0.01, seed=0)
    call = f"certify(classify, X, sigma={sigma}, n0={n0}, n={n})"
    for i, (noise, _) in enumerate(recorder.per_row()):
        assert len(noise) == n0 + n, (
            f"{call} sent classify {len(noise)} noisy copies of row {i}; CERTIFY draws n0 = {n0} for the "
            f"selection and n = {n} fresh ones for the estimation, {n0 + n} in all")
        distinct = len(np.unique(noise, axis=0))
        assert distinct == n0 + n, (
            f"{call}: only {distinct} of the {n0 + n} noisy copies of row {i} differ: every copy has its own "
            "noise, and the estimation samples are fresh, not the selection ones again")
        std, mean = float(noise.std()), float(noise.mean())
        # 2 x 2200 values: the standard errors are about 1 % (std) and 1.5 % (mean) of sigma
        assert abs(std - sigma) <= 0.05 * sigma and abs(mean) <= 0.1 * sigma, (
            f"{call}: the noise added to row {i} has mean {mean:.4g} and standard deviation {std:.4g}; it is "
            f"Gaussian, mean 0 and standard deviation sigma = {sigma}, on every feature")


@points(1)
def test_certify_on_a_small_cnn(impl, tiny_model, digits):
    # a real classifier: the tiny CNN under noise, one held-out digit per call
    sigma, n0, n, alpha = 0.25, 21, 200, 0.01

    def cnn(batch):
        return np.argmax(tiny_model(np.asarray(batch, dtype=np.float32), training=False), axis=1)

    for i in range(4):
        X = digits.x_test[i:i + 1]
        recorder = Recorder(cnn, X)
        got = run_certify(impl, recorder, X, sigma, n0=n0, n=n, alpha=alpha, seed=i)
        expect_certificates(got, recorder, sigma, n0, n, alpha,
                            f"certify(classify, X, sigma={sigma}, n0={n0}, n={n}, alpha={alpha}) on held-out digit "
                            f"{i} (shape {X.shape}) and a small CNN")


@points(1)
def test_certify_is_reproducible_with_a_seed(impl):
    sigma = 0.5
    X = linear_rows(sigma * np.array([0.5, 0.6, 0.7, -0.5]), sigma)
    runs = [run_certify(impl, Recorder(linear_rule, X), X, sigma, n0=31, n=300, alpha=0.01, seed=s)
            for s in (3, 3, 4)]
    call = f"certify(classify, X, sigma={sigma}, n0=31, n=300, alpha=0.01, seed=...)"
    for name, a, b in zip(("prediction", "radius", "p_lower"), runs[0], runs[1]):
        assert np.array_equal(a, b), (
            f"{call} twice with seed=3 gave two different values of {name!r}, {show(a)} and {show(b)}: draw all the noise "
            "from np.random.default_rng(seed), never from the global np.random")
    assert not np.array_equal(runs[0][2], runs[2][2]), (
        f"{call} with seed=3 and seed=4 gave the same p_lower {show(runs[0][2])}: the noise comes from "
        "np.random.default_rng(seed)")


@points(1)
def test_certify_rejects_bad_input(impl):
    X = linear_rows([0.0, 0.5], 0.5)
    classify = Recorder(constant_rule, X).classify
    for why, args, options in [
        ("for sigma=0", (X, 0.0), {}), ("for sigma=-0.5", (X, -0.5), {}), ("for sigma=nan", (X, float("nan")), {}),
        ("for alpha=0", (X, 0.5), {"alpha": 0.0}), ("for alpha=1", (X, 0.5), {"alpha": 1.0}),
        ("for alpha=1.5", (X, 0.5), {"alpha": 1.5}),
        ("for n0=0", (X, 0.5), {"n0": 0}), ("for n=0", (X, 0.5), {"n": 0}), ("for n=2.5", (X, 0.5), {"n": 2.5}),
        ("for an X with no rows, shape (0, 2)", (X[:0], 0.5), {}),
        ("for a 1-d X, shape (2,) (one input without the row axis)", (X[0], 0.5), {}),
    ]:
        def certify(*args, options=options):  # named as the function it calls, for the message
            return impl.certify(classify, *args, **options)

        expect_value_error(certify, why, *args)
