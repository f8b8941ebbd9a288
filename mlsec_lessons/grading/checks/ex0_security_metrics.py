"""Checks for exercise 0, security metrics.

``impl`` is the student's module, ``ref`` the reference solution. The checks come in four kinds:
agreement with the reference on seeded random data, small examples that each isolate one
mistake (their message explains the expected value), properties every metric must have, and
input that must be refused. numpy only, so that grading takes a second.

A parametrized check is named, in the report, by its id.
"""
import numpy as np
import pytest

from mlsec_lessons.grading.expect import expect_close, expect_value_error

# the library's answers to this exercise: importing, wrapping or re-exporting them earns nothing
OFF_LIMITS = {"mlsec_lessons.metrics": "*"}
MEMORY_LIMIT = 2_147_483_648  # bytes (2 GiB) of address space for the student's process: numpy only
PRELOAD = ["numpy"]  # imported once by the fork server each worker is forked from (grading/forkserver.py)

SEEDS = range(5)
EPS = [0.0, 0.05, 0.1, 0.2, 0.4]


def points(n):
    return pytest.mark.points(n)


# --------------------------------------------------------------------------- data
def predictions(seed, n=200, n_classes=5):
    """True labels, clean and adversarial predictions, roughly as a real attack produces them.

    Some samples are wrong before the attack, and the attack changes some predictions at
    random: it flips correct ones, but it also fixes a few wrong ones by chance.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(n_classes, size=n)
    clean = np.where(rng.random(n) < 0.7, y, rng.integers(n_classes, size=n))
    adv = np.where(rng.random(n) < 0.4, rng.integers(n_classes, size=n), clean)
    return y, clean, adv


def targeted_predictions(seed, n=200, n_classes=5):
    """Like :func:`predictions`, with a random target per sample (sometimes its own class)."""
    y, clean, _ = predictions(seed, n, n_classes)
    rng = np.random.default_rng(seed + 100)
    target = rng.integers(n_classes, size=n)
    return y, clean, np.where(rng.random(n) < 0.5, target, clean), target


def probabilities(labels, n_classes, seed):
    """Random class probabilities whose argmax is ``labels``."""
    noise = np.random.default_rng(seed).dirichlet(np.ones(n_classes), size=len(labels))
    return 0.5 * np.eye(n_classes)[labels] + 0.5 * noise  # rows sum to 1; the label's entry wins


def membership(seed, n=120):
    """Membership labels and an attack score that is higher for members, with tied scores."""
    rng = np.random.default_rng(seed)
    is_member = rng.random(n) < 0.5
    score = np.round(rng.normal(0.4 + 0.2 * is_member, 0.2), 1)  # rounding creates ties
    return is_member, score


def inventory(seed, n=8):
    """A random inventory ``{component: {control: in_place}}``."""
    rng = np.random.default_rng(seed)
    return ({f"component {i}": {f"control {j}": bool(rng.random() < 0.8) for j in range(rng.integers(1, 5))}
             for i in range(n)},)


def linear_problem(seed, n=80, d=4):
    """A fixed linear classifier, data with some label noise, and its strongest L-inf attack."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=d), 0.1
    x = rng.uniform(-1, 1, size=(n, d))
    y = (x @ w + b > 0).astype(int)
    noisy = rng.random(n) < 0.1
    y[noisy] = 1 - y[noisy]  # so that the clean accuracy is below 1

    def predict(x):
        return (x @ w + b > 0).astype(int)

    def attack(x, y, eps):
        # on a linear model, moving each feature by eps against the true class is optimal
        return x - eps * np.sign(w) * (2 * y - 1)[:, None]

    return predict, attack, x, y


def curve(impl, seed, eps=EPS):
    """``impl.robustness_curve`` on a linear problem, checked to be a dict with both keys.

    The exercise asks for a dict. The library's ``metrics.robustness_curve``, which the test suite
    grades too, returns a frozen ``RobustnessCurve`` with the same two fields: it is read as that dict.
    """
    result = impl.robustness_curve(*linear_problem(seed), eps)
    if not isinstance(result, dict):
        try:  # a RobustnessCurve, here or in the worker (where reading a field asks for it)
            return {"eps": np.asarray(result.eps), "accuracy": np.asarray(result.accuracy)}
        except AttributeError:
            pass  # not a curve either: the message below says what the exercise asks for
    assert isinstance(result, dict) and {"eps", "accuracy"} <= set(result), (
        f"robustness_curve must return a dict with keys 'eps' and 'accuracy', got {type(result).__name__}")
    return result


# --------------------------------------------------------------------------- agreement with the reference
RANDOM_DATA = [
    pytest.param("attack_success_rate", predictions, "200 random predictions", id="asr_matches_reference",
                 marks=points(2)),
    pytest.param("targeted_attack_success_rate", targeted_predictions, "200 random predictions and targets",
                 id="targeted_asr_matches_reference", marks=points(2)),
    pytest.param("privacy_loss", membership, "120 random records with tied scores",
                 id="privacy_loss_matches_reference", marks=points(2)),
    pytest.param("security_coverage", inventory, "a random inventory of 8 components",
                 id="security_coverage_matches_reference", marks=points(1)),
]


