"""Shamir secret sharing over a prime field, from scratch (Shamir, 1979).

To share a secret ``s`` among ``n`` parties so that any ``t`` of them can recover it and any
``t - 1`` learn nothing, draw a random polynomial of degree ``t - 1`` with ``f(0) = s``,

    f(x) = s + a_1 x + ... + a_{t-1} x^{t-1}  (mod p),

and give party ``i`` the point ``(i, f(i))``. ``t`` points fix a polynomial of degree ``t - 1``;
Lagrange interpolation at ``x = 0`` gives ``s`` back. With ``t - 1`` points, every secret is
still possible, each with exactly one polynomial through them: the shares are uniform on the
field whatever the secret is.

The field is the integers modulo the Mersenne prime ``p = 2**521 - 1``, so that a 32-byte
secret (an X25519 private key, a mask seed) is one field element. Flower's SecAgg+
(``flwr.common.secure_aggregation.crypto.shamir``) uses PyCryptodome's Shamir over GF(2^128)
instead, on 16-byte chunks: the same idea in another field, so its shares are not comparable
with these.
"""
import secrets

from ..errors import InvalidParameterError
from ..validation import as_generator

PRIME = 2**521 - 1


def random_below(p, seed=None):
    """A uniform integer in ``[0, p)``: from the OS's randomness (``seed=None``), or from ``seed``
    (an int or a numpy Generator) for a reproducible lesson; never seed real secrets.

    Examples
    --------
    >>> import numpy as np
    >>> 0 <= random_below(PRIME, np.random.default_rng(0)) < PRIME
    True
    """
    if seed is None:
        return secrets.randbelow(p)
    rng = as_generator(seed)
    # 64 bits more than p has: the leftover bias of the modulo is below 2**-64
    n_bytes = (p.bit_length() + 64 + 7) // 8
    return int.from_bytes(rng.bytes(n_bytes), "big") % p


def split(secret, n, threshold, seed=None, prime=PRIME):
    """Split ``secret`` into ``n`` shares, any ``threshold`` of which recover it.

    Parameters
    ----------
    secret : int
        In ``[0, prime)``.
    n : int
        Number of shares, one per party; party ``i`` (1 to ``n``) gets ``(i, f(i))``.
    threshold : int
        From 1 to ``n``. ``threshold = 1`` makes every share the secret itself.
    seed : int, numpy.random.Generator or None
        Source of the polynomial's random coefficients; the OS's randomness when None.
    prime : int, default=PRIME

    Returns
    -------
    list of (int, int)

    Raises
    ------
    ValueError
        For a secret outside the field, or a threshold outside ``[1, n]``.

    Examples
    --------
    >>> shares = split(42, n=5, threshold=3)
    >>> combine(shares[:3]), combine(shares[2:])
    (42, 42)
    """
    if not 0 <= secret < prime:
        raise InvalidParameterError(f"the secret must be an integer in [0, prime), got {secret!r}")
    if not 1 <= threshold <= n:
        raise InvalidParameterError(f"threshold must be from 1 to the number of shares n={n}, got {threshold!r}")
    rng = None if seed is None else as_generator(seed)  # one generator for every coefficient
    coefficients = [secret] + [random_below(prime, rng) for _ in range(threshold - 1)]
    return [(x, evaluate(coefficients, x, prime)) for x in range(1, n + 1)]


def evaluate(coefficients, x, prime=PRIME):
    """The polynomial ``sum_k coefficients[k] * x**k`` at ``x``, mod ``prime`` (Horner's rule)."""
    y = 0
    for c in reversed(coefficients):
        y = (y * x + c) % prime
    return y


def combine(shares, prime=PRIME):
    """The secret from shares ``[(x, y), ...]``: Lagrange interpolation at ``x = 0``.

    ``f(0) = sum_j y_j prod_{m != j} x_m / (x_m - x_j)``, division being multiplication by the
    inverse mod ``prime``. Given fewer shares than the threshold, this returns the constant term
    of another polynomial: a wrong secret, with no error (nothing in the shares can tell).

    Raises
    ------
    ValueError
        For no shares, an x of 0 (the secret's own point) or two shares with the same x.

    Examples
    --------
    >>> combine([(1, 5), (2, 7)], prime=11)  # the line through them meets x = 0 at 3
    3
    """
    if not shares:
        raise InvalidParameterError("combine needs at least one share")
    xs = [x % prime for x, _ in shares]
    if 0 in xs or len(set(xs)) != len(xs):
        raise InvalidParameterError(f"shares need distinct, nonzero x coordinates, got {sorted(xs)}")
    secret = 0
    for j, (x_j, y_j) in enumerate(shares):
        numerator, denominator = 1, 1
        for m, (x_m, _) in enumerate(shares):
            if m != j:
                numerator = numerator * x_m % prime
                denominator = denominator * (x_m - x_j) % prime
        secret = (secret + y_j * numerator * pow(denominator, -1, prime)) % prime
    return secret
