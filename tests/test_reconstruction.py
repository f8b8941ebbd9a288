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
    dp = dp_models.make_model("gaussian_nb", 1.0, x.shape[1], seed=0)
    released = rec.reconstruction_errors(dp, x, y, rows=[0, 1], view="released")
    exact = rec.reconstruction_errors(dp, x, y, rows=[0, 1], view="exact", template=GaussianNB())
    best = np.minimum(released["rmse"], exact["rmse"])
    assert np.all(best > 0.05)  # the plain model gives < 0.001 on the same rows


def test_exact_view_carries_the_released_parameters():
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    dp = dp_models.make_model("gaussian_nb", 1.0, 1, seed=0).fit(x / 3, y)
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


def test_boxed_search_stays_in_the_box_and_still_recovers_a_plain_row(rows):
    x, y = rows
    plain = rec.reconstruction_errors(GaussianNB(), x, y, rows=[0], bounds=(0.0, 1.0))
    assert plain["rmse"][0] < 1e-3
    dp = dp_models.make_model("gaussian_nb", 1.0, x.shape[1], seed=0).fit(x, y)
    x_hat, _ = rec.reconstruct_row(rec.exact_refit_view(dp, GaussianNB()), x[1:], y[1:], bounds=(0.0, 1.0))
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0


def test_guessing_bound_runs_from_the_blind_guess_to_one():
    assert rec.guessing_bound(0.0, 20) == pytest.approx(1 / 20)
    assert rec.guessing_bound(np.inf, 20) == 1.0
    assert rec.guessing_bound(1.0, 20) == pytest.approx(np.e / (np.e + 19))
    assert rec.guessing_bound(1.0, 20, delta=1e-3) > rec.guessing_bound(1.0, 20)
    assert rec.guessing_bound(1.0, 1) == 1.0
    # at most the looser e^eps * kappa + delta of Balle et al. (2022)
    for eps in (0.1, 1.0, 3.0):
        assert rec.guessing_bound(eps, 20, 1e-5) <= np.exp(eps) / 20 + 1e-5 + 1e-12


def test_guessing_bound_holds_for_randomized_response_over_k_candidates():
    """k-ary randomized response is eps-DP (one row replaced) and meets the bound exactly."""
    eps, k = 1.0, 8
    p_right = np.exp(eps) / (np.exp(eps) + k - 1)  # report the true candidate, else one of the others
    assert rec.guessing_bound(eps, k) == pytest.approx(p_right)


def test_candidate_game_plain_model_is_named_dp_model_within_the_bound(rows):
    x, y = rows
    known_x, known_y = x[:40], y[:40]
    cand = x[40:][y[40:] == 1][:8]
    plain = rec.candidate_trials(GaussianNB(), known_x, known_y, cand, 1, bounds=(0.0, 1.0))
    assert plain["search names it"].all() and plain["matching names it"].all()
    assert np.all(plain["rmse"] < 1e-3)
    dp = rec.candidate_trials(dp_models.make_model("gaussian_nb", 1.0, x.shape[1]), known_x, known_y, cand, 1,
                              view="exact", template=GaussianNB(), bounds=(0.0, 1.0), seed=0)
    assert dp["matching names it"].sum() <= 4  # bound e/(e+7) = 0.28 of 8: 5 or more would be unlikely (about 0.04)


def test_candidate_game_bad_arguments_are_named(rows):
    x, y = rows
    with pytest.raises(ValueError, match="candidates"):
        rec.candidate_trials(GaussianNB(), x, y, x[:3, :2], 1)
    with pytest.raises(ValueError, match="view"):
        rec.candidate_trials(GaussianNB(), x, y, x[:3], 1, view="oracle")
    with pytest.raises(ValueError, match="bounds"):
        rec.reconstruct_row(GaussianNB().fit(x, y), x[1:], y[1:], bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="k must"):
        rec.guessing_bound(1.0, 0)
