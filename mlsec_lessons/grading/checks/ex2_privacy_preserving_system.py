"""Checks for exercise 2, a privacy-preserving system.

``impl`` is the student's module, ``ref`` the reference solution. Unit checks isolate each
piece of DP-SGD and of the audit and compare it with an oracle: finite differences for the
per-example gradients, ``dp_accounting`` for epsilon, ``scipy`` for the Clopper-Pearson
interval, and statistics of many draws for the noise and the sampling. End-to-end checks train
the student's system and the reference with the same settings on digits with audit canaries,
once with DP-SGD and once without noise, and compare accuracy, epsilon, the attack and the audit;
one more short run, with far too much noise, checks that training uses the noise at all.

The tolerances of the end-to-end checks were set from the spread over 8 training seeds of the
reference (DP accuracy 0.86-0.90; canary TPR at 5% FPR 0.20-0.42 without noise, 0.02-0.09 with).

Part 2 (federated averaging and secure aggregation) is checked against oracles alone: a weighted
mean, and the plain sum mod R of the surviving clients' vectors, which secure aggregation must
return exactly. What the server received is checked for what it must not show: its histogram
must be uniform on Z_R whatever the input, and uncorrelated with it. A right total says nothing
about the masking (the plain sum is easy to return), so what the server received is also checked
for what it must be: ``y_u = x_u + m_u``, with masks ``m_u`` that come from the round's seed alone.
Two rounds with the same seed and inputs that differ by ``D`` must give masked vectors that differ
by exactly ``D``; a survivor's ``y_u`` must not change with who else drops out (clients mask
before anyone drops out); another seed must give other masks. Random numbers in
``masked_vectors_`` fail the first, masks drawn among the survivors alone the second. (That the
server could unmask the total itself needs the shares revealed in the unmasking round, which
``secure_aggregate`` does not record: masked vectors alone are uniform, by design.)

The robust aggregator, ``trimmed_mean``, is checked against ``scipy.stats.trim_mean`` along the
clients' axis, which Flower's ``FedTrimmedAvg`` equals (tests/test_grading_ex2.py asserts it; Flower
itself is too heavy to import in the worker): heavy-tailed updates with one scaled-up client, then
the cases where ``floor(beta * n)`` and ``round(beta * n)`` differ, and ``beta = 0``.

Bad input is refused, and the edges of each stated range are accepted: a batch of one
(``expected_batch_size=1``), ``sample_rate=1``, a single trial, weights that sum to 1 or less, a
threshold of 2 or of all the clients. A ``>`` written for ``>=`` (or the reverse) fails one side.
"""
import dataclasses

import dp_accounting
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from scipy.stats import binomtest, chisquare, trim_mean

from mlsec_lessons.data import load_digits
from mlsec_lessons.federated.masking import MODULUS as R
from mlsec_lessons.federated.masking import agree, prg, recover_secret
from mlsec_lessons.grading.expect import expect_close, expect_value_error, show
from mlsec_lessons.grading.remote import fresh

# the library's answers to this exercise; masking's primitives (key agreement, PRG, Shamir
# shares, quantisation) stay allowed, its protocol does not
OFF_LIMITS = {"mlsec_lessons.privacy.dp_sgd": "*", "mlsec_lessons.privacy.accounting": "*",
              "mlsec_lessons.privacy.mechanisms": "*", "mlsec_lessons.privacy.dp_models": "*",
              "mlsec_lessons.privacy_attacks.auditing": "*", "mlsec_lessons.privacy_attacks.lira": "*",
              "mlsec_lessons.privacy_attacks.membership": "*", "mlsec_lessons.metrics": "*",
              "mlsec_lessons.federated.fedavg": "*", "mlsec_lessons.federated.secagg": "*",
              "mlsec_lessons.federated.masking": ["advertise_keys", "share_keys", "pairwise_mask", "mask", "reveal",
                                                  "unmask", "simulate_round", "secure_mean", "Client", "ServerView",
                                                  "RoundResult"]}
# classes of the exercise's scaffolding: their objects travel as data, and the judge evaluates
# a student's model with its own copy of the class, never with the student's methods
SHARED_CLASSES = ["TinyMLP"]

# five training runs (two of the reference, three of the student's code), 1-3 s each: about
# 15 s for the whole grading of a complete file
TIME_LIMIT = 90
CHECK_TIME_LIMIT = 30
# imported once by the fork server each worker is forked from (grading/forkserver.py)
PRELOAD = ["numpy", "scipy.stats", "sklearn.metrics", "dp_accounting"]

DP = dict(l2_norm_clip=1.0, noise_multiplier=1.5, batch_size=64, epochs=15, learning_rate=1.0, delta=1e-5, seed=0)
# no noise and a clip norm no gradient reaches: plain SGD through the same code
NON_PRIVATE = dict(DP, noise_multiplier=0.0, l2_norm_clip=1e3, batch_size=32, epochs=30, learning_rate=0.5)
# so much noise that nothing is learnt: without noise 3 epochs reach 0.8
LOUD = dict(DP, noise_multiplier=20.0, epochs=3)
LOW_FPR = 0.05  # 200 non-member canaries: 5% FPR is 10 of them, 1% only 2


def points(n):
    return pytest.mark.points(n)


def oracle_epsilon(noise_multiplier, sample_rate, steps, delta):
    event = dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)


def oracle_interval(k, n, alpha):
    ci = binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    return ci.low, ci.high


def oracle_bound(tp, fn, fp, tn, delta, alpha):
    tpr_low, fpr_high = oracle_interval(tp, tp + fn, alpha)[0], oracle_interval(fp, fp + tn, alpha)[1]
    bounds = [np.log((tpr_low - delta) / fpr_high) if tpr_low > delta else 0.0,
              np.log((1 - fpr_high - delta) / (1 - tpr_low)) if 1 - fpr_high > delta else 0.0]
    return max(0.0, *bounds)


def accepted(fn, call, why, *args):
    """``fn(*args)``, which must not raise ValueError: ``args`` are on the edge of what the
    docstring allows."""
    try:
        return fn(*args)
    except ValueError as e:
        raise AssertionError(f"{call} raised ValueError ({e}); {why}") from None


