"""Secure aggregation by pairwise masking, from scratch (Bonawitz et al., CCS 2017).

The server wants ``sum_u x_u`` over the clients and must never see one ``x_u``. Each pair of
clients ``u < v`` agrees on a secret seed ``s_uv`` (X25519 Diffie-Hellman, then HKDF) without
the server learning it, and each client sends

    y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)   (mod R).

In the sum over all clients every ``PRG(s_uv)`` appears once with ``+`` and once with ``-``:
the pairwise masks cancel. Alone, ``y_u`` is uniform on ``Z_R`` whatever ``x_u`` is (a one-time
pad). Two things remain:

* **Dropouts.** A client that drops out after the others masked leaves its pairwise masks in
  their vectors. So, before masking, every client splits its X25519 secret key among the others
  with Shamir's scheme (threshold ``t``); the server asks ``t`` survivors for the shares of the
  dropped client's key and recomputes those masks itself.
* **The self mask** ``PRG(b_u)``. Without it, a client whose vector only arrives late (after the
  server was given its key) would be unmasked. Its seed ``b_u`` is Shamir-shared too, and the
  server asks for the shares of ``b_u`` for the survivors only. An honest client never reveals
  both secrets of the same client: either one alone leaves ``y_u`` masked.

This is what Flower's SecAgg+ (``flwr.server.workflow.SecAggPlusWorkflow``) runs, with two
differences: SecAgg+ masks each client only with ``k`` neighbours on a ring instead of all
``n - 1`` others (``O(n log n)`` work instead of ``O(n^2)``), and its PRG
(``flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen``) folds the seed into 32
bits for numpy's Mersenne Twister, which is fast but neither cryptographic nor more than
``2**32`` seeds wide. Here the PRG is the ChaCha20 keystream.

Left out, as in a first reading of the paper: the authenticated encryption of the shares
between clients (here they are handed over directly), signatures against an active server
(the paper's "malicious" variant) and the consistency-check round.

Vectors live in ``Z_R`` (``R = MODULUS = 2**32``). Floats are quantised into ``Z_R`` first
(``quantize``); ``n`` quantised vectors of ``levels + 1`` values each sum without wrapping around
as long as ``n * levels < R``.

Reproducibility: every function that draws randomness takes ``seed``, an int or a numpy Generator,
and uses the operating system's randomness when it is None. A seed makes a lesson
reproducible and every key predictable: use it for teaching, never for real secrets.

Examples
--------
>>> vectors = [[1, 2, 3], [10, 20, 30], [100, 200, 300], [1000, 2000, 3000]]
>>> result = simulate_round(vectors, threshold=2, dropouts=[3], seed=0)
>>> result.total, result.survivors
(array([111, 222, 333]), [0, 1, 2])
"""
import dataclasses
import os

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from mlsec_lessons.federated import shamir

from ..errors import InvalidParameterError
from ..validation import as_generator, check_int, check_real

MODULUS = 2**32
SEED_BYTES = 32  # a ChaCha20 key, an X25519 key, a self-mask seed: all 32 bytes


def random_bytes(n, seed=None):
    """``n`` random bytes: from the OS (``seed=None``), or from ``seed`` for a reproducible lesson."""
    return os.urandom(n) if seed is None else as_generator(seed).bytes(n)


def _generator_or_os(seed):
    """One Generator for a function that draws several times (None stays None: the OS's randomness)."""
    return None if seed is None else as_generator(seed)


# --------------------------------------------------------------------------- key agreement
def generate_keypair(seed=None):
    """An X25519 key pair, both keys as 32 raw bytes: ``(secret_key, public_key)``.

    Examples
    --------
    >>> secret_key, public_key = generate_keypair(np.random.default_rng(0))
    >>> len(secret_key), len(public_key)
    (32, 32)
    """
    key = X25519PrivateKey.from_private_bytes(random_bytes(SEED_BYTES, seed))
    return (key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def agree(secret_key, peer_public_key):
    """The 32-byte seed two clients share: X25519 Diffie-Hellman, then HKDF-SHA256.

    ``agree(sk_u, pk_v) == agree(sk_v, pk_u)``: each side computes it from its own secret key and
    the other's public key, and the server, which sees only public keys, cannot. The raw
    Diffie-Hellman output is a curve point, not uniform bytes; HKDF turns it into a key.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> (sk_u, pk_u), (sk_v, pk_v) = generate_keypair(rng), generate_keypair(rng)
    >>> agree(sk_u, pk_v) == agree(sk_v, pk_u)
    True
    """
    shared = X25519PrivateKey.from_private_bytes(secret_key).exchange(
        X25519PublicKey.from_public_bytes(peer_public_key))
    return HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None,
                info=b"mlsec-lessons pairwise mask").derive(shared)


