"""`mlsec token`, `sign`, `verify`, `audit verify` and `serve`, run as a student runs them: in a
subprocess, checking exit codes and messages. Each test has its own cache folder, so the
development keys it creates never touch the real cache."""
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from test_server import MODEL, digits_like, make_deployment

from mlsec_lessons.deployment import auth, keys, server
from mlsec_lessons.deployment.audit import AuditLog


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("cli"))


@pytest.fixture
def env(fresh_cache):
    return dict(os.environ)  # the CLI inherits the test's empty cache, tmp_path / "cache"


def mlsec(env, *args):
    return subprocess.run([sys.executable, "-m", "mlsec_lessons.cli", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_token_prints_a_token_the_server_accepts(deployment, env):
    done = mlsec(env, "token", "--secret-file", deployment.secret_file, "--sub", "alice", "--role", "user",
                 "--models", f"{MODEL},other", "--ttl", "120")
    assert done.returncode == 0, done.stderr
    claims = auth.verify_token(done.stdout.strip(), deployment.secret)
    assert (claims["sub"], claims["role"], claims["models"], claims["exp"] - claims["iat"]) == (
        "alice", "user", [MODEL, "other"], 120)


def test_a_token_longer_than_the_servers_maximum_comes_with_a_warning(deployment, env):
    done = mlsec(env, "token", "--secret-file", deployment.secret_file, "--sub", "alice", "--role", "user",
                 "--ttl", str(auth.MAX_LIFETIME_S + 1))
    assert done.returncode == 0 and "over the server's default maximum lifetime" in done.stderr, done.stderr
    with pytest.raises(auth.AuthError, match="over the maximum"):
        auth.verify_token(done.stdout.strip(), deployment.secret)


def test_token_without_secret_file_uses_the_dev_secret_created_0600(env, tmp_path):
    done = mlsec(env, "token", "--sub", "bob", "--role", "admin")
    assert done.returncode == 0, done.stderr
    secret_file = tmp_path / "cache" / "deployment" / keys.DEV_JWT_SECRET
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    assert auth.verify_token(done.stdout.strip(), keys.load_jwt_secret(secret_file))["role"] == "admin"


def test_token_with_a_private_key_is_eddsa(deployment, env):
    done = mlsec(env, "token", "--private-key", deployment.private, "--sub", "svc", "--role", "user")
    assert done.returncode == 0, done.stderr
    claims = auth.verify_token(done.stdout.strip(), deployment.public.read_bytes(), algorithms=("EdDSA",))
    assert claims["sub"] == "svc"


def test_token_usage_errors(env, tmp_path):
    assert mlsec(env, "token", "--sub", "eve", "--role", "root").returncode == 2  # argparse: not a role
    weak = tmp_path / "weak"
    weak.write_text("your-secret-key")
    done = mlsec(env, "token", "--secret-file", weak, "--sub", "eve", "--role", "user")
    assert done.returncode == 1 and "at least 32" in done.stderr and "Traceback" not in done.stderr


def test_sign_then_verify_then_every_kind_of_tampering_fails(deployment, env, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(deployment.model_dir, model_dir)
    for name in ("MANIFEST.json", "MANIFEST.sig"):
        (model_dir / name).unlink()
    assert mlsec(env, "verify", model_dir, "--public-key", deployment.public).returncode == 1  # unsigned
    done = mlsec(env, "sign", model_dir, "--key", deployment.private)
    assert done.returncode == 0, done.stderr
    ok = mlsec(env, "verify", model_dir, "--public-key", deployment.public)
    assert ok.returncode == 0 and "signature valid" in ok.stdout, ok.stderr

    (model_dir / "notes.txt").write_text("added after signing")
    added = mlsec(env, "verify", model_dir, "--public-key", deployment.public)
    assert added.returncode == 1 and "notes.txt" in added.stderr
    (model_dir / "notes.txt").unlink()
    spec = model_dir / "input.json"
    spec.write_text(spec.read_text().replace("1.0", "1000.0"))  # widen the accepted input range
    changed = mlsec(env, "verify", model_dir, "--public-key", deployment.public)
    assert changed.returncode == 1 and "input.json" in changed.stderr
    spec.unlink()
    removed = mlsec(env, "verify", model_dir, "--public-key", deployment.public)
    assert removed.returncode == 1 and "input.json" in removed.stderr
    # a different key pair: the signature itself is wrong
    other = keys.generate_signing_key(tmp_path / "o.pem", tmp_path / "o.pub.pem")[1]
    assert mlsec(env, "verify", deployment.model_dir, "--public-key", other).returncode == 1


def test_audit_verify_names_the_first_bad_entry(deployment, env, tmp_path):
    log_path = tmp_path / "audit.jsonl"
    log = AuditLog(log_path, server.audit_key(secret_file=deployment.secret_file))
    for i in range(5):
        log.append(sub=f"user{i}", status=200, decision="allow")
    ok = mlsec(env, "audit", "verify", log_path, "--secret-file", deployment.secret_file)
    assert ok.returncode == 0 and "5 entries" in ok.stdout, ok.stderr
    wrong_key = mlsec(env, "audit", "verify", log_path)  # the dev secret: a different key
    assert wrong_key.returncode == 1 and "line 1" in wrong_key.stderr


TAMPER = {  # what is done to the 5 lines, and the line the verifier must name
    "modified": (lambda lines: lines[:1] + [lines[1].replace('"allow"', '"deny"')] + lines[2:], 2),
    "deleted": (lambda lines: lines[:2] + lines[3:], 3),
    "inserted": (lambda lines: lines[:4] + [lines[1]] + lines[4:], 5),
    "reordered": (lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:], 3),
}


@pytest.mark.parametrize("kind", TAMPER)
def test_audit_verify_exits_1_naming_the_first_bad_line(deployment, env, tmp_path, kind):
    log_path = tmp_path / "audit.jsonl"
    log = AuditLog(log_path, server.audit_key(secret_file=deployment.secret_file))
    for i in range(5):
        log.append(sub=f"user{i}", status=200, decision="allow")
    edit, line = TAMPER[kind]
    log_path.write_text("\n".join(edit(log_path.read_text().splitlines())) + "\n")
    bad = mlsec(env, "audit", "verify", log_path, "--secret-file", deployment.secret_file)
    assert bad.returncode == 1 and f"line {line}" in bad.stderr, bad.stderr


@pytest.mark.slow  # a real deployment: mlsec serve with TLS
def test_serve_with_tls_answers_and_exits_cleanly_on_ctrl_c(deployment, env, tmp_path):
    log = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlsec_lessons.cli", "serve", "--model-dir", deployment.model_dir,
         "--secret-file", deployment.secret_file, "--public-key", deployment.public, "--audit-log", log,
         "--port", "0", "--tls"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, url, cert = [], None, None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            cert = cert or (re.search(r"self-signed certificate: (\S+)", line) or [None, None])[1]
            found = re.search(r"running on (https://\S+)", line)
            url = found and found[1]
        assert url and cert, "".join(output)
        tok = auth.issue_token(deployment.secret, "alice", "user")
        with httpx.Client(verify=ssl.create_default_context(cafile=cert), timeout=20) as client:
            r = client.post(f"{url}/v1/models/{MODEL}/predict", json={"instances": digits_like(2)},
                            headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 200 and len(r.json()["predictions"]) == 2, r.text
            assert "server" not in r.headers
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == [200]


def test_serve_refuses_a_tampered_model_with_exit_1(deployment, env, tmp_path):
    import shutil

    model_dir = tmp_path / MODEL
    shutil.copytree(deployment.model_dir, model_dir)
    (model_dir / "input.json").write_text('{"shape": [8, 8, 1], "min": null, "max": null}\n')
    done = mlsec(env, "serve", "--model-dir", model_dir, "--secret-file", deployment.secret_file,
                 "--public-key", deployment.public, "--audit-log", tmp_path / "audit.jsonl", "--port", "0")
    assert done.returncode == 1 and "input.json" in done.stderr, done.stderr
