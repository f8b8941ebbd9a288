"""The server and its audit log: N concurrent requests give exactly N chained entries; a tampered
model is refused, at start-up and on reload, and the refusal is logged with the reason."""
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_server import MODEL, app_kwargs, bearer, digits_like, make_deployment

from mlsec_lessons.deployment import artifacts, auth, server
from mlsec_lessons.deployment.audit import verify_log


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("audit"))


def entries(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_concurrent_requests_give_exactly_one_chained_entry_each(deployment, tmp_path):
    log = tmp_path / "audit.jsonl"
    key = server.audit_key(secret_file=deployment.secret_file)
    tokens = [auth.issue_token(deployment.secret, f"client-{i}", "user") for i in range(8)]
    # a mix of outcomes, so the log must record refusals as faithfully as successes
    kinds = ["ok", "ok", "ok", "no token", "bad input", "health", "forbidden", "unknown model"]
    n = 96

    def one(i):
        kind, headers = kinds[i % len(kinds)], bearer(tokens[i % len(tokens)])
        if kind == "health":
            return kind, client.get("/healthz").status_code
        if kind == "forbidden":
            return kind, client.post(f"/v1/models/{MODEL}/reload", headers=headers).status_code
        name = "nope" if kind == "unknown model" else MODEL
        body = {"instances": [[0.5]]} if kind == "bad input" else {"instances": digits_like(1, seed=i)}
        return kind, client.post(f"/v1/models/{name}/predict", json=body,
                                 headers={} if kind == "no token" else headers).status_code

    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log, rate=1000.0, burst=1000)) as srv:
        # httpx.Client is thread-safe; 12 threads share its pool of up to 12 connections
        with httpx.Client(base_url=srv.url, timeout=20, limits=httpx.Limits(max_connections=12)) as client, \
                ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(one, range(n)))
        # every response is back, so every entry must already be written: no waiting
        logged = entries(log)
    expected = {"ok": 200, "no token": 401, "bad input": 422, "health": 200, "forbidden": 403, "unknown model": 404}
    assert all(code == expected[kind] for kind, code in results), results
    assert len(logged) == n
    report = verify_log(log, key)
    assert report.ok and report.entries == n, report
    assert [e["seq"] for e in logged] == list(range(1, n + 1))
    by_status = {}
    for e in logged:
        by_status[e["status"]] = by_status.get(e["status"], 0) + 1
    assert by_status == {code: sum(c == code for _, c in results) for code in set(c for _, c in results)}
    allowed = [e for e in logged if e["status"] == 200 and e["path"].endswith("/predict")]
    assert all(e["decision"] == "allow" and e["sub"].startswith("client-") and len(e["input_sha256"]) == 64
               and e["latency_ms"] >= 0 for e in allowed)
    refused = [e for e in logged if e["status"] == 401]
    assert all(e["decision"] == "deny" and e["sub"] is None and e["reason"] for e in refused)


def test_the_log_detects_an_entry_edited_after_the_fact(deployment, tmp_path):
    log = tmp_path / "audit.jsonl"
    with server.BackgroundServer(**app_kwargs(deployment, audit_log=log)) as srv:
        tok = auth.issue_token(deployment.secret, "mallory", "user")
        httpx.post(f"{srv.url}/v1/models/{MODEL}/reload", headers=bearer(tok))  # 403, logged
        httpx.get(srv.url + "/healthz")
    lines = log.read_text().splitlines()
    assert '"status":403' in lines[0]
    lines[0] = lines[0].replace('"status":403', '"status":200').replace('"deny"', '"allow"')  # cover tracks
    log.write_text("\n".join(lines) + "\n")
    report = verify_log(log, server.audit_key(secret_file=deployment.secret_file))
    assert not report.ok and report.first_bad == 1


@pytest.fixture
def copy(deployment, tmp_path):
    """A private copy of the signed model directory that a test may tamper with."""
    target = tmp_path / "models" / MODEL
    shutil.copytree(deployment.model_dir, target)
    return target


def tamper(model_dir):
    path = model_dir / "model.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_model_is_refused_at_start_up_and_logged(deployment, copy, tmp_path):
    tamper(copy)
    log = tmp_path / "audit.jsonl"
    with pytest.raises(artifacts.IntegrityError, match="model.keras"):
        server.create_app(**app_kwargs(deployment, model_dir=copy, audit_log=log))
    [entry] = entries(log)
    assert entry["event"] == "load" and entry["decision"] == "refused" and entry["model"] == MODEL
    assert "model.keras" in entry["reason"]
    assert verify_log(log, server.audit_key(secret_file=deployment.secret_file)).ok


def test_unsigned_model_is_refused(deployment, copy, tmp_path):
    (copy / "MANIFEST.sig").unlink()
    with pytest.raises(artifacts.IntegrityError):
        server.create_app(**app_kwargs(deployment, model_dir=copy, audit_log=tmp_path / "audit.jsonl"))


@pytest.mark.parametrize("attack", ["change weights", "add pickle"])
def test_reload_refuses_a_tampered_model_and_keeps_serving_the_verified_one(deployment, copy, tmp_path, attack):
    log = tmp_path / "audit.jsonl"
    admin = bearer(auth.issue_token(deployment.secret, "ops", "admin"))
    user = bearer(auth.issue_token(deployment.secret, "alice", "user"))
    with server.BackgroundServer(**app_kwargs(deployment, model_dir=copy, audit_log=log)) as srv:
        before = httpx.post(f"{srv.url}/v1/models/{MODEL}/predict", json={"instances": digits_like(4)}, headers=user)
        assert before.status_code == 200
        if attack == "change weights":
            tamper(copy)
        else:
            (copy / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
        r = httpx.post(f"{srv.url}/v1/models/{MODEL}/reload", headers=admin)
        assert r.status_code == 409, r.text
        assert ("model.keras" if attack == "change weights" else "evil.pkl") in r.json()["detail"]
        after = httpx.post(f"{srv.url}/v1/models/{MODEL}/predict", json={"instances": digits_like(4)}, headers=user)
        assert after.status_code == 200 and after.json() == before.json()
    refusal = [e for e in entries(log) if e["status"] == 409]
    assert len(refusal) == 1 and refusal[0]["sub"] == "ops" and "failed verification" in refusal[0]["reason"]
