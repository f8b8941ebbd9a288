"""Lesson 10's case studies: thresholds, the constrained evasion attack, the DP bookkeeping, the patch."""
import dataclasses

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlsec_lessons import models
from mlsec_lessons.applications import fraud, healthcare, perception


# ------------------------------------------------------------------ fraud: thresholds
def test_thresholds_and_operating_point_on_a_small_example():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.8, 0.3, 0.6, 0.7, 0.9, 0.4])
    assert fraud.threshold_for_recall(y, s, 0.75) == 0.6    # 3 of 4 frauds score >= 0.6
    assert fraud.threshold_for_recall(y, s, 1.0) == 0.3
    op = fraud.operating_point(y, s, 0.6)
    assert op.frauds_caught == 3 and op.alerts == 4 and op.precision == 0.75 and op.recall == 0.75
    assert op.false_positive_rate == 0.25 and op.to_frame().shape == (1, 7)
    assert fraud.threshold_max_f1(y, s) == 0.3                # F1 0.8 (4 of 6 alerts, every fraud) beats 0.75


@pytest.mark.parametrize("y, s, match", [
    ([0, 0, 0], [0.1, 0.2, 0.3], "at least one of each"), ([0, 2, 1], [0.1, 0.2, 0.3], "0 .legitimate"),
    ([0, 1], [0.1], "same length"), ([0, 1], [0.1, np.nan], "NaN"),
])
def test_thresholds_reject_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        fraud.threshold_max_f1(y, s)


def test_threshold_for_recall_rejects_a_recall_outside_0_1():
    with pytest.raises(ValueError, match="recall"):
        fraud.threshold_for_recall([0, 1], [0.1, 0.9], 1.5)


