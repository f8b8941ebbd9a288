"""Exercise 1's grader: full marks for the solution, and each deliberately wrong
variant of the solution loses points in the check that explains its mistake.

A full grading run trains two robust models, so each variant is graded only on the checks that
should catch it (the same pytest run the grader makes, restricted to those checks)."""
import pytest

from mlsec_lessons.grading import grade, sandbox


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_solution_scores_full_marks():
    # its time against the 90 s budget is measured by benchmarks/bench_grading.py
    report = grade("ex1", solutions=True, sandbox=sandbox.available())  # the variants run without it
    assert report.full_marks, report.table()
    assert report.total >= 25 and len(report.checks) >= 15


TRAIN_STEP = ["train_step_updates_on_pgd_examples", "train_step_returns_the_loss_on_pgd_examples"]
CERTIFY_BOUND = ["certify_bound_is_one_sided_at_alpha", "certify_matches_certify_on_its_own_samples"]

# mistake: (text in the solution, its wrong replacement, the checks to run, the one that must fail)
WRONG = {
    "gradient sign flipped": (
        "x_adv + eps_step * tf.sign(gradient)", "x_adv - eps_step * tf.sign(gradient)",
        ["pgd_step_increases_the_loss", "pgd_step_matches_reference"], "pgd_step_increases_the_loss"),
    "step ignores eps_step": (
        "x_adv + eps_step * tf.sign(gradient)", "x_adv + tf.sign(gradient)",
        ["pgd_step_moves_each_pixel_by_eps_step"], "pgd_step_moves_each_pixel_by_eps_step"),
    "pgd_step takes eps_step by position": (
        "def pgd_step(model, x_adv, x, y, eps, *, eps_step, clip=(0.0, 1.0)):",
        "def pgd_step(model, x_adv, x, y, eps, eps_step, clip=(0.0, 1.0)):",
        ["pgd_step_takes_eps_step_by_keyword", "pgd_step_matches_reference"], "pgd_step_takes_eps_step_by_keyword"),
    "perturb ignores the defense's eps": (
        "    x_adv = pgd_step(model, x_adv, x, y, self.eps,", "    x_adv = pgd_step(model, x_adv, x, y, 0.3,",
        ["perturb_respects_eps"], "perturb_respects_eps"),
    "no projection": (
        "x_adv = tf.clip_by_value(x_adv, x - eps, x + eps)", "pass",
        ["pgd_step_stays_in_eps_ball_and_clip"], "pgd_step_stays_in_eps_ball_and_clip"),
    "training on clean data only": (
        "x_adv = self.perturb(model, x, y)  # the worst", "x_adv = x  # the worst",
        ["robust_model_within_5_points_of_reference"], "robust_model_within_5_points_of_reference"),
    "evaluating on the training set": (
        "X, y = self._check(X_test, y_test)", "X, y = self._check(self.X_train_, self.y_train_)",
        ["evaluate_uses_the_held_out_data_it_is_given"], "evaluate_uses_the_held_out_data_it_is_given"),
    "ASR with the source's formula": (
        "asr = float(np.mean(adv[correct] != y[correct]))", "asr = 1 - float(np.mean(adv == y) / np.mean(correct))",
        ["evaluate_asr_counts_flips_among_correct_samples"], "evaluate_asr_counts_flips_among_correct_samples"),
    "detector threshold at the fpr quantile": (
        "np.quantile(self.detector_score(X_clean), 1 - self.fpr)",
        "np.quantile(self.detector_score(X_clean), self.fpr)",
        ["detector_threshold_sets_the_false_positive_rate"], "detector_threshold_sets_the_false_positive_rate"),
    # one training step, checked on a fixed model, batch and optimizer
    "train step on the clean batch": (
        "x_adv = self.perturb(model, x, y)  # the worst", "x_adv = x  # the worst",
        TRAIN_STEP, "train_step_updates_on_pgd_examples"),
    "train step descends the clean gradient, reports the adversarial loss": (
        "gradients = tape.gradient(loss, model.trainable_variables)",
        "with tf.GradientTape() as clean_tape:\n"
        "            clean_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(\n"
        "                y, model(x, training=True), from_logits=True))\n"
        "        gradients = clean_tape.gradient(clean_loss, model.trainable_variables)",
        TRAIN_STEP, "train_step_updates_on_pgd_examples"),
    "train step sums the loss over the batch": (
        "loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits,",
        "loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits,",
        TRAIN_STEP, "train_step_updates_on_pgd_examples"),
    "train step climbs the loss": (
        "optimizer.apply_gradients(zip(gradients, model.trainable_variables))",
        "optimizer.apply_gradients(zip([-g for g in gradients], model.trainable_variables))",
        TRAIN_STEP, "train_step_updates_on_pgd_examples"),
    "train step never applies the gradient": (
        "optimizer.apply_gradients(zip(gradients, model.trainable_variables))", "pass",
        TRAIN_STEP, "train_step_updates_on_pgd_examples"),
    "train step reports the clean loss": (
        "        return loss\n", "        return tf.reduce_mean(loss_per_example(model, x, y))\n",
        TRAIN_STEP, "train_step_returns_the_loss_on_pgd_examples"),
    # the detector's score, on fixed inputs and a fixed model
    "detector score with the wrong sign": (
        "return np.abs(p.numpy() - p_squeezed.numpy()).sum(axis=1)",
        "return -np.abs(p.numpy() - p_squeezed.numpy()).sum(axis=1)",
        ["detector_score_matches_reference"], "detector_score_matches_reference"),
    "detector score with the L2 norm": (
        "return np.abs(p.numpy() - p_squeezed.numpy()).sum(axis=1)",
        "return np.sqrt(((p.numpy() - p_squeezed.numpy()) ** 2).sum(axis=1))",
        ["detector_score_matches_reference"], "detector_score_matches_reference"),
    "detector score on logits": (
        "p = tf.nn.softmax(self.detector_model_(X, training=False))\n"
        "        p_squeezed = tf.nn.softmax(self.detector_model_(self.squeeze(X), training=False))",
        "p = self.detector_model_(X, training=False)\n"
        "        p_squeezed = self.detector_model_(self.squeeze(X), training=False)",
        ["detector_score_matches_reference"], "detector_score_matches_reference"),
    "detector score without the squeeze": (
        "p_squeezed = tf.nn.softmax(self.detector_model_(self.squeeze(X), training=False))",
        "p_squeezed = tf.nn.softmax(self.detector_model_(X, training=False))",
        ["detector_score_matches_reference"], "detector_score_matches_reference"),
    # certify (randomized smoothing), on classifiers the judge passes as callables
    "certify with the point estimate k / n for the bound": (
        "p_lower[i] = beta.ppf(alpha, k, n - k + 1) if k > 0 else 0.0", "p_lower[i] = k / n",
        CERTIFY_BOUND, "certify_bound_is_one_sided_at_alpha"),
    "certify with the two-sided interval's lower end": (
        "beta.ppf(alpha, k, n - k + 1) if k > 0", "beta.ppf(alpha / 2, k, n - k + 1) if k > 0",
        CERTIFY_BOUND, "certify_bound_is_one_sided_at_alpha"),
    "certify with Beta(k, n - k), one off in the count of misses": (
        "beta.ppf(alpha, k, n - k + 1) if k > 0", "beta.ppf(alpha, k, n - k) if k > 0",
        CERTIFY_BOUND, "certify_matches_certify_on_its_own_samples"),
    "certify counts one hit too many": (
        "k = int(np.sum(estimation == top))", "k = min(int(np.sum(estimation == top)) + 1, n)",
        CERTIFY_BOUND, "certify_matches_certify_on_its_own_samples"),
    "certify certifies at p_lower = 1/2 (< for <=)": (
        "if p_lower[i] <= 0.5:", "if p_lower[i] < 0.5:",
        ["certify_abstains_when_the_bound_is_exactly_one_half"], "certify_abstains_when_the_bound_is_exactly_one_half"),
    "certify reuses the selection samples for the estimation": (
        "estimation = noisy_labels(classify, x, sigma, n, rng)",
        "estimation = np.concatenate([selection, noisy_labels(classify, x, sigma, n, rng)])[:n]",
        ["certify_picks_the_class_from_the_selection_samples", "certify_matches_certify_on_its_own_samples"],
        "certify_picks_the_class_from_the_selection_samples"),
    "certify picks the class from the estimation samples": (
        "top = int(np.argmax(np.bincount(selection)))",
        "top = int(np.argmax(np.bincount(noisy_labels(classify, x, sigma, n, rng))))",
        ["certify_picks_the_class_from_the_selection_samples"], "certify_picks_the_class_from_the_selection_samples"),
    "certify without the alpha check": (
        "if not 0 < alpha < 1:  # also refuses NaN", "if False:",
        ["certify_rejects_bad_input"], "certify_rejects_bad_input"),
    "certify without the sigma check": (
        "if not sigma > 0:  # also refuses NaN", "if False:",
        ["certify_rejects_bad_input"], "certify_rejects_bad_input"),
    "certify without the shape check": (
        "if X.ndim < 2 or X.size == 0:", "if False:",
        ["certify_rejects_bad_input"], "certify_rejects_bad_input"),
    "certify's radius without sigma": (
        "prediction[i], radius[i] = top, sigma * norm.ppf(p_lower[i])",
        "prediction[i], radius[i] = top, norm.ppf(p_lower[i])",
        ["certify_radius_is_at_most_the_true_radius_and_close", "certify_matches_certify_on_its_own_samples"],
        "certify_radius_is_at_most_the_true_radius_and_close"),
    "certify ignores the seed": (
        "rng = np.random.default_rng(seed)\n    prediction", "rng = np.random.default_rng()\n    prediction",
        ["certify_is_reproducible_with_a_seed"], "certify_is_reproducible_with_a_seed"),
}


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("mistake", list(WRONG))
def test_wrong_solutions_lose_points(mistake, graded_variants):
    old, new, checks, check = WRONG[mistake]
    report = graded_variants("ex1", VARIANTS)[mistake]
    assert {c.name for c in report.checks} == set(checks), report.table()
    assert check in report.failed(), f"{mistake}: {check} still passes"
    message = report.failed()[check]
    assert message and "not implemented" not in message and "Traceback" not in message, message


