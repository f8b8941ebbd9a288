"""Memorisation and extraction of a secret in the training data (Carlini et al. 2019, "The Secret Sharer").

A *canary* is a sentence with a random secret, put ``k`` times into the training set::

    <doc> the code word is 3 1 4 1 5 .

The candidates are every sentence of that format: all 10^5 secrets of five digits. A candidate's score
is the model's log-probability of its digits after the prefix (the closing ``.`` is not scored). The
*exposure* of the canary is how far up that list of candidates the model puts the true secret::

    exposure = log2(number of candidates) - log2(rank)        in bits

with ``rank = 1 +`` the number of candidates strictly more likely than the canary. The most likely of
all 10^5 has the maximum exposure, log2(10^5) = 16.6 bits, and beam search then extracts it from the
prefix alone; a secret the model never saw ranks somewhere in the middle (about 1 bit).

Exposure here is exact: the digit tree is scored level by level with the chain rule, one batched
forward pass per level over every prefix of that length (1 + 10 + ... + 10^4 sequences, not 10^5).

Measured on 2 CPU cores (seed 0; 512 dialogues and the canaries, 15 epochs), exposure in bits of the
canary inserted 0 (the control), 1, 4, 16 and 64 times:

=====================================  ====  ====  ====  ====  ====  ========
training                               0     1     4     16    64    time
=====================================  ====  ====  ====  ====  ====  ========
Adam (:func:`train_canary_model`)      1.7   5.4   15.0  15.6  16.6  18 s
DP-SGD, clipping only (epsilon inf)    1.8   4.6   12.2  15.6  16.6  27 s
DP-SGD, epsilon 50 (sigma 0.50)        0.2   0.4   0.9   2.2   16.6  21 s
DP-SGD, epsilon 8 (sigma 1.12)         0.2   0.3   1.4   2.1   9.5   20 s
DP-SGD, epsilon 1 (sigma 5.24)         0.4   0.1   1.2   1.9   7.3   24 s
=====================================  ====  ====  ====  ====  ====  ========

Without noise, beam search (width 16) extracts the 64 times canary, with the 16 times one second; the
canaries share the prefix, so the 16 and 4 times ones rank behind it (15.6 bits is rank 2). With
noise (delta 1e-5) the canaries inserted up to 16 times fall to chance; at epsilon 50 the 64 times
one is still extracted, at 8 and 1 it is not, but keeps 7 to 10 bits: DP's guarantee is for one
example, and 64 copies of one are a group (epsilon grows with the group's size); its digits also make
up most of the digits the model sees after the prefix. The exposure of all five canaries takes about
1 s (one scoring of the 10^5 candidates).
"""
import dataclasses
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from ..cache import Fitted, cached_fit, fingerprint
from ..errors import InvalidParameterError, ParameterTypeError
from ..models import EpochBar, in_notebook
from ..privacy import accounting, dp_sgd
from ..validation import as_generator, check_int, check_real
from . import corpus
from .model import next_token_targets, train_language_model, transformer

PREFIX = "<doc> the code word is"  # words of the course's vocabulary only: the vocabulary stays fixed
DIGITS = tuple(str(d) for d in range(10))
SECRET_LENGTH = 5
MAX_LENGTH = 6  # exposure scores all 10^length candidates: 10^5 in about 1 s, 10^6 in 6 s
COUNTS = (0, 1, 4, 16, 64)  # insertions of each canary; the one inserted 0 times is the control

_SCORERS = weakref.WeakKeyDictionary()  # model -> {width: (short copy or None, compiled function)}


# --------------------------------------------------------------------------- canaries
def _check_secret(secret, name="secret", max_length=None):
    if not isinstance(secret, str):
        raise ParameterTypeError(f"{name} must be a str of digits such as '31415', got {type(secret).__name__}")
    if not secret or any(c not in DIGITS for c in secret):
        raise InvalidParameterError(f"{name} must be a non-empty str of the digits 0-9, got {secret!r}")
    if max_length is not None and len(secret) > max_length:
        raise InvalidParameterError(f"{name} has {len(secret)} digits; at most {max_length} (10^{max_length} "
                                    "candidates) can be scored")
    return secret


