"""Text from the transformer: greedy decoding, temperature sampling, best-of-N, and sequence log-probabilities.

Each new token costs one call of a compiled step, the same function for every prompt, length and
batch: the prompt is padded to the model's context and the position to predict is a tensor. A step
reads the logits at position ``p - 1`` (causal attention: the padding after it changes nothing) and
returns the next token and its log-probability, so a Python loop only writes that token at ``p``.
TensorFlow traces the step once per model (:func:`trace_count` tells). It is a plain graph, not XLA:
XLA would compile it again for every new batch size (1.4-1.6 s each on 2 cores), and a lesson decodes
batches of many sizes.
"""
import weakref

import numpy as np
import tensorflow as tf

from ..errors import InvalidParameterError, ParameterTypeError
from ..validation import as_int_seed, check_int, check_real
from .corpus import Vocabulary

STOP = ("<end>",)
_COMPILED = weakref.WeakKeyDictionary()  # model -> {"step": tf.function, "log_probs": tf.function}
_TRACES = {"count": 0}                   # bumped only while TensorFlow traces one of them


def trace_count():
    """How many times the compiled functions of this module were traced, over every model so far.

    A new model traces its step once; generating again, with any prompt length, batch or
    temperature, must not add to it.
    """
    return _TRACES["count"]


def _context(model):
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or not isinstance(shape[1], int):
        raise ParameterTypeError(f"model must be a Keras model with a fixed (batch, context) input, got {shape!r}")
    return shape[1]


def compiled(model):
    """The two compiled functions of ``model``, built on first use and kept while the model lives.

    ``step(ids, positions, temperature, seed)``: ``ids`` int32 ``(batch, context)``, ``positions`` int32
    ``(batch,)`` (where each row's next token goes), a float32 ``temperature`` (0: argmax) and an
    int32 ``(2,)`` stateless seed; returns the next tokens and their log-probabilities under the
    model (at temperature 1, whatever the sampling temperature).

    ``log_probs(ids)``: ``(batch, context - 1)`` log-probability of each token ``ids[:, t + 1]`` given
    the tokens before it.
    """
    if model in _COMPILED:
        return _COMPILED[model]
    context = _context(model)
    batch = tf.TensorSpec([None, context], tf.int32)
    model_ref = weakref.ref(model)  # a strong reference would keep the cache entry alive forever

    @tf.function(input_signature=[batch, tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.float32),
                                  tf.TensorSpec([2], tf.int32)])
    def step(ids, positions, temperature, seed):
        _TRACES["count"] += 1  # Python side effect: runs at trace time only
        logits = tf.gather(model_ref()(ids, training=False), positions - 1, batch_dims=1)  # (batch, vocab)
        token = tf.cond(temperature > 0,
                        lambda: tf.random.stateless_categorical(logits / temperature, 1, seed, dtype=tf.int32)[:, 0],
                        lambda: tf.argmax(logits, axis=-1, output_type=tf.int32))
        return token, tf.gather(tf.nn.log_softmax(logits), token, batch_dims=1)

    @tf.function(input_signature=[batch])
    def log_probs(ids):
        _TRACES["count"] += 1
        logits = model_ref()(ids, training=False)[:, :-1]
        return tf.gather(tf.nn.log_softmax(logits), ids[:, 1:], batch_dims=2)

    _COMPILED[model] = {"step": step, "log_probs": log_probs}
    return _COMPILED[model]


def _check_vocab(vocab):
    if not isinstance(vocab, Vocabulary):
        raise ParameterTypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    return vocab


def _prompt_ids(vocab, prompt, context, name="prompt"):
    if not isinstance(prompt, str):
        raise ParameterTypeError(f"{name} must be a str, got {type(prompt).__name__}")
    ids = vocab.encode(prompt)
    if len(ids) == 0:
        raise InvalidParameterError(f"{name} is empty: give at least one token, e.g. '<sys> ... <user> ... <asst>'")
    if len(ids) >= context:
        raise InvalidParameterError(f"{name} has {len(ids)} tokens; the model's context ({context}) leaves no "
                                    "room for a new token")
    return ids