# the library's answers, used in place of the student's own code: (text, replacement, the check that must fail)
LIBRARY = {
    "train step on the library's PGD": (
        "x_adv = self.perturb(model, x, y)  # the worst",
        "from mlsec_lessons import attacks\n"
        "        x_adv = tf.constant(attacks.pgd(model, x.numpy(), y.numpy(), self.eps, steps=self.steps, eps_step=self._eps_step()))"
        "  # the worst",
        "train_step_updates_on_pgd_examples"),
    "squeeze by the library's feature squeezing": (
        "        lo, hi = self.clip\n        levels = 2 ** self.squeeze_bits - 1\n",
        "        from mlsec_lessons.defenses import preprocessing\n"
        "        return preprocessing.transform(preprocessing.feature_squeezing(self.squeeze_bits, self.clip), X)\n"
        "        lo, hi = self.clip\n        levels = 2 ** self.squeeze_bits - 1\n",
        "squeeze_matches_reference"),
    "certify by the library's randomized smoothing": (
        "    rng = np.random.default_rng(seed)\n    prediction",
        "    from mlsec_lessons.defenses import smoothing\n\n"
        "    class Base:  # classify, with the interface of a Keras model\n"
        "        output_shape = (None, 10)\n\n"
        "        def predict(self, batch, batch_size=None, verbose=0):\n"
        "            return np.eye(10)[classify(batch)]\n\n"
        "    cert = smoothing.certify(Base(), X, sigma, n0=n0, n=n, alpha=alpha, seed=seed)\n"
        "    return {\"prediction\": cert.prediction, \"radius\": cert.radius, \"p_lower\": cert.p_lower}\n"
        "    rng = np.random.default_rng(seed)\n    prediction",
        "certify_matches_certify_on_its_own_samples"),
    "certify's bound by the library's Clopper-Pearson interval": (
        "p_lower[i] = beta.ppf(alpha, k, n - k + 1) if k > 0 else 0.0",
        "from mlsec_lessons.privacy_attacks.auditing import clopper_pearson\n"
        "        p_lower[i] = clopper_pearson(k, n, alpha=2 * alpha)[0]",
        "certify_matches_certify_on_its_own_samples"),
}


