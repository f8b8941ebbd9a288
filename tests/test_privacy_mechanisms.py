"""Laplace and Gaussian mechanisms: the noise they add, the sensitivity they state, and the
source's feature noise, which is not DP."""
import math

import numpy as np
import pytest
from scipy import stats

from mlsec_lessons.errors import InvalidParameterError
from mlsec_lessons.privacy import mechanisms


def test_laplace_noise_has_scale_sensitivity_over_epsilon():
    noise = mechanisms.laplace(np.zeros(20000), sensitivity=2.0, epsilon=0.5, seed=0)
    # Laplace(b) has mean |X| = b; b = 2 / 0.5 = 4
    assert np.mean(np.abs(noise)) == pytest.approx(4.0, rel=0.03)
    assert stats.kstest(noise, stats.laplace(scale=4.0).cdf).pvalue > 1e-3


def test_gaussian_noise_matches_calibration():
    sigma = mechanisms.gaussian_sigma(3.0, 1.0, 1e-5)
    noise = mechanisms.gaussian(np.zeros(20000), 3.0, 1.0, 1e-5, seed=1)
    assert np.std(noise) == pytest.approx(sigma, rel=0.03)


def test_analytic_gaussian_is_tight_and_classic_is_loose():
    import dp_accounting

    sigma = mechanisms.gaussian_sigma(1.0, 0.5, 1e-5)
    # the analytic sigma achieves exactly (0.5, 1e-5)...
    assert dp_accounting.get_epsilon_gaussian(sigma, 1e-5) == pytest.approx(0.5, rel=1e-6)
    # ...and the classic one is larger (over-noised), and scales linearly with the sensitivity
    assert mechanisms.gaussian_sigma(1.0, 0.5, 1e-5, "classic") > sigma
    assert mechanisms.gaussian_sigma(2.0, 0.5, 1e-5) == pytest.approx(2 * sigma)
    with pytest.raises(ValueError, match="classic calibration is proven only for epsilon < 1, got epsilon=2.0"):
        mechanisms.gaussian_sigma(1.0, 2.0, 1e-5, "classic")


def test_laplace_privacy_loss_is_bounded_by_epsilon():
    # For neighbours whose answers differ by the sensitivity, the log-density ratio of
    # any output is at most epsilon (and reaches it): this is the DP definition.
    eps, sens = 0.7, 1.5
    out = np.linspace(-20, 20, 2001)
    b = sens / eps
    ratio = stats.laplace(0, b).logpdf(out) - stats.laplace(sens, b).logpdf(out)
    assert np.max(np.abs(ratio)) == pytest.approx(eps)


def test_stated_mean_sensitivity_covers_the_brute_force_gap():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.uniform(0, 1, size=int(rng.integers(2, 40)))
        gap = mechanisms.neighbour_gap(lambda v: mechanisms.clipped_mean(v, 0.0, 1.0), x, 0.0, 1.0)
        assert gap <= mechanisms.mean_sensitivity(len(x), 0.0, 1.0) + 1e-12
    # and the bound is attained: a record at one end replaced by the other
    x = np.array([0.0, 0.5, 0.5, 0.5])
    gap = mechanisms.neighbour_gap(lambda v: mechanisms.clipped_mean(v, 0.0, 1.0), x, 0.0, 1.0)
    assert gap == pytest.approx(mechanisms.mean_sensitivity(4, 0.0, 1.0))


def test_unclipped_mean_has_no_finite_sensitivity():
    # Without clipping, a record far outside the assumed range moves the mean without limit.
    x = np.full(10, 0.5)
    neighbour = x.copy()
    neighbour[0] = 1e6
    assert abs(np.mean(neighbour) - np.mean(x)) > 1e4 * mechanisms.mean_sensitivity(10, 0.0, 1.0)
    assert mechanisms.clipped_mean(neighbour, 0, 1) - mechanisms.clipped_mean(x, 0, 1) <= 0.05 + 1e-12


def test_dp_mean_is_unbiased_and_uses_the_stated_scale():
    x = np.linspace(0, 1, 101)
    draws = [mechanisms.dp_mean(x, 0.0, 1.0, epsilon=1.0, seed=s) for s in range(4000)]
    assert np.mean(draws) == pytest.approx(0.5, abs=0.002)
    assert np.mean(np.abs(np.array(draws) - 0.5)) == pytest.approx(1 / 101, rel=0.06)


def test_source_feature_noise_leaks_an_outlier_and_the_labels():
    # Two neighbouring datasets differ in one unbounded record (a tumour area of 2500 vs 500).
    # The source releases x + Laplace(1/eps): a threshold tells them apart every time, so the
    # privacy loss is unbounded, not eps.
    eps = 1.0
    hits = 0
    for s in range(200):
        a = mechanisms.source_feature_noise(np.array([2500.0]), eps, seed=s)
        b = mechanisms.source_feature_noise(np.array([500.0]), eps, seed=10_000 + s)
        hits += int(a[0] > 1500) + int(b[0] <= 1500)
    assert hits == 400
    # the DP bound for eps=1 allows a distinguisher at most e/(1+e) = 0.73 accuracy
    assert hits / 400 > math.e / (1 + math.e)


@pytest.mark.parametrize("call, match", [
    (lambda: mechanisms.laplace(1.0, 0.0, 1.0), r"sensitivity must be in \(0, inf\), got 0.0"),
    (lambda: mechanisms.laplace(1.0, 1.0, -1.0), r"epsilon must be in \(0, inf\), got -1.0"),
    (lambda: mechanisms.gaussian(1.0, 1.0, 1.0, 0.0), "delta must be in \\(0, 1\\), got 0.0"),
    (lambda: mechanisms.gaussian_sigma(1.0, 1.0, 1e-5, "exact"),
     "calibration must be one of .*analytic.*classic.*, got 'exact'"),
    (lambda: mechanisms.dp_mean([1.0], 1.0, 0.0, 1.0), "lower and upper must be finite with lower < upper"),
    (lambda: mechanisms.dp_mean([], 0.0, 1.0, 1.0), "x must be a non-empty 1-D array"),
    (lambda: mechanisms.mean_sensitivity(0, 0.0, 1.0), r"n must be in \[1, inf\], got 0"),
    (lambda: mechanisms.source_feature_noise([1.0], 0.0), r"epsilon must be in \(0, inf\), got 0.0"),
    (lambda: mechanisms.laplace(1.0, 1.0, 1.0, seed=-3), r"seed must be in \[0, inf\], got -3"),
])
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: mechanisms.laplace(1.0, "1", 1.0), "sensitivity must be a real number"),
    (lambda: mechanisms.mean_sensitivity(2.0, 0.0, 1.0), "n must be an int"),
    (lambda: mechanisms.laplace(1.0, 1.0, 1.0, seed=0.5), "seed must be an int, a numpy Generator or None"),
])
def test_wrong_types_are_type_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()
