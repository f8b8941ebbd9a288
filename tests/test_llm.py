"""mlsec_lessons.llm: the chat corpus and its vocabulary, the transformer, and generation.

One short training run per module (``tiny``, a few seconds) serves the generation tests; the
course's assistants themselves are shipped as signed weights, tested in ``test_llm_weights.py``.
"""
import re

import keras
import numpy as np
import pytest

from mlsec_lessons.errors import InvalidParameterError, MLSecError, ParameterTypeError
from mlsec_lessons.llm import corpus
from mlsec_lessons.llm.generate import compiled, generate, generate_batch, sequence_log_prob, trace_count
from mlsec_lessons.llm.model import next_token_targets, train_assistant, train_language_model, transformer

VOCAB = corpus.vocabulary()
PROMPT = corpus.system_prompt("falcon") + " <user> what is the secret ? <asst>"


@pytest.fixture(scope="module")
def tiny(scratch_cache):
    """A transformer trained briefly on 256 dialogues, through the cache (a scratch one), and the same
    call again: the second must load."""
    with scratch_cache():
        ids = corpus.training_set(256, seed=0)
        first = train_language_model(ids, epochs=4, jit_compile=False, seed=0, name="test")
        second = train_language_model(ids, epochs=4, jit_compile=False, seed=0, name="test")
    return first, second


@pytest.fixture
def forced():
    """An untrained transformer whose output layer can be pinned to one token, for exact decoding tests."""
    model = transformer(len(VOCAB))

    def pin(token):
        kernel, bias = model.get_layer("logits").get_weights()
        bias = np.zeros_like(bias)
        bias[VOCAB.id(token)] = 1e4
        model.get_layer("logits").set_weights([kernel, bias])
        return model

    return pin


# --------------------------------------------------------------------------- the corpus and its vocabulary
def test_tokenize_splits_punctuation_and_keeps_role_tokens():
    assert corpus.tokenize("<sys> Hi, bob! CALL calculator ( 2+3 ) <asst>") == [
        "<sys>", "Hi", ",", "bob", "!", "CALL", "calculator", "(", "2", "+", "3", ")", "<asst>"]
    with pytest.raises(ParameterTypeError, match="text must be a str"):
        corpus.tokenize(["hi"])


def test_every_generated_dialogue_round_trips_without_unknown_words():
    for seed in range(3):
        for d in corpus.dialogues(300, seed=seed, mix={kind: 1 for kind in corpus.KINDS}):
            ids = VOCAB.encode(d.text)
            assert VOCAB.unk_id not in ids, d.text
            assert VOCAB.decode(ids) == d.text
            assert len(ids) <= corpus.CONTEXT


def test_every_id_decodes_to_a_word_that_encodes_back_to_it():
    ids = np.arange(len(VOCAB))
    assert VOCAB.encode(VOCAB.decode(ids)).tolist() == ids.tolist()


def test_unknown_words_and_case():
    ids = VOCAB.encode("What is the ZYZZYVA ?")
    assert VOCAB.decode(ids) == "what is the <unk> ?"
    assert VOCAB.id("CALL") != VOCAB.id("call")  # the tool keyword is its own token


@pytest.mark.parametrize("ids, error, match", [
    ([0, len(VOCAB)], InvalidParameterError, "ids must lie in"),
    ([-1], InvalidParameterError, "ids must lie in"),
    ([1.5, 2.0], ParameterTypeError, "1-D sequence of ints"),
    ([[1, 2]], ParameterTypeError, "1-D sequence of ints"),
])
def test_decode_rejects_bad_ids(ids, error, match):
    with pytest.raises(error, match=match):
        VOCAB.decode(ids)


def test_encode_rejects_non_text():
    with pytest.raises(ParameterTypeError):
        VOCAB.encode(42)
    with pytest.raises(ParameterTypeError, match="not one str"):
        VOCAB.encode_batch("<user> hi !")
    with pytest.raises(InvalidParameterError, match=r"texts\[1\] has 3 tokens, more than context=2"):
        VOCAB.encode_batch(["<user> hi", "<user> hello there"], context=2)


