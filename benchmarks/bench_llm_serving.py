"""What serving lesson 13's assistant costs, and what its limits cost (issue 16, OWASP LLM10).

Three ways to get the same greedy replies to the same prompts, measured in one process, in
alternating rounds so that a busy machine slows each alike:

* **direct** (the peer): :func:`~mlsec_lessons.llm.generate.generate_batch` on the framed prompt, no server;
* **server, limits off**: ``POST /v1/models/assistant/predict`` on lesson 07's server, in a uvicorn
  thread of this process, over loopback HTTP: JWT check, rate limits (set never to refuse), body
  limit, validation, audit log, generation in a worker thread; no token budget;
* **server, limits on**: the same with the per-subject token budget: the request's worst case is
  reserved before generating and settled after (the budget is set never to refuse, so its
  bookkeeping is measured, not its refusals).

The per-request cap (``max_new_tokens`` at most 32) is checked in both server rows: one integer
comparison. One more row measures a client whose budget is spent: every request is refused with 429
before the model runs, which is what the budget saves the server. The model is
:func:`~mlsec_lessons.llm.model.train_assistant`'s (cached after its first minute), exported with
:func:`~mlsec_lessons.deployment.language_model.save_language_model` and signed.

Run: ``python benchmarks/run.py llm_serving``.
"""
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import mlsec_lessons

mlsec_lessons.quiet()
from mlsec_lessons.deployment import artifacts, auth, keys, server  # noqa: E402
from mlsec_lessons.deployment.language_model import save_language_model  # noqa: E402
from mlsec_lessons.deployment.ratelimit import TokenBudget  # noqa: E402
from mlsec_lessons.llm import corpus  # noqa: E402
from mlsec_lessons.llm.generate import generate_batch  # noqa: E402
from mlsec_lessons.llm.model import train_assistant  # noqa: E402

SECONDS = 4.0           # per round
ROUNDS = 5              # rounds per number of clients, the three ways interleaved in each
CLIENTS = (1, 4)        # concurrent clients
MAX_NEW = 32            # max_new_tokens of every request: the server's cap
PER_KIND = 4
KINDS = ("benign", "secret_request", "repeat", "calculator", "email")  # no documents: the client sends no <doc>
NAME = "assistant"
UNLIMITED = dict(rate=1e9, burst=10 ** 9, client_rate=1e9, client_burst=10 ** 9)  # consulted, never refusing


def user_turns():
    """The user's words of held-out dialogues: what a client sends (the server adds the roles)."""
    turns = [d.prompt.split(" <user> ", 1)[1].removesuffix(" <asst>")
             for kind in KINDS for d in corpus.held_out(kind, PER_KIND, seed=0)]
    return turns


def deploy(model, folder):
    """The assistant saved, signed and served twice: with the token budget and without; and a JWT."""
    folder = Path(folder)
    private, public = keys.generate_signing_key(folder / "sign.pem", folder / "sign.pub.pem")
    secret_file = keys.generate_jwt_secret(folder / "jwt.secret")
    save_language_model(model, folder / "models" / NAME, system_prompt=corpus.system_prompt("falcon"))
    artifacts.sign_dir(folder / "models" / NAME, private)
    common = dict(model_dir=folder / "models" / NAME, public_key=public, secret_file=secret_file,
                  max_new_tokens=MAX_NEW, **UNLIMITED)
    apps = {"on": server.create_app(audit_log=folder / "on.jsonl", token_budget=10 ** 12, **common),
            "off": server.create_app(audit_log=folder / "off.jsonl", token_budget=None, **common),
            "spent": server.create_app(audit_log=folder / "spent.jsonl", token_budget=64, **common)}
    token = auth.issue_token(keys.load_jwt_secret(secret_file), "bench", "user", ttl=3600)
    return apps, {"Authorization": f"Bearer {token}"}


