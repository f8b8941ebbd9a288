"""Secure aggregation from scratch: the masks cancel, dropouts are recovered, one masked vector
says nothing about its input, Shamir's threshold holds, quantisation stays within its bound (and
matches Flower's), and bad input is refused with a clear message."""
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from scipy import stats

from mlsec_lessons.federated import masking, shamir

R = masking.MODULUS


def random_inputs(n, d, seed=0, modulus=R):
    return np.random.default_rng(seed).integers(0, modulus, size=(n, d))


def plain_sum(vectors, clients, modulus=R):
    return np.asarray(vectors, dtype=np.int64)[clients].sum(axis=0) % modulus


def uniform_pvalue(values, modulus=R, bins=64):
    """Chi-squared test of ``values`` against the uniform distribution on ``Z_modulus``."""
    counts = np.bincount(np.asarray(values) * bins // modulus, minlength=bins)
    return stats.chisquare(counts).pvalue


# --------------------------------------------------------------------------- the sum
def test_unmasked_sum_is_the_exact_sum_mod_R():
    vectors = random_inputs(6, 500)  # values up to R - 1: the sum wraps around many times
    result = masking.simulate_round(vectors, threshold=3, seed=0)
    assert np.array_equal(result.total, plain_sum(vectors, range(6)))
    assert result.survivors == list(range(6)) and result.dropped == []
    # the masking did happen: the masked vectors' own sum is not the answer (the self masks remain)
    masked_sum = sum(result.server_view.masked_vectors.values()) % R
    assert not np.array_equal(masked_sum, result.total)


def test_the_sum_is_exact_for_any_modulus():
    modulus = 1009  # a prime, so the PRG's reduction mod R is not a bit mask
    vectors = random_inputs(4, 300, seed=1, modulus=modulus)
    result = masking.simulate_round(vectors, threshold=2, dropouts=[2], modulus=modulus, seed=1)
    assert np.array_equal(result.total, plain_sum(vectors, [0, 1, 3], modulus))


@pytest.mark.parametrize("dropouts", [[0], [6], [1, 4], [0, 2, 5], [3, 4, 5, 6]])
def test_up_to_n_minus_t_dropouts_are_recovered_exactly(dropouts):
    n, t = 7, 3  # up to n - t = 4 clients may drop out
    vectors = random_inputs(n, 200, seed=2)
    result = masking.simulate_round(vectors, threshold=t, dropouts=dropouts, seed=2)
    survivors = [u for u in range(n) if u not in dropouts]
    assert result.survivors == survivors and result.dropped == dropouts
    assert np.array_equal(result.total, plain_sum(vectors, survivors))
    # without removing the dropped clients' pairwise masks the sum would be wrong
    view = result.server_view
    naive = (sum(view.masked_vectors.values())
             - sum(masking.prg(view.self_seeds[u], (200,)) for u in survivors)) % R
    assert not np.array_equal(naive, result.total)


def test_late_dropouts_stay_in_the_sum():
    # clients 1 and 2 send their masked vectors, then go silent: their inputs count, and their
    # self masks are rebuilt from the other clients' shares
    vectors = random_inputs(6, 100, seed=3)
    result = masking.simulate_round(vectors, threshold=3, dropouts=[5], late_dropouts=[1, 2], seed=3)
    assert np.array_equal(result.total, plain_sum(vectors, [0, 1, 2, 3, 4]))
    assert result.server_view.responders == [0, 3, 4]


def test_too_many_dropouts_raise_a_clear_error():
    vectors = random_inputs(5, 10)
    with pytest.raises(ValueError, match=r"only 2 clients survived .*needs threshold=3"):
        masking.simulate_round(vectors, threshold=3, dropouts=[0, 1, 2], seed=0)
    with pytest.raises(ValueError, match=r"only 2 clients survived .*needs threshold=3"):
        masking.simulate_round(vectors, threshold=3, dropouts=[0], late_dropouts=[1, 2], seed=0)


def test_a_seed_makes_the_round_reproducible():
    vectors = random_inputs(3, 20)
    masked = [masking.simulate_round(vectors, 2, seed=s).server_view.masked_vectors[0] for s in (7, 7, 8)]
    assert np.array_equal(masked[0], masked[1]) and not np.array_equal(masked[0], masked[2])
    fresh = [masking.simulate_round(vectors, 2).server_view.masked_vectors[0] for _ in range(2)]
    assert not np.array_equal(*fresh)  # no seed: keys from the OS, a new mask every round


# --------------------------------------------------------------------------- what the server sees
def test_the_uniformity_test_can_tell():
    # the statistic below must reject what is not uniform, or its passing would mean nothing
    rng = np.random.default_rng(0)
    assert uniform_pvalue(rng.integers(0, R, 40000)) > 1e-3
    assert uniform_pvalue(rng.integers(0, R // 2, 40000)) < 1e-10
    assert uniform_pvalue(np.zeros(40000, dtype=np.int64)) < 1e-10


def test_a_masked_vector_is_uniform_whatever_the_input():
    d = 40000
    others = random_inputs(2, d, seed=4)
    masked = {}
    for name, mine in [("zeros", np.zeros(d, dtype=np.int64)), ("all R - 1", np.full(d, R - 1))]:
        result = masking.simulate_round(np.vstack([mine, others]), threshold=2, seed=4)
        masked[name] = result.server_view.masked_vectors[0]
        assert 1e-4 < uniform_pvalue(masked[name]) < 1 - 1e-4, name
        assert stats.kstest(masked[name] / R, "uniform").pvalue > 1e-4, name
    # the two inputs are as far apart as Z_R allows, yet their masked vectors look alike
    assert stats.ks_2samp(masked["zeros"], masked["all R - 1"]).pvalue > 1e-4


def test_a_masked_vector_is_uncorrelated_with_its_input():
    d = 40000
    vectors = random_inputs(3, d, seed=5)
    y = masking.simulate_round(vectors, threshold=2, seed=5).server_view.masked_vectors[1]
    r = np.corrcoef(vectors[1], y)[0, 1]
    assert abs(r) < 4 / np.sqrt(d), r  # 4 standard errors of a correlation that is truly 0


def test_the_server_never_holds_both_secrets_of_a_client():
    vectors = random_inputs(5, 4000, seed=6)
    result = masking.simulate_round(vectors, threshold=3, dropouts=[1], seed=6)
    view = result.server_view
    assert sorted(view.masked_vectors) == sorted(view.self_seeds) == [0, 2, 3, 4]
    assert sorted(view.secret_keys) == [1]  # and the dropped client's masked vector never arrived
    assert len(set(view.self_seeds.values())) == 4  # each client draws its own self-mask seed
    # with b_u, the server removes u's self mask, and the pairwise masks still hide x_u
    for u in view.masked_vectors:
        partly = (view.masked_vectors[u] - masking.prg(view.self_seeds[u], (4000,))) % R
        assert 1e-4 < uniform_pvalue(partly) and not np.any(partly == vectors[u])
    # an honest client refuses to reveal both secrets of one client
    clients = masking.advertise_keys(vectors, np.random.default_rng(0))
    masking.share_keys(clients, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"client 0 refuses: asked for both secrets of clients \[1\]"):
        masking.reveal(clients[0], survivors=[0, 1], dropped=[1])


def test_key_agreement_is_symmetric_and_pairwise_distinct():
    rng = np.random.default_rng(0)
    keys = [masking.generate_keypair(rng) for _ in range(3)]
    s01, s10 = masking.agree(keys[0][0], keys[1][1]), masking.agree(keys[1][0], keys[0][1])
    assert s01 == s10 and len(s01) == 32
    assert masking.agree(keys[0][0], keys[2][1]) != s01
    # the seed is HKDF-SHA256 of the Diffie-Hellman output, not the raw curve point
    raw = X25519PrivateKey.from_private_bytes(keys[0][0]).exchange(X25519PublicKey.from_public_bytes(keys[1][1]))
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mlsec-lessons pairwise mask")
    assert s01 == hkdf.derive(raw) != raw


def test_prg_is_the_chacha20_keystream():
    # RFC 7539, appendix A.1, test vector 1: key and nonce all zero; keystream 76 b8 e0 ad a0 f1 3d 90 ...
    assert masking.prg(bytes(32), 1, modulus=2**32)[0] == 0xade0b876
    assert masking.prg(bytes(32), 1, modulus=2**8)[0] == 0x76
    assert uniform_pvalue(masking.prg(bytes(range(32)), 40000, modulus=1009), modulus=1009) > 1e-4


# --------------------------------------------------------------------------- Shamir
def oracle_at(shares, x, p=shamir.PRIME):
    """Lagrange interpolation over the rationals, reduced mod p only at the end."""
    value = sum(Fraction(y_j) * math.prod(Fraction(x - x_m, x_j - x_m) for x_m, _ in shares if x_m != x_j)
                for x_j, y_j in shares)
    return value.numerator * pow(value.denominator, -1, p) % p


def test_any_t_shares_reconstruct_and_t_minus_1_do_not():
    n, t = 6, 3
    secret = int.from_bytes(bytes(range(32)), "big")
    shares = shamir.split(secret, n, t, np.random.default_rng(0))
    for subset in itertools.combinations(shares, t):
        assert shamir.combine(list(subset)) == secret == oracle_at(list(subset), 0)
    for subset in itertools.combinations(shares, t - 1):
        assert shamir.combine(list(subset)) != secret
    # all n shares lie on one polynomial of degree t - 1: any t of them predict the others
    for x, y in shares[t:]:
        assert oracle_at(shares[:t], x) == y
    with pytest.raises(ValueError, match="do not combine to a 32-byte secret"):
        masking.recover_secret(shares[:t - 1])


def test_t_minus_1_shares_are_uniform_whatever_the_secret():
    t, draws, p = 3, 2000, shamir.PRIME
    rng = np.random.default_rng(1)
    seen = {}
    for secret in (0, 2**256 - 1):
        ys = np.array([[y / p for _, y in shamir.split(secret, 5, t, rng)[:t - 1]] for _ in range(draws)])
        for column in ys.T:
            assert stats.kstest(column, "uniform").pvalue > 1e-4
        seen[secret] = ys[:, 0]
    assert stats.ks_2samp(seen[0], seen[2**256 - 1]).pvalue > 1e-4


def test_shamir_on_a_small_field_matches_the_oracle():
    p = 101
    for threshold in (1, 2, 4):
        shares = shamir.split(57, 6, threshold, np.random.default_rng(threshold), prime=p)
        assert all(0 <= y < p for _, y in shares)
        assert shamir.combine(shares[-threshold:], prime=p) == oracle_at(shares[-threshold:], 0, p) == 57
    assert shamir.combine([(1, 5), (2, 7)], prime=11) == 3  # the line 3 + 2x, by hand


def test_shamir_rejects_bad_input():
    with pytest.raises(ValueError, match="threshold must be from 1 to the number of shares n=3, got 4"):
        shamir.split(5, 3, 4)
    with pytest.raises(ValueError, match=r"the secret must be an integer in \[0, prime\)"):
        shamir.split(shamir.PRIME, 3, 2)
    with pytest.raises(ValueError, match="distinct, nonzero x coordinates"):
        shamir.combine([(1, 5), (1, 5)])
    with pytest.raises(ValueError, match="at least one share"):
        shamir.combine([])


# --------------------------------------------------------------------------- quantisation
def test_quantisation_error_is_at_most_half_a_step():
    clip, levels = 2.0, 1000
    x = np.random.default_rng(0).uniform(-clip, clip, 100000)
    error = np.abs(masking.dequantize(masking.quantize(x, clip, levels), clip, levels) - x)
    assert error.max() <= clip / levels + 1e-12 and error.max() > 0.99 * clip / levels  # and the bound is tight
    assert np.array_equal(masking.quantize([-5.0, 5.0], clip, levels), [0, levels])  # clipped to the ends


def test_stochastic_rounding_is_unbiased_and_within_one_step():
    clip, levels = 1.0, 10  # a step of 0.2
    x = np.full(200000, 0.13)
    back = masking.dequantize(masking.quantize(x, clip, levels, stochastic=True, seed=0), clip, levels)
    assert np.abs(back - x).max() < 2 * clip / levels
    assert set(np.round(back, 9)) == {0.0, 0.2}
    assert abs(back.mean() - 0.13) < 4 * 0.1 / np.sqrt(x.size)  # rounding to nearest would give 0.2


def test_quantisation_matches_flowers():
    flower = pytest.importorskip("flwr.common.secure_aggregation.quantization")
    x = np.random.default_rng(0).normal(0, 3, 5000)  # some beyond the clipping range
    clip, levels = 8.0, 2**22  # SecAgg+'s defaults
    state = np.random.get_state()
    try:
        np.random.seed(123)
        theirs = flower.quantize([x], clip, levels)[0]
    finally:
        np.random.set_state(state)
    # the same Mersenne Twister stream as Flower's np.random.seed(123), as a Generator
    twister = np.random.MT19937()
    twister.state = np.random.RandomState(123).get_state(legacy=False)
    ours = masking.quantize(x, clip, levels, stochastic=True, seed=np.random.Generator(twister))
    assert np.array_equal(ours, theirs)
    assert np.array_equal(masking.dequantize(ours, clip, levels), flower.dequantize([theirs], clip, levels)[0])


def test_secure_mean_of_floats_is_within_the_quantisation_error():
    n, d, clip, levels = 8, 3000, 1.0, 2**10
    x = np.random.default_rng(7).uniform(-clip, clip, (n, d))
    dropouts = [2, 5]
    survivors = [u for u in range(n) if u not in dropouts]
    want = x[survivors].mean(axis=0)
    got, result = masking.secure_mean(x, threshold=4, dropouts=dropouts, clip=clip, levels=levels, seed=7)
    assert result.survivors == survivors
    error = np.abs(got - want).max()
    assert 0 < error <= clip / levels + 1e-12, error
    got, _ = masking.secure_mean(x, 4, dropouts, clip, levels, stochastic=True, seed=7)
    assert np.abs(got - want).max() < 2 * clip / levels


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda: masking.simulate_round([[1, 2], [3, 4, 5]], 2), r"client 1's vector has shape \(3,\), client 0's \(2,\)"),
    (lambda: masking.simulate_round([[1, 2], [3, 4]], 3), r"threshold \(at most the number of clients\) must be in \[2, 2\], got 3"),
    (lambda: masking.simulate_round([[1, 2], [3, 4], [5, 6]], 1),
     r"threshold \(at most the number of clients\) must be in \[2, 3\], got 1"),
    (lambda: masking.simulate_round([[1, 2]], 2), "at least 2 clients, got 1"),
    (lambda: masking.simulate_round([[0.5, 2.0], [3.0, 4.0]], 2), "quantize floats first"),
    (lambda: masking.simulate_round([[1, -2], [3, 4]], 2), r"client 0's vector has values in \[-2, 1\], outside"),
    (lambda: masking.simulate_round([[1, 2], [3, R]], 2), "outside"),
    (lambda: masking.simulate_round([[1], [2], [3]], 2, dropouts=[0, 0]), "dropouts must be distinct client indices"),
    (lambda: masking.simulate_round([[1], [2], [3]], 2, dropouts=[3]), "dropouts must be distinct client indices"),
    (lambda: masking.simulate_round([[1], [2], [3]], 2, dropouts=[0], late_dropouts=[0]), "in both dropouts"),
    (lambda: masking.simulate_round([[1], [2]], 2, modulus=2**40), r"modulus must be in \[2, 4294967296\], got 1099511627776"),
    (lambda: masking.secure_mean(np.zeros((2, 3)), 2, levels=2**31), "would wrap around"),
    (lambda: masking.quantize([0.1], clip=0.0, levels=10), r"clip must be in \(0, inf\)"),
    (lambda: masking.quantize([0.1], clip=1.0, levels=0), r"levels must be in \[1, inf\]"),
    (lambda: masking.prg(bytes(16), 4), "must be 32 bytes, got 16"),
    (lambda: masking.share_secret(bytes(31), 3, 2), "must be 32 bytes, got 31"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