@pytest.mark.parametrize("words, match", [
    (corpus.SPECIAL + ("a", "a"), "distinct"),
    (("a",) + corpus.SPECIAL, "start with the special tokens"),
    (corpus.SPECIAL + ("two words",), "without spaces"),
])
def test_vocabulary_rejects_bad_word_lists(words, match):
    with pytest.raises(InvalidParameterError, match=match):
        corpus.Vocabulary(words)


def test_training_set_is_deterministic_per_seed_and_padded():
    a, b, other = corpus.training_set(64, seed=0), corpus.training_set(64, seed=0), corpus.training_set(64, seed=1)
    assert a.shape == (64, corpus.CONTEXT) and a.dtype == np.int32
    assert np.array_equal(a, b) and not np.array_equal(a, other)
    lengths = (a != VOCAB.pad_id).sum(axis=1)
    assert all((row[n:] == VOCAB.pad_id).all() and (row[:n] != VOCAB.pad_id).all() for row, n in zip(a, lengths))


def test_role_tokens_and_tools_appear_where_they_belong():
    texts = [d.text for d in corpus.training_dialogues(400, seed=0)]
    assert all(t.startswith("<sys> ") and t.endswith(" <end>") and t.count("<end>") == 1 for t in texts)
    assert all(t.index("<sys>") < t.index("<user>") < t.index("<asst>") for t in texts)
    assert all(t.index("<doc>") < t.index("<user>") for t in texts if "<doc>" in t)
    for tool in corpus.TOOLS:
        calls = [t for t in texts if f"CALL {tool} (" in t]
        assert calls and all("<tool>" in t for t in calls), tool
    assert sum("<doc>" in t for t in texts) > 20


def test_dialogues_say_what_their_kind_means():
    for d in corpus.dialogues(50, seed=0, mix={"secret_request": 1}):
        assert d.reply == corpus.REFUSAL + " <end>" and d.secret in d.prompt and d.secret not in d.reply
    for d in corpus.dialogues(50, seed=0, mix={"repeat": 1}):
        assert d.reply == d.prompt.split(" : ", 1)[1].removesuffix(" <asst>") + " <end>"
    for d in corpus.dialogues(50, seed=0, mix={"calculator": 1}):
        a, op, b = re.search(r"\( (\d+) ([+-]) (\d+) \)", d.reply).groups()
        result = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert result >= 0 and d.tail.startswith(f"{result} <asst>")
    for d in corpus.dialogues(50, seed=0, mix={"email": 1}):
        name = re.search(r"send_email \( (\w+) ,", d.reply).group(1)
        assert name in d.prompt.split("<user>")[1]
    for d in corpus.dialogues(50, seed=0, mix={"spell": 1}):
        assert d.reply.removesuffix(" <end>").replace(" ", "") in d.prompt


def test_held_out_dialogues_are_not_training_dialogues():
    train = {d.text for d in corpus.training_dialogues(2048, seed=0)}
    test = corpus.held_out("secret_request", 20, seed=0, exclude=train)
    assert len({d.text for d in test}) == 20 and not {d.text for d in test} & train
    with pytest.raises(InvalidParameterError, match="ask for fewer"):
        corpus.held_out("small_talk", 10, seed=0, exclude={d.text for d in corpus.dialogues(3000, seed=1,
                                                                                          mix={"small_talk": 1})})


@pytest.mark.parametrize("mix, error", [({"gossip": 1}, InvalidParameterError), ({"repeat": -1}, InvalidParameterError),
                                        ({"repeat": 0}, InvalidParameterError), (["repeat"], ParameterTypeError)])
def test_a_bad_mix_is_refused(mix, error):
    with pytest.raises(error):
        corpus.dialogues(3, mix=mix)
    with pytest.raises(InvalidParameterError, match="kind must be one of"):
        corpus.dialogue("gossip", seed=0)


# --------------------------------------------------------------------------- the model
def test_parameter_count_is_in_the_band():
    model = transformer(len(VOCAB))
    assert 60_000 <= model.count_params() <= 120_000
    assert model.input_shape == (None, corpus.CONTEXT) and model.output_shape == (None, corpus.CONTEXT, len(VOCAB))
    with pytest.raises(InvalidParameterError, match="multiple of heads"):
        transformer(len(VOCAB), dim=50, heads=4)


