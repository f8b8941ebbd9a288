"""The accountant: the published numbers, the order of the accountants, calibration, validation."""
import math

import dp_accounting
import pytest

from mlsec_lessons.privacy import accounting

# TF Privacy's published MNIST row: sigma 1.1, batch 256 of 60000, 60 epochs, delta 1e-5.
Q = 256 / 60000
STEPS = math.ceil(60 / Q)


def test_tf_privacy_mnist_row_classic_conversion():
    # TF Privacy's README reports eps = 3.01 for this row with the classic RDP conversion.
    assert accounting.classic_rdp_epsilon(1.1, Q, STEPS, 1e-5) == pytest.approx(3.01, abs=0.01)


def test_tf_privacy_mnist_row_with_dp_accounting():
    assert accounting.epsilon(1.1, Q, STEPS, 1e-5, "rdp") == pytest.approx(2.60, abs=0.01)
    assert accounting.epsilon(1.1, Q, STEPS, 1e-5, "pld") == pytest.approx(2.38, abs=0.01)


def test_epsilon_table_orders_the_assumptions():
    t = accounting.epsilon_table(1.1, 0.05, 300, 1e-5)
    classic, rdp, pld, known, full = t.values()
    assert pld < rdp < classic < known < full  # tighter analyses give less; no sampling gives far more
    assert known > 3 * rdp and full > 10 * rdp
    # 300 steps of batches of 1/0.05 = 20 per epoch: 15 epochs
    assert known == pytest.approx(accounting.epsilon_known_batches(1.1, 15, 1e-5))
    assert full == pytest.approx(accounting.epsilon_full_batch(1.1, 300, 1e-5))


def test_tf_privacy_mnist_row_without_amplification():
    # 14063 steps of 235 batches per epoch: 60 epochs, so each example meets 60 Gaussians, not 14063
    t = accounting.epsilon_table(1.1, Q, STEPS, 1e-5)
    known = t["batches known, no amplification (one Gaussian per epoch)"]
    assert known == pytest.approx(accounting.epsilon_known_batches(1.1, 60, 1e-5))
    assert 50 < known < 60
    assert t["full-batch gradient descent (q = 1, every step)"] > 1000


def _dp_accounting_gaussians(noise_multiplier, count, delta, accountant):
    # q = 1: a plain Gaussian event, self-composed, no sampling event
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), count)
    acct = dp_accounting.rdp.RdpAccountant() if accountant == "rdp" else dp_accounting.pld.PLDAccountant()
    return float(acct.compose(event).get_epsilon(delta))


@pytest.mark.parametrize("noise, count", [(1.1, 60), (1.1, 10), (5.0, 16), (2.0, 1)])
def test_known_batches_and_full_batch_match_dp_accounting(noise, count):
    # the closed form (Gaussians compose to one of noise sigma / sqrt(count)) against
    # dp_accounting's PLD (numerically tight) and RDP (an upper bound) on the same events
    exact = accounting.epsilon_known_batches(noise, count, 1e-5)
    assert exact == accounting.epsilon_full_batch(noise, count, 1e-5)  # same events, other meaning
    assert _dp_accounting_gaussians(noise, count, 1e-5, "pld") == pytest.approx(exact, rel=0.02)
    assert exact <= _dp_accounting_gaussians(noise, count, 1e-5, "rdp") <= 1.25 * exact