def clipped(grads, clip):
    norms = np.linalg.norm(grads, axis=1, keepdims=True)
    return grads * np.minimum(1.0, clip / np.maximum(norms, 1e-12))


# --------------------------------------------------------------------------- shared training runs
@pytest.fixture(scope="module")
def digits(ref):
    """Digits, with the reference's 400 canaries: both systems train on the same records."""
    data = load_digits()
    train, canaries = ref.add_canaries(data)
    members = (canaries["x"][canaries["is_member"]], canaries["y"][canaries["is_member"]])
    non_members = (canaries["x"][~canaries["is_member"]], canaries["y"][~canaries["is_member"]])
    return data, train, members, non_members


def fit(module, params, digits):
    system = module.PrivacyPreservingSystem(**params)
    model = system.train_private_model(digits[1])
    return system, model


@pytest.fixture(scope="module")
def ref_dp(ref, digits):
    return fit(ref, DP, digits)


@pytest.fixture(scope="module")
def impl_runs(impl, digits):
    """The student's two training runs, in a fresh worker: nothing an earlier check sent there
    (the reference's models) is left to return instead of training."""
    fresh(impl)
    runs = {}
    for name, params in (("dp", DP), ("plain", NON_PRIVATE)):
        try:
            runs[name] = fit(impl, params, digits)
        except Exception as e:  # each check that needs this run fails with its error
            runs[name] = e
    return runs


def trained(runs, name):
    if isinstance(runs[name], Exception):
        raise runs[name]
    return runs[name]


@pytest.fixture(scope="module")
def impl_dp(impl_runs):
    return trained(impl_runs, "dp")


@pytest.fixture(scope="module")
def ref_plain(ref, digits):
    return fit(ref, NON_PRIVATE, digits)


@pytest.fixture(scope="module")
def impl_plain(impl_runs):
    return trained(impl_runs, "plain")


def canary_attack(system, model, digits, max_fpr=LOW_FPR):
    return system.evaluate_privacy(model, digits[2], digits[3], max_fpr=max_fpr)


# --------------------------------------------------------------------------- DP-SGD, piece by piece
@points(2)
def test_per_example_gradients_match_finite_differences(impl, ref):
    rng = np.random.default_rng(0)
    model = ref.TinyMLP(5, 3, hidden=4, rng=rng)
    x, y = rng.normal(size=(6, 5)), rng.integers(3, size=6)
    got = impl.per_example_gradients(model, x, y)
    assert np.shape(got) == (6, model.n_params), (
        f"per_example_gradients returned shape {np.shape(got)}; expected one row per record and one "
        f"column per parameter, (6, {model.n_params})")
    want = np.zeros((6, model.n_params))
    column, h = 0, 1e-6
    for p in model.params:
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + h
            up = model.losses(x, y)
            p[index] = saved - h
            down = model.losses(x, y)
            p[index] = saved
            want[:, column] = (up - down) / (2 * h)
            column += 1
    worst = np.abs(np.asarray(got) - want).max()
    assert worst < 1e-5, (
        f"per_example_gradients differs from finite differences of model.losses by up to {worst:.3g}; "
        "row i must be the gradient of record i's loss, in the order W1, b1, W2, b2")


@points(1)
def test_clipping_bounds_every_gradient(impl):
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(8, 10)) * np.array([0.1, 0.5, 1, 2, 5, 10, 100, 0])[:, None]
    got = impl.clip_gradients(grads, 2.5)
    expect_close(got, clipped(grads, 2.5), "clip_gradients(grads, l2_norm_clip=2.5)",
                 "rows longer than 2.5 are scaled down to norm 2.5, in the same direction; shorter rows stay")


@points(2)
def test_one_example_influence_is_bounded_by_the_clip_norm(impl):
    rng = np.random.default_rng(2)
    batch = rng.normal(size=(5, 30)) * 3
    outlier = rng.normal(size=(1, 30))
    outlier *= 1000 / np.linalg.norm(outlier)
    clip, expected = 0.5, 5
    without = impl.privatize_gradients(batch, clip, 0.0, expected, np.random.default_rng(0))
    with_outlier = impl.privatize_gradients(np.vstack([batch, outlier]), clip, 0.0, expected, np.random.default_rng(0))
    moved = np.linalg.norm(np.asarray(with_outlier) - np.asarray(without))
    assert moved <= clip / expected * (1 + 1e-9), (
        f"adding one record whose gradient has norm 1000 moved the update by {moved:.4g}; after clipping "
        f"to {clip} it can move it by at most l2_norm_clip / expected_batch_size = {clip / expected:.4g}")


@points(1)
def test_noiseless_update_is_the_clipped_sum_over_the_expected_batch_size(impl):
    grads = np.array([[3.0, 4.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, -10.0]])
    got = impl.privatize_gradients(grads, 1.0, 0.0, 8, np.random.default_rng(0))
    expect_close(got, clipped(grads, 1.0).sum(axis=0) / 8,
                 "privatize_gradients(3 gradients, l2_norm_clip=1, noise_multiplier=0, expected_batch_size=8)",
                 "the sum of the clipped gradients divided by the expected batch size, 8 (not by the 3 rows "
                 "this Poisson batch happens to have)")


@points(2)
def test_noise_std_is_multiplier_times_clip_over_batch_size(impl):
    clip, multiplier, expected = 3.0, 2.0, 16
    rng = np.random.default_rng(3)
    zeros = np.zeros((expected, 20000))  # zero gradients: what comes out is the noise alone
    first = np.asarray(impl.privatize_gradients(zeros, clip, multiplier, expected, rng))
    second = np.asarray(impl.privatize_gradients(zeros, clip, multiplier, expected, rng))
    want = multiplier * clip / expected
    std = first.std()
    assert abs(std / want - 1) < 0.05, (
        f"with zero gradients the update's std is {std:.4g}; expected noise_multiplier * l2_norm_clip / "
        f"expected_batch_size = {want:.4g}: noise of std {multiplier * clip:g} added once to the sum "
        f"(noise per record would give {want * np.sqrt(expected):.4g}, noise not scaled by the clip norm "
        f"{want / clip:.4g})")
    assert abs(first.mean()) < 5 * want / np.sqrt(first.size), f"the noise has mean {first.mean():.3g}, not 0"
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.05, "two steps drew the same noise; each step needs fresh noise"


