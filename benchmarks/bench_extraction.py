"""What a model thief pays for going through the API: queries per second over HTTP against calling the
served model in-process (the peer), measured in the same run, and what PRADA adds on the server.

The model is lesson 07's signed demo CNN, served with class probabilities (lesson 08's setting). The
peer calls ``ServedModel.predict_with_scores`` directly on the same batches. The thief's client is
``theft.HttpVictim``: JSON over loopback, a JWT checked on every request, input validation, the
audit log. PRADA runs inside the server as a monitor, on every query. Each setting sends the same
2000 uniform-noise images; the best of ``REPEATS`` runs is kept.

Run: ``python benchmarks/run.py extraction``.
"""
import tempfile
import time
from pathlib import Path

REPEATS = 3
N = 2000


def _best(fn):
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run():
    import mlsec_lessons

    mlsec_lessons.quiet()
    from mlsec_lessons import course
    from mlsec_lessons.deployment import auth, keys, server
    from mlsec_lessons.theft import PRADA, HttpVictim, steal, uniform_noise

    work = Path(tempfile.mkdtemp(prefix="bench-extraction-"))
    demo = course.demo_model_dir()
    secret_file = keys.generate_jwt_secret(work / "jwt.secret")
    secret = keys.load_jwt_secret(secret_file)
    x = uniform_noise(N, seed=0)

    def serve(**options):
        app = server.create_app(model_dir=demo, secret_file=secret_file, audit_log=work / "audit.jsonl",
                                outputs="probabilities", rate=1e9, burst=10 ** 9, client_rate=None, **options)
        return server.BackgroundServer(app).start()

    rows = []
    srv = serve()
    served = srv.app.state.models["digits"]
    t_peer = _best(lambda: [served.predict_with_scores(x[i:i + 100]) for i in range(0, N, 100)])
    timings = [("in-process predict_with_scores, 100 per call (peer)", t_peer)]
    for batch in (100, 1):
        n = N if batch > 1 else 200  # one query per request is slow: time fewer and scale
        victim = HttpVictim(srv.url, auth.issue_token(secret, f"bench-{batch}", "user"), batch_size=batch)
        seconds = _best(lambda victim=victim, n=n: victim.predict(x[:n])) * N / n
        timings.append((f"HTTP, {batch} per request", seconds))
        victim.close()
    srv.stop()
    prada = PRADA()
    srv = serve(monitors=[prada])
    k = [0]

    def monitored():  # a fresh subject per run, so PRADA's state starts empty each time
        k[0] += 1
        with HttpVictim(srv.url, auth.issue_token(secret, f"prada-{k[0]}", "user"), batch_size=100) as v:
            v.predict(x)

    timings.append(("HTTP, 100 per request, PRADA watching", _best(monitored)))
    srv.stop()
    answers = served.predict_with_scores(x[:1000])[1]
    timings.append(("(for scale) training the thief's copy on 1000 answers", _best(lambda: steal(x[:1000], answers))))
    for name, seconds in timings:
        training = "training" in name
        rows.append([name, f"{seconds:.3f}", "" if training else f"{N / seconds:,.0f}",
                     "" if training else f"{seconds / t_peer:.1f}"])
    http = dict(timings)["HTTP, 100 per request"]
    prada_us = (dict(timings)["HTTP, 100 per request, PRADA watching"] - http) / N * 1e6
    return {
        "title": "Extraction over HTTP vs calling the model in-process",
        "columns": ["setting", f"seconds for {N} queries", "queries/s", "ratio to in-process"],
        "rows": rows,
        "notes": ("Loopback HTTP to the lesson 07/08 server (JWT, validation, audit log) returning probabilities; "
                  f"best of {REPEATS}; the one-per-request row times 200 queries and scales to {N}. PRADA adds "
                  f"about {prada_us:.0f} us per query here (a nearest-neighbour search in the client's growing set "
                  "and a Shapiro-Wilk test on every query). The last row is one fit of the thief's numpy "
                  "substitute (L-BFGS, 200 iterations), for scale."),
    }