@pytest.mark.parametrize("function, make_data, data", RANDOM_DATA)
def test_matches_reference(impl, ref, function, make_data, data):
    for seed in SEEDS:
        args = make_data(seed)
        expect_close(getattr(impl, function)(*args), getattr(ref, function)(*args),
                     f"{function} on {data} (seed {seed})")


@points(2)
def test_robustness_curve_matches_reference(impl, ref):
    for seed in SEEDS:
        expect_close(curve(impl, seed)["accuracy"], curve(ref, seed)["accuracy"],
                     f"robustness_curve(...)['accuracy'] for a linear model on 80 samples (seed {seed})")


# --------------------------------------------------------------------------- small examples
# (function, {argument: value}, expected, why); each isolates one mistake
EXAMPLES = [
    pytest.param("attack_success_rate", dict(y_true=[0, 1, 2, 3], y_pred_clean=[0, 1, 0, 0], y_pred_adv=[0, 2, 0, 0]),
                 0.5, "samples 2 and 3 were wrong before the attack, so they are no success of it; "
                 "of the 2 correct samples, the attack flipped 1",
                 id="asr_ignores_already_misclassified", marks=points(2)),
    pytest.param("attack_success_rate", dict(y_true=[0, 1, 2, 3], y_pred_clean=[0, 1, 3, 3], y_pred_adv=[1, 1, 3, 3]),
                 1 / 3, "3 samples were correct before the attack and it flipped 1 of them; "
                 "divide by the correct samples, not by all samples",
                 id="asr_divides_by_correct_samples", marks=points(2)),
    # accuracy stays at 0.5, so the source's 1 - adv_acc / clean_acc says 0
    pytest.param("attack_success_rate", dict(y_true=[0, 1, 2, 3], y_pred_clean=[0, 1, 0, 0], y_pred_adv=[1, 0, 2, 3]),
                 1.0, "the attack flipped both samples that were correct; 1 - adv_acc / clean_acc would say 0",
                 id="asr_is_not_the_source_formula", marks=points(1)),
    pytest.param("targeted_attack_success_rate",
                 dict(y_true=[0, 1, 2], y_pred_clean=[0, 1, 2], y_pred_adv=[5, 1, 2], y_target=[5, 5, 2]),
                 0.5, "sample 2 is aimed at its own class, which is no success, so only samples 0 and 1 are "
                 "eligible, and 1 of them reaches its target",
                 id="targeted_asr_skips_own_class_targets", marks=points(1)),
    pytest.param("targeted_attack_success_rate",
                 dict(y_true=[0, 1, 2], y_pred_clean=[0, 1, 0], y_pred_adv=[5, 1, 5], y_target=[5, 5, 5]),
                 0.5, "sample 2 was wrong before the attack, so only samples 0 and 1 are eligible, and 1 of "
                 "them reaches its target",
                 id="targeted_asr_skips_already_misclassified", marks=points(1)),
    pytest.param("model_robustness_score", dict(asr=0.25), 0.75,
                 "MRS = 1 - ASR, the share of attackable samples that survive",
                 id="mrs_is_one_minus_asr", marks=points(1)),
    pytest.param("privacy_loss", dict(is_member=[1, 1, 0, 0], member_score=[0.9, 0.8, 0.2, 0.1]), 1.0,
                 "a threshold of 0.8 flags every member and no non-member: TPR - FPR = 1",
                 id="privacy_loss_separates_perfectly", marks=points(1)),
    pytest.param("privacy_loss", dict(is_member=[1, 1, 0, 0], member_score=[0.1, 0.2, 0.8, 0.9]), 0.0,
                 "members score lower here, so no threshold beats guessing: PL is 0, never negative",
                 id="privacy_loss_is_never_negative", marks=points(1)),
    pytest.param("privacy_loss", dict(is_member=[1, 0, 0], member_score=[0.9, 0.5, 0.1]), 1.0,
                 "the threshold at the highest score, 0.9, flags the member alone",
                 id="privacy_loss_tries_the_highest_threshold", marks=points(1)),
    pytest.param("privacy_loss", dict(is_member=[1, 0, 1, 0], member_score=[0.7, 0.7, 0.2, 0.2]), 0.0,
                 "records with the same score are flagged together, so every threshold flags as many "
                 "members as non-members",
                 id="privacy_loss_cannot_split_ties", marks=points(1)),
    pytest.param("security_coverage",
                 dict(inventory={"api": {"auth": True, "tls": False}, "store": {"encryption": True},
                                 "model": {"signature": True, "hash": True}}),
                 2 / 3, "the api misses TLS, so only 2 of the 3 components have all their controls in place",
                 id="security_coverage_needs_every_control", marks=points(2)),
]


