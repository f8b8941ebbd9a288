"""mlsec_lessons.llm.memorization: canaries, exact exposure, beam-search extraction, DP-SGD.

The fast tests use an untrained transformer whose output layer is scaled up (so that candidates differ
by several nats, not by rounding) and one tiny model trained for a few seconds on a canary. The slow
test trains the real canary model, and its DP-SGD peer.
"""
import math

import keras
import numpy as np
import pytest

from mlsec_lessons.errors import InvalidParameterError, MLSecError, ParameterTypeError
from mlsec_lessons.llm import corpus
from mlsec_lessons.llm import memorization as mem
from mlsec_lessons.llm.generate import sequence_log_prob
from mlsec_lessons.llm.model import transformer
from mlsec_lessons.privacy import accounting

VOCAB = corpus.vocabulary()
TINY = dict(dim=16, heads=2, mlp=32, blocks=1)


def brute_force_scores(model, length):
    """Every candidate scored on its own, a whole sequence per candidate (the definition, not the tree)."""
    texts = [" ".join(str(i).zfill(length)) for i in range(10**length)]
    return sequence_log_prob(model, VOCAB, texts, prompt=mem.PREFIX)


@pytest.fixture(scope="module")
def sharp():
    """An untrained transformer with its logits scaled by 20: peaked, varied next-token distributions."""
    keras.utils.set_random_seed(0)
    model = transformer(len(VOCAB))
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 20, bias])
    return model


@pytest.fixture(scope="module")
def memorized(scratch_cache):
    """A tiny model trained (a few seconds) on 16 dialogues, one canary 24 times and a control never."""
    with scratch_cache():
        return mem.train_canary_model(n_dialogues=16, counts=(0, 24), epochs=12, batch_size=8, learning_rate=1e-2,
                                      jit_compile=False, **TINY)


# --------------------------------------------------------------------------- canaries
def test_canary_text_is_made_of_vocabulary_words():
    text = mem.canary_text("03141")
    assert text == "<doc> the code word is 0 3 1 4 1 ."
    ids = VOCAB.encode(text)
    assert VOCAB.unk_id not in ids and VOCAB.decode(ids) == text and len(ids) == 11


def test_make_canaries_are_distinct_seeded_digit_strings():
    drawn = mem.make_canaries(200, length=3, seed=0)
    assert len(set(drawn)) == 200 and all(len(s) == 3 and s.isdigit() for s in drawn)
    assert any(s.startswith("0") for s in drawn)  # leading zeros are secrets too
    assert drawn == mem.make_canaries(200, length=3, seed=0) != mem.make_canaries(200, length=3, seed=1)
    assert sorted(mem.make_canaries(10, length=1, seed=0)) == list(mem.DIGITS)
    with pytest.raises(InvalidParameterError, match="n must be in"):
        mem.make_canaries(11, length=1)


def test_insert_canaries_adds_each_canary_count_times_and_keeps_the_base_set():
    base = corpus.training_set(40, seed=0)
    out = mem.insert_canaries(base, ["31415", "27182", "16180"], [5, 1, 0], seed=3)
    assert out.shape == (46, base.shape[1]) and out.dtype == np.int32
    texts = [VOCAB.decode(row[row != VOCAB.pad_id]) for row in out]
    assert texts.count(mem.canary_text("31415")) == 5 and texts.count(mem.canary_text("27182")) == 1
    assert not any("1 6 1 8 0" in t for t in texts)  # the control is not there
    is_canary = np.array([t.startswith(mem.PREFIX) for t in texts])
    np.testing.assert_array_equal(out[~is_canary], base)  # the dialogues, in their order
    again = mem.insert_canaries(base, ["31415", "27182", "16180"], [5, 1, 0], seed=3)
    other = mem.insert_canaries(base, ["31415", "27182", "16180"], [5, 1, 0], seed=4)
    assert np.array_equal(out, again) and not np.array_equal(out, other)


