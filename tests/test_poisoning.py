"""Poisoning attacks and defenses (lesson 11): exact counts, the trigger, the scores, the errors."""
import numpy as np
import pytest

from mlsec_lessons import models
from mlsec_lessons.deployment import keys, response_signing
from mlsec_lessons.deployment.artifacts import IntegrityError
from mlsec_lessons.poisoning import (
    add_trigger,
    anomaly_index,
    backdoor_success_rate,
    detect_poison,
    detection_scores,
    fine_tune,
    flip_labels,
    flipping_curve,
    implant_backdoor,
    poison_backdoor,
    reverse_triggers,
    simulate_feedback_loop,
    split_tasks,
    strip_detect,
    strip_entropy,
    train_backdoored,
    train_flipped,
    weight_change,
)
from mlsec_lessons.poisoning.defenses import relative_size

Y = np.repeat(np.arange(10), 20)  # 200 labels, 20 per class


# ------------------------------------------------------------------ label flipping
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.37, 1.0])
def test_random_flips_change_exactly_the_fraction_asked(fraction):
    y_bad, flipped = flip_labels(Y, fraction, 10, seed=3)
    assert len(flipped) == round(fraction * len(Y)) == int(np.sum(y_bad != Y))
    assert np.all(y_bad[flipped] != Y[flipped]) and np.all((y_bad >= 0) & (y_bad < 10))
    untouched = np.setdiff1d(np.arange(len(Y)), flipped)
    assert np.array_equal(y_bad[untouched], Y[untouched])


def test_random_flips_spread_over_the_other_classes_and_follow_the_seed():
    y_bad, flipped = flip_labels(Y, 1.0, 10, seed=0)
    shifts = (y_bad - Y) % 10
    assert set(shifts.tolist()) == set(range(1, 10))  # every other class is reachable
    assert np.array_equal(flip_labels(Y, 0.3, 10, seed=1)[0], flip_labels(Y, 0.3, 10, seed=1)[0])
    assert not np.array_equal(flip_labels(Y, 0.3, 10, seed=1)[0], flip_labels(Y, 0.3, 10, seed=2)[0])


def test_targeted_flips_relabel_only_the_source_class():
    y_bad, flipped = flip_labels(Y, 0.5, 10, strategy="targeted", source=7, target=1, seed=0)
    assert len(flipped) == 10 and np.all(Y[flipped] == 7) and np.all(y_bad[flipped] == 1)
    assert int(np.sum(y_bad != Y)) == 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(fraction=-0.1), "fraction"), (dict(fraction=1.5), "fraction"), (dict(fraction=np.nan), "fraction"),
    (dict(n_classes=1), "n_classes"), (dict(strategy="nope"), "strategy"),
    (dict(strategy="targeted"), "source and target"),
    (dict(strategy="targeted", source=3, target=3), "differ"),
    (dict(strategy="targeted", source=3, target=10), "target"),
])
def test_flip_labels_rejects_bad_arguments(kwargs, match):
    args = dict(fraction=0.1, n_classes=10) | kwargs
    with pytest.raises(ValueError, match=match):
        flip_labels(Y, **args)


def test_flip_labels_refuses_a_bool_fraction_as_a_wrong_type():
    with pytest.raises(TypeError, match="fraction"):  # a bool is not a number (issue 15)
        flip_labels(Y, True, 10)


def test_flip_labels_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        flip_labels(np.array([0, 1, 12]), 0.5, 10)
    with pytest.raises(ValueError, match="1-D"):
        flip_labels(Y.reshape(20, 10), 0.5, 10)
    with pytest.raises(ValueError, match="integer"):
        flip_labels(np.array([0.5, 1.0]), 0.5, 10)


def test_flipping_curve_shows_the_targeted_attack(digits):
    rows = flipping_curve(digits.x_train, digits.y_train, digits.x_test, digits.y_test, [0.0, 1.0],
                          strategy="targeted", source=7, target=1)
    assert rows[0]["source_recall"] >= 0.9 and rows[1]["source_to_target"] >= 0.9
    assert rows[1]["flipped_share"] == pytest.approx(np.mean(digits.y_train == 7))