def _prefix_ids(vocab, prefix):
    if not isinstance(prefix, str):
        raise ParameterTypeError(f"prefix must be a str, got {type(prefix).__name__}")
    ids = vocab.encode(prefix)
    if len(ids) == 0 or vocab.unk_id in ids:
        raise InvalidParameterError(f"prefix must be non-empty words of the vocabulary, got {prefix!r}")
    return ids


def canary_text(secret, prefix=PREFIX):
    """The canary sentence of ``secret``: the prefix, the digits as separate words, and a full stop.

    Examples
    --------
    >>> canary_text("31415")
    '<doc> the code word is 3 1 4 1 5 .'
    """
    secret = _check_secret(secret)
    if not isinstance(prefix, str):
        raise ParameterTypeError(f"prefix must be a str, got {type(prefix).__name__}")
    return f"{prefix} {' '.join(secret)} ."


def make_canaries(n, *, length=SECRET_LENGTH, seed=0):
    """``n`` distinct random secrets of ``length`` digits each (leading zeros allowed).

    Examples
    --------
    >>> make_canaries(3, seed=0) == make_canaries(3, seed=0), len(set(make_canaries(50, length=2, seed=1)))
    (True, 50)
    """
    length = check_int(length, "length", min_value=1, max_value=9)
    n = check_int(n, "n", min_value=0, max_value=10**length)
    drawn = as_generator(seed).choice(10**length, size=n, replace=False)
    return [str(int(v)).zfill(length) for v in drawn]


