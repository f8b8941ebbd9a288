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
