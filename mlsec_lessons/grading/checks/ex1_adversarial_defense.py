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
  as the reference's.

Training is the expensive part, so each robust model is trained once (module-scoped fixtures).
A check that needs the reference model first calls the student's code on something cheap, so
that an unfinished file fails fast instead of waiting for the reference to train.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mlsec_lessons.data import load_digits
from mlsec_lessons.grading.expect import expect_close, expect_value_error, show
from mlsec_lessons.grading.plugin import kept
from mlsec_lessons.grading.remote import seed
from mlsec_lessons.models import compile_for_training, small_cnn

# the library's answers to this exercise (the data loaders and models stay allowed)
OFF_LIMITS = {"mlsec_lessons.attacks": "*", "mlsec_lessons.art_bridge": "*", "mlsec_lessons.metrics": "*",
              "mlsec_lessons.defenses.adversarial_training": "*", "mlsec_lessons.defenses.detection": "*",
              "mlsec_lessons.defenses.preprocessing": "*", "mlsec_lessons.defenses.evaluation": "*"}

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
        model.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0)
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
