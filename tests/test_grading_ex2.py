"""Exercise 2's grader: full marks for the solution, and each
deliberately wrong variant of the solution loses points in the check that explains its mistake.

A full grading run trains four small models, so each variant is graded only on the checks that
should catch it (the same pytest run the grader makes, restricted to those checks)."""
from pathlib import Path

import numpy as np
import pytest

from mlsec_lessons.grading import grade, sandbox
from mlsec_lessons.grading.plugin import load as load_file

ROOT = Path(__file__).resolve().parents[1]
NAME = "ex2_privacy_preserving_system"
SOLUTION = ROOT / "solutions" / f"{NAME}.py"


def load(path):
    return load_file(path, f"loaded_{path.parent.name}_{NAME}")


@pytest.mark.slow  # a grading run per case: make test runs it, make test-fast does not
def test_solution_scores_full_marks():
    # in the sandbox where it runs (the wrong variants below run in the default mode); its time
    # against the 90 s budget is measured by benchmarks/bench_grading.py
    report = grade("ex2", solutions=True, sandbox=sandbox.available())
    assert report.full_marks, report.table()
    assert report.total >= 45 and len(report.checks) >= 25


# mistake: (text in the solution, its wrong replacement, the checks to run, the one that must fail)
WRONG = {
    "no clipping": (
        "return grads * np.minimum(1.0, l2_norm_clip / np.maximum(norms, 1e-12))", "return grads",
        ["clipping_bounds_every_gradient", "one_example_influence_is_bounded_by_the_clip_norm"],
        "one_example_influence_is_bounded_by_the_clip_norm"),
    "privatize skips the clipping": (
        "clipped = clip_gradients(grads, l2_norm_clip)", "clipped = np.asarray(grads, dtype=float)",
        ["one_example_influence_is_bounded_by_the_clip_norm"], "one_example_influence_is_bounded_by_the_clip_norm"),
    "noise not scaled by the clip norm": (
        "rng.normal(0.0, noise_multiplier * l2_norm_clip, size=clipped.shape[1])",
        "rng.normal(0.0, noise_multiplier, size=clipped.shape[1])",
        ["noise_std_is_multiplier_times_clip_over_batch_size"], "noise_std_is_multiplier_times_clip_over_batch_size"),
    "noise added per example instead of to the sum": (
        "noise = rng.normal(0.0, noise_multiplier * l2_norm_clip, size=clipped.shape[1])\n"
        "    return (clipped.sum(axis=0) + noise) / expected_batch_size",
        "noise = rng.normal(0.0, noise_multiplier * l2_norm_clip, size=clipped.shape)\n"
        "    return (clipped + noise).sum(axis=0) / expected_batch_size",
        ["noise_std_is_multiplier_times_clip_over_batch_size"], "noise_std_is_multiplier_times_clip_over_batch_size"),
    "epsilon from the wrong sampling rate (all records, test set included)": (
        "epsilon_spent(self.noise_multiplier, sample_rate, steps, self.delta)",
        "epsilon_spent(self.noise_multiplier, self.batch_size / (n + len(data.x_test)), steps, self.delta)",
        ["training_spends_the_accounted_epsilon"], "training_spends_the_accounted_epsilon"),
    "epsilon without amplification by sampling": (
        "epsilon_spent(self.noise_multiplier, sample_rate, steps, self.delta)",
        "epsilon_spent(self.noise_multiplier, 1.0, steps, self.delta)",
        ["training_spends_the_accounted_epsilon"], "training_spends_the_accounted_epsilon"),
    "training ignores the noise multiplier": (
        "privatize_gradients(grads, self.l2_norm_clip, self.noise_multiplier, self.batch_size, rng)",
        "privatize_gradients(grads, self.l2_norm_clip, 0.0, self.batch_size, rng)",
        ["training_adds_the_noise"], "training_adds_the_noise"),
    "audit bound without confidence intervals": (
        "tpr_low = clopper_pearson(tp, tp + fn, alpha)[0]\n    fpr_high = clopper_pearson(fp, fp + tn, alpha)[1]",
        "tpr_low = tp / (tp + fn)\n    fpr_high = fp / (fp + tn)",
        ["audit_bound_uses_confidence_intervals"], "audit_bound_uses_confidence_intervals"),
    "fixed-size batches instead of Poisson sampling": (
        "return np.flatnonzero(rng.random(n) < sample_rate)",
        "return np.sort(rng.choice(n, int(round(sample_rate * n)), replace=False))",
        ["poisson_sampling_includes_each_record_independently"], "poisson_sampling_includes_each_record_independently"),
    "divides by the actual batch size": (
        "return (clipped.sum(axis=0) + noise) / expected_batch_size",
        "return (clipped.sum(axis=0) + noise) / max(len(clipped), 1)",
        ["noiseless_update_is_the_clipped_sum_over_the_expected_batch_size"],
        "noiseless_update_is_the_clipped_sum_over_the_expected_batch_size"),
    "ReLU left out of the backward pass": (
        "delta1 = (delta2 @ W2.T) * (a > 0)            # the ReLU", "delta1 = delta2 @ W2.T  # the ReLU",
        ["per_example_gradients_match_finite_differences"], "per_example_gradients_match_finite_differences"),
    "the source's confidence score instead of the loss": (
        "scores = -np.concatenate([model.losses(x_in, y_in), model.losses(x_out, y_out)])",
        "scores = np.concatenate([np.exp(model.log_probs(x_in)).max(axis=1), "
        "np.exp(model.log_probs(x_out)).max(axis=1)])",
        ["evaluate_privacy_matches_reference"], "evaluate_privacy_matches_reference"),
    "audit threshold tuned on the records it is scored on": (
        "tp, fn, fp, tn = counts(count, threshold)", "tp, fn, fp, tn = counts(choose, threshold)",
        ["audit_matches_reference"], "audit_matches_reference"),
    # part 2: federated averaging and secure aggregation
    "unweighted averaging": (
        "return np.tensordot(weights, np.stack(updates), axes=1) / weights.sum()",
        "return np.mean(np.stack(updates), axis=0)",
        ["federated_average_weights_each_client"], "federated_average_weights_each_client"),
    "weighted sum divided by the number of clients": (
        "axes=1) / weights.sum()", "axes=1) / len(updates)",
        ["federated_average_weights_each_client"], "federated_average_weights_each_client"),
    "pairwise masks that don't cancel": (
        "masked[v] = (masked[v] - pair) % R  # v takes it away", "masked[v] = (masked[v] + pair) % R  # v adds it too",
        ["secure_aggregate_returns_the_exact_sum"], "secure_aggregate_returns_the_exact_sum"),
    "no dropout recovery": (
        "for v in dropped:  # a dropped client's key", "for v in []:  # a dropped client's key",
        ["secure_aggregate_returns_the_exact_sum", "secure_aggregate_recovers_from_dropouts"],
        "secure_aggregate_recovers_from_dropouts"),
    "a dropped client's masks removed with the wrong sign": (
        "total = (total - pair) % R if u < v else (total + pair) % R",
        "total = (total + pair) % R if u < v else (total - pair) % R",
        ["secure_aggregate_recovers_from_dropouts"], "secure_aggregate_recovers_from_dropouts"),
    "the server is handed the inputs instead of the masked vectors": (
        "self.masked_vectors_ = {u: masked[u] for u in survivors}",
        "self.masked_vectors_ = {u: x[u] for u in survivors}",
        ["secure_aggregate_returns_the_exact_sum", "masked_vectors_reveal_nothing"], "masked_vectors_reveal_nothing"),
    # part 2, the robust aggregator (issue 17)
    "trimmed mean: round(beta * n) for its floor": (
        "k = int(beta * n)  # the floor", "k = int(round(beta * n))  # the floor",
        ["trimmed_mean_matches_flowers_fedtrimmedavg", "trimmed_mean_cuts_the_floor_of_beta_n"],
        "trimmed_mean_cuts_the_floor_of_beta_n"),
    "trimmed mean: the top end trimmed only": (
        "return ordered[k:n - k].mean(axis=0)", "return ordered[:n - k].mean(axis=0)",
        ["trimmed_mean_matches_flowers_fedtrimmedavg"], "trimmed_mean_matches_flowers_fedtrimmedavg"),
    "trimmed mean: 2 * floor(beta * n) cut from each end": (
        "return ordered[k:n - k].mean(axis=0)", "return ordered[2 * k:n - 2 * k].mean(axis=0)",
        ["trimmed_mean_matches_flowers_fedtrimmedavg"], "trimmed_mean_matches_flowers_fedtrimmedavg"),
    "trimmed mean: the median of what is left instead of its mean": (
        "return ordered[k:n - k].mean(axis=0)", "return np.median(ordered[k:n - k], axis=0)",
        ["trimmed_mean_matches_flowers_fedtrimmedavg"], "trimmed_mean_matches_flowers_fedtrimmedavg"),
    "trimmed mean: whole clients trimmed by the norm of their update, not each coordinate": (
        "ordered = np.sort(np.stack(updates), axis=0)", "ordered = np.stack(sorted(updates, key=np.linalg.norm))",
        ["trimmed_mean_matches_flowers_fedtrimmedavg"], "trimmed_mean_matches_flowers_fedtrimmedavg"),
    "trimmed mean: beta = 0.5 allowed": (
        "if not 0 <= beta < 0.5:", "if not 0 <= beta <= 0.5:",
        ["trimmed_mean_rejects_bad_input"], "trimmed_mean_rejects_bad_input"),
    "trimmed mean: a negative beta accepted": (
        "if not 0 <= beta < 0.5:", "if not beta < 0.5:",
        ["trimmed_mean_rejects_bad_input"], "trimmed_mean_rejects_bad_input"),
    "trimmed mean: beta = 0 refused": (
        "if not 0 <= beta < 0.5:", "if not 0 < beta < 0.5:",
        ["trimmed_mean_with_beta_0_is_the_plain_mean"], "trimmed_mean_with_beta_0_is_the_plain_mean"),
    "trimmed mean: no shape check, the updates flattened": (
        "        if any(u.shape != updates[0].shape for u in updates):\n"
        "            raise ValueError(f\"client updates must all have one shape, got {[u.shape for u in updates]}\")\n"
        "        if not 0 <= beta",
        "        updates = [u.reshape(-1) for u in updates]\n"
        "        if not 0 <= beta",
        ["trimmed_mean_rejects_bad_input"], "trimmed_mean_rejects_bad_input"),
    # part 2, cheats (issue 13): a right total without the protocol behind it
    "no masking: the plain sum, random numbers for the server": (
        "        rng = np.random.default_rng(self.seed)\n        keys = [",
        "        self.masked_vectors_ = {u: np.random.default_rng().integers(0, R, size=shape) for u in survivors}\n"
        "        return sum(x[u] for u in survivors) % R\n"
        "        rng = np.random.default_rng(self.seed)\n        keys = [",
        ["secure_aggregate_returns_the_exact_sum", "secure_aggregate_recovers_from_dropouts",
         "secure_aggregate_refuses_too_many_dropouts", "masked_vectors_reveal_nothing",
         "masked_vectors_are_the_inputs_under_masks_from_the_seed"],
        "masked_vectors_are_the_inputs_under_masks_from_the_seed"),
    "no masking: the plain sum, seeded random numbers for the server": (
        "        rng = np.random.default_rng(self.seed)\n        keys = [",
        "        rng = np.random.default_rng(self.seed)\n"
        "        self.masked_vectors_ = {u: rng.integers(0, R, size=shape) for u in survivors}\n"
        "        return sum(x[u] for u in survivors) % R\n"
        "        keys = [",
        ["masked_vectors_reveal_nothing", "masked_vectors_are_the_inputs_under_masks_from_the_seed"],
        "masked_vectors_are_the_inputs_under_masks_from_the_seed"),
    "pairwise masks among the survivors alone, so that nothing is left to recover": (
        "        masked = [(v + masking.prg(b, shape)) % R for v, b in zip(x, seeds)]\n",
        "        masked = [(v + masking.prg(b, shape)) % R for v, b in zip(x, seeds)]\n"
        "        for u in survivors:\n"
        "            for v in [w for w in survivors if w > u]:\n"
        "                pair = masking.prg(masking.agree(keys[u][0], keys[v][1]), shape)\n"
        "                masked[u], masked[v] = (masked[u] + pair) % R, (masked[v] - pair) % R\n"
        "        self.masked_vectors_ = {u: masked[u] for u in survivors}\n"
        "        total = sum(masked[u] for u in survivors) % R\n"
        "        for u in survivors:\n"
        "            b = masking.recover_secret([seed_shares[u][w] for w in survivors])\n"
        "            total = (total - masking.prg(b, shape)) % R\n"
        "        return total\n",
        ["secure_aggregate_recovers_from_dropouts", "masked_vectors_are_the_inputs_under_masks_from_the_seed",
         "masked_vectors_do_not_depend_on_who_drops_out"],
        "masked_vectors_do_not_depend_on_who_drops_out"),
    # boundaries: each stated range's edge, one step to either side
    "weights that sum to 1 or less refused": (
        "not weights.sum() > 0:", "not weights.sum() > 1:",
        ["federated_average_accepts_weights_that_sum_to_one_or_less"],
        "federated_average_accepts_weights_that_sum_to_one_or_less"),
    "weights that sum to less than 1 refused": (
        "not weights.sum() > 0:", "not weights.sum() >= 1:",
        ["federated_average_accepts_weights_that_sum_to_one_or_less"],
        "federated_average_accepts_weights_that_sum_to_one_or_less"),
    "a negative weight accepted when the sum is positive": (
        "if np.any(weights < 0) or not weights.sum() > 0:", "if not weights.sum() > 0:",
        ["federated_average_rejects_bad_input"], "federated_average_rejects_bad_input"),
    "privatize_gradients refuses expected_batch_size=1": (
        "if not expected_batch_size > 0:", "if not expected_batch_size > 1:",
        ["accepts_the_edges_of_its_range"], "privatize_gradients_accepts_a_batch_of_one"),
    "privatize_gradients accepts expected_batch_size=0": (
        "if not expected_batch_size > 0:", "if not expected_batch_size >= 0:",
        ["rejects_bad_input"], "privatize_gradients_rejects_bad_input"),
    "privatize_gradients refuses noise_multiplier=0": (
        "    if not noise_multiplier >= 0:\n        raise ValueError(f\"noise_multiplier must be >= 0, got "
        "{noise_multiplier!r}\")\n    if not expected_batch_size",
        "    if not noise_multiplier > 0:\n        raise ValueError(f\"noise_multiplier must be >= 0, got "
        "{noise_multiplier!r}\")\n    if not expected_batch_size",
        ["noiseless_update_is_the_clipped_sum_over_the_expected_batch_size"],
        "noiseless_update_is_the_clipped_sum_over_the_expected_batch_size"),
    "clip_gradients accepts l2_norm_clip=0": (
        "    if not l2_norm_clip > 0:\n        raise", "    if not l2_norm_clip >= 0:\n        raise",
        ["rejects_bad_input"], "clip_gradients_rejects_bad_input"),
    "training refuses batch_size=1": (
        "1 <= self.batch_size <= n", "1 < self.batch_size <= n",
        ["training_accepts_the_edges_of_its_settings"], "training_accepts_the_edges_of_its_settings"),
    "training refuses batch_size=n": (
        "1 <= self.batch_size <= n", "1 <= self.batch_size < n",
        ["training_accepts_the_edges_of_its_settings"], "training_accepts_the_edges_of_its_settings"),
    "training accepts batch_size=0": (
        "1 <= self.batch_size <= n", "0 <= self.batch_size <= n",
        ["training_accepts_the_edges_of_its_settings"], "training_accepts_the_edges_of_its_settings"),
    "training refuses epochs=1": (
        "self.epochs >= 1", "self.epochs > 1",
        ["training_accepts_the_edges_of_its_settings"], "training_accepts_the_edges_of_its_settings"),
    "poisson_sample refuses sample_rate=1": (
        "    if not 0 < sample_rate <= 1:\n        raise ValueError(f\"sample_rate must be in (0, 1], got "
        "{sample_rate!r}\")\n    return",
        "    if not 0 < sample_rate < 1:\n        raise ValueError(f\"sample_rate must be in (0, 1], got "
        "{sample_rate!r}\")\n    return",
        ["accepts_the_edges_of_its_range"], "poisson_sample_accepts_rate_1_and_one_record"),
    "poisson_sample refuses n=1": (
        "or n < 1:", "or n < 2:",
        ["accepts_the_edges_of_its_range"], "poisson_sample_accepts_rate_1_and_one_record"),
    "epsilon_spent refuses sample_rate=1": (
        "    if not 0 < sample_rate <= 1:\n        raise ValueError(f\"sample_rate must be in (0, 1], got "
        "{sample_rate!r}\")\n    if isinstance(steps",
        "    if not 0 < sample_rate < 1:\n        raise ValueError(f\"sample_rate must be in (0, 1], got "
        "{sample_rate!r}\")\n    if isinstance(steps",
        ["epsilon_matches_the_accountant"], "epsilon_matches_the_accountant"),
    "clopper_pearson refuses a single trial": (
        "if not (n >= 1 and 0 <= k <= n):", "if not (n > 1 and 0 <= k <= n):",
        ["accepts_the_edges_of_its_range"], "clopper_pearson_accepts_a_single_trial"),
    "clopper_pearson accepts zero trials": (
        "if not (n >= 1 and 0 <= k <= n):", "if not (n >= 0 and 0 <= k <= n):",
        ["rejects_bad_input"], "clopper_pearson_rejects_bad_input"),
    "clopper_pearson accepts alpha=1": (
        "    if not 0 < alpha < 1:", "    if not 0 < alpha <= 1:",
        ["rejects_bad_input"], "clopper_pearson_rejects_bad_input"),
    "secure_aggregate refuses a threshold equal to the number of clients": (
        "if not 2 <= self.threshold <= n:", "if not 2 <= self.threshold < n:",
        ["secure_aggregate_accepts_thresholds_from_2_to_n"], "secure_aggregate_accepts_thresholds_from_2_to_n"),
    "secure_aggregate refuses threshold=2": (
        "if not 2 <= self.threshold <= n:", "if not 2 < self.threshold <= n:",
        ["secure_aggregate_accepts_thresholds_from_2_to_n"], "secure_aggregate_accepts_thresholds_from_2_to_n"),
    "secure_aggregate accepts threshold=1": (
        "if not 2 <= self.threshold <= n:", "if not 1 <= self.threshold <= n:",
        ["secure_aggregate_rejects_bad_input"], "secure_aggregate_rejects_bad_input"),
    "secure_aggregate refuses exactly threshold survivors": (
        "if len(survivors) < self.threshold:", "if len(survivors) <= self.threshold:",
        ["secure_aggregate_accepts_thresholds_from_2_to_n"], "secure_aggregate_accepts_thresholds_from_2_to_n"),
    "one-time pad: inputs plus a seeded PRG, the plain sum, no shares": (
        "        rng = np.random.default_rng(self.seed)\n        keys = [",
        "        rng = np.random.default_rng(self.seed)\n"
        "        pads = [masking.prg(rng.bytes(32), shape) for _ in range(n)]\n"
        "        self.masked_vectors_ = {u: (x[u] + pads[u]) % R for u in survivors}\n"
        "        return sum(x[u] for u in survivors) % R\n"
        "        keys = [",
        ["masked_vectors_are_the_inputs_under_masks_from_the_seed", "masked_vectors_do_not_depend_on_who_drops_out",
         "the_server_can_unmask_the_sum_from_what_it_received"],
        "the_server_can_unmask_the_sum_from_what_it_received"),
    "secrets shared with threshold 2 whatever self.threshold": (
        "seed_shares = [masking.share_secret(b, n, self.threshold, rng)",
        "seed_shares = [masking.share_secret(b, n, 2, rng)",
        ["secure_aggregate_recovers_from_dropouts", "the_server_can_unmask_the_sum_from_what_it_received"],
        "the_server_can_unmask_the_sum_from_what_it_received"),
    "survivors reveal both secrets of every client": (
        "{v: key_shares[v][w] for v in dropped})\n", "{v: key_shares[v][w] for v in range(n)})\n",
        ["the_server_can_unmask_the_sum_from_what_it_received"], "the_server_can_unmask_the_sum_from_what_it_received"),
}