# ------------------------------------------------------------------ backdoor
def test_train_flipped_trains_a_cnn_on_exactly_the_flipped_labels(digits, fresh_cache):
    model, flipped = train_flipped(digits, 1.0, strategy="targeted", source=7, target=1, epochs=2)
    _, expected = flip_labels(digits.y_train, 1.0, 10, strategy="targeted", source=7, target=1)
    assert np.array_equal(flipped, expected) and np.all(digits.y_train[flipped] == 7)
    assert models.predict_labels(model, digits.x_test[:5]).shape == (5,)
    written = {p: p.stat().st_mtime_ns for p in fresh_cache.rglob("*.weights.npz")}
    assert len(written) == 1
    again, _ = train_flipped(digits, 1.0, strategy="targeted", source=7, target=1, epochs=2)
    assert {p: p.stat().st_mtime_ns for p in fresh_cache.rglob("*.weights.npz")} == written  # loaded, not rewritten
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
    train_flipped(digits, 0.5, strategy="targeted", source=7, target=1, epochs=2)
    assert len(list(fresh_cache.rglob("*.weights.npz"))) == 2          # other labels, another cache entry


def test_the_pattern_trigger_sets_four_corner_pixels_and_nothing_else():
    x = np.random.default_rng(0).uniform(0, 0.5, (3, 8, 8, 1)).astype(np.float32)
    xt = add_trigger(x)
    changed = np.argwhere(np.any(xt != x, axis=(0, 3)))
    assert sorted(map(tuple, changed.tolist())) == [(5, 7), (6, 6), (7, 5), (7, 7)]
    assert np.all(xt[:, [5, 6, 7, 7], [7, 6, 5, 7], 0] == 1.0)
    assert np.array_equal(add_trigger(x[..., 0]), xt[..., 0])            # (n, h, w) works too
    single = add_trigger(x, kind="pixel", distance=2, value=0.9)
    assert np.argwhere(np.any(single != x, axis=(0, 3))).tolist() == [[6, 6]] and single[0, 6, 6, 0] == np.float32(0.9)
    assert np.array_equal(x, np.random.default_rng(0).uniform(0, 0.5, (3, 8, 8, 1)).astype(np.float32))  # a copy


@pytest.mark.parametrize("kwargs, x_shape, match", [
    (dict(kind="star"), (2, 8, 8, 1), "kind"), (dict(), (8, 8), "batch of images"),
    (dict(distance=7), (2, 8, 8, 1), "distance"), (dict(distance=0), (2, 8, 8, 1), "distance"),
])
def test_add_trigger_rejects_bad_input(kwargs, x_shape, match):
    with pytest.raises(ValueError, match=match):
        add_trigger(np.zeros(x_shape, np.float32), **kwargs)


def test_poison_backdoor_replaces_exactly_the_fraction_with_triggered_target_images():
    x = np.random.default_rng(1).uniform(0, 0.5, (200, 8, 8, 1)).astype(np.float32)
    xp, yp, idx = poison_backdoor(x, Y, 0.07, target=2, seed=0)
    assert len(idx) == 14 and len(np.unique(idx)) == 14 and np.all(Y[idx] != 2) and np.all(yp[idx] == 2)
    assert np.array_equal(xp[idx], add_trigger(x[idx]))
    rest = np.setdiff1d(np.arange(200), idx)
    assert np.array_equal(xp[rest], x[rest]) and np.array_equal(yp[rest], Y[rest])
    assert len(poison_backdoor(x, Y, 0.0, target=2)[2]) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(fraction=1.2), "fraction"), (dict(fraction=0.95), "outside the target class"),
    (dict(target=10), "target"), (dict(target=-1), "target"),
])
def test_poison_backdoor_rejects_bad_arguments(kwargs, match):
    args = dict(fraction=0.1, target=0) | kwargs
    with pytest.raises(ValueError, match=match):
        poison_backdoor(np.zeros((200, 8, 8, 1), np.float32), Y, **args)
    with pytest.raises(ValueError, match="mismatch"):
        poison_backdoor(np.zeros((199, 8, 8, 1), np.float32), Y, 0.1, 0)


@pytest.fixture(scope="module")
def backdoor_run(digits, scratch_cache):
    """A 5 % backdoored small CNN, trained into a scratch cache, then asked for again."""
    with scratch_cache() as path:
        first = train_backdoored(digits, 0.05, 0, epochs=15)
        written = {p: p.stat().st_mtime_ns for p in path.rglob("*.weights.npz")}
        again = train_backdoored(digits, 0.05, 0, epochs=15)
        reread = {p: p.stat().st_mtime_ns for p in path.rglob("*.weights.npz")}
    return first, again, len(written) == 1 and reread == written


