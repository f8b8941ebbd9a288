"""Model theft (lesson 08): the thief's substitute, extraction, PRADA, and the server options that
defend against it (probabilities, output postprocessors, a query quota, monitors), over real HTTP."""
import json

import httpx
import numpy as np
import pytest
from test_server import MODEL, app_kwargs, bearer, make_deployment

from mlsec_lessons.deployment import auth, server
from mlsec_lessons.deployment.audit import verify_log
from mlsec_lessons.deployment.ratelimit import QueryQuota
from mlsec_lessons.theft import (
    PRADA,
    HttpVictim,
    PradaStream,
    QueryRefused,
    Substitute,
    copycat,
    extraction_curve,
    fidelity,
    jacobian_augmentation,
    query,
    steal,
    uniform_noise,
)
from mlsec_lessons.theft.prada import shapiro_w
from mlsec_lessons.theft.substitute import as_targets

pytestmark = pytest.mark.usefixtures("fresh_cache")  # every copy is fitted here, in tmp_path / "cache"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("theft"))


@pytest.fixture(scope="module")
def teacher():
    """An in-process victim: a logistic regression on the 8x8 digits (fast, and its answers are known)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    raw = load_digits()
    x = (raw.images / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=2000).fit(x[:1000].reshape(1000, -1), raw.target[:1000])

    class Victim:
        queries = 0

        def predict(self, batch):
            self.queries += len(batch)
            return model.predict_proba(np.asarray(batch).reshape(len(batch), -1))

    return Victim, x, model


# ------------------------------------------------------------------ the substitute
def test_substitute_learns_soft_targets_and_not_only_their_argmax():
    rng = np.random.default_rng(0)
    x = rng.random((300, 5))
    logits = x @ rng.normal(size=(5, 3)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sub = Substitute(hidden=16, alpha=0.0, max_iter=500, seed=0).fit(x, p)
    assert np.abs(sub.predict_proba(x) - p).max() < 0.1          # the probabilities, not just the top class
    assert np.mean(sub.predict(x) == p.argmax(1)) >= 0.97
    again = Substitute(hidden=16, alpha=0.0, max_iter=500, seed=0).fit(x, p)
    assert np.array_equal(sub.decision_function(x), again.decision_function(x))   # the seed fixes the copy


def test_substitute_input_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.random((40, 2, 3)).astype(np.float64)
    sub = Substitute(hidden=8, seed=0).fit(x, rng.integers(0, 3, 40))
    classes = rng.integers(0, 3, 40)
    g_logit, g_loss = sub.logit_gradient(x, classes), sub.loss_gradient(x, classes)
    assert g_logit.shape == x.shape == g_loss.shape
    h = 1e-6
    for idx in [(0, 0, 0), (5, 1, 2), (17, 0, 1)]:
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        n = idx[0]
        numeric = (sub.decision_function(up)[n, classes[n]] - sub.decision_function(down)[n, classes[n]]) / (2 * h)
        assert numeric == pytest.approx(g_logit[idx], rel=1e-4, abs=1e-7)
        ce = lambda z, n=n: -np.log(sub.predict_proba(z)[n, classes[n]])
        assert (ce(up) - ce(down)) / (2 * h) == pytest.approx(g_loss[idx], rel=1e-4, abs=1e-7)


def test_substitute_and_targets_reject_bad_input():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="hidden"):
        Substitute(hidden=0).fit(x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="4 samples but y has 3"):
        Substitute().fit(x, [0, 1, 0])
    with pytest.raises(ValueError, match="at least one input"):
        Substitute().fit(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match="not fitted"):
        Substitute().predict(x)
    with pytest.raises(ValueError, match="out of range"):
        as_targets([0, 3], n_classes=3)
    with pytest.raises(ValueError, match="positive sum"):
        as_targets(np.zeros((2, 3)))
    rounded = as_targets(np.array([[0.3, 0.3, 0.3]]))           # rounded scores that do not sum to 1
    assert rounded.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------ extraction
def test_copycat_copies_an_in_process_victim_and_counts_queries(teacher):
    Victim, x, model = teacher
    victim = Victim()
    stolen = copycat(victim, x[1000:1500], budget=300)
    held_out = x[1500:]
    labels = model.predict(held_out.reshape(len(held_out), -1))
    assert victim.queries == stolen.queries == 300
    assert fidelity(stolen.substitute, held_out, labels) >= 0.9
    with pytest.raises(ValueError, match="budget"):
        copycat(victim, x[:10], budget=11)
    with pytest.raises(ValueError, match="use must be"):
        steal(x[:5], victim.predict(x[:5]), use="logits")


def test_scores_teach_a_data_free_thief_more_than_labels(teacher):
    Victim, x, model = teacher
    noise = uniform_noise(300, shape=(8, 8), seed=0)
    answers = Victim().predict(noise)
    labels = model.predict(x[1000:].reshape(-1, 64))
    rows = {use: extraction_curve(noise, answers, [300], x[1000:], labels, labels, use=use)[0]["fidelity"]
            for use in ("scores", "labels")}
    assert rows["scores"] >= rows["labels"] + 0.1
    with pytest.raises(ValueError, match="outside"):
        extraction_curve(noise, answers, [301], x[1000:], labels, labels)


def test_jacobian_augmentation_doubles_its_queries_each_round(teacher):
    Victim, x, _ = teacher
    victim = Victim()
    stolen = jacobian_augmentation(victim, x[:10], rounds=3)
    assert victim.queries == stolen.queries == 10 * 2 ** 3
    new = stolen.x[10:20]                                          # round 1: one signed step from each seed
    step, unclipped = np.abs(new - stolen.x[:10]), (new > 1e-6) & (new < 1 - 1e-6)
    assert step.max() <= 0.1 + 1e-6 and np.allclose(step[unclipped], 0.1, atol=1e-6) and unclipped.sum() > 50
    assert stolen.x.min() >= 0.0 and stolen.x.max() <= 1.0


def test_query_keeps_the_answers_received_before_a_refusal():
    class Stingy:
        def predict(self, x):
            raise QueryRefused("429: quota", 429, np.eye(3)[[0, 1]])

    x_kept, answers = query(Stingy(), np.zeros((5, 2)))
    assert len(x_kept) == len(answers) == 2


# ------------------------------------------------------------------ PRADA
def test_prada_flags_synthetic_steps_and_not_independent_draws():
    rng = np.random.default_rng(0)
    natural = PRADA(delta=0.95)
    natural.observe("alice", rng.normal(size=(400, 16)), rng.integers(0, 4, 400))
    assert not natural.flagged("alice") and natural.w("alice") > 0.95
    seeds = rng.random((20, 16))
    steps = np.concatenate([seeds, seeds[rng.integers(0, 20, 300)] + 0.1 * np.sign(rng.normal(size=(300, 16)))])
    thief = PRADA(delta=0.95)
    alerts = thief.observe("eve", steps[:150], np.zeros(150, int)) + thief.observe("eve", steps[150:], np.zeros(170, int))
    assert thief.flagged("eve") and len(alerts) == 1 and alerts[0]["sub"] == "eve"    # one alert, not one per query
    assert alerts[0]["queries"] == thief.streams_["eve"].first_flag >= 101
    assert thief.w("nobody") is None and not thief.flagged("nobody")


def test_prada_stream_keeps_a_growing_set_per_class():
    stream = PradaStream(min_distances=3)
    stream.update(np.zeros(2), 0)
    stream.update(np.zeros(2), 1)                                 # the first query of a class has no distance
    assert stream.distances == [] and stream.w is None
    stream.update(np.array([3.0, 4.0]), 0)
    assert stream.distances == [5.0] and len(stream.growing[0]) == 2
    assert len(stream.history) == stream.queries == 3 and np.isnan(stream.history).all()


def test_shapiro_w_and_prada_arguments():
    from scipy import stats

    d = np.random.default_rng(0).normal(size=200)
    assert shapiro_w(d, outlier_std=100) == pytest.approx(stats.shapiro(d).statistic)
    assert shapiro_w(np.ones(50)) == 0.0
    for bad, error in [(dict(delta=1.5), ValueError), (dict(delta=0.0), ValueError), (dict(min_distances=2), ValueError),
                       (dict(min_distances=3.0), TypeError), (dict(outlier_std=0.0), ValueError),
                       (dict(delta="0.9"), TypeError)]:
        with pytest.raises(error, match=next(iter(bad))):
            PRADA(**bad)                                # refused when built, before any request reaches it
    assert PRADA(min_distances=3).min_distances == 3    # the boundary is allowed
    broken = PRADA()
    broken.delta = 1.5                                  # changed after construction: caught before it is used
    with pytest.raises(ValueError, match="delta"):
        broken.observe("a", np.zeros((1, 2)), [0])
    with pytest.raises(ValueError, match="2 inputs but labels has 1"):
        PRADA().observe("a", np.zeros((2, 2)), [0])


# ------------------------------------------------------------------ the server's options
def test_quota_counts_instances_in_fixed_windows():
    t = [0.0]
    quota = QueryQuota(10, period_s=100, clock=lambda: t[0])
    assert [quota.take("eve", 4) for _ in range(3)] == [0.0, 0.0, 100.0]
    assert quota.remaining("eve") == 2 and quota.take("bob", 10) == 0.0
    t[0] = 100.0
    assert quota.take("eve", 10) == 0.0
    for bad in (dict(limit=0), dict(limit=5, period_s=0)):
        with pytest.raises(ValueError):
            QueryQuota(**bad)
    with pytest.raises(TypeError, match="limit"):  # a wrong type is a TypeError (issue 15)
        QueryQuota(limit=1.5)
    with pytest.raises(ValueError, match="n must be"):
        quota.take("eve", 0)


class AlertOnSecondRequest:
    """A monitor that sees every allowed request and raises one alert."""

    def __init__(self):
        self.seen = []

    def observe(self, sub, x, labels):
        self.seen.append((sub, len(x), list(labels)))
        return [{"monitor": "test", "sub": sub, "reason": "second request"}] if len(self.seen) == 2 else []


@pytest.fixture(scope="module")
def theft_server(deployment, tmp_path_factory):
    from art.defences.postprocessor import Rounded

    log = tmp_path_factory.mktemp("theft-log") / "audit.jsonl"
    monitor = AlertOnSecondRequest()
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log, outputs="probabilities",
                                              postprocessor=Rounded(decimals=1), quota=10, rate=100.0, burst=100,
                                              monitors=[monitor])) as srv:
        yield srv, monitor, log


def test_probabilities_pass_the_postprocessor_and_monitors_write_alerts(deployment, theft_server):
    srv, monitor, log = theft_server
    x = np.random.default_rng(0).random((3, 8, 8, 1))
    tok = auth.issue_token(deployment.secret, "mon", "user")
    with httpx.Client(base_url=srv.url) as client:
        bodies = [client.post(f"/v1/models/{MODEL}/predict", json={"instances": x.tolist()}, headers=bearer(tok)).json()
                  for _ in range(2)]
    p = np.asarray(bodies[0]["probabilities"])
    assert p.shape == (3, 10) and np.allclose(p * 10, np.round(p * 10))       # rounded to one decimal
    raw_labels, _ = srv.app.state.models[MODEL].predict_with_scores(x.astype(np.float32))
    assert bodies[0]["predictions"] == raw_labels                               # labels are the model's own
    assert monitor.seen[0] == ("mon", 3, raw_labels)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    alerts = [e for e in entries if e.get("event") == "alert"]
    assert [(a["sub"], a["monitor"], a["model"]) for a in alerts] == [("mon", "test", MODEL)]
    assert verify_log(log, server.audit_key(secret_file=deployment.secret_file)).ok


def test_the_quota_refuses_with_429_and_the_client_keeps_what_it_got(deployment, theft_server):
    srv, _, _ = theft_server
    victim = HttpVictim(srv.url, auth.issue_token(deployment.secret, "quota-eve", "user"), batch_size=4)
    with pytest.raises(QueryRefused) as refused:
        victim.predict(np.zeros((12, 8, 8, 1)))
    assert refused.value.status == 429 and "quota" in str(refused.value) and len(refused.value.answers) == 8
    assert victim.queries == 8 and victim.outputs == "probabilities"
    with httpx.Client(base_url=srv.url) as client:                 # an invalid request costs no quota
        bad = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [[1.0]]},
                          headers=bearer(auth.issue_token(deployment.secret, "quota-bob", "user")))
    assert bad.status_code == 422 and srv.app.state.quota.remaining("quota-bob") == 10
    victim.close()


def test_label_only_server_is_unchanged_and_the_client_gets_one_hot_rows(deployment):
    with server.BackgroundServer(**app_kwargs(deployment, rate=100.0, burst=100)) as srv:
        with HttpVictim(srv.url, auth.issue_token(deployment.secret, "lab", "user"), batch_size=2) as victim:
            rows = victim.predict(np.zeros((3, 8, 8, 1)))
            raw = httpx.post(f"{srv.url}/v1/models/{MODEL}/predict", json={"instances": np.zeros((1, 8, 8, 1)).tolist()},
                             headers=bearer(auth.issue_token(deployment.secret, "lab2", "user"))).json()
    assert set(raw) == {"predictions", "model", "model_sha256"}
    assert rows.shape == (3, 10) and (rows.sum(1) == 1).all() and victim.requests == 2 and victim.outputs == "labels"


def test_client_waits_out_a_short_rate_limit(deployment):
    with server.BackgroundServer(**app_kwargs(deployment, rate=4.0, burst=1)) as srv:
        with HttpVictim(srv.url, auth.issue_token(deployment.secret, "slow", "user"), batch_size=1) as victim:
            victim.predict(np.zeros((3, 8, 8, 1)))
    assert victim.queries == 3 and victim.requests > 3            # some were 429, waited out and retried


def test_create_app_rejects_bad_theft_options(deployment, tmp_path):
    from art.defences.postprocessor import Rounded

    kw = app_kwargs(deployment, audit_log=tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="outputs must be"):
        server.create_app(**kw, outputs="logits")
    with pytest.raises(ValueError, match="postprocessor"):
        server.create_app(**kw, postprocessor=Rounded(decimals=1))          # needs outputs="probabilities"
    with pytest.raises(ValueError, match="quota"):
        server.create_app(**kw, quota=0)
    with pytest.raises(ValueError, match="observe"):
        server.create_app(**kw, monitors=[object()])
    with pytest.raises(ValueError, match="batch_size"):
        HttpVictim("http://127.0.0.1:1", "t", batch_size=0)


def test_steal_caches_the_copy_by_its_answers(fresh_cache):
    rng = np.random.default_rng(3)
    x, answers = rng.random((60, 4)), np.eye(3)[rng.integers(0, 3, 60)]
    first = steal(x, answers, hidden=8)
    assert len(list((fresh_cache / "substitutes").glob("*.npz"))) == 1
    again = steal(x, answers, hidden=8)                            # loaded, not fitted
    assert np.array_equal(first.decision_function(x), again.decision_function(x))
    assert again.n_features_in_ == 4 and again.n_classes_ == 3
    steal(x, answers[::-1], hidden=8)                              # other answers: another copy
    steal(x, answers, hidden=8, cache=False)                       # nothing written
    assert len(list((fresh_cache / "substitutes").glob("*.npz"))) == 2


def test_an_extraction_is_a_frozen_record_with_a_frame():
    import dataclasses

    from mlsec_lessons.theft.extraction import Extraction

    x, answers = np.zeros((6, 4)), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    stolen = Extraction(steal(x, answers, hidden=4, cache=False), x, answers)
    assert stolen.to_frame().to_dict("records") == [{"queries": 6, "classes answered": 3, "hidden units": 4}]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stolen.x = None