@pytest.mark.parametrize("canaries, counts, kwargs, error, match", [
    (["31415"], [1, 2], {}, InvalidParameterError, "same length"),
    (["31415"], [-1], {}, InvalidParameterError, r"counts\[0\]"),
    (["31415"], [1.0], {}, ParameterTypeError, r"counts\[0\]"),
    ("31415", [1], {}, ParameterTypeError, "not one str"),
    (["3141a"], [1], {}, InvalidParameterError, "digits 0-9"),
    ([31415], [1], {}, ParameterTypeError, "str of digits"),
    (["31415"], [1], {"prefix": "the zyzzyva is"}, InvalidParameterError, "words of the vocabulary"),
])
def test_insert_canaries_refuses_bad_input(canaries, counts, kwargs, error, match):
    with pytest.raises(error, match=match):
        mem.insert_canaries(corpus.training_set(4, seed=0), canaries, counts, **kwargs)
    with pytest.raises(InvalidParameterError, match="2-D int array"):
        mem.insert_canaries(np.zeros(64, dtype=np.int32), ["31415"], [1])


def test_canary_training_set_is_seeded_and_keeps_the_dialogues():
    ids, canaries = mem.canary_training_set(32, (0, 1, 4), seed=0)
    again, same = mem.canary_training_set(32, (0, 1, 4), seed=0)
    other_ids, other = mem.canary_training_set(32, (0, 1, 4), seed=1)
    assert np.array_equal(ids, again) and canaries == same and canaries != other
    assert ids.shape == (37, corpus.CONTEXT) and sorted(canaries) == [0, 1, 4]
    is_canary = np.array([VOCAB.decode(row).startswith(mem.PREFIX) for row in ids])
    np.testing.assert_array_equal(ids[~is_canary], corpus.training_set(32, seed=0))
    with pytest.raises(InvalidParameterError, match="distinct"):
        mem.canary_training_set(8, (1, 1))


# --------------------------------------------------------------------------- exposure from scores
@pytest.mark.parametrize("canary, scores, rank", [
    (-1.0, [-1.0, -3.0, -2.0, -5.0], 1),    # the most likely
    (-3.0, [-1.0, -3.0, -2.0, -5.0], 3),
    (-5.0, [-1.0, -3.0, -2.0, -5.0], 4),    # the least likely
    (-2.0, [-2.0, -2.0, -1.0, -5.0], 2),    # a tie with another candidate does not push the canary down
    (0.0, [0.0] * 8, 1),                    # all alike: every candidate is first
    (-math.inf, [-math.inf, 0.0], 2),       # a candidate of probability zero
])
def test_rank_and_exposure_follow_the_definition(canary, scores, rank):
    assert mem.rank_from_scores(canary, scores) == rank
    assert mem.exposure_from_scores(canary, scores) == pytest.approx(math.log2(len(scores)) - math.log2(rank))
    assert mem.exposure_from_scores(canary, np.array(scores, dtype=np.float32)) == pytest.approx(
        math.log2(len(scores)) - math.log2(rank))


def test_exposure_runs_from_zero_to_log2_of_the_candidates():
    scores = -np.arange(100_000, dtype=float)
    assert mem.exposure_from_scores(scores[0], scores) == pytest.approx(math.log2(1e5))  # 16.6 bits
    assert mem.exposure_from_scores(scores[-1], scores) == 0.0
    assert mem.exposure_from_scores(scores[49_999], scores) == pytest.approx(1.0)  # the middle: 1 bit


@pytest.mark.parametrize("canary, scores, error, match", [
    (-1.0, [], InvalidParameterError, "empty"),
    (-1.0, [-1.0, float("nan")], InvalidParameterError, "NaN"),
    (float("nan"), [-1.0, -2.0], InvalidParameterError, "canary_score"),
    (-1.5, [-1.0, -2.0], InvalidParameterError, "not among candidate_scores"),
    (-1.0, [[-1.0, -2.0]], ParameterTypeError, "1-D"),
    (-1.0, ["a", "b"], ParameterTypeError, "1-D sequence of numbers"),
    ("-1.0", [-1.0], ParameterTypeError, "canary_score"),
])
def test_exposure_from_scores_refuses_bad_input(canary, scores, error, match):
    for function in (mem.exposure_from_scores, mem.rank_from_scores):
        with pytest.raises(error, match=match) as caught:
            function(canary, scores)
        assert isinstance(caught.value, MLSecError)