def _stop_ids(vocab, stop):
    if isinstance(stop, str):
        stop = (stop,)
    if not all(isinstance(token, str) for token in stop):
        raise ParameterTypeError(f"stop must be a token or a sequence of tokens (str), got {stop!r}")
    ids = [vocab.id(token) for token in stop]
    if vocab.unk_id in ids:
        raise InvalidParameterError(f"stop must hold tokens of the vocabulary, got {tuple(stop)!r}")
    return np.array(ids, dtype=np.int32)


def generate_batch(model, vocab, prompts, *, max_new_tokens=32, temperature=0.0, seed=None, stop=STOP):
    """Continue each prompt of ``prompts`` (one batch, one compiled step per new token).

    The engine under :func:`generate`. Many prompts in one batch give more tokens per second than one
    at a time (bench_llm: 2x, for 20 prompts). A row stops after a token of ``stop``, after
    ``max_new_tokens`` tokens, or when its context is full.

    Parameters
    ----------
    model : keras.Model
        A :func:`~mlsec_lessons.llm.model.transformer` (logits for every position).
    vocab : Vocabulary
    prompts : str or sequence of str
        One str is a batch of one.
    max_new_tokens : int, default=32
    temperature : float, default=0.0
        0 is greedy (argmax); above 0, tokens are drawn from ``softmax(logits / temperature)``.
    seed : int, numpy Generator or None
        For sampling: the same seed draws the same tokens.
    stop : str or sequence of str, default=("<end>",)
        Tokens that end a row; the stop token is kept in the output.

    Returns
    -------
    texts : list of str
        The new tokens of each row, decoded (the prompt is not repeated).
    log_probs : ndarray of float, shape (len(prompts),)
        Each row's sum of the model's log-probabilities of its new tokens (at temperature 1).
    """
    vocab = _check_vocab(vocab)
    context = _context(model)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise InvalidParameterError("prompts is empty: give at least one prompt")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", min_value=1)
    temperature = check_real(temperature, "temperature", min_value=0)
    stop_ids = _stop_ids(vocab, stop)
    encoded = [_prompt_ids(vocab, p, context, f"prompts[{i}]") for i, p in enumerate(prompts)]
    ids = np.full((len(encoded), context), vocab.pad_id, dtype=np.int32)
    for row, prompt in enumerate(encoded):
        ids[row, :len(prompt)] = prompt
    positions = np.array([len(p) for p in encoded], dtype=np.int32)
    start = positions.copy()
    active = np.ones(len(encoded), dtype=bool)
    total = np.zeros(len(encoded))
    key = as_int_seed(seed) if temperature > 0 else 0
    step = compiled(model)["step"]
    for t in range(max_new_tokens):
        # a finished row is still computed (fixed shapes) at a valid position, and its token discarded
        token, log_p = step(ids, np.minimum(positions, context - 1), np.float32(temperature),
                            np.array([key % 2**31, t], dtype=np.int32))
        token, log_p = token.numpy(), log_p.numpy()
        rows = np.flatnonzero(active)
        ids[rows, positions[rows]] = token[rows]
        total[rows] += log_p[rows]
        positions[rows] += 1
        active[rows] = ~np.isin(token[rows], stop_ids) & (positions[rows] < context)
        if not active.any():
            break
    texts = [vocab.decode(ids[row, start[row]:positions[row]]) for row in range(len(encoded))]
    return texts, total