# --------------------------------------------------------------------------- the PRG
def prg(seed, shape, modulus=MODULUS):
    """Expand a 32-byte ``seed`` into an integer array of ``shape``, uniform on ``Z_modulus``.

    The ChaCha20 keystream under key ``seed`` (nonce 0: each seed masks one vector only) is read
    as little-endian 64-bit words, each taken mod ``modulus``. For a power of two the result is
    exactly uniform; otherwise the bias is below ``modulus / 2**64 <= 2**-32``.

    Raises
    ------
    ValueError
        For a seed that is not 32 bytes, or a modulus outside ``[2, 2**32]``.

    Examples
    --------
    >>> mask = prg(bytes(32), (2, 3))
    >>> mask.shape, mask.dtype, bool(np.all(mask < MODULUS))
    ((2, 3), dtype('int64'), True)
    >>> np.array_equal(mask, prg(bytes(32), (2, 3)))  # the same seed, the same mask
    True
    """
    if len(seed) != SEED_BYTES:
        raise InvalidParameterError(f"the PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
    check_modulus(modulus)
    size = int(np.prod(shape, dtype=np.int64))
    keystream = Cipher(algorithms.ChaCha20(bytes(seed), bytes(16)), mode=None).encryptor().update(bytes(8 * size))
    words = np.frombuffer(keystream, dtype="<u8") % np.uint64(modulus)
    return words.astype(np.int64).reshape(shape)


def check_modulus(modulus):
    # below 2**32, sums of two elements and their differences stay exact in int64
    return check_int(modulus, "modulus", min_value=2, max_value=2**32)


# --------------------------------------------------------------------------- Shamir on 32-byte secrets
def share_secret(secret, n, threshold, seed=None):
    """Split a 32-byte secret into ``n`` Shamir shares ``(x, y)``; any ``threshold`` recover it.

    Share ``i`` (0-based) is for client ``i``: its point is ``x = i + 1``. The field is
    ``shamir.PRIME = 2**521 - 1``, so the whole secret is one field element.

    Examples
    --------
    >>> shares = share_secret(bytes(range(32)), n=5, threshold=3, seed=0)
    >>> recover_secret(shares[2:]) == bytes(range(32))
    True
    """
    if len(secret) != SEED_BYTES:
        raise InvalidParameterError(f"the secret must be {SEED_BYTES} bytes, got {len(secret)}")
    return shamir.split(int.from_bytes(secret, "big"), n, threshold, seed)


def recover_secret(shares):
    """The 32-byte secret from at least ``threshold`` of its shares.

    Raises
    ------
    ValueError
        When the shares do not combine to a 32-byte number: fewer shares than the threshold (or
        tampered ones) give a random field element, which is below ``2**256`` only with
        probability ``2**-265``.
    """
    value = shamir.combine(shares)
    if value >= 2 ** (8 * SEED_BYTES):
        raise InvalidParameterError(f"the {len(shares)} shares do not combine to a {SEED_BYTES}-byte secret: "
                         "fewer than the threshold, or not shares of one secret")
    return value.to_bytes(SEED_BYTES, "big")


# --------------------------------------------------------------------------- quantisation
def quantize(x, clip, levels, *, stochastic=False, seed=None):
    """Map floats to integers in ``{0, ..., levels}``: ``[-clip, clip]`` onto ``[0, levels]``.

    ``q = round((clip(x, -clip, clip) + clip) * levels / (2 clip))``. Values outside
    ``[-clip, clip]`` are clipped first. Rounding is to the nearest integer by default:
    ``dequantize`` is then off by at most half a step, ``clip / levels``, per coordinate. With
    ``stochastic=True`` (randomness from ``seed``) it goes up with probability equal to the fractional part: unbiased, off by
    less than one step, ``2 clip / levels``. An average of quantised vectors is within the same
    bound of the true average (of the clipped values).

    This is Flower's ``flwr.common.secure_aggregation.quantization.quantize`` with
    ``clipping_range=clip`` and ``target_range=levels``: given a Generator on the same Mersenne
    Twister stream as numpy's global generator it returns the same integers.

    Raises
    ------
    ValueError
        For a ``clip`` that is not positive or ``levels`` that is not a positive integer.

    Examples
    --------
    >>> quantize([-1.0, 0.0, 0.3, 1.0, 5.0], clip=1.0, levels=10)
    array([ 0,  5,  6, 10, 10])
    """
    clip = check_real(clip, "clip", min_value=0, include_boundaries="neither")
    levels = check_int(levels, "levels", min_value=1)
    y = (np.clip(np.asarray(x, dtype=float), -clip, clip) + clip) * (levels / (2 * clip))
    if not stochastic:
        return np.rint(y).astype(np.int64)
    up = np.ceil(y)
    # step down with probability ceil(y) - y: the expected value is y itself
    return (up - (as_generator(seed).random(np.shape(y)) < up - y)).astype(np.int64)


def dequantize(q, clip, levels, n_summed=1):
    """Floats back from ``quantize``'s integers, or from the sum of ``n_summed`` of them.

    Each quantised value carries an offset of ``clip``; a sum of ``n_summed`` carries
    ``n_summed * clip``.

    Examples
    --------
    >>> dequantize(quantize([0.25, -0.5], 1.0, 1000), 1.0, 1000)
    array([ 0.25, -0.5 ])
    """
    return np.asarray(q, dtype=float) * (2 * clip / levels) - n_summed * clip


# --------------------------------------------------------------------------- the protocol
@dataclasses.dataclass
class Client:
    """One client: its input, its two secrets, and the shares of the others' secrets it holds."""

    index: int
    vector: np.ndarray
    secret_key: bytes
    public_key: bytes
    self_seed: bytes
    held_shares: dict = dataclasses.field(default_factory=dict)  # peer -> (share of b_peer, share of sk_peer)


@dataclasses.dataclass(frozen=True)
class ServerView:
    """Everything the server received in a round: lesson 06 shows that no ``x_u`` is in it."""

    public_keys: dict       # client -> X25519 public key
    masked_vectors: dict    # survivor -> y_u, uniform on Z_R whatever x_u is
    self_seeds: dict        # survivor -> b_u, rebuilt from shares: removes PRG(b_u) from the sum only
    secret_keys: dict       # dropped client -> its secret key, rebuilt: its y_v never arrived
    responders: list        # the survivors that sent shares in the unmasking round


@dataclasses.dataclass(frozen=True)
class RoundResult:
    """``total``: the sum mod ``modulus`` of the survivors' inputs, and how it came about."""

    total: np.ndarray
    survivors: list
    dropped: list
    server_view: ServerView

    def to_frame(self):
        """A row per client: whether it survived, and what the server ended up holding for it."""
        import pandas as pd

        view = self.server_view
        rows = [{"client": c, "survived": c in self.survivors,
                 "masked vector y_u": c in view.masked_vectors, "self-mask seed b_u": c in view.self_seeds,
                 "secret key": c in view.secret_keys, "sent shares": c in view.responders}
                for c in sorted(set(self.survivors) | set(self.dropped))]
        return pd.DataFrame(rows).set_index("client")


def advertise_keys(vectors, seed=None):
    """Round 0: each client makes its X25519 key pair and its self-mask seed ``b_u``."""
    rng = _generator_or_os(seed)
    clients = []
    for index, vector in enumerate(vectors):
        secret_key, public_key = generate_keypair(rng)
        clients.append(Client(index, vector, secret_key, public_key, random_bytes(SEED_BYTES, rng)))
    return clients


def share_keys(clients, threshold, seed=None):
    """Round 1: each client splits ``b_u`` and its secret key into shares, one for every client."""
    rng = _generator_or_os(seed)
    n = len(clients)
    for dealer in clients:
        b_shares = share_secret(dealer.self_seed, n, threshold, rng)
        key_shares = share_secret(dealer.secret_key, n, threshold, rng)
        for holder, b_share, key_share in zip(clients, b_shares, key_shares):
            holder.held_shares[dealer.index] = (b_share, key_share)


def pairwise_mask(index, secret_key, peer_public_keys, shape, modulus=MODULUS):
    """``sum_{v > index} PRG(s_uv) - sum_{v < index} PRG(s_uv)`` over ``peer_public_keys``
    (``{v: public key}``; ``v == index`` is skipped): client ``index``'s pairwise masks."""
    mask = np.zeros(shape, dtype=np.int64)
    for v, public_key in peer_public_keys.items():
        if v == index:
            continue
        term = prg(agree(secret_key, public_key), shape, modulus)
        # the lower index adds, the higher subtracts: in the sum the pair cancels
        mask = (mask + term) % modulus if index < v else (mask - term) % modulus
    return mask


def mask(client, public_keys, modulus=MODULUS):
    """Round 2: ``y_u = x_u + PRG(b_u) + client u's pairwise masks (mod modulus)``."""
    shape = np.shape(client.vector)
    y = (np.asarray(client.vector, dtype=np.int64) + prg(client.self_seed, shape, modulus)) % modulus
    return (y + pairwise_mask(client.index, client.secret_key, public_keys, shape, modulus)) % modulus


def reveal(client, survivors, dropped):
    """Round 3, on a client: its shares of ``b_u`` for the survivors, of the secret key for the
    dropped clients.

    Raises
    ------
    ValueError
        If a client is in both lists: with both of its secrets the server could unmask its input.
    """
    both = sorted(set(survivors) & set(dropped))
    if both:
        raise InvalidParameterError(f"client {client.index} refuses: asked for both secrets of clients {both}, "
                         "which together unmask their inputs")
    return ({u: client.held_shares[u][0] for u in survivors},
            {v: client.held_shares[v][1] for v in dropped})


def unmask(masked_vectors, responses, public_keys, modulus=MODULUS):
    """Round 3, on the server: the sum of the survivors' inputs from their masked vectors.

    ``sum_u y_u`` over the survivors still holds each survivor's ``PRG(b_u)`` and the pairwise
    masks between a survivor and a dropped client (those between two survivors cancelled). Both
    are rebuilt from the shares in ``responses`` (``{responder: reveal(...)}``) and removed.

    Returns
    -------
    total, self_seeds, secret_keys
    """
    survivors = sorted(masked_vectors)
    dropped = sorted(set(public_keys) - set(masked_vectors))
    shape = np.shape(masked_vectors[survivors[0]])
    total = sum(masked_vectors.values()) % modulus
    self_seeds = {u: recover_secret([r[0][u] for r in responses.values()]) for u in survivors}
    secret_keys = {v: recover_secret([r[1][v] for r in responses.values()]) for v in dropped}
    for u in survivors:
        total = (total - prg(self_seeds[u], shape, modulus)) % modulus
    survivor_keys = {u: public_keys[u] for u in survivors}
    for v in dropped:
        # the survivors' vectors hold minus what v's own pairwise masks towards them would be
        total = (total + pairwise_mask(v, secret_keys[v], survivor_keys, shape, modulus)) % modulus
    return total, self_seeds, secret_keys


def simulate_round(vectors, threshold, dropouts=(), late_dropouts=(), modulus=MODULUS, seed=None):
    """One round of secure aggregation among ``len(vectors)`` clients, with dropouts.

    Parameters
    ----------
    vectors : sequence of integer arrays, all of one shape, values in ``[0, modulus)``
        Client ``i``'s input is ``vectors[i]``; quantise floats first (``quantize``).
    threshold : int
        Shamir threshold ``t``, from 2 to the number of clients: at least ``t`` clients must
        answer the unmasking round, and any ``t`` colluding clients could unmask an input.
    dropouts : sequence of int, default=()
        Clients that masked their input but whose masked vector never reaches the server.
    late_dropouts : sequence of int, default=()
        Clients whose masked vector arrives but that do not answer the unmasking round; their
        input is still in the sum (their ``b_u`` is rebuilt from the others' shares).
    modulus : int, default=MODULUS
    seed : int, optional
        Seeds every key, mask seed and Shamir coefficient, for a reproducible lesson; None draws
        them from the OS, as a real deployment must.

    Returns
    -------
    RoundResult
        ``total`` is ``sum(vectors[u] for u in survivors) % modulus``, exactly.

    Raises
    ------
    ValueError
        For vectors of different shapes or with values outside ``[0, modulus)``, a threshold
        outside ``[2, n]``, unknown or repeated dropouts, or fewer than ``threshold`` clients left
        to answer the unmasking round.
    """
    vectors = check_vectors(vectors, modulus)
    n = len(vectors)
    threshold = check_int(threshold, "threshold (at most the number of clients)", min_value=2, max_value=n)
    dropped, late = check_dropouts(dropouts, n, "dropouts"), check_dropouts(late_dropouts, n, "late_dropouts")
    if set(dropped) & set(late):
        raise InvalidParameterError(f"clients {sorted(set(dropped) & set(late))} are in both dropouts and late_dropouts")
    survivors = [u for u in range(n) if u not in dropped]
    responders = [u for u in survivors if u not in late]
    if len(responders) < threshold:
        raise InvalidParameterError(f"only {len(responders)} clients survived to the unmasking round; recovering the sum "
                         f"needs threshold={threshold}")

    rng = _generator_or_os(seed)
    clients = advertise_keys(vectors, rng)
    public_keys = {c.index: c.public_key for c in clients}
    share_keys(clients, threshold, rng)
    masked_vectors = {u: mask(clients[u], public_keys, modulus) for u in survivors}  # the dropped never arrive
    responses = {u: reveal(clients[u], survivors, dropped) for u in responders}
    total, self_seeds, secret_keys = unmask(masked_vectors, responses, public_keys, modulus)
    view = ServerView(public_keys, masked_vectors, self_seeds, secret_keys, responders)
    return RoundResult(total, survivors, dropped, view)


def secure_mean(vectors, threshold, dropouts=(), clip=1.0, levels=2**16, *, stochastic=False, seed=None):
    """The mean of the survivors' float vectors, through quantisation and ``simulate_round``.

    Each coordinate is within ``clip / levels`` of the true mean of the clipped inputs (rounding
    to nearest), or within ``2 clip / levels`` (``stochastic=True`` rounding).

    Returns
    -------
    (mean, RoundResult)

    Raises
    ------
    ValueError
        When ``n * levels`` reaches ``MODULUS``: the sum of the quantised vectors would wrap around.

    Examples
    --------
    >>> mean, _ = secure_mean([[0.1, -0.2], [0.3, 0.4], [0.5, 0.9]], threshold=2, dropouts=[2], seed=0)
    >>> np.round(mean, 4)
    array([0.2, 0.1])
    """
    n = len(vectors)
    if n * levels >= MODULUS:
        raise InvalidParameterError(f"{n} clients times levels={levels} is not below the modulus 2**32: the sum of the "
                         "quantised vectors would wrap around; lower levels")
    rng = _generator_or_os(seed)  # one stream for the rounding and the round's keys
    quantized = [quantize(v, clip, levels, stochastic=stochastic, seed=rng) for v in vectors]
    result = simulate_round(quantized, threshold, dropouts, seed=rng)
    k = len(result.survivors)
    return dequantize(result.total, clip, levels, n_summed=k) / k, result


def check_vectors(vectors, modulus):
    """The clients' vectors as one int64 array ``(n, ...)``, or a ValueError that says what is wrong."""
    check_modulus(modulus)
    arrays = [np.asarray(v) for v in vectors]
    if len(arrays) < 2:
        raise InvalidParameterError(f"secure aggregation needs at least 2 clients, got {len(arrays)}")
    for i, a in enumerate(arrays):
        if a.shape != arrays[0].shape:
            raise InvalidParameterError(f"client {i}'s vector has shape {a.shape}, client 0's {arrays[0].shape}; "
                             "all clients must send vectors of one shape")
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise InvalidParameterError(f"client {i}'s vector has dtype {a.dtype}; masking works on integers in "
                             f"[0, {modulus}): quantize floats first")
        if a.size and (a.min() < 0 or a.max() >= modulus):
            raise InvalidParameterError(f"client {i}'s vector has values in [{a.min()}, {a.max()}], outside "
                             f"[0, {modulus}) = Z_R")
    return np.stack(arrays).astype(np.int64)


def check_dropouts(dropouts, n, name):
    dropouts = [int(u) for u in dropouts]
    if len(set(dropouts)) != len(dropouts) or any(not 0 <= u < n for u in dropouts):
        raise InvalidParameterError(f"{name} must be distinct client indices from 0 to {n - 1}, got {dropouts}")
    return sorted(dropouts)