@pytest.mark.parametrize("function, kwargs, want, why", EXAMPLES)
def test_example(impl, function, kwargs, want, why):
    call = f"{function}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    expect_close(getattr(impl, function)(*kwargs.values()), want, call, why)


# --------------------------------------------------------------------------- properties
@points(1)
def test_asr_is_a_rate_and_ignores_order(impl):
    for seed in SEEDS:
        y, clean, adv = predictions(seed)
        asr = impl.attack_success_rate(y, clean, adv)
        assert 0 <= asr <= 1, f"attack_success_rate returned {asr!r}, which is not a rate in [0, 1] (seed {seed})"
        order = np.random.default_rng(seed).permutation(len(y))
        expect_close(impl.attack_success_rate(y[order], clean[order], adv[order]), asr,
                     "attack_success_rate on the same samples in another order",
                     "the order of the samples must not matter")


@points(1)
def test_asr_accepts_probabilities(impl):
    y, clean, adv = predictions(0, n_classes=4)
    expect_close(impl.attack_success_rate(y, probabilities(clean, 4, 1), probabilities(adv, 4, 2)),
                 impl.attack_success_rate(y, clean, adv),
                 "attack_success_rate with class probabilities (2-D) as predictions",
                 "the same as with their argmax as labels")


@points(1)
def test_privacy_loss_ignores_the_score_scale(impl):
    is_member, score = membership(0)
    expect_close(impl.privacy_loss(is_member, np.exp(3 * score)), impl.privacy_loss(is_member, score),
                 "privacy_loss on exp(3 * score) instead of score",
                 "an increasing transformation of the score orders the records the same way")


@points(2)
def test_robustness_curve_has_one_accuracy_per_eps(impl):
    result = curve(impl, 0)
    expect_close(result["eps"], np.array(EPS), f"robustness_curve(..., eps_values={EPS})['eps']",
                 "the budgets as given, every one of them")
    assert len(result["accuracy"]) == len(EPS), (
        f"robustness_curve returned {len(result['accuracy'])} accuracies for {len(EPS)} budgets; "
        "it needs one per budget, the last one included")
    predict, _, x, y = linear_problem(0)
    expect_close(result["accuracy"][0], np.mean(predict(x) == y), "robustness_curve(...)['accuracy'][0]",
                 "at eps = 0 nothing is attacked, so it is the clean accuracy")
    assert np.all(np.diff(result["accuracy"]) <= 0), (
        f"the accuracies {result['accuracy']} go up with eps; against this (optimal) attack a larger "
        "budget can only lower the accuracy")


# --------------------------------------------------------------------------- bad input
PROBLEM = linear_problem(0)
BAD_INPUT = [
    pytest.param("attack_success_rate", [
        ("for empty arrays", [], [], []),
        ("when y_pred_adv has fewer samples than y_true", [0, 1, 2], [0, 1, 2], [0, 1]),
        ("for logits (values outside [0, 1]) given as probabilities",
         [0, 1], [[2.0, -1.0], [-0.5, 3.0]], [[0.9, 0.1], [0.2, 0.8]]),
        ("when no sample is classified correctly (nothing to attack)", [0, 1], [1, 0], [1, 0]),
    ], id="asr_rejects_bad_input", marks=points(2)),
    pytest.param("targeted_attack_success_rate", [
        ("when y_target has fewer samples than y_true", [0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 2]),
        ("when every target is the sample's own class (no sample is eligible)",
         [0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]),
    ], id="targeted_asr_rejects_bad_input", marks=points(1)),
    pytest.param("model_robustness_score", [
        (f"for asr={asr} (not a rate in [0, 1])", asr) for asr in (-0.1, 1.5, float("nan"))
    ], id="mrs_rejects_rates_outside_0_1", marks=points(1)),
    pytest.param("privacy_loss", [
        ("for empty arrays", [], []),
        ("when member_score has fewer entries than is_member", [1, 0, 1], [0.5, 0.2]),
        ("when there are no non-members (FPR is undefined)", [1, 1], [0.5, 0.2]),
    ], id="privacy_loss_rejects_bad_input", marks=points(1)),
    pytest.param("security_coverage", [
        ("for an empty inventory", {}),
        ("for a component that lists no controls", {"api": {"auth": True}, "model file": {}}),
    ], id="security_coverage_rejects_bad_input", marks=points(1)),
    pytest.param("robustness_curve", [
        ("for an empty list of budgets", *PROBLEM, []),
        ("for a negative budget", *PROBLEM, [0.0, -0.1]),
        ("for budgets that are not increasing", *PROBLEM, [0.2, 0.1]),
        ("when x and y have different lengths", *PROBLEM[:3], PROBLEM[3][:-1], EPS),
    ], id="robustness_curve_rejects_bad_input", marks=points(1)),
]


@pytest.mark.parametrize("function, cases", BAD_INPUT)
def test_rejects_bad_input(impl, function, cases):
    for why, *args in cases:
        expect_value_error(getattr(impl, function), why, *args)
