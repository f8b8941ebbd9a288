import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB

from mlsec_lessons.privacy import dp_models
from mlsec_lessons.privacy_attacks import reconstruction as rec


@pytest.fixture(scope="module")
def rows():
    d = dp_models.load_breast_cancer_public()
    features = [0, 1, 4, 8, 9]  # a few mean measurements keep ART's search fast
    return d.x_train[:60, features].astype(float), d.y_train[:60]


def test_art_recovers_a_plain_naive_bayes_row_exactly(rows):
    x, y = rows
    r = rec.reconstruction_errors(GaussianNB(), x, y, rows=[0, 1])
    assert np.all(r["rmse"] < 1e-3) and r["label correct"].all()
    assert np.all(r["baseline rmse"] > 0.05)  # the row is not simply the average one


def test_dp_naive_bayes_defeats_both_attacker_views(rows):
    x, y = rows
    dp = dp_models.make_model("gaussian_nb", 1.0, x.shape[1], random_state=0)
    released = rec.reconstruction_errors(dp, x, y, rows=[0, 1], view="released")
    exact = rec.reconstruction_errors(dp, x, y, rows=[0, 1], view="exact", template=GaussianNB())
    best = np.minimum(released["rmse"], exact["rmse"])
    assert np.all(best > 0.05)  # the plain model gives < 0.001 on the same rows


def test_exact_view_carries_the_released_parameters():
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    dp = dp_models.make_model("gaussian_nb", 1.0, 1, random_state=0).fit(x / 3, y)
    view = rec.exact_refit_view(dp, GaussianNB())
    assert type(view) is GaussianNB
    np.testing.assert_array_equal(view.theta_, dp.theta_)
    np.testing.assert_array_equal(view.var_, dp.var_)


def test_bad_arguments_are_named(rows):
    x, y = rows
    with pytest.raises(ValueError, match="view"):
        rec.reconstruction_errors(GaussianNB(), x, y, rows=[0], view="oracle")
    with pytest.raises(ValueError, match="template"):
        rec.reconstruction_errors(GaussianNB(), x, y, rows=[0], view="exact")
    with pytest.raises(ValueError, match="rows"):
        rec.reconstruction_errors(GaussianNB(), x, y, rows=[999])
    with pytest.raises(ValueError, match="template must be"):
        rec.exact_refit_view(GaussianNB().fit(x, y), object())