def test_a_backdoor_keeps_clean_accuracy_and_comes_from_the_cache_the_second_time(digits, backdoor_run):
    (model, idx, poisoned), (again, idx_again, _), loaded = backdoor_run
    assert loaded and np.array_equal(idx, idx_again)  # one file, not rewritten: the second call loaded it
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
    assert models.accuracy(model, digits.x_test, digits.y_test) >= 0.9
    assert backdoor_success_rate(model, digits.x_test, digits.y_test, 0) >= 0.8
    assert np.all(poisoned.y_train[idx] == 0) and len(idx) == round(0.05 * len(digits.x_train))


def test_activation_clustering_on_conv_features_finds_the_poison(backdoor_run):
    (model, idx, poisoned), _, _ = backdoor_run
    flagged = detect_poison(model, poisoned.x_train, poisoned.y_train, "activation", layer=-3)
    assert flagged.dtype == bool and flagged.shape == (len(poisoned.x_train),)
    assert detection_scores(flagged, idx).recall >= 0.9
    sizes = detect_poison(model, poisoned.x_train, poisoned.y_train, "activation", layer=-3, cluster_analysis="relative-size")
    cohesive = detect_poison(model, poisoned.x_train, poisoned.y_train, "activation", layer=-3,
                             cluster_analysis="silhouette-scores")
    assert not (cohesive & ~sizes).any() and not (sizes & ~flagged).any()     # each rule keeps fewer classes
    assert detection_scores(cohesive, idx).recall >= 0.9 and sizes.sum() < flagged.sum() / 2


def test_strip_flags_triggered_inputs_of_the_backdoored_model(digits, backdoor_run):
    (model, _, _), _, _ = backdoor_run
    others = digits.x_test[digits.y_test != 0]
    flagged, _ = strip_detect(model, add_trigger(others[:100]), digits.x_test[:100], false_alarm=0.05)
    clean, _ = strip_detect(model, digits.x_test[100:200], digits.x_test[:100], false_alarm=0.05)
    assert flagged.mean() >= 0.8 and clean.mean() <= 0.15


def test_neural_cleanse_finds_the_backdoor_target(digits, backdoor_run):
    (model, _, _), _, _ = backdoor_run
    found = reverse_triggers(model, digits.x_test[:50])
    assert found.masks.shape == (10, 8, 8) and found.patterns.shape == (10, 8, 8, 1)
    assert int(np.argmax(found.anomaly)) == 0 and 0 in found.flagged and (found.success >= 0.9).all()


def test_anomaly_index_and_its_arguments():
    assert np.allclose(anomaly_index([5.0, 5.0, 5.0]), 0.0)       # no spread, no outlier
    assert int(np.argmax(anomaly_index([10, 12, 11, 9, 10, 2]))) == 5
    with pytest.raises(ValueError, match="at least 3"):
        anomaly_index([1.0, 2.0])


def test_strip_entropy_is_zero_for_a_constant_model_and_checks_arguments():
    import keras

    const = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, kernel_initializer="zeros",
                                                 bias_initializer=keras.initializers.Constant([50.0] + [0.0] * 9))])
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    assert np.allclose(strip_entropy(const, x, x, blend=0.5), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="blend"):
        strip_entropy(const, x, x, blend=1.5)
    with pytest.raises(ValueError, match="shape"):
        strip_entropy(const, x, np.zeros((4, 9, 9, 1)))


def test_relative_size_matches_arts_rule_where_art_runs_and_art_crashes_without_a_small_cluster():
    from art.defences.detector.poison.clustering_analyzer import ClusteringAnalyzer

    clusters = [np.array([0] * 30 + [1] * 3), np.array([0] * 5 + [1] * 20), np.array([1] * 8 + [0] * 2)]
    y = np.concatenate([np.full(len(c), i) for i, c in enumerate(clusters)])
    smaller = np.concatenate([c == np.argmin(np.bincount(c)) for c in clusters])
    art_clean, _, _ = ClusteringAnalyzer().analyze_by_relative_size(clusters)
    assert np.array_equal(relative_size(smaller, y), np.concatenate(art_clean) == 0)
    balanced = [np.array([0] * 10 + [1] * 10)]      # no cluster under 35 %: ART tests an empty array for truth
    with pytest.raises(ValueError, match="truth value of an empty array"):
        ClusteringAnalyzer().analyze_by_relative_size(balanced)
    assert not relative_size(balanced[0] == 0, np.zeros(20, int)).any()