@pytest.mark.slow  # a grading run per case (one judge for all): make test runs it, make test-fast does not
@pytest.mark.parametrize("mistake", list(WRONG))
def test_wrong_solutions_lose_points(mistake, graded_variants):
    old, new, checks, must_fail = WRONG[mistake]
    report = graded_variants("ex2", {m: (o, n, c) for m, (o, n, c, _) in WRONG.items()})[mistake]
    assert must_fail in report.failed(), f"{mistake}: {must_fail} still passes"
    message = report.failed()[must_fail]
    assert message and "not implemented" not in message and "Traceback" not in message, message


def test_solution_bounds_hold_on_the_solution_itself():
    # the audit's bound never exceeds what the counts allow, and epsilon grows with the steps
    sol = load(SOLUTION)
    assert sol.epsilon_lower_bound(50, 0, 0, 50) < np.log(1 / sol.clopper_pearson(0, 50)[1]) + 1e-9
    eps = [sol.epsilon_spent(1.5, 0.05, steps, 1e-5) for steps in (10, 100, 1000)]
    assert eps == sorted(eps) and eps[0] > 0
    assert sol.epsilon_spent(0.0, 0.05, 10, 1e-5) == np.inf


def test_solution_agrees_with_the_course_modules():
    # the exercise is self-contained; where the course's own modules exist, the two must agree
    accounting = pytest.importorskip("mlsec_lessons.privacy.accounting")
    auditing = pytest.importorskip("mlsec_lessons.privacy_attacks.auditing")
    membership = pytest.importorskip("mlsec_lessons.privacy_attacks.membership")
    sol = load(SOLUTION)
    for case in [(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), (1.5, 64 / 1057, 15 * 1057 // 64, 1e-5)]:
        assert sol.epsilon_spent(*case) == pytest.approx(accounting.epsilon(*case, accountant="rdp"), rel=1e-9)
    for k, n in [(0, 50), (3, 10), (50, 50), (17, 200)]:
        np.testing.assert_allclose(sol.clopper_pearson(k, n), auditing.clopper_pearson(k, n))
    for counts in [(90, 10, 5, 95), (50, 0, 0, 50), (30, 20, 10, 40), (5, 95, 0, 100)]:
        assert sol.epsilon_lower_bound(*counts, delta=1e-5) == pytest.approx(
            auditing.epsilon_lower_bound(*counts, delta=1e-5))

    class Scored:  # a "model" whose loss is minus a given score, to compare the attack's bookkeeping
        def __init__(self, score):
            self.score = score

        def losses(self, x, y):
            return -self.score[np.asarray(x)]

    rng = np.random.default_rng(0)
    is_member = rng.random(400) < 0.5
    score = np.round(rng.normal(is_member * 1.0, 1.0), 1)  # rounding makes ties
    index = np.arange(400)
    result = sol.PrivacyPreservingSystem().evaluate_privacy(
        Scored(score), (index[is_member], None), (index[~is_member], None), max_fpr=0.05)
    ordered = np.r_[score[is_member], score[~is_member]]
    truth = np.r_[np.ones(is_member.sum(), bool), np.zeros((~is_member).sum(), bool)]
    assert result["tpr_at_low_fpr"] == pytest.approx(membership.tpr_at_fpr(truth, ordered, 0.05))


def test_trimmed_mean_oracle_is_flowers_fedtrimmedavg():
    # the checks use scipy.stats.trim_mean as the oracle (Flower is too heavy for the grading
    # worker); here Flower's FedTrimmedAvg aggregation, the reference and scipy agree on the same
    # updates, with several layers, and at the values of beta where floor and round differ
    aggregate = pytest.importorskip("flwr.server.strategy.aggregate")
    from scipy.stats import trim_mean

    sol = load(SOLUTION)
    system = sol.PrivacyPreservingSystem()
    rng = np.random.default_rng(0)
    for n, beta in [(10, 0.0), (10, 0.1), (10, 0.25), (7, 0.3), (5, 0.3), (4, 0.4), (3, 0.49), (1, 0.4)]:
        layers = [rng.standard_t(2, size=(n, 4, 3)), rng.standard_t(2, size=(n, 5))]
        layers[0][0] *= 100  # one client scales its update up
        results = [([layer[client] for layer in layers], int(rng.integers(1, 1000))) for client in range(n)]
        flower = aggregate.aggregate_trimmed_avg(results, beta)  # it ignores the clients' record counts
        for layer, theirs in zip(layers, flower):
            ours = system.trimmed_mean(list(layer), beta)
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(trim_mean(layer, beta, axis=0), theirs, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):  # both refuse beta = 0.5
        aggregate.aggregate_trimmed_avg(results, 0.5)
    with pytest.raises(ValueError):
        system.trimmed_mean(list(layers[0]), 0.5)