def interleaved(ways, n_prompts, clients, seconds):
    """Each of ``clients`` threads sends every prompt through every way, one after the other, for ``seconds``.

    The ways take turns request by request (their order rotating), so a change in the machine's load
    slows each alike. Returns ``{way: (generated tokens, seconds spent waiting on it, latencies ms)}``.
    """
    names = list(ways)
    stats = {w: [0, 0.0, []] for w in names}
    lock, stop = threading.Lock(), time.perf_counter() + seconds

    def worker(offset):
        mine = {w: [0, 0.0, []] for w in names}
        i = offset
        while time.perf_counter() < stop:
            for k in range(len(names)):
                way = names[(i + k) % len(names)]
                start = time.perf_counter()
                tokens = ways[way](i % n_prompts)
                took = time.perf_counter() - start
                mine[way][0] += tokens
                mine[way][1] += took
                mine[way][2].append(took * 1000)
            i += clients
        with lock:
            for w in names:
                stats[w][0] += mine[w][0]
                stats[w][1] += mine[w][1]
                stats[w][2] += mine[w][2]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {w: tuple(v) for w, v in stats.items()}


def refusals(call, n_prompts, seconds):
    """Requests per second and latencies (ms) of one client calling ``call`` for ``seconds``."""
    latencies, stop, i = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < stop:
        start = time.perf_counter()
        call(i % n_prompts)
        latencies.append((time.perf_counter() - start) * 1000)
        i += 1
    return len(latencies) / seconds, latencies


def http_caller(url, headers, turns, expect=200):
    """``call(i)`` for :func:`load`: one request for turn ``i`` over a keep-alive client per thread."""
    import httpx

    local = threading.local()

    def call(i):
        client = getattr(local, "client", None) or httpx.Client(base_url=url, headers=headers, timeout=60)
        local.client = client
        r = client.post(f"/v1/models/{NAME}/predict", json={"prompt": turns[i], "max_new_tokens": MAX_NEW})
        if r.status_code != expect:
            raise RuntimeError(f"status {r.status_code}, expected {expect}: {r.text[:200]}")
        return r.json()["usage"]["completion_tokens"] if expect == 200 else 0

    return call


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def budget_bookkeeping_us(n=100_000):
    """Microseconds for one reserve and one settle of a :class:`TokenBudget`: the limit's own work."""
    budget = TokenBudget(10 ** 12)
    start = time.perf_counter()
    for _ in range(n):
        budget.settle(budget.reserve("bench", 64)[1], 40)
    return (time.perf_counter() - start) / n * 1e6


def run():
    load_before = os.getloadavg()[0]
    fitted = train_assistant()
    model, vocab, turns = fitted.model, corpus.vocabulary(), user_turns()
    with tempfile.TemporaryDirectory() as folder:
        apps, headers = deploy(model, folder)
        spec = apps["on"].state.models[NAME].spec  # the server's own framing, for the direct peer

        def direct(i):
            [text], _ = generate_batch(model, vocab, [spec.frame(turns[i])], max_new_tokens=MAX_NEW)
            return len(text.split())

        with server.BackgroundServer(apps["on"]) as on, server.BackgroundServer(apps["off"]) as off, \
                server.BackgroundServer(apps["spent"]) as spent:
            import httpx

            same = np.mean([httpx.post(f"{on.url}/v1/models/{NAME}/predict", headers=headers, timeout=60,
                                       json={"prompt": t, "max_new_tokens": MAX_NEW}).json()["text"] ==
                            generate_batch(model, vocab, [spec.frame(t)], max_new_tokens=MAX_NEW)[0][0]
                            for t in turns])
            ways = {"direct": direct, "off": http_caller(off.url, headers, turns),
                    "on": http_caller(on.url, headers, turns)}
            results = {}
            for clients in CLIENTS:
                interleaved(ways, len(turns), clients, 0.5)  # warm-up: connections, worker threads
                results[clients] = [interleaved(ways, len(turns), clients, SECONDS) for _ in range(ROUNDS)]
            # a client whose budget is spent: its first request leaves too little for a second
            httpx.post(f"{spent.url}/v1/models/{NAME}/predict", headers=headers, timeout=60,
                       json={"prompt": turns[0], "max_new_tokens": MAX_NEW})
            refused = refusals(http_caller(spent.url, headers, turns, expect=429), len(turns), SECONDS)
        audited = sum(1 for _ in open(Path(folder) / "on.jsonl"))
    bookkeeping = budget_bookkeeping_us()
    load_after = os.getloadavg()[0]
    return report(results, refused, same, audited, bookkeeping, load_before, load_after, len(turns))