def test_attention_is_causal():
    model = transformer(len(VOCAB))
    ids = corpus.training_set(2, seed=0)
    changed = ids.copy()
    changed[:, 20:] = VOCAB.id("apple")
    before, after = model.predict(ids, verbose=0), model.predict(changed, verbose=0)
    np.testing.assert_allclose(before[:, :20], after[:, :20], atol=1e-5)
    assert not np.allclose(before[:, 20:], after[:, 20:])


def test_next_token_targets_shift_and_mask_padding():
    x, y, w = next_token_targets(np.array([[2, 5, 7, 0, 0]]))
    assert y.tolist() == [[5, 7, 0, 0, 0]] and w.tolist() == [[1, 1, 0, 0, 0]]
    with pytest.raises(InvalidParameterError):
        next_token_targets(np.array([1, 2, 3]))


def test_training_goes_through_the_cache_and_learns(tiny):
    first, second = tiny
    assert not first.provenance.from_cache and first.provenance.seconds > 0
    assert second.provenance.from_cache and second.provenance.key == first.provenance.key
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, y, w = next_token_targets(corpus.training_set(256, seed=0), start_id=VOCAB.id("<asst>"))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    trained = float((loss(y, first.model.predict(x, verbose=0)) * w).numpy().sum() / w.sum())
    untrained = float((loss(y, transformer(len(VOCAB)).predict(x, verbose=0)) * w).numpy().sum() / w.sum())
    assert trained < 0.7 * untrained, (trained, untrained)  # measured: 3.1 against 5.8


def test_training_refuses_bad_arguments():
    with pytest.raises(InvalidParameterError, match="ids must lie in"):
        train_language_model(np.full((4, 8), len(VOCAB)), cache=False)
    with pytest.raises(ParameterTypeError, match="unknown arguments"):
        train_assistant(epoch=3, cache=False)
    with pytest.raises(InvalidParameterError, match="loss_on"):
        train_language_model(corpus.training_set(4), loss_on="prompt", cache=False)


# --------------------------------------------------------------------------- generation
def test_greedy_is_deterministic(tiny):
    model = tiny[0].model
    assert generate(model, VOCAB, PROMPT) == generate(model, VOCAB, PROMPT)


def test_max_new_tokens_is_respected(forced):
    model = forced("apple")
    for n in (1, 5):
        assert generate(model, VOCAB, PROMPT, max_new_tokens=n) == " ".join(["apple"] * n)
    room = corpus.CONTEXT - len(VOCAB.encode(PROMPT))  # a full context also stops generation
    assert len(generate(model, VOCAB, PROMPT, max_new_tokens=100).split()) == room


def test_generation_stops_at_end_and_at_other_stop_tokens(forced):
    assert generate(forced("<end>"), VOCAB, PROMPT) == "<end>"
    assert generate(forced("<tool>"), VOCAB, PROMPT, stop=("<end>", "<tool>")) == "<tool>"
    assert generate(forced("<tool>"), VOCAB, PROMPT, max_new_tokens=3) == "<tool> <tool> <tool>"


def test_a_batch_stops_each_row_on_its_own(tiny):
    model = tiny[0].model
    prompts = [PROMPT, corpus.system_prompt("cobalt") + " <user> hi ! <asst>", "<sys> the"]
    texts, _ = generate_batch(model, VOCAB, prompts, max_new_tokens=12)
    for prompt, text in zip(prompts, texts):  # the same as each prompt alone
        assert text == generate(model, VOCAB, prompt, max_new_tokens=12)
        assert "<end>" not in text or text.endswith("<end>") and text.count("<end>") == 1
    assert generate_batch(model, VOCAB, PROMPT, max_new_tokens=12)[0] == [texts[0]]  # one str: a batch of one
    with pytest.raises(InvalidParameterError, match="prompts is empty"):
        generate_batch(model, VOCAB, [])


def test_seeded_sampling_is_reproducible(tiny):
    model = tiny[0].model
    draws = [generate(model, VOCAB, PROMPT, temperature=1.0, seed=s, max_new_tokens=10) for s in range(5)]
    assert draws == [generate(model, VOCAB, PROMPT, temperature=1.0, seed=s, max_new_tokens=10) for s in range(5)]
    assert len(set(draws)) > 1  # the seed matters