# ------------------------------------------------------------------ detection scores and detector arguments
def test_detection_scores_against_known_poison():
    flagged = np.zeros(100, bool)
    flagged[[0, 1, 2, 50, 60]] = True
    s = detection_scores(flagged, [0, 1, 2, 3])
    assert s.precision == pytest.approx(3 / 5) and s.recall == pytest.approx(3 / 4)
    assert s.flagged == 5 and s.poison == 4 and s.clean_removed == pytest.approx(2 / 96)
    assert s.to_frame("AC").loc["AC", "recall"] == pytest.approx(3 / 4)
    with pytest.raises(AttributeError):
        s.recall = 1.0  # frozen: a measured result is not edited afterwards
    assert detection_scores(np.zeros(10, bool), [1]).precision == 0.0


@pytest.mark.parametrize("flagged, idx, match", [
    (np.zeros(10, int), [1], "boolean"), (np.zeros(10, bool), [10], "outside"),
    (np.zeros(10, bool), [1, 1], "repeated"), (np.zeros((2, 5), bool), [1], "1-D"),
])
def test_detection_scores_rejects_bad_input(flagged, idx, match):
    with pytest.raises(ValueError, match=match):
        detection_scores(flagged, idx)


@pytest.fixture(scope="module")
def untrained(digits):
    return models.build("small_cnn", digits.input_shape, digits.n_classes)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="spectral"), "expected_fraction"), (dict(method="activation", expected_fraction=0.1), "spectral"),
    (dict(method="magic"), "method"), (dict(cluster_analysis="biggest"), "cluster_analysis"),
    (dict(method="spectral", expected_fraction=0.0), "> 0"), (dict(layer=9), "layer"),
])
def test_detect_poison_rejects_bad_arguments(untrained, digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        detect_poison(untrained, digits.x_train[:100], digits.y_train[:100], **kwargs)


def test_detect_poison_checks_the_image_shape(untrained):
    with pytest.raises(ValueError, match="shape"):
        detect_poison(untrained, np.zeros((20, 9, 9, 1), np.float32), np.arange(20) % 10)


def test_the_spectral_defense_flags_its_guess_in_every_class(untrained, digits):
    flagged = detect_poison(untrained, digits.x_train, digits.y_train, "spectral", expected_fraction=0.1)
    per_class = [flagged[digits.y_train == c].mean() for c in range(10)]
    assert np.allclose(per_class, 0.15, atol=0.02)  # 1.5 x the guess, whatever the data


# ------------------------------------------------------------------ transfer, model poisoning
def test_split_tasks_relabels_and_refuses_overlaps(digits):
    a, b = split_tasks(digits)
    assert set(a.y_train.tolist()) == set(range(5)) == set(b.y_test.tolist())
    assert len(a.x_train) + len(b.x_train) == len(digits.x_train)
    assert np.array_equal(b.x_train, digits.x_train[digits.y_train >= 5])
    with pytest.raises(ValueError, match="share"):
        split_tasks(digits, (0, 1, 2), (2, 3))
    with pytest.raises(ValueError, match="task_b"):
        split_tasks(digits, (0, 1), (3, 12))


def test_fine_tuning_a_frozen_extractor_trains_only_the_new_head(digits):
    a, b = split_tasks(digits)
    vendor = models.build("small_cnn", a.input_shape, a.n_classes)
    before = [w.copy() for w in vendor.get_weights()]
    victim = fine_tune(vendor, b, freeze=True, epochs=1, cache=False)
    extractor = victim.layers[0]
    assert all(np.array_equal(w, v) for w, v in zip(extractor.get_weights(), before[:-2]))
    assert all(np.array_equal(w, v) for w, v in zip(vendor.get_weights(), before))   # the vendor's model untouched
    assert victim.output_shape[-1] == b.n_classes


def test_implant_backdoor_leaves_the_original_and_checks_its_arguments(digits, untrained):
    with pytest.raises(ValueError, match="triggered_share"):
        implant_backdoor(untrained, digits.x_train[:50], digits.y_train[:50], 0, triggered_share=0)
    with pytest.raises(ValueError, match="target class"):
        implant_backdoor(untrained, digits.x_train[:5], np.zeros(5, int), 0)
    before = [w.copy() for w in untrained.get_weights()]
    poisoned = implant_backdoor(untrained, digits.x_train[:60], digits.y_train[:60], 0, epochs=1, cache=False)
    assert all(np.array_equal(w, v) for w, v in zip(untrained.get_weights(), before))
    assert weight_change(untrained, poisoned).max_abs > 0
    with pytest.raises(ValueError, match="architectures"):
        weight_change(untrained, models.build("mlp", (64,), 10))


# ------------------------------------------------------------------ skewing
def _loop_data(digits):
    x = digits.x_train.reshape(len(digits.x_train), -1)
    return dict(x_pool=x[300:], y_pool=digits.y_train[300:], x_trusted=x[:300], y_trusted=digits.y_train[:300],
                x_eval=digits.x_test.reshape(len(digits.x_test), -1), y_eval=digits.y_test, source=7, target=1,
                rounds=4, batch=75, initial=250)


def test_a_feedback_loop_attacker_skews_the_source_class(digits):
    log = simulate_feedback_loop(**_loop_data(digits), attack_per_round=25)
    assert len(log) == 5 and all(r["accepted"] for r in log) and all(r["attacking"] for r in log[1:])
    assert log[0]["source_recall"] >= 0.9 and log[-1]["source_to_target"] >= 0.5
    honest = simulate_feedback_loop(**_loop_data(digits), attack_per_round=0)
    assert honest[-1]["source_recall"] >= 0.9 and not any(r["attacking"] for r in honest)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gate="sometimes"), "gate"), (dict(rounds=20), "exceeds"), (dict(target=7), "differ"),
    (dict(tolerance=2), "tolerance"), (dict(correction_rate=-1), "correction_rate"),
    (dict(attack_per_round=-1), "attack_per_round"), (dict(batch=0), "batch"),
])
def test_simulate_feedback_loop_rejects_bad_arguments(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_feedback_loop(**(_loop_data(digits) | kwargs))


def test_simulate_feedback_loop_wants_flat_features(digits):
    with pytest.raises(ValueError, match="flatten"):
        simulate_feedback_loop(**(_loop_data(digits) | dict(x_eval=digits.x_test)))


# ------------------------------------------------------------------ signed responses (ML09)
@pytest.fixture(scope="module")
def signing_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return keys.generate_signing_key(d / "k.pem", d / "k.pub.pem")


def test_a_signed_response_verifies_and_any_change_is_refused(signing_pair, tmp_path):
    priv, pub = signing_pair
    body, sig = response_signing.sign_response({"label": 3}, priv, request_id="a", issued_at=1000.0)
    assert response_signing.verify_response(body, sig, pub, request_id="a", now=1001.0)["label"] == 3
    for bad_body, bad_sig, rid, now, match in [
        (body.replace(b'"label": 3', b'"label": 4'), sig, "a", 1001.0, "does not verify"),
        (body, sig, "b", 1001.0, "replayed"), (body, sig, "a", 5000.0, "issued"),
        (body, "not base64!", "a", 1001.0, "base64"),
    ]:
        with pytest.raises(IntegrityError, match=match):
            response_signing.verify_response(bad_body, bad_sig, pub, request_id=rid, now=now)
    other_priv, other_pub = keys.generate_signing_key(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    with pytest.raises(IntegrityError, match="does not verify"):
        response_signing.verify_response(body, sig, other_pub, request_id="a", now=1001.0)


@pytest.mark.parametrize("payload, request_id, match", [
    ({"label": 1, "request_id": "x"}, "a", "request_id"), ([1], "a", "dict"), ({"label": 1}, "", "request_id"),
    ({"score": float("nan")}, "a", "Out of range"),
])
def test_sign_response_rejects_bad_payloads(signing_pair, payload, request_id, match):
    with pytest.raises(ValueError, match=match):
        response_signing.sign_response(payload, signing_pair[0], request_id=request_id)