# --------------------------------------------------------------------------- exact exposure of a model
def test_the_digit_tree_scores_match_whole_sequences(sharp):
    scores = mem.candidate_log_probs(sharp, VOCAB, 5)
    assert scores.shape == (100_000,) and np.all(np.isfinite(scores))
    assert scores.max() - scores.min() > 10  # the candidates differ: the check below is not between near-equals
    picked = np.random.default_rng(0).choice(100_000, size=64, replace=False)
    texts = [" ".join(str(i).zfill(5)) for i in picked]
    np.testing.assert_allclose(scores[picked], sequence_log_prob(sharp, VOCAB, texts, prompt=mem.PREFIX),
                               rtol=0, atol=1e-4)


def test_exposure_matches_the_brute_force_rank_on_three_digits(sharp):
    brute = brute_force_scores(sharp, 3)
    np.testing.assert_allclose(mem.candidate_log_probs(sharp, VOCAB, 3), brute, rtol=0, atol=1e-4)
    order = np.argsort(-brute)
    secrets = [str(i).zfill(3) for i in (order[0], order[1], order[500], order[-1], 314)]
    expected = [math.log2(1000) - math.log2(1 + int((brute > brute[int(s)]).sum())) for s in secrets]
    np.testing.assert_allclose(mem.exposure(sharp, VOCAB, secrets), expected, atol=1e-9)
    assert expected[0] == pytest.approx(math.log2(1000)) and expected[3] == 0.0
    assert mem.exposure(sharp, VOCAB, secrets[0]) == expected[0]  # one str: one float


def test_scores_follow_the_models_current_weights():
    keras.utils.set_random_seed(1)
    model = transformer(len(VOCAB))
    before = mem.candidate_log_probs(model, VOCAB, 2)
    kernel, bias = model.get_layer("logits").get_weights()
    bias[VOCAB.id("7")] += 5.0
    model.get_layer("logits").set_weights([kernel, bias])
    after = mem.candidate_log_probs(model, VOCAB, 2)
    assert int(np.argmax(after)) == 77 and not np.allclose(before, after)
    np.testing.assert_allclose(after, brute_force_scores(model, 2), atol=1e-4)


