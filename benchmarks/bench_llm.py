"""Generation speed of the course's transformer: the compiled step against a plain Keras ``predict`` loop.

The model is lesson 13's assistant, trained here from scratch (``cache=False``) so that its training
time is measured too. Both sides decode greedily the same held-out prompts with the same model, one
forward pass over the padded context per new token; the peer calls ``model.predict`` for each token,
as a first attempt would. Each side gets one warm-up pass (tracing is not timed), then the best of
REPEATS runs. "same text" is the share of prompts where both produced the same tokens.
"""
import inspect
import time

import numpy as np

import mlsec_lessons

mlsec_lessons.quiet()
from mlsec_lessons.llm import corpus  # noqa: E402
from mlsec_lessons.llm.generate import generate, generate_batch, trace_count  # noqa: E402
from mlsec_lessons.llm.model import train_assistant  # noqa: E402

REPEATS = 3
N_PROMPTS = 20
MAX_NEW = 32
KINDS = ("benign", "secret_request", "repeat", "document", "calculator", "email")


def uncompiled_loop(model, vocab, prompt, logits, max_new_tokens=MAX_NEW):
    """Greedy decoding the plain way: ``logits(model, ids)`` on the padded context for every new token."""
    context = model.input_shape[1]
    ids = vocab.encode_batch([prompt], context)
    start = pos = len(vocab.encode(prompt))
    end = vocab.id("<end>")
    while pos - start < max_new_tokens and pos < context:
        token = int(np.argmax(logits(model, ids)[0, pos - 1]))
        ids[0, pos] = token
        pos += 1
        if token == end:
            break
    return vocab.decode(ids[0, start:pos])


def predict_logits(model, ids):
    return model.predict(ids, verbose=0)


def eager_logits(model, ids):
    return model(ids, training=False).numpy()


def timed(fn):
    """One warm-up call, then the best of REPEATS; returns (seconds, output of the last run)."""
    fn()
    best, out = np.inf, None
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def behaviour(model, vocab, train_texts, n=100):
    """Share of n held-out prompts per kind answered exactly as the corpus says, and secret leaks."""
    rates = {}
    for kind in ("secret_request", "admin_request", "benign", "repeat", "spell", "email", "calculator", "lookup",
                 "document"):
        dialogues = corpus.held_out(kind, n, seed=0, exclude=train_texts)
        texts, _ = generate_batch(model, vocab, [d.prompt for d in dialogues], stop=("<end>", "<tool>"))
        rates[kind] = np.mean([t == d.reply for t, d in zip(texts, dialogues)])
        if kind == "secret_request":
            rates["leaked"] = np.mean([d.secret in t for t, d in zip(texts, dialogues)])
    return rates


def run():
    vocab = corpus.vocabulary()
    fitted = train_assistant(cache=False)  # the recipe of the shipped `assistant`: train_assistant's defaults
    model = fitted.model
    n_train = inspect.signature(train_assistant).parameters["n_dialogues"].default
    epochs, batch = fitted.config["epochs"], fitted.config["batch_size"]
    steps = epochs * -(-n_train // batch)
    train_texts = {d.text for d in corpus.training_dialogues(n_train, seed=0)}
    traces_before = trace_count()
    rates = behaviour(model, vocab, train_texts)

    per_kind = -(-N_PROMPTS // len(KINDS))
    prompts = [d.prompt for kind in KINDS for d in corpus.held_out(kind, per_kind, seed=0, exclude=train_texts)]
    prompts = prompts[:N_PROMPTS]
    t_ours, ours = timed(lambda: [generate(model, vocab, p, max_new_tokens=MAX_NEW) for p in prompts])
    t_batch, (batched, _) = timed(lambda: generate_batch(model, vocab, prompts, max_new_tokens=MAX_NEW))
    traces = trace_count() - traces_before
    t_predict, plain = timed(lambda: [uncompiled_loop(model, vocab, p, predict_logits) for p in prompts])
    t_eager, eager = timed(lambda: [uncompiled_loop(model, vocab, p, eager_logits) for p in prompts])
    tokens = sum(len(t.split()) for t in ours)

    def row(name, seconds, peer_name, peer_seconds, mine, theirs):
        same = np.mean([a == b for a, b in zip(mine, theirs)])
        return [name, tokens, f"{tokens / seconds:.0f}", peer_name, f"{tokens / peer_seconds:.0f}",
                f"{peer_seconds / seconds:.1f}x", f"{same:.2f}"]

    rows = [
        row("compiled step, one prompt at a time", t_ours, "`model.predict` per token", t_predict, ours, plain),
        row("compiled step, one prompt at a time", t_ours, "eager `model(ids)` per token", t_eager, ours, eager),
        row(f"compiled step, the {len(prompts)} prompts as one batch", t_batch, "`model.predict` per token",
            t_predict, batched, plain),
    ]
    rate_text = ", ".join(f"{k} {v:.2f}" for k, v in rates.items())
    return {
        "title": "Generation: the compiled step vs a plain Keras predict loop (lesson 13's assistant)",
        "columns": ["ours", "new tokens", "ours (tokens/s)", "peer", "peer (tokens/s)", "speed-up", "same text"],
        "rows": rows,
        "notes": (f"{len(prompts)} held-out prompts ({', '.join(KINDS)}), greedy, at most {MAX_NEW} new tokens, stop "
                  f"at `<end>`. Time: best of {REPEATS} runs after one warm-up run each. The compiled step was traced "
                  f"{traces} time(s) for all of this benchmark's generation (batches of 100, 20 and 1 prompts of "
                  f"every length): once per model, never per token or per shape. (Compiled with XLA, the step would "
                  f"be compiled again for every new batch size, 1.4-1.6 s each here, so it is a plain graph.) The "
                  f"model: {model.count_params():,} parameters, `train_assistant()` from an empty cache in "
                  f"{fitted.provenance.seconds:.1f} s "
                  f"({steps} steps of batch {batch}, {steps / fitted.provenance.seconds:.1f} steps/s, XLA "
                  f"compilation included). Greedy replies on 100 held-out prompts per kind equal to the corpus's "
                  f"(the share; `leaked`: replies to direct requests that contain the secret): {rate_text}."),
    }
