"""diffprivlib models with public bounds: they are DP-shaped, the budget is enforced, and
bounds taken from the data leak what the public ones do not."""
import math
import warnings

import numpy as np
import pytest
from diffprivlib import BudgetAccountant
from diffprivlib.utils import BudgetError, PrivacyLeakWarning
from sklearn import datasets as skdatasets

from mlsec_lessons import data
from mlsec_lessons.privacy import dp_models


@pytest.fixture(scope="module")
def bc():
    return dp_models.load_breast_cancer_public()


def test_public_ranges_cover_every_feature_and_all_records():
    raw = skdatasets.load_breast_cancer()
    lo, hi = dp_models.public_bounds(list(raw.feature_names))
    assert len(lo) == 30 and np.all(lo < hi)
    # chosen generous: no record is clipped, so clipping costs no utility on this data
    assert np.all((raw.data >= lo) & (raw.data <= hi))


def test_public_scaling_uses_no_row_statistics(bc):
    ref = data.load_breast_cancer()
    assert np.array_equal(bc.y_train, ref.y_train) and np.array_equal(bc.y_test, ref.y_test)  # same split
    raw = skdatasets.load_breast_cancer()
    names = list(raw.feature_names)
    # scaling one row alone gives the same result as scaling it with the others
    alone = dp_models.scale_public(raw.data[:1], names)
    assert np.allclose(alone, dp_models.scale_public(raw.data, names)[:1])
    assert 0 <= bc.x_train.min() and bc.x_train.max() <= 1
    assert np.all(np.linalg.norm(bc.x_train, axis=1) <= math.sqrt(30))


@pytest.mark.parametrize("kind", dp_models.KINDS)
def test_models_fit_without_privacy_leak_warnings_and_learn_at_large_epsilon(bc, kind):
    accs = []
    for seed in range(3):
        model = dp_models.make_model(kind, 20.0, 30, accountant=BudgetAccountant(), seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrivacyLeakWarning)  # public bounds: nothing read from data
            warnings.filterwarnings("ignore", "scipy.optimize", DeprecationWarning)  # diffprivlib's L-BFGS-B call
            model.fit(bc.x_train, bc.y_train)
        accs.append(np.mean(model.predict(bc.x_test) == bc.y_test))
    assert np.mean(accs) > 0.75  # always answering benign scores 0.63 (the benign share)


def test_utility_grows_with_epsilon(bc):
    mean, std = dp_models.utility_curve(bc, "gaussian_nb", [0.05, 50.0], repeats=6)
    assert mean[1] > mean[0] + 0.15 and mean[1] > 0.85


def test_budget_accountant_refuses_to_overspend(bc):
    acct = BudgetAccountant(epsilon=1.5)
    dp_models.make_model("gaussian_nb", 1.0, 30, accountant=acct, seed=0).fit(bc.x_train, bc.y_train)
    assert acct.spent_budget == [(1.0, 0)]
    assert acct.remaining()[0] == pytest.approx(0.5)
    with pytest.raises(BudgetError):
        dp_models.make_model("random_forest", 1.0, 30, accountant=acct, seed=0).fit(bc.x_train, bc.y_train)


def test_bounds_from_the_data_publish_a_patients_value(bc):
    # A neighbouring dataset with one unusual patient (every feature at 0.97 of the public range).
    x, y = bc.x_train, bc.y_train
    outlier = np.full((1, 30), 0.97)
    xs = np.vstack([x, outlier])
    ys = np.r_[y, 0]
    from diffprivlib.models import GaussianNB

    with pytest.warns(PrivacyLeakWarning):
        leaky = GaussianNB(epsilon=1.0, random_state=0, accountant=BudgetAccountant()).fit(xs, ys)
    # the fitted model carries the private maximum, which is exactly the outlier's value
    assert np.allclose(leaky.bounds[1], np.maximum(x.max(axis=0), 0.97))
    assert np.any(leaky.bounds[1] == np.float64(0.97)) and np.any(x.max(axis=0) < 0.97)
    # with public bounds the model's bounds are the same with or without that patient
    safe = dp_models.make_model("gaussian_nb", 1.0, 30, accountant=BudgetAccountant(), seed=0).fit(xs, ys)
    assert np.array_equal(safe.bounds[1], np.ones(30))


def test_forest_thresholds_reveal_membership_with_data_bounds(bc):
    # Tree thresholds are drawn uniformly within the bounds; with data bounds an outlier
    # widens the range and thresholds appear beyond every other record: membership is certain.
    from diffprivlib.models import RandomForestClassifier

    x, y = bc.x_train, bc.y_train
    top = x.max(axis=0)
    def max_ratio(xs, ys, bounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyLeakWarning)
            rf = RandomForestClassifier(n_estimators=10, epsilon=1.0, bounds=bounds, classes=[0, 1],
                                        random_state=0, accountant=BudgetAccountant()).fit(xs, ys)
        ratios = [t.tree_.threshold[t.tree_.feature >= 0] / top[t.tree_.feature[t.tree_.feature >= 0]]
                  for t in rf.estimators_]
        return float(np.max(np.concatenate(ratios)))

    xs, ys = np.vstack([x, np.full((1, 30), 1.0)]), np.r_[y, 0]
    assert max_ratio(x, y, None) <= 1.0 < max_ratio(xs, ys, None)


@pytest.mark.parametrize("call, match", [
    (lambda: dp_models.make_model("svm", 1.0, 30), "kind must be one of"),
    (lambda: dp_models.make_model("gaussian_nb", 0.0, 30), r"epsilon must be in \(0, inf\), got 0.0"),
    (lambda: dp_models.make_model("gaussian_nb", 1.0, 0), r"n_features must be in \[1, inf\], got 0"),
    (lambda: dp_models.public_bounds(["mean radius", "shoe size"]),
     "no public range for feature\\(s\\) \\['shoe size'\\]"),
    (lambda: dp_models.scale_public(np.zeros((2, 3)), ["mean radius"]), "x must have shape \\(n, 1\\), got \\(2, 3\\)"),
    (lambda: dp_models.load_breast_cancer_public(test_size=2), "test_size"),
])
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_repeats(bc):
    with pytest.raises(ValueError, match=r"repeats must be in \[1, inf\], got 0"):
        dp_models.utility_curve(bc, "gaussian_nb", [1.0], repeats=0)