@points(2)
def test_poisson_sampling_includes_each_record_independently(impl):
    n, rate, draws = 200, 0.1, 2000
    rng = np.random.default_rng(4)
    counts, sizes = np.zeros(n), []
    for _ in range(draws):
        batch = np.asarray(impl.poisson_sample(n, rate, rng))
        assert batch.ndim == 1 and len(np.unique(batch)) == len(batch) and np.all((0 <= batch) & (batch < n)), (
            f"poisson_sample({n}, {rate}, rng) must return distinct indices from 0 to {n - 1}, got {batch[:10]}...")
        counts[batch] += 1
        sizes.append(len(batch))
    mean, var = np.mean(sizes), np.var(sizes)
    assert abs(mean - n * rate) < 0.5, (
        f"the batches hold {mean:.2f} records on average; expected n * rate = {n * rate:g}")
    assert 13 < var < 23, (
        f"the batch size varies with variance {var:.2f}; Poisson sampling gives a binomial size, variance "
        f"n * rate * (1 - rate) = {n * rate * (1 - rate):g} (fixed-size batches give 0)")
    worst = np.abs(counts / draws - rate).max()
    assert worst < 0.04, (
        f"one record's share of the batches is off the rate {rate} by {worst:.3f}; each record must join "
        f"independently with probability {rate}")


