"""The clean-label backdoor (lesson 11): labels untouched, the perturbation inside its budget, ART's draw, the errors."""
import numpy as np
import pytest

from mlsec_lessons import models
from mlsec_lessons.errors import InvalidParameterError, ParameterTypeError
from mlsec_lessons.poisoning import add_trigger, label_audit, poison_backdoor, poison_clean_label, train_clean_label
from mlsec_lessons.reproducibility import seeded_numpy_global

TARGET = 0
TRIGGER = add_trigger(np.zeros((1, 8, 8, 1), np.float32))[0] > 0      # the four pixels the trigger sets


@pytest.fixture(scope="module")
def poisoned(digits, small_cnn):
    return poison_clean_label(digits.x_train, digits.y_train, small_cnn, TARGET, pp_poison=0.5, eps=0.2,
                              eps_step=0.05, steps=10, cache=False)


def test_every_poisoned_image_is_of_the_target_class_and_no_label_is_touched(digits, poisoned):
    x_p, idx = poisoned
    assert len(idx) > 0 and np.all(digits.y_train[idx] == TARGET)
    untouched = np.setdiff1d(np.arange(len(x_p)), idx)
    assert np.array_equal(x_p[untouched], digits.x_train[untouched])      # nothing else changed
    assert np.all(x_p[idx][:, TRIGGER] == 1.0)                            # each carries the trigger


def test_the_perturbation_stays_within_eps_and_the_clip_range(digits, poisoned):
    x_p, idx = poisoned
    delta = np.abs(x_p[idx] - digits.x_train[idx])[:, ~TRIGGER]           # the trigger's own pixels aside
    assert delta.max() <= 0.2 + 1e-6 and delta.max() >= 0.1                # PGD used its budget, no more
    assert x_p.min() >= 0.0 and x_p.max() <= 1.0


def test_l2_perturbation_stays_within_eps(digits, small_cnn):
    x_p, idx = poison_clean_label(digits.x_train, digits.y_train, small_cnn, TARGET, pp_poison=0.2, norm=2, eps=1.0,
                                  eps_step=0.25, steps=5, cache=False)
    delta = (x_p[idx] - digits.x_train[idx])[:, ~TRIGGER]
    assert np.linalg.norm(delta.reshape(len(idx), -1), axis=1).max() <= 1.0 + 1e-5


def test_poisoned_count_is_arts_draw_of_pp_poison_of_the_target_class(digits, poisoned):
    """ART draws int(pp_poison * n_target) rows with replacement from np.random: the distinct ones are poisoned."""
    _, idx = poisoned
    rows = np.flatnonzero(digits.y_train == TARGET)
    with seeded_numpy_global(0):
        drawn = np.random.choice(rows, int(0.5 * len(rows)))
    assert np.array_equal(idx, np.unique(drawn))
    assert len(idx) < int(0.5 * len(rows))                                 # duplicates: fewer than asked


def test_the_perturbation_fools_the_proxy_where_the_trigger_alone_does_not(digits, small_cnn, poisoned):
    x_p, idx = poisoned
    assert np.mean(models.predict_labels(small_cnn, x_p[idx]) == TARGET) <= 0.2
    assert np.mean(models.predict_labels(small_cnn, add_trigger(digits.x_train[idx])) == TARGET) >= 0.9


def test_the_same_seed_gives_the_same_poison_and_another_seed_another(digits, small_cnn, poisoned):
    again = poison_clean_label(digits.x_train, digits.y_train, small_cnn, TARGET, pp_poison=0.5, eps=0.2,
                               eps_step=0.05, steps=10, cache=False)
    assert np.array_equal(again[0], poisoned[0])
    other = poison_clean_label(digits.x_train, digits.y_train, small_cnn, TARGET, pp_poison=0.5, eps=0.2,
                               eps_step=0.05, steps=1, seed=1, cache=False)
    assert not np.array_equal(other[1], poisoned[1])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(pp_poison=0.0), InvalidParameterError, "pp_poison"), (dict(pp_poison=1.0), InvalidParameterError, "pp_poison"),
    (dict(pp_poison=0.001), InvalidParameterError, "no image"), (dict(norm=3), InvalidParameterError, "norm"),
    (dict(norm=True), InvalidParameterError, "norm"), (dict(eps=0.0), InvalidParameterError, "eps"),
    (dict(eps_step=-1.0), InvalidParameterError, "eps_step"), (dict(steps=0), InvalidParameterError, "steps"),
    (dict(steps=2.0), ParameterTypeError, "steps"), (dict(kind="star"), InvalidParameterError, "kind"),
    (dict(target=10), InvalidParameterError, "target"), (dict(seed=-1), InvalidParameterError, "seed"),
])
def test_bad_arguments_are_refused(digits, small_cnn, kwargs, error, match):
    args = dict(pp_poison=0.5, target=TARGET) | kwargs
    with pytest.raises(error, match=match):
        poison_clean_label(digits.x_train, digits.y_train, small_cnn, cache=False, **args)


def test_label_audit_flags_dirty_labels_but_not_clean_label_poison(digits, poisoned):
    x_d, y_d, dirty = poison_backdoor(digits.x_train, digits.y_train, 0.05, TARGET)
    flags = label_audit(x_d, y_d)
    assert flags[dirty].mean() >= 0.6 and np.delete(flags, dirty).mean() <= 0.1
    x_p, idx = poisoned
    assert label_audit(x_p, digits.y_train)[idx].mean() <= 0.05


@pytest.mark.parametrize("kwargs, match", [(dict(k=0), "k"), (dict(folds=1), "folds")])
def test_label_audit_refuses_bad_arguments(digits, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        label_audit(digits.x_train, digits.y_train, **kwargs)


@pytest.mark.slow
def test_the_clean_label_backdoor_beats_its_trigger_only_control(digits, small_cnn):
    result = train_clean_label(digits, small_cnn, TARGET, cache=False)
    assert np.array_equal(result.labels, result.true_labels) and np.all(result.labels == TARGET)
    assert result.asr >= 0.06 and result.control_asr <= 0.03 and result.asr >= result.control_asr + 0.05
    assert min(result.clean_accuracy, result.control_clean_accuracy) >= 0.9
    frame = result.to_frame()
    assert frame["labels changed"].tolist() == [0, 0] and frame["poisoned images"].iloc[0] == len(result.poison_idx)