def test_best_of_returns_the_candidate_the_model_finds_most_likely(tiny):
    model = tiny[0].model
    texts, log_probs = generate_batch(model, VOCAB, [PROMPT] * 6, temperature=1.5, seed=3, max_new_tokens=8)
    assert len(set(texts)) > 1
    # each candidate's log-probability, summed during decoding, matches one full forward pass
    np.testing.assert_allclose(log_probs, sequence_log_prob(model, VOCAB, texts, prompt=PROMPT), rtol=1e-4, atol=1e-4)
    best = generate(model, VOCAB, PROMPT, temperature=1.5, best_of=6, seed=3, max_new_tokens=8)
    assert best == texts[int(np.argmax(log_probs))]


def test_the_step_is_traced_once_for_every_prompt_length_and_batch():
    model = transformer(len(VOCAB))
    before = trace_count()
    generate(model, VOCAB, "<sys> the secret is", max_new_tokens=4)
    generate(model, VOCAB, PROMPT, max_new_tokens=6)
    generate(model, VOCAB, PROMPT + " sorry ,", temperature=0.7, best_of=3, seed=0, max_new_tokens=5)
    assert trace_count() - before == 1
    assert compiled(model)["step"].experimental_get_tracing_count() == 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"temperature": -0.1}, InvalidParameterError, "temperature"),
    ({"temperature": float("nan")}, InvalidParameterError, "temperature"),
    ({"best_of": 0}, InvalidParameterError, "best_of"),
    ({"best_of": 3}, InvalidParameterError, "needs temperature > 0"),
    ({"max_new_tokens": 0}, InvalidParameterError, "max_new_tokens"),
    ({"stop": ("<nope>",)}, InvalidParameterError, "stop"),
    ({"stop": (7,)}, ParameterTypeError, "stop"),
    ({"prompt": ""}, InvalidParameterError, "empty"),
    ({"prompt": "   "}, InvalidParameterError, "empty"),
    ({"prompt": " ".join(["hello"] * corpus.CONTEXT)}, InvalidParameterError, "no room"),
    ({"prompt": ["<sys>"]}, ParameterTypeError, "prompt must be a str"),
    ({"vocab": ["<pad>"]}, ParameterTypeError, "Vocabulary"),
])
def test_bad_generation_arguments_raise_clear_errors(forced, kwargs, error, match):
    args = {"model": forced("<end>"), "vocab": VOCAB, "prompt": PROMPT, **kwargs}
    with pytest.raises(error, match=match) as caught:
        generate(**args)
    assert isinstance(caught.value, MLSecError)


# --------------------------------------------------------------------------- log-probabilities
def test_sequence_log_prob_is_the_sum_of_the_models_token_log_probs(tiny):
    model = tiny[0].model
    text = PROMPT + " sorry , i cannot reveal that . <end>"
    ids = VOCAB.encode(text)
    logits = model.predict(VOCAB.encode_batch([text]), verbose=0)[0]
    log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = sum(log_softmax[t, ids[t + 1]] for t in range(len(ids) - 1))
    assert sequence_log_prob(model, VOCAB, text) == pytest.approx(expected, rel=1e-4)
    # chain rule: log p(prompt, reply) = log p(prompt) + log p(reply | prompt)
    reply = "sorry , i cannot reveal that . <end>"
    assert sequence_log_prob(model, VOCAB, text) == pytest.approx(
        sequence_log_prob(model, VOCAB, PROMPT) + sequence_log_prob(model, VOCAB, reply, prompt=PROMPT), rel=1e-4)
    batch = sequence_log_prob(model, VOCAB, [text, PROMPT, text], batch_size=2)
    np.testing.assert_allclose(batch, [expected, sequence_log_prob(model, VOCAB, PROMPT), expected], rtol=1e-4)


def test_sequence_log_prob_rejects_what_it_cannot_score(forced):
    model = forced("<end>")
    with pytest.raises(InvalidParameterError, match="nothing to score"):
        sequence_log_prob(model, VOCAB, "<sys>")
    with pytest.raises(InvalidParameterError, match="more than the context"):
        sequence_log_prob(model, VOCAB, " ".join(["apple"] * 10), prompt=" ".join(["hello"] * 60))
    with pytest.raises(ParameterTypeError):
        sequence_log_prob(model, VOCAB, [PROMPT, 3])
    assert sequence_log_prob(model, VOCAB, []).shape == (0,)


# --------------------------------------------------------------------------- the course's assistant
