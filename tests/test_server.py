"""The model server over real HTTP: the JWT negative matrix, roles and scopes, rate limits, body
limits, input validation and security headers, each against a live uvicorn on a free port.

``make_deployment`` is shared with the other server test files (test_server_audit.py,
test_server_fuzz.py, test_cli_deploy.py): a small signed model, keys and a secret in a tmp folder.
"""
import base64
import dataclasses
import json
import math
import ssl
import time
import types
import uuid

import httpx
import jwt
import numpy as np
import pytest

from mlsec_lessons.deployment import artifacts, auth, keys, server, tls
from mlsec_lessons.deployment.audit import verify_log
from mlsec_lessons.deployment.headers import SECURITY_HEADERS
from mlsec_lessons.deployment.ratelimit import RateLimiter, TokenBucket
from mlsec_lessons.deployment.validation import ValidationError, validate_instances
from mlsec_lessons.errors import InvalidParameterError, MLSecError, SecurityError

MODEL = "digits"


def make_deployment(folder):
    """A signed (untrained, seeded) small CNN for 8x8x1 inputs in [0, 1], its keys, and a JWT secret."""
    import keras

    from mlsec_lessons import models

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    private, public = keys.generate_signing_key(folder / "sign.pem", folder / "sign.pub.pem")
    model_dir = folder / "models" / MODEL
    artifacts.save_keras_model(models.build("small_cnn", (8, 8, 1), 10), model_dir, input_range=(0.0, 1.0))
    manifest = artifacts.sign_dir(model_dir, private)
    secret_file = keys.generate_jwt_secret(folder / "jwt.secret")
    return types.SimpleNamespace(folder=folder, private=private, public=public, model_dir=model_dir,
                                 manifest=manifest, secret_file=secret_file,
                                 secret=keys.load_jwt_secret(secret_file), audit=folder / "audit.jsonl")


def app_kwargs(d, **overrides):
    """create_app arguments for deployment ``d``."""
    return {"model_dir": d.model_dir, "secret_file": d.secret_file, "public_key": d.public, "audit_log": d.audit,
            **overrides}


def digits_like(n, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).round(3).tolist()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("deploy"))


@pytest.fixture(scope="module")
def live(deployment):
    with server.BackgroundServer(**app_kwargs(deployment, rate=5.0, burst=5, max_body_bytes=20_000,
                                              max_batch=16)) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            yield types.SimpleNamespace(url=srv.url, client=client, app=srv.app, d=deployment)