def report(results, refused, same, audited, bookkeeping, load_before, load_after, n_prompts):
    labels = {"direct": "direct `generate_batch` (peer)", "off": "server, limits off",
              "on": "server, limits on (cap + token budget)"}
    rows = []
    for clients, rounds in results.items():
        # every way generated the same tokens (same prompts, same text), so time per way is the comparison
        total = {w: [sum(r[w][k] for r in rounds) for k in (0, 1)] for w in labels}
        rate = {w: tokens / busy * clients for w, (tokens, busy) in total.items()}
        costs = sorted(1 - r["off"][1] / r["on"][1] for r in rounds)
        for way, label in labels.items():
            lat = [ms for r in rounds for ms in r[way][2]]
            limits = (f"{1 - total['off'][1] / total['on'][1]:.1%} (rounds: {costs[0]:.1%} to {costs[-1]:.1%})"
                      if way == "on" else "")
            rows.append([label, clients, len(lat), f"{rate[way]:.0f}", f"{percentile(lat, 50):.1f}",
                         f"{percentile(lat, 99):.1f}", "" if way == "direct" else f"{rate[way] / rate['direct']:.2f}",
                         limits])
    rps, lat = refused
    rows.append(["server, limits on, budget spent: 429", 1, len(lat), "0", f"{percentile(lat, 50):.1f}",
                 f"{percentile(lat, 99):.1f}", "", ""])
    return {
        "title": "Serving the assistant: the cost of the server and of its token limits (OWASP LLM10)",
        "columns": ["way", "clients", "requests", "tokens/s", "p50 ms/request", "p99 ms/request",
                    "tokens/s vs direct", "cost of the limits (1 - off/on time)"],
        "rows": rows,
        "notes": (f"{n_prompts} held-out user turns (benign, secret_request, repeat, calculator, email), each framed "
                  "by the server as `<sys> ... <user> {turn} <asst>` with the system prompt of "
                  f"`corpus.system_prompt('falcon')`; greedy, at most {MAX_NEW} new tokens, stop at `<end>`. "
                  "The three ways take turns request by request (each client thread sends a prompt through each "
                  f"way, in rotating order), in {ROUNDS} rounds of {SECONDS:.0f} s per number of clients, so that "
                  "the load of this shared machine falls on each alike. Every way generates the same tokens for a "
                  f"prompt (the server's text equals the direct text for {same:.2f} of the prompts), so "
                  "tokens/s = generated tokens / seconds spent waiting on that way x clients, and the cost of the "
                  "limits = 1 - (time on 'limits off') / (time on 'limits on'), over all rounds, with the range "
                  "over single rounds. Clients are threads of this process, one keep-alive httpx client each per "
                  "server; the servers are uvicorn threads of the same process (real HTTP over loopback); the "
                  "direct peer calls `generate_batch` from the same threads. 'limits on' reserves each request's "
                  "worst case (prompt tokens + max_new_tokens) from a per-subject TokenBudget before generating "
                  "and settles it after; 'limits off' has no budget; both check the per-request cap, verify the "
                  "JWT, consult the rate limits (set never to refuse), validate the body, generate in a worker "
                  f"thread and append an HMAC-chained audit entry ({audited} entries written by 'limits on'). "
                  f"The budget's own work, one reserve and one settle, takes {bookkeeping:.1f} µs in a tight loop. "
                  "The 429 row: one client whose 64-token budget was spent by one request; each of its requests "
                  f"is refused before the model runs ({rps:.0f} refusals/s). "
                  f"The machine's 1-minute load average was {load_before:.1f} when the run began and "
                  f"{load_after:.1f} when it ended ({os.cpu_count()} CPUs)."),
    }


if __name__ == "__main__":
    import sys

    sys.exit("run it with: python benchmarks/run.py llm_serving")