# every variant of this module, graded by one judge: {case: (old, new, the checks to run)}
VARIANTS = {**{mistake: (old, new, checks) for mistake, (old, new, checks, _) in WRONG.items()},
            **{cheat: (old, new, [check]) for cheat, (old, new, check) in LIBRARY.items()}}


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("cheat", list(LIBRARY))
def test_library_answers_earn_nothing(cheat, graded_variants):
    old, new, check = LIBRARY[cheat]
    report = graded_variants("ex1", VARIANTS)[cheat]
    assert check in report.failed(), f"{cheat}: {check} still passes"
    assert "from the course library" in report.failed()[check], report.failed()[check]


# --------------------------------------------------------------------------- certify's oracles, checked
def test_certify_oracle_bound_is_scipys_one_sided_clopper_pearson():
    """The judge's bound is scipy's one-sided exact interval at 1 - alpha, the lower end of the
    library's two-sided interval at 2 alpha, and alpha ** (1 / n) when all n samples agree."""
    import warnings

    from scipy.stats import binomtest

    from mlsec_lessons.privacy_attacks.auditing import clopper_pearson

    with warnings.catch_warnings():  # the checks' points mark belongs to the grader's plugin, not to this run
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        from mlsec_lessons.grading.checks.ex1_adversarial_defense import one_sided

    for n, alpha in [(1, 0.5), (2, 0.25), (1, 0.6), (50, 0.01), (400, 0.001), (1000, 1e-6)]:
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            want = binomtest(k, n, alternative="greater").proportion_ci(confidence_level=1 - alpha).low
            assert one_sided(k, n, alpha) == pytest.approx(want, rel=1e-9, abs=1e-12), (k, n, alpha)
            if alpha < 0.5:  # the library's two-sided interval needs 2 alpha < 1
                assert one_sided(k, n, alpha) == pytest.approx(float(clopper_pearson(k, n, 2 * alpha)[0]), rel=1e-12)
        assert one_sided(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-12)