def token(d, role="user", **kw):
    """A valid token for a fresh subject (so tests never share a rate-limit bucket)."""
    return auth.issue_token(d.secret, kw.pop("sub", f"t-{uuid.uuid4().hex[:8]}"), role, **kw)


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def predict(live, headers, body=None, name=MODEL, **kw):
    body = {"instances": digits_like(2)} if body is None else body
    return live.client.post(f"/v1/models/{name}/predict", json=body, headers=headers, **kw)


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def claims(**changes):
    now = int(time.time())
    base = {"sub": "eve", "role": "user", "aud": auth.AUDIENCE, "iss": auth.ISSUER, "iat": now, "exp": now + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# ------------------------------------------------------------------ allowed requests

def test_healthz_needs_no_token(live):
    r = live.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_predict_returns_labels_of_the_signed_model(live):
    x = digits_like(3)
    r = predict(live, bearer(token(live.d)), {"instances": x})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_sha256"] == live.d.manifest["files"]["model.keras"]
    # the server's answer is the model's own argmax: load it independently and compare
    model, _ = artifacts.load_verified_model(live.d.model_dir, live.d.public)
    expected = np.argmax(model.predict(np.asarray(x, np.float32), verbose=0), axis=1).tolist()
    assert body["predictions"] == expected


def test_models_listing_respects_scope(live):
    everything = live.client.get("/v1/models", headers=bearer(token(live.d))).json()["models"]
    assert [m["name"] for m in everything] == [MODEL]
    assert everything[0]["input"] == {"shape": [8, 8, 1], "min": 0.0, "max": 1.0}
    scoped = live.client.get("/v1/models", headers=bearer(token(live.d, models=["other"]))).json()
    assert scoped == {"models": []}


def test_admin_reload_reverifies_and_keeps_the_hash(live):
    r = live.client.post(f"/v1/models/{MODEL}/reload", headers=bearer(token(live.d, "admin")))
    assert r.status_code == 200, r.text
    assert r.json() == {"reloaded": MODEL, "model_sha256": live.d.manifest["files"]["model.keras"]}


def test_token_expired_within_leeway_is_accepted(live):
    tok = token(live.d, ttl=60, now=time.time() - 60 - auth.LEEWAY_S / 2)  # exp 5 s ago, leeway 10 s
    assert predict(live, bearer(tok)).status_code == 200


# ------------------------------------------------------------------ the JWT negative matrix: 401

OTHER_SECRET = b"x" * 32


def _unsigned(payload):
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def _without(claim):
    return lambda d: jwt.encode(claims(**{claim: None}), d.secret, algorithm="HS256")


NEGATIVE = {
    "missing": (lambda d: None, "missing token"),
    "not bearer": (lambda d: "Basic " + base64.b64encode(b"admin:admin").decode(), "malformed Authorization"),
    "malformed": (lambda d: "Bearer not.a.jwt", "malformed token"),
    "not ascii": (lambda d: b"Bearer \xe9\xe9\xe9", "malformed token"),
    "bad signature": (lambda d: jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"), "bad signature"),
    "signature stripped": (lambda d: jwt.encode(claims(), d.secret, algorithm="HS256").rsplit(".", 1)[0] + ".",
                           None),
    "alg none": (lambda d: _unsigned(claims(role="admin")), "algorithm not allowed"),
    "alg HS512": (lambda d: jwt.encode(claims(), d.secret, algorithm="HS512"), "algorithm not allowed"),
    "expired": (lambda d: auth.issue_token(d.secret, "eve", "user", ttl=60, now=time.time() - 3600),
                "token expired"),
    "issued in the future": (lambda d: auth.issue_token(d.secret, "eve", "user", now=time.time() + 3600),
                             "issued in the future"),
    "wrong aud": (lambda d: auth.issue_token(d.secret, "eve", "user", aud="another-service"), "wrong audience"),
    "wrong iss": (lambda d: auth.issue_token(d.secret, "eve", "user", iss="mallory"), "wrong issuer"),
    "unknown role": (lambda d: jwt.encode(claims(role="root"), d.secret, algorithm="HS256"), "invalid role"),
    "models not a list": (lambda d: jwt.encode(claims(models="digits"), d.secret, algorithm="HS256"),
                          "invalid models"),
    "valid for ten years": (lambda d: auth.issue_token(d.secret, "eve", "user", ttl=10 * 365 * 86400),
                            "over the maximum of 86400 s"),
    "empty subject": (lambda d: jwt.encode(claims(sub=""), d.secret, algorithm="HS256"), "invalid sub"),
    "blank subject": (lambda d: jwt.encode(claims(sub="   "), d.secret, algorithm="HS256"), "invalid sub"),
    **{f"missing {c}": (_without(c), f"missing claim '{c}'") for c in auth.REQUIRED_CLAIMS},
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_jwt_negative_matrix_gives_401_with_a_reason_and_no_secret(live, case):
    make, reason = NEGATIVE[case]
    value = make(live.d)
    headers = {} if value is None else {"Authorization": value if " " in str(value) else f"Bearer {value}"}
    for r in (predict(live, headers), live.client.get("/v1/models", headers=headers)):
        assert r.status_code == 401, (case, r.text)
        detail = r.json()["detail"]
        assert reason is None or reason in detail, (case, detail)
        assert live.d.secret.decode() not in r.text and "Traceback" not in r.text
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_eddsa_token_is_refused_by_an_hs256_server(live, tmp_path):
    private, _ = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    tok = auth.issue_token(private.read_bytes(), "eve", "admin", algorithm="EdDSA")
    r = predict(live, bearer(tok))
    assert r.status_code == 401 and r.json()["detail"] == "algorithm not allowed"


def test_an_eddsa_server_accepts_eddsa_tokens_only(deployment, tmp_path):
    private, public = keys.generate_signing_key(tmp_path / "jwt.pem", tmp_path / "jwt.pub.pem")
    with server.BackgroundServer(**app_kwargs(deployment, jwt_public_key=public)) as srv:
        def status(tok):
            return httpx.get(srv.url + "/v1/models", headers=bearer(tok)).status_code

        assert status(auth.issue_token(private.read_bytes(), "svc", "user", algorithm="EdDSA")) == 200
        assert status(auth.issue_token(deployment.secret, "svc", "user")) == 401  # HS256: not accepted here
        # algorithm confusion: an HS256 token whose "secret" is the server's (public) verification key
        from cryptography.hazmat.primitives import serialization

        raw = keys.load_public_key(public).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert status(jwt.encode(claims(), raw, algorithm="HS256")) == 401


# ------------------------------------------------------------------ authorisation: 403

@pytest.mark.parametrize("role, models, path, why", [
    ("user", None, f"/v1/models/{MODEL}/reload", "needs 'admin'"),
    ("user", ["other"], f"/v1/models/{MODEL}/predict", "not scoped"),
    ("admin", ["other"], f"/v1/models/{MODEL}/reload", "not scoped"),
    ("admin", ["other"], f"/v1/models/{MODEL}/predict", "not scoped"),
])
def test_role_and_model_scope_give_403(live, role, models, path, why):
    r = live.client.post(path, json={"instances": digits_like(1)}, headers=bearer(token(live.d, role, models=models)))
    assert r.status_code == 403 and why in r.json()["detail"], r.text


def test_scope_that_names_the_model_is_allowed(live):
    assert predict(live, bearer(token(live.d, models=[MODEL, "other"]))).status_code == 200


def test_unknown_model_is_404_after_authorisation(live):
    assert predict(live, bearer(token(live.d)), name="nope").status_code == 404
    assert predict(live, {}, name="nope").status_code == 401  # no token: nothing is revealed


# ------------------------------------------------------------------ rate limit: 429

def test_burst_over_the_limit_gets_429_with_retry_after_then_recovers(live):
    headers = bearer(token(live.d))  # server: 5 requests/s, bursts of 5
    codes = [live.client.get("/v1/models", headers=headers) for _ in range(8)]
    statuses = [r.status_code for r in codes]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:], statuses
    limited = next(r for r in codes if r.status_code == 429)
    wait = int(limited.headers["retry-after"])
    assert wait >= 1 and "rate limit" in limited.json()["detail"]
    other = live.client.get("/v1/models", headers=bearer(token(live.d)))  # buckets are per subject
    assert other.status_code == 200
    time.sleep(wait)
    assert live.client.get("/v1/models", headers=headers).status_code == 200


# ------------------------------------------------------------------ body size: 413, content type: 415

def test_oversized_body_is_413_before_parsing(live):
    huge = b'{"instances": [' + b"0," * 20_000 + b"0]}"
    headers = {**bearer(token(live.d)), "content-type": "application/json"}
    r = live.client.post(f"/v1/models/{MODEL}/predict", content=huge, headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the server must count the bytes as they arrive
        for _ in range(100):
            yield b" " * 1000

    r = live.client.post(f"/v1/models/{MODEL}/predict", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text


def test_non_json_content_type_is_415(live):
    r = live.client.post(f"/v1/models/{MODEL}/predict", content=json.dumps({"instances": digits_like(1)}),
                         headers={**bearer(token(live.d)), "content-type": "text/plain"})
    assert r.status_code == 415


# ------------------------------------------------------------------ input validation: 422

def _one(value, where=(0, 0, 0)):
    x = digits_like(1)
    x[0][where[0]][where[1]][where[2]] = value
    return x


INVALID = {
    "not an object": ([1, 2], "JSON object"),
    "no instances": ({"inputs": []}, "unknown field"),
    "empty": ({"instances": []}, "non-empty"),
    "too many": ({"instances": digits_like(17)}, "at most 16"),
    "wrong shape": ({"instances": [[[[0.5]] * 8] * 7]}, "instances[0] has 7 elements; expected 8"),
    "flat": ({"instances": [[0.5] * 64]}, "expected 8"),
    "string": ({"instances": _one("0.5")}, "is str; expected a number"),
    "bool": ({"instances": _one(True)}, "is bool; expected a number"),
    "null": ({"instances": _one(None)}, "is null; expected a number"),
    "above range": ({"instances": _one(1.5, (0, 3, 0))}, "instances[0][0][3][0] is 1.5; values must be in [0, 1]"),
    "below range": ({"instances": _one(-0.01)}, "values must be in [0, 1]"),
    "huge int": ({"instances": _one(10 ** 400)}, "too large"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_input_is_422_with_a_message_that_says_what(live, case):
    body, message = INVALID[case]
    r = predict(live, bearer(token(live.d)), body)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"], r.json()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_values_are_422(live, literal):
    body = json.dumps({"instances": _one(0.5)}).replace("0.5", literal, 1)
    r = live.client.post(f"/v1/models/{MODEL}/predict", content=body,
                         headers={**bearer(token(live.d)), "content-type": "application/json"})
    assert r.status_code == 422 and "must be finite" in r.json()["detail"], r.text


@pytest.mark.parametrize("raw", [b"", b"{", b'{"instances": [[[[0.1]]]', b"\xff\xfe\x00", b"[" * 10_000])
def test_unparseable_bodies_are_422(live, raw):
    r = live.client.post(f"/v1/models/{MODEL}/predict", content=raw,
                         headers={**bearer(token(live.d)), "content-type": "application/json"})
    assert r.status_code == 422, r.text


# ------------------------------------------------------------------ headers

def test_every_response_has_the_security_headers_and_no_server_header(live):
    responses = [live.client.get("/healthz"), live.client.get("/nope"), predict(live, {}),
                 predict(live, bearer(token(live.d))), predict(live, bearer(token(live.d)), {"instances": 1}),
                 live.client.delete("/healthz")]
    assert [r.status_code for r in responses] == [200, 404, 401, 200, 422, 405]
    for r in responses:
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (r.status_code, name)
        assert "server" not in r.headers
        assert r.headers.get("x-xss-protection", "0") == "0"


# ------------------------------------------------------------------ TLS

def test_tls_with_a_self_signed_certificate(deployment, tmp_path):
    cert, key = tls.self_signed_cert(tmp_path / "cert.pem", tmp_path / "key.pem")
    with server.BackgroundServer(ssl_certfile=cert, ssl_keyfile=key, **app_kwargs(deployment)) as srv:
        assert srv.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        r = httpx.get(srv.url + "/healthz", verify=trusted)
        assert r.status_code == 200 and "max-age" in r.headers["strict-transport-security"]
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate refuses it
            httpx.get(srv.url + "/healthz")


def test_background_server_stops_its_thread_and_frees_its_port(deployment):
    import threading

    srv = server.BackgroundServer(**app_kwargs(deployment)).start()
    thread, url = srv._thread, srv.url
    assert httpx.get(url + "/healthz").status_code == 200
    srv.stop()
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz")
    assert not any(t.name == thread.name for t in threading.enumerate())


# ------------------------------------------------------------------ what one client can make the server hold

def raw_request(url, head, body_parts=(), pause_s=0.0, timeout=10.0):
    """Send ``head`` (request line and headers) and ``body_parts`` over a plain socket, ``pause_s``
    apart; return ``(response bytes, bytes sent)``. The response is b"" if the server cut us off."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    sent, answer = 0, b""
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
        try:
            for part in (head, *body_parts):
                sock.sendall(part)
                sent += len(part)
                time.sleep(pause_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what we measure
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def entries(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_oversized_headers_get_431_and_the_connection_closed_before_they_are_buffered(deployment, tmp_path):
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=tmp_path / "a.jsonl",
                                              max_header_bytes=16384)) as srv:
        ok, _ = raw_request(srv.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8000 +
                            b"\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200"), ok[:100]
        # 64 MB of one header, in 64 KiB writes: the server must stop reading long before the end
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
        answer, sent = raw_request(srv.url, head, [b"a" * 65536] * 1024)
        assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer[:100]
        assert sent < 32 * 2 ** 20, f"the server accepted {sent} bytes of headers"
        assert httpx.get(srv.url + "/healthz").status_code == 200  # and it still answers


def test_connections_over_the_limit_get_503_until_some_close(deployment, tmp_path):
    import socket
    from urllib.parse import urlsplit

    with server.BackgroundServer(**app_kwargs(deployment, audit_log=tmp_path / "a.jsonl", max_connections=3)) as srv:
        where = urlsplit(srv.url)
        idle = [socket.create_connection((where.hostname, where.port)) for _ in range(3)]
        time.sleep(0.2)
        assert httpx.get(srv.url + "/healthz").status_code == 503
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(srv.url + "/healthz").status_code == 200


def test_a_client_that_disconnects_mid_body_is_logged_as_that_without_a_traceback(deployment, tmp_path, caplog):
    log = tmp_path / "a.jsonl"
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log)) as srv:
        head = (f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {token(deployment, sub='leaver')}\r\nContent-Length: 1000\r\n\r\n").encode()
        raw_request(srv.url, head, [b'{"instances": [[['], timeout=0.5)  # closes after 0.5 s of silence
        deadline = time.monotonic() + 5
        while not log.exists() or not entries(log):
            assert time.monotonic() < deadline, "no audit entry"
            time.sleep(0.05)
    [entry] = entries(log)
    assert (entry["status"], entry["decision"], entry["event"], entry["sub"]) == (
        499, "abandoned", "client-disconnect", "leaver"), entry
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]


def test_requests_before_authentication_are_limited_per_address_and_a_flood_is_not_all_logged(deployment, tmp_path):
    log = tmp_path / "a.jsonl"
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log, client_rate=1.0, client_burst=5)) as srv, \
            httpx.Client(base_url=srv.url) as client:
        answers = [client.get("/v1/models") for _ in range(200)]  # no token
        limiter = srv.app.state.client_limiter
    statuses = [r.status_code for r in answers]
    assert statuses[:5] == [401] * 5 and statuses.count(429) >= 190, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and "too many requests" in refused.json()["detail"]
    assert refused.headers["x-content-type-options"] == "nosniff"
    written = entries(log)
    assert len(written) == statuses.count(401) + 1, [e["status"] for e in written]  # one 429 recorded
    assert limiter.unrecorded == statuses.count(429) - 1
    assert verify_log(log, server.audit_key(secret_file=deployment.secret_file)).ok


def test_a_slow_body_is_cut_off_with_408(deployment, tmp_path):
    log = tmp_path / "a.jsonl"
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log, body_timeout_s=1.0)) as srv:
        head = (f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {token(deployment)}\r\nContent-Length: 100\r\n\r\n").encode()
        started = time.monotonic()
        answer, sent = raw_request(srv.url, head, [b" "] * 12, pause_s=0.25)  # 4 bytes a second
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in answer.lower() and b"not received within 1 s" in answer
    assert sent < len(head) + 12 or took < 4.5
    assert [(e["status"], e["decision"]) for e in entries(log)] == [(408, "deny")]


def test_slow_or_silent_headers_are_cut_off_with_408_and_free_their_slot(deployment, tmp_path):
    # Otherwise max_connections clients that send headers a byte at a time, or nothing, lock everyone out.
    kwargs = app_kwargs(deployment, audit_log=tmp_path / "a.jsonl", header_timeout_s=1.0, max_connections=2)
    with server.BackgroundServer(**kwargs) as srv:
        started = time.monotonic()
        silent, _ = raw_request(srv.url, b"", pause_s=0.0)  # connects, sends nothing
        took = time.monotonic() - started
        head = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token(deployment)}\r\n".encode()
        started = time.monotonic()
        slow, sent = raw_request(srv.url, head[:1], [bytes([b]) for b in head[1:12]], pause_s=0.5)  # 5.5 s in all
        slow_took = time.monotonic() - started
        ok = httpx.get(f"{srv.url}/v1/models", headers={"Authorization": f"Bearer {token(deployment)}"}, timeout=10)
    assert silent.startswith(b"HTTP/1.1 408") and b"connection: close" in silent.lower(), silent[:200]
    assert b"x-content-type-options: nosniff" in silent.lower()
    assert 0.9 <= took < 5, took
    assert slow.startswith(b"HTTP/1.1 408") and (sent < 12 or slow_took < 5), (slow[:200], sent, slow_took)
    assert ok.status_code == 200  # the slots came back


# ------------------------------------------------------------------ the pieces, against oracles

def test_token_bucket_matches_the_closed_form_bound():
    # Over T seconds a bucket allows at most burst + rate * T requests; hammering it reaches that bound.
    for rate, burst, horizon in [(5.0, 3, 10.0), (0.5, 1, 20.0), (40.0, 80, 2.0)]:
        now = [0.0]
        bucket = TokenBucket(rate, burst, clock=lambda now=now: now[0])
        allowed = 0
        for step in range(int(horizon * 1000) + 1):  # one request every millisecond
            now[0] = step / 1000
            allowed += bucket.take() == 0.0
        assert allowed == burst + math.floor(rate * horizon + 1e-9), (rate, burst, allowed)


def test_retry_after_is_exactly_when_the_next_token_arrives():
    now = [0.0]
    bucket = TokenBucket(rate=4.0, burst=2, clock=lambda: now[0])
    assert bucket.take() == bucket.take() == 0.0
    wait = bucket.take()
    assert wait == pytest.approx(0.25)
    now[0] = wait - 1e-6
    assert bucket.take() > 0
    now[0] = wait + 1e-9
    assert bucket.take() == 0.0


def test_rate_limiter_evicts_least_recently_used_and_rejects_bad_arguments():
    limiter = RateLimiter(rate=1, burst=1, max_keys=2, clock=lambda: 0.0)
    assert [limiter.check(k) for k in "aab"] == [0.0, 1.0, 0.0]
    limiter.check("c")  # evicts "a"
    assert limiter.check("a") == 0.0
    for bad in (dict(rate=0, burst=1), dict(rate=1, burst=0), dict(rate=float("inf"), burst=1),
                dict(rate=1, burst=1.5), dict(rate=1, burst=1, max_keys=0)):
        with pytest.raises((ValueError, TypeError)):
            RateLimiter(**bad)


def test_validation_agrees_with_numpy_on_valid_input():
    x = np.random.default_rng(1).random((5, 8, 8, 1))
    got = validate_instances({"instances": x.tolist()}, (8, 8, 1), 0.0, 1.0)
    np.testing.assert_array_equal(got, x.astype(np.float32))
    with pytest.raises(ValidationError, match=r"instances\[2\]\[4\]\[1\]\[0\] is -0.5"):
        x[2, 4, 1, 0] = -0.5
        validate_instances({"instances": x.tolist()}, (8, 8, 1), 0.0, 1.0)


def test_create_app_rejects_bad_settings(deployment, tmp_path):
    short = tmp_path / "short.secret"
    short.write_text("your-secret-key")
    with pytest.raises(ValueError, match="at least 32"):
        server.create_app(**app_kwargs(deployment, secret_file=short))
    with pytest.raises(ValueError, match="max_body_bytes"):
        server.create_app(**app_kwargs(deployment, max_body_bytes=0))
    for bad in (0, -1, True, "1d"):  # a wrong type is a TypeError, a wrong value a ValueError
        with pytest.raises((ValueError, TypeError), match="max_token_lifetime"):
            server.create_app(**app_kwargs(deployment, max_token_lifetime=bad))
    with pytest.raises(ValueError, match="model_dir"):
        server.create_app(**app_kwargs(deployment, model_dir=tmp_path / "missing"))
    for name, bad in (("client_rate", 0), ("client_burst", 0), ("body_timeout_s", -1), ("header_timeout_s", 0),
                      ("max_header_bytes", 0), ("max_connections", 0)):
        with pytest.raises(InvalidParameterError, match=name):
            server.create_app(**app_kwargs(deployment, **{name: bad}))


def test_create_app_needs_a_model_and_never_trains_one(deployment, monkeypatch):
    from mlsec_lessons import course, models

    monkeypatch.setattr(models, "train", lambda *a, **k: pytest.fail("create_app trained a model"))
    monkeypatch.setattr(course, "demo_model_dir", lambda *a, **k: pytest.fail("create_app used the demo model"))
    kwargs = app_kwargs(deployment)
    del kwargs["model_dir"]
    with pytest.raises(InvalidParameterError, match="model_dir is required"):
        server.create_app(**kwargs)
    with pytest.raises(InvalidParameterError, match="model_dir is required"):
        server.BackgroundServer(**kwargs)


def test_one_settings_object_configures_the_server(deployment):
    settings = server.ServerSettings(**app_kwargs(deployment, rate=3.0, burst=3, max_header_bytes=4096))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.rate = 1e9
    app = server.create_app(settings=settings)
    assert app.state.settings is settings and app.state.limiter.rate == 3.0
    assert server.create_app(settings=settings, rate=7.0).state.limiter.rate == 7.0  # a checked copy
    assert server.uvicorn_options(app)["http"].max_header_bytes == 4096
    with pytest.raises(InvalidParameterError, match="settings must be a ServerSettings"):
        server.create_app(settings=dict(app_kwargs(deployment)))


def test_integrity_errors_are_security_errors_that_except_value_error_does_not_swallow():
    assert issubclass(artifacts.IntegrityError, SecurityError) and not issubclass(artifacts.IntegrityError, ValueError)
    assert issubclass(auth.AuthError, SecurityError)
    for kind in (ValidationError, server.RateLimited, server.ModelRefused, server.ServerStartError):
        assert issubclass(kind, MLSecError), kind