EPSILON_CASES = [(1.1, 256 / 60000, 60 * 60000 // 256, 1e-5), (1.5, 64 / 1257, 15 * 1257 // 64, 1e-5),
                 (3.0, 0.01, 1000, 1e-6), (1.0, 1.0, 10, 1e-5), (0.0, 0.1, 10, 1e-5)]


@points(2)
def test_epsilon_matches_the_accountant(impl):
    for case in EPSILON_CASES:
        call = "epsilon_spent(noise_multiplier={}, sample_rate={:.4g}, steps={}, delta={:g})".format(*case)
        expect_close(impl.epsilon_spent(*case), oracle_epsilon(*case), call,
                     "what dp_accounting's RdpAccountant gives for that many Poisson-sampled Gaussian steps "
                     "(infinite when there is no noise)")


# --------------------------------------------------------------------------- auditing, piece by piece
@points(1)
def test_clopper_pearson_matches_scipy(impl):
    for k, n, alpha in [(0, 50, 0.05), (3, 10, 0.05), (50, 50, 0.05), (17, 200, 0.1), (1, 2, 0.2)]:
        expect_close(impl.clopper_pearson(k, n, alpha), oracle_interval(k, n, alpha),
                     f"clopper_pearson(k={k}, n={n}, alpha={alpha})",
                     "the exact interval, as scipy.stats.binomtest(k, n).proportion_ci(method='exact') gives it")


AUDIT_CASES = [
    ((90, 10, 5, 95), "90 of 100 members flagged, 5 of 100 non-members"),
    ((50, 0, 0, 50), "every member flagged and no non-member: the observed FPR is 0, so log(TPR / FPR) is "
                     "infinite; only the upper end of the FPR's interval gives a finite bound"),
    ((30, 20, 10, 40), "30 of 50 members flagged, 10 of 50 non-members"),
    ((5, 95, 0, 100), "few members flagged and no non-member"),
]


@points(2)
def test_audit_bound_uses_confidence_intervals(impl):
    for (tp, fn, fp, tn), why in AUDIT_CASES:
        expect_close(impl.epsilon_lower_bound(tp, fn, fp, tn, 1e-5, 0.05), oracle_bound(tp, fn, fp, tn, 1e-5, 0.05),
                     f"epsilon_lower_bound(tp={tp}, fn={fn}, fp={fp}, tn={tn})",
                     f"{why}; the bound uses the lowest TPR and the highest FPR of the Clopper-Pearson intervals")


# --------------------------------------------------------------------------- the system, end to end
@points(2)
def test_training_spends_the_accounted_epsilon(impl_dp, digits):
    system, _ = impl_dp
    n = len(digits[1].x_train)
    rate, steps = DP["batch_size"] / n, DP["epochs"] * n // DP["batch_size"]
    expect_close(getattr(system, "steps_", None), steps, "PrivacyPreservingSystem(...).steps_",
                 f"epochs * n // batch_size with n = {n} training records")
    expect_close(getattr(system, "epsilon_", None), oracle_epsilon(DP["noise_multiplier"], rate, steps, DP["delta"]),
                 "PrivacyPreservingSystem(...).epsilon_",
                 f"the RDP accountant's epsilon for {steps} steps at sample_rate = batch_size / n = "
                 f"{DP['batch_size']}/{n} (the rate each training record is sampled at) and "
                 f"noise_multiplier {DP['noise_multiplier']}")


@points(1)
def test_training_adds_the_noise(impl, digits):
    data, train = digits[0], digits[1]
    system = impl.PrivacyPreservingSystem(**LOUD)
    accuracy = system.train_private_model(train).accuracy(data.x_test, data.y_test)
    assert accuracy < 0.4, (
        f"trained with noise_multiplier={LOUD['noise_multiplier']} for {LOUD['epochs']} epochs (epsilon 0.07), "
        f"your model reaches test accuracy {accuracy:.2f}; noise that large swamps the gradients, and the "
        "reference stays near chance (0.1 to 0.2). Does training pass noise_multiplier to privatize_gradients?")


@points(3)
def test_accuracy_matches_reference_at_the_same_epsilon(impl_dp, ref_dp, digits):
    data = digits[0]
    got, want = impl_dp[1].accuracy(data.x_test, data.y_test), ref_dp[1].accuracy(data.x_test, data.y_test)
    assert abs(got - want) <= 0.06, (
        f"your DP-SGD model has test accuracy {got:.3f}; the reference reaches {want:.3f} with the same settings "
        f"(epsilon {ref_dp[0].epsilon_:.2f}), and training seeds move it by less than 0.06")


@points(2)
def test_evaluate_privacy_matches_reference(impl, ref_plain, digits):
    system, model = ref_plain
    for max_fpr in (0.01, LOW_FPR):
        got = canary_attack(impl.PrivacyPreservingSystem(**NON_PRIVATE), model, digits, max_fpr)
        want = canary_attack(system, model, digits, max_fpr)
        for key in ("auc", "tpr_at_low_fpr"):
            expect_close(got.get(key) if isinstance(got, dict) else None, want[key],
                         f"evaluate_privacy(model, canary members, canary non-members, max_fpr={max_fpr})[{key!r}]",
                         "the loss-threshold attack (score = minus the loss) on the reference's model, which "
                         "was trained without noise")
    expect_close(got["scores"], want["scores"], "evaluate_privacy(...)['scores']",
                 "minus each record's loss, members first")


@points(2)
def test_membership_leak_matches_reference(impl_plain, ref_plain, impl_dp, ref_dp, digits):
    for name, (mine, theirs), tolerance in [("without noise", (impl_plain, ref_plain), 0.25),
                                            ("with DP-SGD", (impl_dp, ref_dp), 0.12)]:
        got = canary_attack(*mine, digits)["tpr_at_low_fpr"]
        want = canary_attack(*theirs, digits)["tpr_at_low_fpr"]
        assert abs(got - want) <= tolerance, (
            f"trained {name}, your model lets the attack find {got:.2f} of the member canaries at "
            f"{LOW_FPR:.0%} FPR; the reference's model, {want:.2f} (training seeds move it by less than {tolerance})")


@points(2)
def test_audit_matches_reference(impl, ref_plain, digits):
    system, model = ref_plain
    evaluation = canary_attack(system, model, digits)
    got = impl.PrivacyPreservingSystem(**NON_PRIVATE).audit(evaluation)
    want = system.audit(evaluation)
    for key in ("epsilon_lower_bound", "threshold"):
        expect_close(got.get(key) if isinstance(got, dict) else None, want[key], f"audit(evaluation)[{key!r}]",
                     "the threshold chosen on the first half of the records, the bound computed on the second")


@points(1)
def test_audit_stays_below_the_accountant_with_dp(impl_dp, digits):
    system, model = impl_dp
    bound = system.audit(canary_attack(system, model, digits))["epsilon_lower_bound"]
    assert bound < min(1.0, system.epsilon_), (
        f"the audit proves epsilon >= {bound:.2f} for your DP-SGD model, whose accountant says "
        f"{system.epsilon_:.2f}; the reference's audit finds 0 here (the noise hides the canaries)")


@points(2)
def test_audit_finds_the_leak_without_noise(impl_plain, digits):
    system, model = impl_plain
    bound = system.audit(canary_attack(system, model, digits))["epsilon_lower_bound"]
    assert bound >= 0.5, (
        f"trained without noise, the model memorises its mislabeled canaries, yet your audit proves only "
        f"epsilon >= {bound:.2f}; the reference proves 0.9 to 2.1 (depending on the seed)")


# --------------------------------------------------------------------------- bad input
BAD_INPUT = [
    pytest.param("clip_gradients", [
        ("for l2_norm_clip=0", np.ones((2, 3)), 0.0),
        ("for a negative l2_norm_clip", np.ones((2, 3)), -1.0),
    ], id="clip_gradients_rejects_bad_input", marks=points(1)),
    pytest.param("privatize_gradients", [
        ("for a negative noise_multiplier", np.ones((2, 3)), 1.0, -0.5, 2, np.random.default_rng(0)),
        ("for expected_batch_size=0", np.ones((2, 3)), 1.0, 1.0, 0, np.random.default_rng(0)),
    ], id="privatize_gradients_rejects_bad_input", marks=points(1)),
    pytest.param("poisson_sample", [
        ("for sample_rate=0", 10, 0.0, np.random.default_rng(0)),
        ("for sample_rate=1.5", 10, 1.5, np.random.default_rng(0)),
        ("for n=0", 0, 0.5, np.random.default_rng(0)),
    ], id="poisson_sample_rejects_bad_input", marks=points(1)),
    pytest.param("epsilon_spent", [
        ("for delta=0", 1.0, 0.1, 10, 0.0),
        ("for delta=1", 1.0, 0.1, 10, 1.0),
        ("for sample_rate=0", 1.0, 0.0, 10, 1e-5),
        ("for a negative noise_multiplier", -1.0, 0.1, 10, 1e-5),
        ("for steps=-1", 1.0, 0.1, -1, 1e-5),
    ], id="epsilon_spent_rejects_bad_input", marks=points(1)),
    pytest.param("clopper_pearson", [
        ("for k > n", 5, 3, 0.05),
        ("for a negative k", -1, 3, 0.05),
        ("for alpha=0", 1, 3, 0.0),
        ("for alpha=1", 1, 3, 1.0),
        ("for n=0 trials", 0, 0, 0.05),
    ], id="clopper_pearson_rejects_bad_input", marks=points(1)),
]


@pytest.mark.parametrize("function, cases", BAD_INPUT)
def test_rejects_bad_input(impl, function, cases):
    for why, *args in cases:
        expect_value_error(getattr(impl, function), why, *args)


# the other side of each boundary: the smallest (or largest) value the docstring allows must work.
# (arguments as the message shows them, the arguments, what is allowed, the oracle's answer, what it is)
GRADS = np.array([[3.0, 4.0, 0.0], [0.0, 0.5, 0.0]])
EDGES = [
    pytest.param("privatize_gradients", [
        ("2 gradients, l2_norm_clip=1, noise_multiplier=0, expected_batch_size=1",
         (GRADS, 1.0, 0.0, 1, np.random.default_rng(0)), "an expected batch of one record (any expected_batch_size > 0)",
         clipped(GRADS, 1.0).sum(axis=0), "the clipped sum divided by 1"),
        ("1 gradient, l2_norm_clip=1, noise_multiplier=0, expected_batch_size=1",
         (GRADS[:1], 1.0, 0.0, 1, np.random.default_rng(0)), "a batch of one record",
         clipped(GRADS[:1], 1.0)[0], "its clipped gradient"),
    ], id="privatize_gradients_accepts_a_batch_of_one", marks=points(1)),
    pytest.param("poisson_sample", [
        ("n=7, sample_rate=1", (7, 1.0, np.random.default_rng(0)), "sample_rate=1 (the rate is in (0, 1])",
         np.arange(7), "every record"),
        ("n=1, sample_rate=1", (1, 1.0, np.random.default_rng(0)), "a single record (n >= 1)", np.arange(1), "index 0"),
    ], id="poisson_sample_accepts_rate_1_and_one_record", marks=points(1)),
    pytest.param("clopper_pearson", [
        ("k=0, n=1, alpha=0.05", (0, 1, 0.05), "a single trial (n >= 1)", oracle_interval(0, 1, 0.05),
         "scipy's exact interval"),
        ("k=1, n=1, alpha=0.05", (1, 1, 0.05), "a single trial (n >= 1)", oracle_interval(1, 1, 0.05),
         "scipy's exact interval"),
        ("k=3, n=10, alpha=0.999", (3, 10, 0.999), "any alpha below 1", oracle_interval(3, 10, 0.999),
         "scipy's exact interval"),
    ], id="clopper_pearson_accepts_a_single_trial", marks=points(1)),
]


@pytest.mark.parametrize("function, cases", EDGES)
def test_accepts_the_edges_of_its_range(impl, function, cases):
    for shown, args, edge, want, what in cases:
        call = f"{function}({shown})"
        got = accepted(getattr(impl, function), call, f"{edge} is allowed", *args)
        expect_close(got, want, call, f"{edge} is allowed: {what}")


def few_records(digits, n):
    """The first ``n`` training records of digits, as a Dataset."""
    train = digits[1]
    return dataclasses.replace(train, x_train=train.x_train[:n], y_train=train.y_train[:n])


@points(1)
def test_training_accepts_the_edges_of_its_settings(impl, digits):
    # batch_size from 1 to n and epochs >= 1 are allowed. With n = batch_size every record joins
    # every step (sample_rate 1), so no batch is empty, and batch_size=1 is reached with n=1
    for n, batch_size, epochs in [(1, 1, 2), (40, 40, 1)]:
        call = (f"PrivacyPreservingSystem(batch_size={batch_size}, epochs={epochs}).train_private_model("
                f"{n} training record{'s' if n > 1 else ''})")
        why = ("batch_size may be anything from 1 to the number of training records, and epochs any integer from 1 "
               "(and privatize_gradients must accept expected_batch_size=1)")
        system = impl.PrivacyPreservingSystem(**{**DP, "batch_size": batch_size, "epochs": epochs})
        accepted(system.train_private_model, call, why, few_records(digits, n))
        steps = epochs * n // batch_size
        expect_close(getattr(system, "steps_", None), steps, f"{call}, then steps_", why)
        expect_close(getattr(system, "epsilon_", None), oracle_epsilon(DP["noise_multiplier"], 1.0, steps, DP["delta"]),
                     f"{call}, then epsilon_", f"the accountant's epsilon for {steps} steps at sample_rate 1")
    # and one step past each edge is refused
    for why, settings in [("for batch_size=0", dict(batch_size=0)),
                          ("for a batch_size (41) larger than the 40 training records", dict(batch_size=41)),
                          ("for epochs=0", dict(batch_size=10, epochs=0))]:
        system = impl.PrivacyPreservingSystem(**{**DP, "epochs": 1, **settings})
        expect_value_error(system.train_private_model, why, few_records(digits, 40))


# --------------------------------------------------------------------------- part 2: federated learning
def expect_equal(got, want, call, why=""):
    """Assert that ``got`` is the integer array ``want``, exactly (``expect_close`` would let a
    value near 2**32 be off by hundreds)."""
    try:
        ok = np.array_equal(np.asarray(got, dtype=np.int64), want)
    except (TypeError, ValueError, OverflowError):
        ok = False
    assert ok, f"{call} returned {show(got)}, expected {show(want)}" + (f": {why}" if why else "")


def client_vectors(n, d, seed):
    return np.random.default_rng(seed).integers(0, R, size=(n, d))


def server_view(impl, vectors, threshold, seed, dropouts=()):
    """What the server received in one round of the student's secure_aggregate:
    ``{survivor: masked vector}``, checked for its form."""
    system = impl.PrivacyPreservingSystem(threshold=threshold, seed=seed)
    system.secure_aggregate(list(vectors), dropouts=list(dropouts))
    received = getattr(system, "masked_vectors_", None)
    survivors = [u for u in range(len(vectors)) if u not in dropouts]
    shape = np.shape(vectors[0])
    assert isinstance(received, dict) and sorted(received) == survivors and all(
        np.shape(received[u]) == shape for u in survivors), (
        f"after secure_aggregate({len(vectors)} client vectors, dropouts={list(dropouts)}), masked_vectors_ must be "
        f"{{client: the masked vector it sent}} for the survivors {survivors} (a dropped client's vector never "
        f"arrives), each of shape {shape}; got {show(received)}")
    return {u: np.asarray(received[u], dtype=np.int64) % R for u in survivors}


def uniform_pvalue(values, bins=64):
    counts = np.bincount(np.asarray(values, dtype=np.int64) % R * bins // R, minlength=bins)
    return chisquare(counts).pvalue


@points(2)
def test_federated_average_weights_each_client(impl):
    system = impl.PrivacyPreservingSystem()
    rng = np.random.default_rng(10)
    for shape, weights, why in [((4, 5), [10, 200, 3000, 40000], "clients with 10 to 40000 records"),
                                ((3, 2, 3), [1.5, 0.0, 2.5], "a client of weight 0 does not count"),
                                ((2, 4), [1, 1], "equal weights: the plain mean")]:
        updates = rng.normal(size=shape)
        want = np.average(updates, axis=0, weights=weights)
        expect_close(system.federated_average(list(updates), weights),
                     want, f"federated_average({len(updates)} updates of shape {shape[1:]}, weights={weights})",
                     f"{why}; FedAvg weights each update by its client's weight: sum_k w_k u_k / sum_k w_k")


@points(2)
def test_secure_aggregate_returns_the_exact_sum(impl):
    vectors = client_vectors(5, 300, seed=11)  # values up to R - 1: the sum wraps around
    got = impl.PrivacyPreservingSystem(threshold=3, seed=0).secure_aggregate(list(vectors))
    expect_equal(got, vectors.sum(axis=0) % R, "secure_aggregate(5 client vectors, no dropouts)",
                 "the plain sum mod R = 2**32, exactly: each pairwise mask is added by one client of the pair "
                 "and subtracted by the other, so the masks cancel, and the survivors' self masks PRG(b_u) "
                 "are removed")


@points(3)
def test_secure_aggregate_recovers_from_dropouts(impl):
    n, t = 6, 3
    vectors = client_vectors(n, 200, seed=12)
    for dropouts in ([4], [0, 5], [1, 2, 3]):  # up to n - t clients
        survivors = [u for u in range(n) if u not in dropouts]
        got = impl.PrivacyPreservingSystem(threshold=t, seed=1).secure_aggregate(list(vectors), dropouts=dropouts)
        expect_equal(got, vectors[survivors].sum(axis=0) % R,
                     f"secure_aggregate(6 client vectors, dropouts={dropouts}) with threshold=3",
                     "the sum mod R of the survivors' vectors. A dropped client's pairwise masks stay in its "
                     "partners' vectors: rebuild its secret key from the survivors' shares, recompute those masks "
                     "and remove them")


@points(1)
def test_secure_aggregate_refuses_too_many_dropouts(impl):
    system = impl.PrivacyPreservingSystem(threshold=3, seed=0)
    expect_value_error(system.secure_aggregate, "when only 2 of 5 clients survive and the threshold is 3 (the "
                       "secrets cannot be rebuilt from fewer than threshold shares)",
                       list(client_vectors(5, 10, seed=13)), [0, 1, 2])


@points(2)
def test_masked_vectors_reveal_nothing(impl):
    d = 20000
    others = client_vectors(2, d, seed=14)
    for name, mine in [("all zeros", np.zeros(d, dtype=np.int64)), ("all R - 1", np.full(d, R - 1)),
                       ("uniform on Z_R", client_vectors(1, d, seed=15)[0])]:
        system = impl.PrivacyPreservingSystem(threshold=2, seed=2)
        system.secure_aggregate([mine, *others])
        received = getattr(system, "masked_vectors_", None)
        assert isinstance(received, dict) and 0 in received and np.shape(received[0]) == (d,), (
            "secure_aggregate must set masked_vectors_ to {client: the masked vector it sent}, got "
            f"{show(received)}")
        y = np.asarray(received[0], dtype=np.int64)
        where = f"client 0's masked vector, for an input {name},"
        assert np.mean(y == mine) < 0.01, f"{where} equals the input in {np.mean(y == mine):.0%} of its entries"
        assert uniform_pvalue(y) > 1e-6, (
            f"{where} is not uniform on Z_R (chi-squared p = {uniform_pvalue(y):.2g}): the server can read "
            "something of the input. Every mask must be uniform on all of Z_R = [0, 2**32) (masking.prg)")
        if name == "uniform on Z_R":
            r = np.corrcoef(mine, y)[0, 1]
            assert abs(r) < 0.05, f"{where} has correlation {r:.3f} with the input; a masked vector must not"


@points(1)
def test_federated_average_accepts_weights_that_sum_to_one_or_less(impl):
    system = impl.PrivacyPreservingSystem()
    rng = np.random.default_rng(20)
    for weights, why in [([0.2, 0.3], "weights that sum to 0.5: only their ratio counts"),
                         ([0.25, 0.75], "weights that sum to exactly 1"),
                         ([0.0, 0.001, 0.0], "one tiny positive weight and two zeros: the sum is positive")]:
        updates = rng.normal(size=(len(weights), 4))
        call = f"federated_average({len(weights)} updates, weights={weights})"
        why = f"{why}; any weights >= 0 with a positive sum are valid, and are normalised by their sum"
        expect_close(accepted(system.federated_average, call, why, list(updates), weights),
                     np.average(updates, axis=0, weights=weights), call, why)


@points(2)
def test_masked_vectors_are_the_inputs_under_masks_from_the_seed(impl):
    n, d = 4, 400
    vectors = client_vectors(n, d, seed=17)
    change = np.zeros_like(vectors)
    change[0] = client_vectors(1, d, seed=18)[0]
    change[2] = 1
    before = server_view(impl, vectors, threshold=2, seed=3)
    after = server_view(impl, (vectors + change) % R, threshold=2, seed=3)
    for u in range(n):
        moved = (after[u] - before[u]) % R
        right = np.mean(moved == change[u])
        what = {0: "a random vector D", 2: "1 in every entry"}.get(u)
        assert right == 1, (
            (f"in two rounds with the same seed, client {u}'s input changed by {what}, so its masked vector "
             "y_u = x_u + m_u must change by exactly that (mod R)" if what else
             f"in two rounds with the same seed, client {u}'s input did not change (clients 0 and 2's did), so its "
             "masked vector y_u = x_u + m_u must not change either") +
            f"; it did as it should in only {right:.1%} of the entries. The masks m_u must come from "
            "np.random.default_rng(self.seed) alone, drawn the same way whatever the inputs; masked_vectors_ must "
            "hold the vectors the clients computed and sent, not other random numbers")
    other = server_view(impl, vectors, threshold=2, seed=4)
    same = np.mean(other[0] == before[0])
    assert same < 0.01, (
        f"rounds with seed=3 and seed=4 gave client 0 the same masked vector in {same:.0%} of its entries; the keys, "
        "seeds and masks must be drawn from np.random.default_rng(self.seed), so that another seed gives other masks")


@points(1)
def test_masked_vectors_do_not_depend_on_who_drops_out(impl):
    n, t = 5, 3
    vectors = client_vectors(n, 300, seed=19)
    everyone = server_view(impl, vectors, threshold=t, seed=5)
    for dropouts in ([1], [0, 4]):
        view = server_view(impl, vectors, threshold=t, seed=5, dropouts=dropouts)
        for u, y in view.items():
            same = np.mean(y == everyone[u])
            assert same == 1, (
                f"with the same seed and inputs, client {u}'s masked vector differs in {1 - same:.0%} of its entries "
                f"between a round where clients {dropouts} drop out and one where nobody does. Every client masks "
                "(with pairwise masks towards all the others) before anyone drops out, and cannot know who will: "
                "draw every client's keys, seed and shares whatever the dropouts, and let the server remove the "
                "masks a dropped client left. Masks among the survivors alone would need no recovery, and no real "
                "round could compute them")


def rebuild(shares, threshold, what):
    """The 32-byte secret from revealed Shamir shares, checked: any ``threshold`` of them give the
    same secret, and ``threshold - 1`` give none (the shares were made with that threshold)."""
    try:
        secret = recover_secret(shares[:threshold])
        again = recover_secret(shares[-threshold:])
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise AssertionError(f"the revealed shares of {what} do not combine to a 32-byte secret ({e}); each must be "
                             "a share (x, y) from masking.share_secret, one per client") from None
    assert secret == again, (f"two sets of {threshold} revealed shares of {what} rebuild different secrets: they are "
                             "not Shamir shares of one secret")
    try:
        recover_secret(shares[:threshold - 1])
    except ValueError:
        return secret
    raise AssertionError(f"{threshold - 1} revealed shares already rebuild {what}: the secrets must be shared with "
                         f"the system's threshold ({threshold}), so that fewer clients learn nothing")


def judge_unmask(system, n, threshold, dropouts):
    """The total the server can compute from what it received, computed here with the library's
    primitives: the survivors' masked vectors, minus each survivor's PRG(b_u) (b_u rebuilt from the
    revealed shares), minus the pairwise masks each dropped client left in the survivors' vectors
    (its secret key rebuilt from the revealed shares, checked against its public key)."""
    survivors = [u for u in range(n) if u not in dropouts]
    received = getattr(system, "masked_vectors_", None)
    public_keys = getattr(system, "public_keys_", None)
    revealed = getattr(system, "revealed_shares_", None)
    assert isinstance(received, dict) and sorted(received) == survivors, (
        f"masked_vectors_ must be {{client: masked vector}} for the survivors {survivors}, got {show(received)}")
    assert isinstance(public_keys, dict) and sorted(public_keys) == list(range(n)) and all(
        isinstance(k, bytes) and len(k) == 32 for k in public_keys.values()), (
        f"public_keys_ must be {{client: its 32-byte X25519 public key}} for all {n} clients, got {show(public_keys)}")
    assert isinstance(revealed, dict) and set(revealed) <= set(survivors) and len(revealed) >= threshold and all(
        isinstance(r, (tuple, list)) and len(r) == 2 and isinstance(r[0], dict) and isinstance(r[1], dict)
        for r in revealed.values()), (
        f"revealed_shares_ must be {{survivor: (its shares of the survivors' b_u, its shares of the dropped clients' "
        f"secret keys)}}, two dicts for each of at least threshold={threshold} survivors; got {show(revealed)}")
    for w, (seed_shares, key_shares) in revealed.items():
        assert sorted(seed_shares) == survivors and sorted(key_shares) == sorted(dropouts), (
            f"client {w} revealed shares of the self-mask seeds of {sorted(seed_shares)} and of the secret keys of "
            f"{sorted(key_shares)}; the server must get shares of b_u for the survivors {survivors} and of sk_v for "
            f"the dropped clients {sorted(dropouts)}, and nothing else (both secrets of one client unmask its input)")
    y = {u: np.asarray(received[u], dtype=np.int64) % R for u in survivors}
    shape = y[survivors[0]].shape
    total = sum(y.values()) % R
    for u in survivors:
        b = rebuild([r[0][u] for r in revealed.values()], threshold, f"client {u}'s self-mask seed b_u")
        total = (total - prg(b, shape)) % R
    for v in dropouts:
        sk = rebuild([r[1][v] for r in revealed.values()], threshold, f"dropped client {v}'s secret key")
        mine = X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert mine == public_keys[v], (f"the secret key rebuilt from the shares of dropped client {v} is not the "
                                        "one behind its public key in public_keys_")
        for u in survivors:  # y_u holds +PRG(s_uv) when u < v, -PRG(s_uv) when u > v
            pair = prg(agree(sk, public_keys[u]), shape)
            total = (total - pair) % R if u < v else (total + pair) % R
    return total


@points(3)
def test_the_server_can_unmask_the_sum_from_what_it_received(impl):
    n, t = 5, 3
    vectors = client_vectors(n, 200, seed=30)
    for dropouts in ([], [2], [0, 4]):
        survivors = [u for u in range(n) if u not in dropouts]
        system = impl.PrivacyPreservingSystem(threshold=t, seed=7)
        system.secure_aggregate(list(vectors), dropouts=dropouts)
        expect_equal(judge_unmask(system, n, t, dropouts), vectors[survivors].sum(axis=0) % R,
                     f"the sum the judge unmasks from masked_vectors_, public_keys_ and revealed_shares_ after "
                     f"secure_aggregate({n} client vectors, dropouts={dropouts}) with threshold={t}",
                     "the server must be able to compute the survivors' sum from what it received, and only from "
                     "that: y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv), with the shares "
                     "of the survivors' b_u and of the dropped clients' keys revealed in the unmasking round. "
                     "Returning the right sum is not enough: the masked vectors must carry it")


@points(1)
def test_secure_aggregate_accepts_thresholds_from_2_to_n(impl):
    for n, t, dropouts, why in [(3, 3, [], "a threshold equal to the number of clients"),
                                (2, 2, [], "two clients, threshold 2"),
                                (4, 2, [0, 3], "threshold 2 with exactly 2 survivors")]:
        vectors = client_vectors(n, 50, seed=21 + n)
        survivors = [u for u in range(n) if u not in dropouts]
        call = f"secure_aggregate({n} client vectors, dropouts={dropouts}) with threshold={t}"
        why = (f"{why} is allowed (the threshold goes from 2 to the number of clients, and exactly threshold "
               "survivors are enough): the sum mod R of the survivors' vectors")
        system = impl.PrivacyPreservingSystem(threshold=t, seed=6)
        expect_equal(accepted(system.secure_aggregate, call, why, list(vectors), dropouts),
                     vectors[survivors].sum(axis=0) % R, call, why)


@points(1)
def test_federated_average_rejects_bad_input(impl):
    system = impl.PrivacyPreservingSystem()
    for why, updates, weights in [
        ("for updates of different shapes", [np.zeros(3), np.zeros(4)], [1, 1]),
        ("for weights that sum to 0", [np.zeros(3), np.ones(3)], [0, 0]),
        ("for weights that sum to a negative number", [np.zeros(3), np.ones(3)], [-1, -2]),
        ("for a number of weights other than the number of updates", [np.zeros(3), np.ones(3)], [1, 2, 3]),
        ("for a negative weight, even when the sum is positive", [np.zeros(3), np.ones(3)], [-1, 3]),
    ]:
        expect_value_error(system.federated_average, why, updates, weights)


@points(1)
def test_secure_aggregate_rejects_bad_input(impl):
    vectors = list(client_vectors(3, 4, seed=16))
    expect_value_error(impl.PrivacyPreservingSystem(threshold=2).secure_aggregate, "for vectors of different shapes",
                       [vectors[0], vectors[1], vectors[2][:3]])
    expect_value_error(impl.PrivacyPreservingSystem(threshold=4).secure_aggregate,
                       "for a threshold (4) larger than the number of clients (3)", vectors)
    expect_value_error(impl.PrivacyPreservingSystem(threshold=1).secure_aggregate,
                       "for threshold=1 (one client alone could rebuild any secret: the threshold is at least 2)",
                       vectors)


# --------------------------------------------------------------------------- part 2: a robust aggregator
def oracle_trimmed(updates, beta):
    """scipy's ``trim_mean`` along the clients' axis: it cuts ``int(beta * n)`` values at each
    end, as Flower's ``FedTrimmedAvg`` (``aggregate_trimmed_avg``) does; tests/test_grading_ex2.py
    asserts that the two agree."""
    return trim_mean(np.asarray(updates, dtype=float), beta, axis=0)


def trimmed(impl, updates, beta):
    return impl.PrivacyPreservingSystem().trimmed_mean(list(updates), beta)


@points(2)
def test_trimmed_mean_matches_flowers_fedtrimmedavg(impl):
    rng = np.random.default_rng(40)
    for n, shape, beta, why in [(10, (6,), 0.1, "10 clients, beta=0.1: one value cut at each end"),
                                (10, (2, 3), 0.25, "10 clients, beta=0.25: two cut at each end"),
                                (7, (5,), 0.3, "7 clients, beta=0.3: two cut at each end"),
                                (20, (4,), 0.45, "20 clients, beta=0.45: nine cut at each end")]:
        updates = rng.standard_t(2, size=(n, *shape))  # heavy tails: outliers at both ends
        updates[0] *= 100  # and one client that scales its update up
        expect_close(trimmed(impl, updates, beta), oracle_trimmed(updates, beta),
                     f"trimmed_mean({n} updates of shape {shape}, beta={beta})",
                     f"{why}; each coordinate sorted over the clients on its own, the floor(beta * n) lowest and "
                     "highest dropped and the rest averaged, as Flower's FedTrimmedAvg and scipy.stats.trim_mean do")


@points(1)
def test_trimmed_mean_cuts_the_floor_of_beta_n(impl):
    rng = np.random.default_rng(41)
    for n, beta, why in [(5, 0.3, "beta * n = 1.5: one value cut at each end, not two"),
                         (4, 0.4, "beta * n = 1.6: one value cut at each end, not two (which would leave none)"),
                         (10, 0.19, "beta * n = 1.9: one value cut at each end"),
                         (3, 0.49, "beta * n = 1.47: one cut at each end, the median remains")]:
        updates = rng.normal(size=(n, 5))
        expect_close(trimmed(impl, updates, beta), oracle_trimmed(updates, beta),
                     f"trimmed_mean({n} updates, beta={beta})", f"{why}: floor(beta * n), rounded down")


@points(1)
def test_trimmed_mean_with_beta_0_is_the_plain_mean(impl):
    rng = np.random.default_rng(42)
    for n, beta, why in [(6, 0.0, "beta=0 cuts nothing (0 <= beta): the plain mean"),
                         (1, 0.0, "a single client with beta=0: its update"),
                         (1, 0.4, "a single client: floor(0.4 * 1) = 0 values cut, its update")]:
        updates = rng.normal(size=(n, 2, 2))
        call = f"trimmed_mean({n} update{'s' if n > 1 else ''} of shape (2, 2), beta={beta})"
        expect_close(accepted(impl.PrivacyPreservingSystem().trimmed_mean, call, why, list(updates), beta),
                     updates.mean(axis=0), call, why)


@points(1)
def test_trimmed_mean_rejects_bad_input(impl):
    system = impl.PrivacyPreservingSystem()
    updates = list(np.random.default_rng(43).normal(size=(5, 3)))
    for why, args in [
        ("for beta=0.5 (beta is the share cut at each end: at 0.5 nothing, or only the median, is left)",
         (updates, 0.5)),
        ("for beta=0.6", (updates, 0.6)),
        ("for a negative beta", (updates, -0.1)),
        ("for no updates at all", ([], 0.1)),
        ("for updates of shapes (2, 3) and (3, 2) (as many numbers, but not one shape)",
         ([np.zeros((2, 3)), np.ones((3, 2)), np.ones((2, 3))], 0.0)),
    ]:
        expect_value_error(system.trimmed_mean, why, *args)