def test_full_batch_is_exact_gaussian_composition():
    # k Gaussians of noise sigma compose to one of noise sigma / sqrt(k): check against RDP,
    # which upper-bounds the exact value and is close to it for a plain Gaussian.
    exact = accounting.epsilon_full_batch(5.0, 16, 1e-5)
    assert exact == pytest.approx(dp_accounting.get_epsilon_gaussian(5.0 / 4, 1e-5))
    assert exact <= accounting.epsilon(5.0, 1.0, 16, 1e-5, "rdp") <= 1.2 * exact
    # sample_rate=1 in epsilon() means no sampling event at all
    assert accounting.epsilon(5.0, 1.0, 16, 1e-5, "pld") == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("epochs, error", [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_known_batches_bad_epochs(epochs, error):
    with pytest.raises(error, match="epochs must be"):
        accounting.epsilon_known_batches(1.1, epochs, 1e-5)


def test_classic_conversion_is_the_formula_over_the_rdp_curve():
    orders, rdp = accounting.rdp_curve(1.1, 0.01, 500)
    by_hand = min(r + math.log(1e5) / (a - 1) for a, r in zip(orders, rdp))
    assert accounting.classic_rdp_epsilon(1.1, 0.01, 500, 1e-5) == pytest.approx(by_hand)


def test_epsilon_grows_with_steps_and_sampling_and_shrinks_with_noise():
    e = accounting.epsilon
    assert e(1.1, 0.01, 100, 1e-5) < e(1.1, 0.01, 1000, 1e-5)
    assert e(1.1, 0.01, 100, 1e-5) < e(1.1, 0.05, 100, 1e-5)
    assert e(2.0, 0.01, 100, 1e-5) < e(1.1, 0.01, 100, 1e-5)
    assert e(1.1, 0.01, 100, 1e-3) < e(1.1, 0.01, 100, 1e-5)


@pytest.mark.parametrize("target", [0.5, 2.0, 8.0])
def test_noise_multiplier_for_hits_the_target_from_below(target):
    sigma = accounting.noise_multiplier_for(target, 0.05, 300, 1e-5)
    spent = accounting.epsilon(sigma, 0.05, 300, 1e-5)
    assert spent <= target + 1e-9
    assert spent == pytest.approx(target, rel=0.01)  # and not much more noise than needed


def test_noise_multiplier_for_pld_needs_less_noise():
    sigma = accounting.noise_multiplier_for(2.0, 0.05, 50, 1e-5, accountant="pld")
    assert sigma < accounting.noise_multiplier_for(2.0, 0.05, 50, 1e-5)
    assert accounting.epsilon(sigma, 0.05, 50, 1e-5, "pld") == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise_multiplier=0.0), "noise_multiplier must be in \\(0, inf\\), got 0.0"),
    (dict(noise_multiplier=float("nan")), "noise_multiplier"),
    (dict(sample_rate=0.0), "sample_rate must be in \\(0, 1\\], got 0.0"),
    (dict(sample_rate=1.5), "sample_rate"),
    (dict(steps=0), "steps must be in \\[1, inf\\], got 0"),
    (dict(delta=0.0), "delta must be in \\(0, 1\\), got 0.0"),
    (dict(delta=1.0), "delta"),
    (dict(accountant="moments"), "accountant must be one of \\('rdp', 'pld'\\), got 'moments'"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    args = dict(noise_multiplier=1.1, sample_rate=0.01, steps=100, delta=1e-5) | kwargs
    with pytest.raises(ValueError, match=match):
        accounting.epsilon(**args)


def test_a_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="steps must be an int, got float 10.5"):
        accounting.epsilon(1.1, 0.01, 10.5, 1e-5)


def test_noise_multiplier_for_bad_target():
    with pytest.raises(ValueError, match="target_epsilon must be in \\(0, inf\\), got -1"):
        accounting.noise_multiplier_for(-1, 0.01, 100, 1e-5)
    with pytest.raises(ValueError, match="accountant"):
        accounting.noise_multiplier_for(1.0, 0.01, 100, 1e-5, accountant="gdp")
    with pytest.raises(ValueError, match="target_epsilon=1000000.0 is so large that noise_multiplier=0.1"):
        accounting.noise_multiplier_for(1e6, 0.01, 100, 1e-5)


@pytest.mark.parametrize("noise, q, steps", [(1.1, 0.0509, 200), (1.1, Q, STEPS), (2.0, 1.0, 50)])
def test_epsilon_by_order_minimum_is_the_rdp_epsilon(noise, q, steps):
    orders, eps = accounting.epsilon_by_order(noise, q, steps, 1e-5)
    assert len(orders) == len(eps) == len(accounting.rdp_curve(noise, q, steps)[0])
    assert eps.min() == pytest.approx(accounting.epsilon(noise, q, steps, 1e-5, "rdp"), abs=1e-9)
    # every order's guarantee is at least the best one, and the tighter conversion beats the classic one
    _, rdp = accounting.rdp_curve(noise, q, steps)
    assert (eps <= rdp + math.log(1e5) / (orders - 1) + 1e-12).all()
    assert eps.min() < accounting.classic_rdp_epsilon(noise, q, steps, 1e-5)


def test_epsilon_by_order_is_inf_where_the_conversion_does_not_apply():
    orders, eps = accounting.epsilon_by_order(1.1, 0.01, 100, 1e-5, orders=[1.005, 2.0, 8.0])
    assert list(orders) == [1.005, 2.0, 8.0] and math.isinf(eps[0]) and math.isfinite(eps[1])


def test_epsilon_by_order_checks_its_arguments():
    with pytest.raises(ValueError, match="delta"):
        accounting.epsilon_by_order(1.1, 0.01, 100, 0.0)