# ------------------------------------------------------------------ fraud: the attack
@pytest.fixture(scope="module")
def linear_detector():
    """logit_fraud - logit_legit = w . x with known w: the best L-inf attack is -eps * sign(w) on the mutable part."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, use_bias=False)])
    w = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0], np.float32)
    model.set_weights([np.stack([np.zeros(6, np.float32), w], axis=1)])
    return model, w


def test_evade_finds_the_best_attack_on_a_linear_detector(linear_detector):
    model, w = linear_detector
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    bounds = (np.full(6, -10, np.float32), np.full(6, 10, np.float32))
    x_adv = fraud.evade(model, x, 0.5, bounds=bounds, mutable=[0, 1, 2], steps=20)
    np.testing.assert_allclose(x_adv[:, :3], x[:, :3] - 0.5 * np.sign(w[:3]), atol=1e-5)
    np.testing.assert_array_equal(x_adv[:, 3:], x[:, 3:])          # immutable features never move
    assert np.all(fraud.fraud_score(model, x_adv) < fraud.fraud_score(model, x))


def test_evade_is_the_attack_engine_with_the_fraudsters_objective_mask_and_bounds(linear_detector):
    from mlsec_lessons import attacks

    model, _ = linear_detector
    x = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    lo, hi = np.full(6, -2.0, np.float32), np.full(6, 2.0, np.float32)
    x = np.clip(x, lo, hi)
    mask = np.array([1, 1, 0, 1, 0, 0], np.float32)
    ours = fraud.evade(model, x, 0.7, bounds=(lo, hi), mutable=[0, 1, 3], steps=15)
    engine = attacks.pgd(model, x, np.ones(8, int), 0.7, steps=15, random_start=False,
                         objective=fraud.legit_log_odds, mask=mask, bounds=(lo, hi))
    np.testing.assert_array_equal(ours, engine)


def test_evade_compiles_once_per_model(linear_detector):
    from mlsec_lessons import attacks

    model, _ = linear_detector
    bounds = (np.full(6, -1.0, np.float32), np.full(6, 1.0, np.float32))
    fraud.evade(model, np.zeros((3, 6), np.float32), 0.5, bounds=bounds, mutable=[0, 1], steps=5)
    before = attacks.trace_count()
    fraud.evade(model, np.zeros((7, 6), np.float32), 0.2, bounds=bounds, mutable=[2, 3, 4], steps=9, eps_step=0.05)
    assert attacks.trace_count() == before  # other rows, budget, mask and steps: the same compiled loop


def test_evade_stays_inside_the_realistic_range_and_never_raises_the_score(linear_detector):
    model, _ = linear_detector
    x = np.zeros((3, 6), np.float32)
    lo, hi = np.full(6, -0.2, np.float32), np.full(6, 0.2, np.float32)
    x_adv = fraud.evade(model, x, 1.0, bounds=(lo, hi), mutable=range(6))
    assert np.all(x_adv >= lo - 1e-6) and np.all(x_adv <= hi + 1e-6)
    outside = np.full((1, 6), 0.5, np.float32)   # a row already outside the range may stay there, not go further
    x_adv = fraud.evade(model, outside, 1.0, bounds=(lo, hi), mutable=range(6))
    assert np.all(x_adv <= 0.5 + 1e-6) and np.all(x_adv >= -0.2 - 1e-6)
    assert np.array_equal(fraud.evade(model, x, 0.0, bounds=(lo, hi), mutable=range(6)), x)   # eps 0: no move


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "eps"), (dict(eps=np.nan), "eps"), (dict(steps=0), "steps"), (dict(eps_step=-0.1), "eps_step"),
    (dict(mutable=[0, 9]), "mutable"), (dict(mutable=[1, 1]), "mutable"), (dict(mutable=[]), "mutable"),
    (dict(bounds=(np.zeros(5), np.ones(5))), "bounds"), (dict(bounds=(np.ones(6), np.zeros(6))), "bounds"),
])
def test_evade_rejects_bad_arguments(linear_detector, kwargs, match):
    model, _ = linear_detector
    args = dict(eps=0.5, bounds=(np.full(6, -1.0), np.full(6, 1.0)), mutable=[0, 1]) | kwargs
    with pytest.raises(ValueError, match=match):
        fraud.evade(model, np.zeros((2, 6)), **args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-1.0), "eps"), (dict(steps=0), "steps"), (dict(epochs=0), "epochs"),
    (dict(bounds=(np.zeros(3), np.ones(3))), "bounds"), (dict(mutable=[20]), "mutable"),
])
def test_fraud_adversarial_training_rejects_bad_arguments(kwargs, match):
    fit, _ = fraud.load_fraud()
    args = dict(bounds=fraud.feature_bounds(fit.x_train)) | kwargs
    with pytest.raises(ValueError, match=match):
        fraud.train_against_evasion(fit, cache=False, **args)


def test_evade_checks_the_shape_of_x(linear_detector):
    with pytest.raises(ValueError, match="shape"):
        fraud.evade(linear_detector[0], np.zeros((2, 5)), 0.5, bounds=(np.zeros(6), np.ones(6)))


@pytest.fixture(scope="module")
def fraud_results(scratch_cache):
    with scratch_cache():
        first = fraud.fraud_case(eps_values=(0.0, 1.0))
        again = fraud.fraud_case(eps_values=(0.0, 1.0))
    return first, again


def test_adversarial_training_lowers_the_evasion_rate_and_costs_precision(fraud_results):
    case, _ = fraud_results
    plain, robust = case.evasion.values()
    assert plain["rate"][0] == robust["rate"][0] == 0.0
    assert plain["rate"][1] >= 0.6 and robust["rate"][1] <= plain["rate"][1] - 0.25, (plain, robust)
    ops = list(case.operating.values())
    assert ops[0]["95% recall"].precision < 0.2          # the claimed detection rate costs most alerts
    assert 0.8 <= case.pr_auc["plain MLP"] <= 0.95
    table = case.to_frame()
    assert table.shape == (4, 5) and set(table.index.get_level_values(1)) == {"max F1", "95% recall"}


def test_the_fraud_models_come_from_the_cache_the_second_time(fraud_results):
    first, again = fraud_results
    assert not any(f.provenance.from_cache for f in first.fitted.values())
    assert all(f.provenance.from_cache for f in again.fitted.values())
    for a, b in zip(first.models.values(), again.models.values()):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_load_fraud_keeps_validation_apart():
    fit, (x_val, y_val) = fraud.load_fraud()
    assert len(fit.x_train) + len(x_val) == 14000 and y_val.sum() == 35
    rows = {r.tobytes() for r in fit.x_train}
    assert not any(r.tobytes() in rows for r in x_val)
    with pytest.raises(ValueError, match="val_size"):
        fraud.load_fraud(val_size=1.0)


# ------------------------------------------------------------------ healthcare
def test_dp_tpr_bound():
    assert healthcare.dp_tpr_bound(0.0, 0.01) == pytest.approx(0.01)         # eps 0: no better than chance
    assert healthcare.dp_tpr_bound(1.0, 0.01) == pytest.approx(np.e * 0.01)
    assert healthcare.dp_tpr_bound(1.0, 0.9) == pytest.approx(1 - np.exp(-1) * 0.1)  # the second inequality binds
    assert healthcare.dp_tpr_bound(np.inf, 0.001) == 1.0
    caps = healthcare.dp_tpr_bound(2.0, np.array([0.0, 0.01, 0.1]), delta=1e-5)
    assert np.all(np.diff(caps) > 0) and caps[0] == pytest.approx(1e-5)
    for bad in [dict(epsilon=-1.0, fpr=0.1), dict(epsilon=1.0, fpr=1.5), dict(epsilon=1.0, fpr=0.1, delta=1.0)]:
        with pytest.raises(ValueError):
            healthcare.dp_tpr_bound(**bad)


def test_realistic_accuracy_is_high_but_short_of_the_claim():
    r = healthcare.realistic_accuracy(n_splits=5, n_repeats=2)
    assert r["accuracy"].shape == (10,) and r["test size"] == 113
    assert 0.95 <= r["accuracy"].mean() <= 0.99 and r["accuracy"].mean() < 0.995
    assert 0.9 <= r["malignant recall"].mean() < r["accuracy"].mean()      # cancers are missed more often
    with pytest.raises(ValueError, match="n_splits"):
        healthcare.realistic_accuracy(n_splits=1)


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_dp_sgd_shadows_are_the_models_dp_sgd_train_would_give(fresh_cache, hidden):
    """The shared-trace path (one model and one compiled step for every shadow) against each model fitted on its
    own by DPSGDClassifier.fit (train_dp_sgd), weight for weight; and the cache."""
    from mlsec_lessons.privacy_attacks.shadows import DPSGDClassifier, fit_model, model_logits, train_shadow_models

    x, y = healthcare.public_pool()
    recipe = DPSGDClassifier(hidden=hidden, noise_multiplier=2.0, epochs=5, learning_rate=0.5)
    fast = train_shadow_models(recipe, x, y, n_models=2, seed=3, cache=False)
    for k in range(2):
        alone = fit_model(recipe, x, y, fast.in_mask, k, seed=3)
        np.testing.assert_allclose(fast.logits[k], model_logits(alone, x), atol=1e-5)
    if hidden:
        return
    fast = healthcare.dp_sgd_shadows(x, y, 2.0, n_models=2, epochs=5, seed=3)
    reference = train_shadow_models(recipe, x, y, n_models=2, seed=3, cache=False)
    np.testing.assert_array_equal(fast.in_mask, reference.in_mask)
    np.testing.assert_array_equal(fast.logits, reference.logits)
    again = healthcare.dp_sgd_shadows(x, y, 2.0, n_models=2, epochs=5, seed=3)
    assert not fast.provenance.from_cache and again.provenance.from_cache
    np.testing.assert_array_equal(again.logits, fast.logits)


def test_privacy_sweep_bookkeeping(monkeypatch):
    """With a fast stand-in for the DP-SGD models: the noise comes from the accountant, the rates from the shadows."""
    from mlsec_lessons.privacy import accounting
    from mlsec_lessons.privacy_attacks.shadows import train_shadow_models

    sigmas = []

    def stand_in(x, y, noise_multiplier, **kwargs):
        sigmas.append(noise_multiplier)
        return train_shadow_models(LogisticRegression(C=10.0, max_iter=2000), x, y, kwargs["n_models"],
                                   seed=kwargs["seed"], cache=False)

    monkeypatch.setattr(healthcare, "dp_sgd_shadows", stand_in)
    rows = healthcare.privacy_sweep((1.0,), n_models=17, epochs=5)
    assert [r["epsilon"] for r in rows] == [np.inf, 1.0]
    assert sigmas[0] == 0.0 and sigmas[1] > 1.0
    assert accounting.epsilon(sigmas[1], 64 / 284, 5 * 4, 1e-5) <= 1.0 + 1e-3
    assert rows[0]["trials"] == 17 * 569
    assert 0.9 <= rows[0]["accuracy"] <= rows[0]["train accuracy"] <= 1.0
    assert rows[0]["malignant recall"] < rows[0]["accuracy"]
    assert rows[1]["bound tpr@1%"] == pytest.approx(np.e * 0.01 + 1e-5)
    with pytest.raises(ValueError, match="epsilons"):
        healthcare.privacy_sweep((0.0,))


# ------------------------------------------------------------------ perception
def test_placements_and_apply_patch():
    assert len(perception.placements((8, 8, 1), 3)) == 36
    x = np.zeros((2, 5, 5, 1), np.float32)
    out = perception.apply_patch(x, np.full((2, 2, 1), 0.7), [[0, 0], [3, 3]])
    assert out[0, :2, :2].min() == out[1, 3:, 3:].min() == np.float32(0.7) and out.sum() == pytest.approx(8 * 0.7)
    assert x.sum() == 0                                                     # the input is not modified
    with pytest.raises(ValueError, match="outside"):
        perception.apply_patch(x, np.ones((2, 2, 1)), [4, 0])
    with pytest.raises(ValueError, match="size"):
        perception.placements((8, 8, 1), 9)
    with pytest.raises(ValueError, match="patch"):
        perception.apply_patch(x, np.ones((2, 3, 1)), [0, 0])


def test_the_differentiable_placement_matches_apply_patch():
    rng = np.random.default_rng(0)
    x, patch = rng.random((7, 8, 8, 1)).astype(np.float32), rng.random((3, 3, 1)).astype(np.float32)
    mask, move = perception._placement_operators((8, 8, 1), 3)
    corners = perception.placements((8, 8, 1), 3)
    where = rng.integers(0, len(corners), len(x))
    flat = x.reshape(len(x), -1) * (1 - mask[where]) + np.einsum("bij,j->bi", move[where], patch.ravel())
    np.testing.assert_allclose(flat.reshape(x.shape), perception.apply_patch(x, patch, corners[where]), atol=1e-7)


def test_transform():
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(perception.transform(x), x)
    assert perception.transform(x, brightness=5.0).max() <= 1.0
    shifted = perception.transform(x, shift=(1, 0))
    np.testing.assert_allclose(shifted[:, 1:], x[:, :-1], atol=1e-6)
    assert np.all(shifted[:, 0] == 0)
    assert len(perception.transformation_grid()) == 81
    with pytest.raises(ValueError, match="brightness"):
        perception.transform(x, brightness=0.0)


@pytest.fixture(scope="module")
def patch_setup(digits, small_cnn):
    patch = perception.train_patch(small_cnn, digits.x_train, digits.y_train, 3, steps=100, seed=0)
    return small_cnn, digits.x_test[:270], digits.y_test[:270], patch


def test_an_optimised_patch_beats_a_random_sticker(patch_setup):
    model, x, y, patch = patch_setup
    assert patch.shape == (3, 3, 1) and patch.min() >= 0 and patch.max() <= 1
    adversarial = perception.patch_success_rate(model, x, y, patch)
    noise = perception.patch_success_rate(model, x, y, np.random.default_rng(1).random((3, 3, 1)))
    assert adversarial.random_placement >= noise.random_placement + 0.05, (adversarial, noise)
    assert adversarial.best_placement >= adversarial.random_placement


def test_a_per_image_patch_is_at_least_as_strong_as_the_universal_one(patch_setup):
    model, x, y, patch = patch_setup
    corner = (2, 2)
    right = models.predict_labels(model, x) == y
    x, y = x[right], y[right]
    universal = np.mean(models.predict_labels(model, perception.apply_patch(x, patch, corner)) != y)
    x_adv = perception.per_image_patch(model, x, y, 3, corner, steps=30)
    changed = np.any(np.abs(x_adv - x) > 0, axis=(1, 2, 3))
    outside = np.ones(x.shape[1:], bool)
    outside[2:5, 2:5] = False
    assert np.abs(x_adv - x)[:, outside].max() == 0             # only the 3x3 square at (2, 2) may change
    per_image = np.mean(models.predict_labels(model, x_adv) != y)
    assert changed.all() and per_image >= universal - 0.02, (per_image, universal)


def test_spatial_attack_reads_the_grid(patch_setup):
    model, x, y, _ = patch_setup
    none = perception.spatial_attack(model, x, y, grid=[dict()])           # the identity: nothing to find
    assert none.attack_success_rate == 0.0
    r = perception.spatial_attack(model, x, y)
    assert r.accuracy_worst_transformation <= r.accuracy_random_transformation
    assert 0.3 <= r.attack_success_rate <= 1.0
    with pytest.raises(ValueError, match="grid"):
        perception.spatial_attack(model, x, y, grid=[])


@pytest.mark.parametrize("attack, fields", [
    ("patch", ["random_placement", "best_placement", "n"]),
    ("spatial", ["accuracy_random_transformation", "accuracy_worst_transformation", "attack_success_rate"]),
])
def test_perception_results_are_frozen_and_show_their_fields(patch_setup, attack, fields):
    model, x, y, patch = patch_setup
    r = (perception.patch_success_rate(model, x[:60], y[:60], patch) if attack == "patch"
         else perception.spatial_attack(model, x[:60], y[:60], grid=[dict(), dict(brightness=1.2)]))
    assert [f.name for f in dataclasses.fields(r)] == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(r, fields[0], 0.0)
    frame = r.to_frame(index="plain CNN")
    assert list(frame.columns) == fields and list(frame.index) == ["plain CNN"]
    assert frame.loc["plain CNN"].tolist() == [getattr(r, f) for f in fields]


def test_perception_case_table_reads_the_results():
    # built by hand: perception_case itself trains three CNNs, too slow for a unit test
    spatial = perception.SpatialAttackResult(0.6, 0.1, 0.9)
    patch = {3: {"adversarial": perception.PatchSuccess(0.3, 1.0, 250)}}
    case = perception.PerceptionCase(fitted={"m": None}, clean={"m": 0.97}, pgd={"m": 0.5}, spatial={"m": spatial},
                                     patches={"m": {3: np.zeros((3, 3, 1))}}, patch={"m": patch}, config={})
    assert case.to_frame().loc["m"].to_dict() == {
        "clean accuracy": 0.97, "PGD-40, eps 0.1": 0.5, "worst of the transformation grid": 0.9,
        "3x3 patch, random place": 0.3, "3x3 patch, best place": 1.0}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(size=9), ValueError, "size"), (dict(target=10), ValueError, "target"),
    (dict(target=True), TypeError, "target"), (dict(steps=0), ValueError, "steps"),
])
def test_train_patch_rejects_bad_arguments(patch_setup, kwargs, error, match):
    model, x, y, _ = patch_setup
    with pytest.raises(error, match=match):
        perception.train_patch(model, x, y, **(dict(size=3) | kwargs))