def insert_canaries(ids, canaries, counts, *, seed=0, prefix=PREFIX):
    """``ids`` with canary ``i`` added as ``counts[i]`` rows of its own, at seeded random positions.

    The rows of ``ids`` keep their order; ``len(ids) + sum(counts)`` rows come back.

    Parameters
    ----------
    ids : int array, shape (n, context)
        A training set (:func:`corpus.training_set`).
    canaries : sequence of str
        Secrets (:func:`make_canaries`).
    counts : sequence of int
        How many times each canary is inserted; 0 leaves it out (a control).
    seed : int, numpy Generator or None
        Seeds the positions.
    prefix : str

    Returns
    -------
    int32 array, shape (n + sum(counts), context)

    Examples
    --------
    >>> base = corpus.training_set(4, seed=0)
    >>> out = insert_canaries(base, ["31415", "27182"], [2, 0], seed=0)
    >>> out.shape, sum(corpus.vocabulary().decode(row).startswith("<doc> the code word is 3 1 4") for row in out)
    ((6, 64), 2)
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InvalidParameterError(f"ids must be a 2-D int array (n, context), got {ids.dtype} {ids.shape}")
    canaries, counts = _check_canaries(canaries, counts)
    vocab = corpus.vocabulary()
    _prefix_ids(vocab, prefix)
    rows = vocab.encode_batch([canary_text(c, prefix) for c in canaries], context=ids.shape[1])
    inserted = np.repeat(rows, counts, axis=0)
    out = np.empty((len(ids) + len(inserted), ids.shape[1]), dtype=np.int32)
    slots = np.zeros(len(out), dtype=bool)
    slots[as_generator(seed).choice(len(out), size=len(inserted), replace=False)] = True
    out[slots], out[~slots] = inserted, ids
    return out


def _check_canaries(canaries, counts):
    if isinstance(canaries, str):
        raise ParameterTypeError("canaries must be a sequence of str, not one str (wrap it in a list)")
    canaries = [_check_secret(c, f"canaries[{i}]") for i, c in enumerate(canaries)]
    counts = [check_int(k, f"counts[{i}]", min_value=0) for i, k in enumerate(counts)]
    if len(canaries) != len(counts):
        raise InvalidParameterError(f"canaries and counts must have the same length, got {len(canaries)} "
                                    f"and {len(counts)}")
    return canaries, counts


# --------------------------------------------------------------------------- exposure
def _check_scores(canary_score, candidate_scores):
    scores = np.asarray(candidate_scores)
    if scores.ndim != 1 or not (np.issubdtype(scores.dtype, np.number) or scores.dtype == bool):
        raise ParameterTypeError(f"candidate_scores must be a 1-D sequence of numbers, got dtype {scores.dtype}, "
                                 f"shape {scores.shape}")
    if scores.size == 0:
        raise InvalidParameterError("candidate_scores is empty: the canary itself is one of the candidates")
    if np.isnan(scores).any():
        raise InvalidParameterError("candidate_scores holds NaN: a score must be a number")
    canary_score = check_real(canary_score, "canary_score", allow_inf=True)
    if not (scores == canary_score).any():
        raise InvalidParameterError(f"canary_score {canary_score!r} is not among candidate_scores: the canary "
                                    "must be one of the candidates")
    return canary_score, scores


def rank_from_scores(canary_score, candidate_scores):
    """The canary's rank among the candidates: 1 + the number of candidates with a strictly higher score.

    Ties count in the canary's favour: candidates with exactly its score (itself included) do not push
    it down.

    Examples
    --------
    >>> rank_from_scores(-2.0, [-1.0, -2.0, -3.0]), rank_from_scores(-2.0, [-2.0, -2.0, -1.0])
    (2, 2)
    """
    canary_score, scores = _check_scores(canary_score, candidate_scores)
    return 1 + int((scores > canary_score).sum())


def exposure_from_scores(canary_score, candidate_scores):
    """Exposure in bits: ``log2(len(candidate_scores)) - log2(rank)``, rank by :func:`rank_from_scores`.

    Parameters
    ----------
    canary_score : float
        The canary's score, higher meaning more likely (a log-probability); must equal one of
        ``candidate_scores``.
    candidate_scores : 1-D sequence of float
        Every candidate's score, the canary's included.

    Returns
    -------
    float
        From 0 (the least likely of all) to ``log2(len(candidate_scores))`` (the most likely; ties count in
        the canary's favour, so a model that scores every candidate alike exposes each one fully).

    Examples
    --------
    >>> exposure_from_scores(-1.0, [-1.0, -3.0, -2.0, -5.0])   # the most likely of 4: log2(4) - log2(1)
    2.0
    >>> exposure_from_scores(-3.0, [-1.0, -3.0, -2.0, -5.0])   # rank 3
    0.415...
    >>> exposure_from_scores(-2.0, [-2.0, -2.0, -1.0, -5.0])   # a tie: rank 1 + 1 = 2
    1.0
    """
    canary_score, scores = _check_scores(canary_score, candidate_scores)
    return math.log2(scores.size) - math.log2(1 + int((scores > canary_score).sum()))


def _architecture(model):
    """``transformer()``'s arguments for ``model``, read from its layers; None for another kind of model."""
    try:
        tokens = model.get_layer("tokens")
        blocks = sum(layer.name.endswith("_attention") and layer.name.startswith("block") for layer in model.layers)
        return dict(vocab_size=tokens.input_dim, dim=tokens.output_dim,
                    heads=model.get_layer("block0_attention").num_heads,
                    mlp=model.get_layer("block0_mlp_in").units, blocks=blocks)
    except (ValueError, AttributeError):
        return None


def _scorer(model, width):
    """``(context, scores)``: ``scores(ids, position)`` is the ``(batch, vocab)`` next-token log-probabilities
    after ``ids[:, :position + 1]``, for ``ids`` of ``context`` columns.

    A :func:`transformer` is copied into one whose context is the ``width`` tokens needed (the same
    weights: the position code has none), because a batch of 10-token prefixes in a 64-token input
    computes 54 positions nobody reads (5x the time). The weights are copied on every call, so a model
    trained further is scored as it is now. Any other model is run as it is.
    """
    entry = _SCORERS.setdefault(model, {}).get(width)
    if entry is None:
        architecture, short = _architecture(model), None
        if architecture is not None and width < model.input_shape[1]:
            short = transformer(architecture.pop("vocab_size"), context=width, **architecture)
        target = weakref.ref(model if short is None else short)  # a strong one would keep the cache entry alive

        @tf.function(input_signature=[tf.TensorSpec([None, target().input_shape[1]], tf.int32),
                                      tf.TensorSpec([], tf.int32)])
        def scores(ids, position):
            return tf.nn.log_softmax(target()(ids, training=False)[:, position])

        entry = _SCORERS[model][width] = (short, scores)
    short, scores = entry
    if short is not None:
        short.set_weights(model.get_weights())
    return (model if short is None else short).input_shape[1], scores


def _next_digit_log_probs(model, vocab, prefixes, width, batch_size):
    """``(len(prefixes), 10)``: log p(digit | prefix) for each row of ``prefixes`` (equal lengths, at most
    ``width``, the longest prefix the caller will score)."""
    width, scores = _scorer(model, width)
    ids = np.full((len(prefixes), width), vocab.pad_id, dtype=np.int32)
    ids[:, :prefixes.shape[1]] = prefixes
    digit_ids = [vocab.id(d) for d in DIGITS]
    position = np.int32(prefixes.shape[1] - 1)
    out = [scores(ids[i:i + batch_size], position).numpy()[:, digit_ids] for i in range(0, len(ids), batch_size)]
    return np.concatenate(out).astype(np.float64)


def _check_model(model, vocab, prefix, length):
    if not isinstance(vocab, corpus.Vocabulary):
        raise ParameterTypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or not isinstance(shape[1], int):
        raise ParameterTypeError(f"model must be a Keras model with a fixed (batch, context) input, got {shape!r}")
    prefix_ids = _prefix_ids(vocab, prefix)
    if len(prefix_ids) + length - 1 > shape[1]:
        raise InvalidParameterError(f"the prefix ({len(prefix_ids)} tokens) and {length} digits do not fit the "
                                    f"model's context ({shape[1]})")
    return prefix_ids


def candidate_log_probs(model, vocab, length=SECRET_LENGTH, *, prefix=PREFIX, batch_size=4096):
    """The score of every candidate secret: ``log p(digits | prefix)`` in nats, for all 10^length of them.

    The chain rule: ``log p(d1..dL | prefix) = sum_i log p(d_i | prefix, d1..d_{i-1})``. Level ``i`` is one
    batched forward pass over all 10^i digit prefixes of length ``i``, which gives the next digit's
    distribution for each; so 1 + 10 + ... + 10^(L-1) sequences are run, not 10^L. The probabilities
    are over the whole vocabulary (not renormalised over the digits), as in :func:`sequence_log_prob`.

    Parameters
    ----------
    model : keras.Model
        A :func:`transformer`.
    vocab : Vocabulary
    length : int, default=5
        Digits per secret, at most :data:`MAX_LENGTH`.
    prefix : str
    batch_size : int, default=4096

    Returns
    -------
    ndarray of float64, shape (10**length,)
        Entry ``i`` is the score of the secret ``str(i).zfill(length)``.
    """
    length = check_int(length, "length", min_value=1, max_value=MAX_LENGTH)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    prefix_ids = _check_model(model, vocab, prefix, length)
    digit_ids = np.array([vocab.id(d) for d in DIGITS], dtype=np.int32)
    prefixes, scores = prefix_ids[None, :].astype(np.int32), np.zeros(1)
    width = len(prefix_ids) + length - 1
    for level in range(length):
        # child j * 10 + d of prefix j: the secrets stay in numeric order
        next_digit = _next_digit_log_probs(model, vocab, prefixes, width, batch_size)
        scores = (scores[:, None] + next_digit).reshape(-1)
        if level + 1 < length:
            prefixes = np.concatenate([np.repeat(prefixes, 10, axis=0),
                                       np.tile(digit_ids, len(prefixes))[:, None]], axis=1)
    return scores


def exposure(model, vocab, canary, *, prefix=PREFIX, batch_size=4096):
    """The exact exposure of ``canary`` in bits, its rank among all 10^len(canary) candidate secrets.

    :func:`candidate_log_probs` scores every candidate once; :func:`exposure_from_scores` ranks the canary.
    Several canaries of one length share that one scoring: about 1 s for 10^5 candidates on 2 CPU cores
    (0.8 to 1.1 s measured).

    Parameters
    ----------
    model : keras.Model
    vocab : Vocabulary
    canary : str or sequence of str
        The secret (``"31415"``), or several secrets of one length.
    prefix : str
    batch_size : int, default=4096

    Returns
    -------
    float, or ndarray of float for a sequence of canaries

    Examples
    --------
    >>> untrained = transformer(len(corpus.vocabulary()))
    >>> 0 <= exposure(untrained, corpus.vocabulary(), "314") <= math.log2(1000)
    True
    """
    one = isinstance(canary, str)
    if not one and not isinstance(canary, (list, tuple)):
        raise ParameterTypeError(f"canary must be a str of digits or a list of them, got {type(canary).__name__}")
    secrets = [canary] if one else list(canary)
    if not secrets:
        raise InvalidParameterError("canary is empty: give a secret such as '31415'")
    secrets = [_check_secret(s, "canary", MAX_LENGTH) for s in secrets]
    if len({len(s) for s in secrets}) > 1:
        raise InvalidParameterError(f"canaries must all have one length, got {secrets}")
    scores = candidate_log_probs(model, vocab, len(secrets[0]), prefix=prefix, batch_size=batch_size)
    bits = np.array([exposure_from_scores(scores[int(s)], scores) for s in secrets])
    return float(bits[0]) if one else bits


# --------------------------------------------------------------------------- extraction
@dataclasses.dataclass(frozen=True)
class ExtractedSecrets:
    """What beam search found after the prefix: ``secrets``, most likely first, and their ``log_probs``."""

    secrets: tuple
    log_probs: np.ndarray

    @property
    def best(self):
        """The most likely secret the beam holds: the extraction's guess."""
        return self.secrets[0]

    def rank(self, secret):
        """``secret``'s place in the beam (1 is the best guess), or None if the beam lost it."""
        secret = _check_secret(secret)
        return self.secrets.index(secret) + 1 if secret in self.secrets else None

    def to_frame(self):
        """A row per secret in the beam, best first: its rank and ``log p(secret | prefix)``."""
        import pandas as pd

        return pd.DataFrame({"secret": list(self.secrets), "log_prob": np.asarray(self.log_probs, dtype=float)},
                            index=pd.RangeIndex(1, len(self.secrets) + 1, name="rank"))


def extract(model, vocab, *, length=SECRET_LENGTH, prefix=PREFIX, beam_width=16, batch_size=4096):
    """Beam search for the most likely secrets of ``length`` digits after ``prefix``: the attacker's guess.

    Each step extends every secret in the beam by each of the 10 digits (one batched forward pass) and
    keeps the ``beam_width`` with the highest ``log p(digits | prefix)``. Width 1 is greedy decoding; a
    width of 10^(length-1) or more is exhaustive, so the beam is then the exact top of
    :func:`candidate_log_probs`.

    Parameters
    ----------
    model : keras.Model
    vocab : Vocabulary
    length : int, default=5
    prefix : str
        What the attacker knows: the format, not the secret.
    beam_width : int, default=16
    batch_size : int, default=4096

    Returns
    -------
    ExtractedSecrets
        Up to ``beam_width`` secrets, the most likely first (``.best``); ``.rank(secret)`` says whether
        and where the true one is among them.
    """
    length = check_int(length, "length", min_value=1, max_value=16)
    beam_width = check_int(beam_width, "beam_width", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    prefix_ids = _check_model(model, vocab, prefix, length)
    digit_ids = np.array([vocab.id(d) for d in DIGITS], dtype=np.int32)
    secrets, scores = [""], np.zeros(1)
    for _ in range(length):
        prefixes = np.array([np.concatenate([prefix_ids, digit_ids[[int(c) for c in s]]]) for s in secrets],
                            dtype=np.int32)
        next_digit = _next_digit_log_probs(model, vocab, prefixes, len(prefix_ids) + length - 1, batch_size)
        extended = (scores[:, None] + next_digit).reshape(-1)
        keep = np.argsort(-extended, kind="stable")[:beam_width]
        secrets, scores = [secrets[k // 10] + DIGITS[k % 10] for k in keep], extended[keep]
    return ExtractedSecrets(tuple(secrets), scores)


# --------------------------------------------------------------------------- training with canaries
@dataclasses.dataclass(frozen=True)
class CanaryRun:
    """A model trained on canaries: ``fitted`` (a :class:`~mlsec_lessons.cache.Fitted`) and ``canaries``,
    insertion count -> secret (count 0: the control, never in the training set)."""

    fitted: Fitted
    canaries: dict

    @property
    def model(self):
        return self.fitted.model


def _check_counts(counts):
    if isinstance(counts, (str, bytes)) or not hasattr(counts, "__iter__"):
        raise ParameterTypeError(f"counts must be a sequence of ints, got {type(counts).__name__}")
    counts = tuple(check_int(k, f"counts[{i}]", min_value=0) for i, k in enumerate(counts))
    if not counts or len(set(counts)) != len(counts):
        raise InvalidParameterError(f"counts must be distinct insertion counts (one canary each), got {counts}")
    return counts


def canary_training_set(n_dialogues=512, counts=COUNTS, *, seed=0):
    """The fixed training set :func:`corpus.training_set` (seed 0) with one new canary per count inserted.

    ``seed`` draws the secrets and their positions; the dialogues stay the same.

    Returns
    -------
    ids : int32 array, shape (n_dialogues + sum(counts), context)
    canaries : dict
        Insertion count -> secret.

    Examples
    --------
    >>> ids, canaries = canary_training_set(16, (0, 3), seed=0)
    >>> ids.shape, sorted(canaries)
    ((19, 64), [0, 3])
    """
    n_dialogues = check_int(n_dialogues, "n_dialogues", min_value=1)
    counts = _check_counts(counts)
    seed = check_int(seed, "seed", min_value=0)
    secrets = make_canaries(len(counts), seed=np.random.default_rng([seed, 0]))
    ids = insert_canaries(corpus.training_set(n_dialogues, seed=0), secrets, counts,
                          seed=np.random.default_rng([seed, 1]))
    return ids, dict(zip(counts, secrets))


def train_canary_model(*, n_dialogues=512, counts=COUNTS, epochs=15, batch_size=32, learning_rate=3e-3,
                       jit_compile=True, seed=0, cache=True, progress=None, **architecture):
    """A language model trained (Adam, non-private) on :func:`canary_training_set`, every token a target.

    ``loss_on="all"``: the canary is text like any other, so the model learns it wherever it sits.

    Parameters
    ----------
    n_dialogues : int, default=512
    counts : sequence of int, default=(0, 1, 4, 16, 64)
    epochs, batch_size : int
    learning_rate : float, default=3e-3
    jit_compile : bool, default=True
        As in :func:`train_language_model`.
    seed : int
        Seeds the canaries, their positions and the training.
    cache : bool, default=True
    progress : bool or None
    **architecture
        ``dim``, ``heads``, ``mlp``, ``blocks`` for :func:`transformer`.

    Returns
    -------
    CanaryRun
    """
    ids, canaries = canary_training_set(n_dialogues, counts, seed=seed)
    fitted = train_language_model(ids, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                  loss_on="all", jit_compile=jit_compile, seed=seed, cache=cache, progress=progress,
                                  name="canaries", **architecture)
    return CanaryRun(fitted, canaries)


def train_private_canary_model(target_epsilon, *, n_dialogues=512, counts=COUNTS, epochs=15, batch_size=64,
                               l2_norm_clip=1.0, learning_rate=3e-3, delta=1e-5, seed=0, cache=True, progress=None,
                               **architecture):
    """The canary model trained with DP-SGD at (about) ``target_epsilon``: exposure under a privacy guarantee.

    The course's DP-SGD (:mod:`mlsec_lessons.privacy.dp_sgd`): Poisson batches, each example's gradient
    clipped to ``l2_norm_clip``, Gaussian noise on the sum, Adam on the result (post-processing, no
    privacy cost). An example is one row, its loss the mean next-token loss over its real tokens, so
    padding never counts. The noise multiplier is the accountant's (RDP) for ``target_epsilon``; with
    ``math.inf``, no noise: clipping only, the non-private peer trained the same way.

    Parameters
    ----------
    target_epsilon : float
        Positive, or ``math.inf``.
    n_dialogues : int, default=512
    counts : sequence of int, default=(0, 1, 4, 16, 64)
    epochs, batch_size : int
        ``batch_size`` is the expected Poisson batch size.
    l2_norm_clip : float, default=1.0
    learning_rate : float, default=3e-3
    delta : float, default=1e-5
    seed : int
        Seeds the canaries, the initial weights, the batches and the noise.
    cache : bool, default=True
    progress : bool or None
    **architecture
        ``dim``, ``heads``, ``mlp``, ``blocks`` for :func:`transformer`.

    Returns
    -------
    CanaryRun
        ``.fitted.privacy`` is the :class:`~mlsec_lessons.cache.PrivacySpend`: the epsilon spent, from the
        accountant.
    """
    target_epsilon = check_real(target_epsilon, "target_epsilon", min_value=0, include_boundaries="neither",
                                allow_inf=True)
    epochs, batch_size = check_int(epochs, "epochs", min_value=1), check_int(batch_size, "batch_size", min_value=1)
    l2_norm_clip = check_real(l2_norm_clip, "l2_norm_clip", min_value=0, include_boundaries="neither")
    learning_rate = check_real(learning_rate, "learning_rate", min_value=0, include_boundaries="neither")
    delta = check_real(delta, "delta", min_value=0, max_value=1, include_boundaries="neither")
    unknown = sorted(set(architecture) - {"dim", "heads", "mlp", "blocks"})
    if unknown:
        raise ParameterTypeError(f"unknown arguments {unknown}: the architecture takes dim, heads, mlp and blocks")
    ids, canaries = canary_training_set(n_dialogues, counts, seed=seed)
    vocab = corpus.vocabulary()
    x, y, mask = next_token_targets(ids, vocab.pad_id)
    if batch_size > len(x):
        raise InvalidParameterError(f"batch_size={batch_size} is larger than the {len(x)} training rows")
    sample_rate, steps = dp_sgd.schedule(len(x), batch_size, epochs)
    noise = 0.0 if math.isinf(target_epsilon) else accounting.noise_multiplier_for(target_epsilon, sample_rate,
                                                                                   steps, delta)
    spend = dp_sgd.privacy_spend(noise, sample_rate, steps, delta, l2_norm_clip)
    config = dict(architecture=architecture, vocab=fingerprint(np.array(vocab.words)), data=fingerprint(x),
                  epochs=epochs, batch_size=batch_size, l2_norm_clip=l2_norm_clip, noise_multiplier=noise,
                  learning_rate=learning_rate, delta=delta)

    def build():
        return transformer(len(vocab), context=x.shape[1], **architecture)

    def fit(model):
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)  # before the compiled step, which must not create variables
        step, noise_step = dp_sgd.make_dp_step(model, loss_fn, optimizer, l2_norm_clip, noise, sample_rate * len(x))
        per_epoch = max(1, steps // epochs)
        show = in_notebook() if progress is None else progress
        bar = EpochBar(epochs, f"DP-SGD on canaries, epsilon {spend.epsilon:.3g}") if show else None

        def on_step(t, loss):
            if bar is not None and (t + 1) % per_epoch == 0:
                bar.on_epoch_end(t // per_epoch, {"loss": loss if loss is not None else float("nan")})

        dp_sgd.run_dp_sgd(step, noise_step, x, y, sample_rate=sample_rate, steps=steps, seed=seed, on_step=on_step,
                          sample_weight=mask / np.maximum(mask.sum(axis=1, keepdims=True), 1))
        if bar is not None:
            bar.on_train_end()

    fitted = cached_fit("llm-canaries-dpsgd", config, build, fit, seed=seed, cache=cache, privacy=spend)
    return CanaryRun(fitted, canaries)


def canary_exposures(run, vocab=None, *, prefix=PREFIX):
    """Exposure in bits of each canary of ``run`` (a :class:`CanaryRun`): insertion count -> bits."""
    if not isinstance(run, CanaryRun):
        raise ParameterTypeError(f"run must be a CanaryRun, got {type(run).__name__}")
    counts = sorted(run.canaries)
    bits = exposure(run.model, corpus.vocabulary() if vocab is None else vocab, [run.canaries[k] for k in counts],
                    prefix=prefix)
    return dict(zip(counts, (float(b) for b in bits)))