def test_a_model_that_is_not_a_transformer_is_scored_as_it_is():
    keras.utils.set_random_seed(2)
    ids = keras.Input((corpus.CONTEXT,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(len(VOCAB))(keras.layers.Embedding(len(VOCAB), 8)(ids)))
    np.testing.assert_allclose(mem.candidate_log_probs(model, VOCAB, 2), brute_force_scores(model, 2), atol=1e-4)


@pytest.mark.parametrize("canary, kwargs, error, match", [
    ("3141a", {}, InvalidParameterError, "digits 0-9"),
    ("1234567", {}, InvalidParameterError, "at most 6"),
    (["123", "1234"], {}, InvalidParameterError, "one length"),
    ([], {}, InvalidParameterError, "empty"),
    (31415, {}, ParameterTypeError, "str"),
    ("31415", {"prefix": "the zyzzyva is"}, InvalidParameterError, "words of the vocabulary"),
    ("31415", {"prefix": " ".join(["the"] * 62)}, InvalidParameterError, "do not fit"),
    ("31415", {"vocab": ["0", "1"]}, ParameterTypeError, "Vocabulary"),
    ("31415", {"batch_size": 0}, InvalidParameterError, "batch_size"),
])
def test_exposure_refuses_bad_input(sharp, canary, kwargs, error, match):
    args = {"vocab": VOCAB, **kwargs}
    with pytest.raises(error, match=match):
        mem.exposure(sharp, args.pop("vocab"), canary, **args)


# --------------------------------------------------------------------------- extraction
def test_an_exhaustive_beam_is_the_exact_top_of_the_candidates(sharp):
    scores = mem.candidate_log_probs(sharp, VOCAB, 3)
    found = mem.extract(sharp, VOCAB, length=3, beam_width=100)
    top = np.argsort(-scores, kind="stable")[:100]
    assert found.secrets == tuple(str(i).zfill(3) for i in top)
    np.testing.assert_allclose(found.log_probs, scores[top], atol=1e-9)
    assert found.best == str(int(top[0])).zfill(3) and found.rank(found.best) == 1
    greedy = mem.extract(sharp, VOCAB, length=3, beam_width=1)
    assert len(greedy.secrets) == 1 and greedy.log_probs[0] == pytest.approx(scores[int(greedy.best)])
    with pytest.raises(InvalidParameterError, match="beam_width"):
        mem.extract(sharp, VOCAB, beam_width=0)


def test_a_memorised_canary_is_exposed_and_extracted(memorized):
    run = memorized
    assert isinstance(run, mem.CanaryRun) and not run.fitted.provenance.from_cache
    bits = mem.canary_exposures(run)
    # measured: 16.6 (the maximum) and 0.7 bits
    assert bits[24] >= 15 and bits[0] <= 8, bits
    found = mem.extract(run.model, VOCAB, beam_width=8)
    assert found.best == run.canaries[24] and found.rank(run.canaries[0]) is None


# --------------------------------------------------------------------------- DP-SGD
def test_private_training_reaches_its_epsilon_and_goes_through_the_cache(scratch_cache):
    kw = dict(n_dialogues=16, counts=(0, 4), epochs=1, batch_size=8, dim=8, heads=2, mlp=16, blocks=1)
    with scratch_cache():
        run = mem.train_private_canary_model(8.0, **kw)
        again = mem.train_private_canary_model(8.0, **kw)
    spend = run.fitted.privacy
    assert spend.epsilon == pytest.approx(8.0, abs=0.05) and spend.noise_multiplier > 0
    assert spend.epsilon == pytest.approx(accounting.epsilon(spend.noise_multiplier, spend.sample_rate, spend.steps,
                                                             spend.delta))
    assert spend.steps == round(20 / 8) and spend.sample_rate == pytest.approx(8 / 20)
    assert again.fitted.provenance.from_cache and again.canaries == run.canaries
    assert all(np.isfinite(w).all() for w in run.model.get_weights())
    clipped_only = mem.train_private_canary_model(math.inf, cache=False, **kw).fitted.privacy
    assert clipped_only.noise_multiplier == 0 and clipped_only.epsilon == math.inf


@pytest.mark.parametrize("epsilon, kwargs, error, match", [
    (0.0, {}, InvalidParameterError, "target_epsilon"),
    (float("nan"), {}, InvalidParameterError, "target_epsilon"),
    ("8", {}, ParameterTypeError, "target_epsilon"),
    (8.0, {"depth": 2}, ParameterTypeError, "unknown arguments"),
    (8.0, {"batch_size": 1000}, InvalidParameterError, "larger than"),
    (8.0, {"delta": 1.0}, InvalidParameterError, "delta"),
])
def test_private_training_refuses_bad_input(epsilon, kwargs, error, match):
    with pytest.raises(error, match=match):
        mem.train_private_canary_model(epsilon, n_dialogues=16, cache=False, **kwargs)


# --------------------------------------------------------------------------- the real model
@pytest.mark.slow
def test_exposure_grows_with_the_insertions_and_falls_under_dp_sgd():
    """The canary model (about 20 s on 2 cores) and its DP-SGD peer at epsilon 8 (about 25 s).

    Both go through the run's model cache, empty when the run starts: lesson 13 trains the same two
    models with the same settings, so whichever of the two runs first trains them and the other loads."""
    run = mem.train_canary_model()
    private = mem.train_private_canary_model(8.0)
    bits = mem.canary_exposures(run)
    # measured (seeds 0, 1, 2): control 1.7, 0.9, 0.7; once 5.4, 2.4, 8.1; 4 times 15.0, 11.0, 15.0;
    # 16 times 15.6; 64 times 16.6, the maximum (the 16 and 4 times canaries rank behind it)
    assert bits[64] >= 16 and bits[16] >= 14 and bits[4] >= 9, bits
    assert bits[0] <= 5 and bits[0] < bits[1] < bits[4] <= bits[16] <= bits[64], bits
    found = mem.extract(run.model, VOCAB, beam_width=16)
    assert found.best == run.canaries[64] and found.rank(run.canaries[16]) is not None
    assert found.rank(run.canaries[0]) is None
    # measured at epsilon 8: 0.2, 0.3, 1.4, 2.1 and 9.5 bits; the 64 times canary is not extracted
    private_bits = mem.canary_exposures(private)
    assert private.fitted.privacy.epsilon == pytest.approx(8.0, abs=0.05)
    assert private_bits[4] < 5 and private_bits[16] < 8 and private_bits[64] < 14, private_bits
    assert mem.extract(private.model, VOCAB, beam_width=16).best != private.canaries[64]