def _reference():
    import importlib.util

    from mlsec_lessons.grading.exercises import solution_file

    spec = importlib.util.spec_from_file_location("_ex1_reference", solution_file("ex1_adversarial_defense"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_certify_agrees_with_the_library_and_the_closed_form():
    """The reference's certify beside the library's ``smoothing.certify`` (cross-checked against
    ART in tests/test_smoothing.py): equal where the noise cannot matter, within Monte-Carlo error
    on a linear classifier, and both at most its exact radius, the distance to the boundary."""
    import numpy as np

    from mlsec_lessons.defenses import smoothing

    class Base:  # a callable classifier with the interface the library's certify expects
        output_shape = (None, 10)

        def __init__(self, rule):
            self.rule = rule

        def predict(self, batch, batch_size=None, verbose=0):
            return np.eye(10)[self.rule(batch.reshape(len(batch), -1))]

    ref = _reference()
    always_3 = lambda batch: np.full(len(batch), 3)  # noqa: E731
    ours = ref.certify(always_3, np.zeros((2, 8, 8, 1)), 0.5, n0=10, n=500, alpha=0.001)
    theirs = smoothing.certify(Base(always_3), np.zeros((2, 8, 8, 1)), 0.5, n0=10, n=500, alpha=0.001)
    np.testing.assert_array_equal(ours["prediction"], theirs.prediction)
    np.testing.assert_allclose(ours["p_lower"], theirs.p_lower, rtol=1e-12)
    np.testing.assert_allclose(ours["radius"], theirs.radius, rtol=1e-12)

    sigma, distances = 0.25, np.array([0.1, 0.25, 0.4, -0.3])
    X = np.zeros((len(distances), 8, 8, 1), dtype=np.float32)
    X[:, 0, 0, 0] = distances
    linear = lambda batch: np.where(np.reshape(batch, (len(batch), -1))[:, 0] > 0, 1, 0)  # noqa: E731
    ours = ref.certify(linear, X, sigma, n0=100, n=20_000, alpha=0.001, seed=0)
    theirs = smoothing.certify(Base(linear), X, sigma, n0=100, n=20_000, alpha=0.001, seed=0)
    np.testing.assert_array_equal(ours["prediction"], np.where(distances > 0, 1, 0))
    np.testing.assert_array_equal(ours["prediction"], theirs.prediction)
    assert np.all(ours["radius"] <= np.abs(distances)) and np.all(theirs.radius <= np.abs(distances))
    np.testing.assert_allclose(ours["radius"], theirs.radius, atol=0.05 * sigma)
    np.testing.assert_allclose(ours["radius"], np.abs(distances), atol=0.2 * sigma)