def generate(model, vocab, prompt, *, max_new_tokens=32, temperature=0.0, best_of=1, seed=None, stop=STOP):
    """The model's continuation of ``prompt``: greedy, sampled, or the most likely of ``best_of`` samples.

    Parameters
    ----------
    model : keras.Model
    vocab : Vocabulary
    prompt : str
        Usually ends with ``<asst>``: the assistant's turn.
    max_new_tokens : int, default=32
    temperature : float, default=0.0
        0 is greedy decoding (deterministic); above 0, sampling at that temperature.
    best_of : int, default=1
        Draw this many samples (one batch) and return the one the model itself finds most likely:
        the highest sum of log-probabilities of its tokens. Needs ``temperature > 0``.
    seed : int, numpy Generator or None
        Seeds the sampling: the same seed gives the same text.
    stop : str or sequence of str, default=("<end>",)
        Generation stops after one of these tokens, which is kept in the text (an agent loop
        adds ``"<tool>"``, to run the tool call the model just wrote).

    Returns
    -------
    str
        The new tokens, decoded.

    Examples
    --------
    >>> from mlsec_lessons.llm import corpus, model
    >>> untrained = model.transformer(len(corpus.vocabulary()))
    >>> len(generate(untrained, corpus.vocabulary(), "<sys> the secret is", max_new_tokens=3).split())
    3
    >>> m = model.train_assistant().model                                    # doctest: +SKIP
    >>> generate(m, corpus.vocabulary(), corpus.system_prompt("falcon") +
    ...          " <user> repeat after me : good news <asst>")              # doctest: +SKIP
    'good news <end>'
    """
    best_of = check_int(best_of, "best_of", min_value=1)
    temperature = check_real(temperature, "temperature", min_value=0)
    if best_of > 1 and temperature == 0:
        raise InvalidParameterError("best_of > 1 needs temperature > 0: greedy decoding gives the same text each time")
    if not isinstance(prompt, str):
        raise ParameterTypeError(f"prompt must be a str, got {type(prompt).__name__}")
    texts, log_probs = generate_batch(model, vocab, [prompt] * best_of, max_new_tokens=max_new_tokens,
                              temperature=temperature, seed=seed, stop=stop)
    return texts[int(np.argmax(log_probs))]


def sequence_log_prob(model, vocab, text, *, prompt=None, batch_size=256):
    """The model's log-probability of ``text``: the sum of its tokens' log-probabilities, in nats.

    With a ``prompt``, every token of ``text`` is scored given the prompt and the tokens before it;
    without, the first token has no context and is not scored. Used for canary exposure and to
    rank samples.

    Parameters
    ----------
    model : keras.Model
    vocab : Vocabulary
    text : str or sequence of str
        A sequence is scored in batches of ``batch_size``, one compiled call each.
    prompt : str or None
    batch_size : int, default=256

    Returns
    -------
    float, or ndarray of float for a sequence of texts
    """
    vocab = _check_vocab(vocab)
    context = _context(model)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    one = isinstance(text, str)
    texts = [text] if one else list(text)
    if not texts:
        return np.zeros(0)
    prefix = np.zeros(0, np.int32) if prompt is None else _prompt_ids(vocab, prompt, context)
    ids = np.full((len(texts), context), vocab.pad_id, dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, t in enumerate(texts):
        if not isinstance(t, str):
            raise ParameterTypeError(f"text must be a str or a sequence of str, got {type(t).__name__}")
        tokens = np.concatenate([prefix, vocab.encode(t)])
        if len(tokens) - len(prefix) < (1 if len(prefix) else 2):
            raise InvalidParameterError(f"text {t!r} has nothing to score: give at least "
                                        f"{1 if len(prefix) else 2} token(s){'' if len(prefix) else ' (or a prompt)'}")
        if len(tokens) > context:
            raise InvalidParameterError(f"prompt and text hold {len(tokens)} tokens, more than the context ({context})")
        ids[row, :len(tokens)], lengths[row] = tokens, len(tokens)
    log_probs = compiled(model)["log_probs"]
    scored = np.concatenate([log_probs(ids[i:i + batch_size]).numpy() for i in range(0, len(ids), batch_size)])
    # log_probs[:, t] scores token t + 1: count the text's tokens, from max(len(prefix), 1) to its length
    first = max(len(prefix), 1) - 1
    columns = np.arange(context - 1)
    mask = (columns >= first) & (columns[None, :] < lengths[:, None] - 1)
    totals = (scored * mask).sum(axis=1)
    return float(totals[0]) if one else totals
