"""Checks of the course's real deployment (lesson 07's server, artifacts, audit log and keys).

Each function probes one control and returns ``(in_place, detail)``. They send real requests,
verify real signatures and tamper with *copies* of real files; none of them assumes the answer.
:func:`deployment_inventory` lists the components of the system with these checks, plus the
controls the course does not implement (``check=None``), so that SC counts them as missing.

A passing probe shows that the control works for that probe, not that it cannot be bypassed.
"""
import base64
import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from ..course import repo_root as course_root
from ..errors import InvalidParameterError
from .coverage import Component, Control

REQUIRED_HEADERS = ("strict-transport-security", "x-content-type-options", "x-frame-options",
                    "content-security-policy", "cache-control")


def _b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _expect(response, status):
    ok = response.status_code == status
    return ok, f"HTTP {response.status_code} (expected {status})"


# --------------------------------------------------------------------------- the prediction API
def refuses_unsigned_token(client, model):
    """An ``alg: none`` token that claims admin must get 401."""
    from ..deployment import auth

    now = int(time.time())
    claims = {"sub": "probe-alg-none", "role": "admin", "aud": auth.AUDIENCE, "iss": auth.ISSUER,
              "iat": now, "exp": now + 600}
    token = _b64url({"alg": "none", "typ": "JWT"}) + "." + _b64url(claims) + "."
    return _expect(client.post(f"/v1/models/{model}/predict", json={"instances": []}, headers=_bearer(token)), 401)


def refuses_expired_token(client, secret, model):
    """A correctly signed token that expired an hour ago must get 401."""
    from ..deployment import auth

    token = auth.issue_token(secret, "probe-expired", "user", ttl=60, now=time.time() - 3600)
    return _expect(client.post(f"/v1/models/{model}/predict", json={"instances": []}, headers=_bearer(token)), 401)


def refuses_role_escalation(client, secret, model):
    """A valid *user* token calling the admin-only reload must get 403."""
    from ..deployment import auth

    token = auth.issue_token(secret, "probe-user", "user")
    return _expect(client.post(f"/v1/models/{model}/reload", headers=_bearer(token)), 403)


def enforces_rate_limit(client, secret, max_requests=200):
    """A burst from one fresh subject must hit 429 with ``Retry-After`` within ``max_requests``."""
    from ..deployment import auth

    token = auth.issue_token(secret, f"probe-burst-{time.monotonic_ns()}", "user")
    for i in range(1, max_requests + 1):
        r = client.get("/v1/models", headers=_bearer(token))
        if r.status_code == 429:
            return "retry-after" in r.headers, f"429 after {i} requests, Retry-After {r.headers.get('retry-after')} s"
    return False, f"no 429 in {max_requests} requests"


def limits_body_size(client, secret, model, size=2_000_000):
    """A ``size``-byte body must get 413 before it is parsed."""
    from ..deployment import auth

    token = auth.issue_token(secret, "probe-body", "user")
    body = b'{"instances": [' + b"0.0," * (size // 4) + b"0.0]}"
    r = client.post(f"/v1/models/{model}/predict", content=body,
                    headers={**_bearer(token), "content-type": "application/json"})
    return _expect(r, 413)


def validates_input(client, secret, model):
    """One NaN pixel in an otherwise valid input (shape from ``/v1/models``) must get 422."""
    import numpy as np

    from ..deployment import auth

    token = auth.issue_token(secret, "probe-input", "user")
    described = {m["name"]: m for m in client.get("/v1/models", headers=_bearer(token)).json()["models"]}
    if model not in described:
        return False, f"model {model!r} is not served"
    x = np.zeros(described[model]["input"]["shape"])
    x.flat[0] = np.nan
    body = json.dumps({"instances": [x.tolist()]}).encode()  # Python writes NaN, which is not valid JSON
    r = client.post(f"/v1/models/{model}/predict", content=body,
                    headers={**_bearer(token), "content-type": "application/json"})
    return _expect(r, 422)


def sends_security_headers(client):
    """Every response carries the OWASP headers, no ``Server`` header, and no X-XSS-Protection filter."""
    r = client.get("/healthz")
    missing = [h for h in REQUIRED_HEADERS if h not in r.headers]
    extra = [h for h in ("server",) if h in r.headers] + (
        ["x-xss-protection"] if r.headers.get("x-xss-protection", "0") != "0" else [])
    ok = not missing and not extra
    return ok, "all present" if ok else f"missing {missing}, unwanted {extra}"


def serves_tls(client):
    """The client talks HTTPS, and a client that does not trust the server's certificate is refused."""
    import httpx

    url = str(client.base_url).rstrip("/")
    if not url.startswith("https://"):
        return False, f"{url} is plain HTTP"
    try:
        httpx.get(url + "/healthz", timeout=10)  # default trust store: the self-signed certificate is not in it
    except httpx.ConnectError:
        return True, "HTTPS; a client without the certificate is refused"
    return False, "a client that does not trust the certificate was served"


# --------------------------------------------------------------------------- the model artifact
def signature_verifies(model_dir, public_key):
    """The served directory's signed manifest verifies."""
    from ..deployment.artifacts import IntegrityError, verify_dir

    try:
        files = verify_dir(model_dir, public_key)["files"]
    except IntegrityError as e:
        return False, str(e)
    return True, f"{len(files)} files verify"


def _flip_a_bit(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def detects_artifact_tampering(model_dir, public_key):
    """One flipped bit in the model file of a *copy* must fail verification, naming the file."""
    from ..deployment.artifacts import IntegrityError, verify_dir

    with tempfile.TemporaryDirectory(prefix="mlsec-probe-") as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(model_dir, copy)
        target = next(p for p in sorted(copy.iterdir()) if p.name.startswith("model."))
        _flip_a_bit(target)
        try:
            verify_dir(copy, public_key)
        except IntegrityError as e:
            return target.name in e.changed, f"changed: {', '.join(e.changed)}"
    return False, "the tampered copy verified"


def refuses_pickle():
    """The loader refuses a validly signed pickle, and the pickle's code never runs."""
    from ..deployment import unsafe_pickle
    from ..deployment.artifacts import IntegrityError, load_verified_model, sign_dir
    from ..deployment.keys import generate_signing_key

    with tempfile.TemporaryDirectory(prefix="mlsec-probe-") as tmp:
        tmp = Path(tmp)
        private, public = generate_signing_key(tmp / "k.pem", tmp / "k.pub.pem")  # a throwaway key
        (tmp / "model").mkdir()
        canary = tmp / "canary.txt"
        unsafe_pickle.make_malicious_pickle(tmp / "model" / "model.pkl", canary)
        sign_dir(tmp / "model", private)
        try:
            load_verified_model(tmp / "model", public)
        except IntegrityError:
            return not canary.exists(), "signed pickle refused; its code did not run"
        return False, "a signed pickle was loaded"


def encrypted_at_rest(model_dir):
    """The stored model file is AES-GCM ciphertext (``*.enc``)."""
    encrypted = sorted(p.name for p in Path(model_dir).iterdir() if p.name.endswith(".enc"))
    return bool(encrypted), ", ".join(encrypted) if encrypted else "model file stored in the clear"


def card_signed_with_artifact(model_dir, public_key, card_file="MODEL_CARD.json"):
    """The model card is one of the signed files, and it names the model file's signed hash."""
    from ..deployment.artifacts import IntegrityError, verify_dir
    from .model_card import ModelCard

    try:
        signed = verify_dir(model_dir, public_key)["files"]
    except IntegrityError as e:
        return False, str(e)
    if card_file not in signed:
        return False, f"{card_file} is not in the signed manifest"
    card = ModelCard.load(Path(model_dir) / card_file)
    if card.artifact is None or signed.get(card.artifact.model_file) != card.artifact.model_sha256:
        return False, "the card's model hash differs from the signed one"
    return True, f"{card_file} signed; names {card.artifact.model_file} {card.artifact.model_sha256[:12]}…"


# --------------------------------------------------------------------------- the model itself
def meets_robustness_policy(card, eps, min_accuracy):
    """The card's robust accuracy was measured at ``eps`` and reaches ``min_accuracy``."""
    m = card.robustness
    if m is None:
        return False, "robust accuracy not measured"
    if m.params.get("eps") != eps:
        return False, f"measured at eps={m.params.get('eps')}, the policy asks for eps={eps}"
    return m.value >= min_accuracy, (f"PGD-{m.params['steps']} accuracy {m.value:.3f} at eps={eps} "
                                     f"(policy >= {min_accuracy})")


def meets_privacy_policy(card, max_epsilon):
    """The card's DP epsilon is at most ``max_epsilon``."""
    m = card.privacy
    if m is None:
        return False, "epsilon not recorded"
    return m.value <= max_epsilon, f"epsilon = {m.value:.3g} (policy <= {max_epsilon:g})"


# --------------------------------------------------------------------------- training data and pipeline
def data_fingerprint_recorded(card, x_train, y_train):
    """The card records the SHA-256 fingerprint of exactly this training set."""
    from ..cache import fingerprint

    recorded = card.training_data.get("fingerprint")
    if recorded is None:
        return False, "the card records no fingerprint"
    return recorded == fingerprint(x_train, y_train), f"fingerprint {recorded[:12]}…"


def dependencies_pinned(lock_file):
    """Every line of the lock file pins one exact version (``name==version``)."""
    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return False, f"{lock_file.name} is missing"
    lines = [ln.split("#")[0].strip() for ln in lock_file.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    loose = [ln for ln in lines if "==" not in ln]
    return not loose and bool(lines), f"{len(lines) - len(loose)} of {len(lines)} pinned with =="


# --------------------------------------------------------------------------- the audit log
def log_verifies(audit_log, key):
    """The chain and the anchor verify."""
    from ..deployment.audit import verify_log

    report = verify_log(audit_log, key)
    return report.ok, report.reason


def logs_every_request(client, audit_log, key, secret, model):
    """Four requests (200, 401, 404, 422) add exactly four entries, with those statuses, in order."""
    from ..deployment import auth
    from ..deployment.audit import verify_log

    before = verify_log(audit_log, key).entries
    token = auth.issue_token(secret, "probe-log", "user")

    def post(name, instances, headers):
        return client.post(f"/v1/models/{name}/predict", json={"instances": instances}, headers=headers).status_code

    codes = [client.get("/healthz").status_code, post(model, [], {}), post("no-such-model", [], _bearer(token)),
             post(model, [[0.5]], _bearer(token))]
    lines = Path(audit_log).read_text().splitlines()
    logged = [json.loads(line)["status"] for line in lines[before:]]
    ok = codes == [200, 401, 404, 422] and logged == codes and verify_log(audit_log, key).ok
    return ok, f"sent {codes}, logged {logged}"


def detects_log_tampering(audit_log, key):
    """Changing one decision in a *copy* of the log is caught at that entry."""
    from ..deployment.audit import anchor_path, verify_log

    lines = Path(audit_log).read_text().splitlines()
    if not lines:
        return False, "the log is empty"
    with tempfile.TemporaryDirectory(prefix="mlsec-probe-") as tmp:
        copy = Path(tmp) / "audit.jsonl"
        entry = json.loads(lines[0])
        entry["decision"] = "deny" if entry.get("decision") == "allow" else "allow"
        copy.write_text("\n".join([json.dumps(entry)] + lines[1:]) + "\n")
        shutil.copy(anchor_path(audit_log), anchor_path(copy))
        report = verify_log(copy, key)
    return (not report.ok and report.first_bad == 1), f"edited entry 1: {report.reason}"


# --------------------------------------------------------------------------- secrets and keys
def secret_is_strong(secret_file):
    """The JWT secret has at least 32 bytes (``load_jwt_secret`` refuses anything shorter)."""
    from ..deployment.keys import load_jwt_secret

    try:
        return True, f"{len(load_jwt_secret(secret_file))} bytes"
    except ValueError as e:
        return False, str(e)


def files_private(*paths):
    """Each key file is readable by its owner only (mode 0600)."""
    if os.name != "posix":
        return False, "file modes cannot be checked on this platform"
    modes = {Path(p).name: oct(stat.S_IMODE(Path(p).stat().st_mode)) for p in paths}
    return all(m == "0o600" for m in modes.values()), ", ".join(f"{k} {v}" for k, v in modes.items())


def outside_repository(root, *paths):
    """No key file lies inside the repository (where a commit would publish it)."""
    root = Path(root).resolve()
    inside = [str(p) for p in paths if Path(p).resolve().is_relative_to(root)]
    return not inside, f"inside the repository: {inside}" if inside else "all outside the repository"


# --------------------------------------------------------------------------- the inventory
def deployment_inventory(*, client, model, secret, secret_file, model_dir, public_key, signing_key, audit_log,
                         audit_key, card, x_train, y_train, policy, repo_root=None):
    """The components of the course's deployment, each with the controls it needs.

    Parameters
    ----------
    client : httpx.Client
        Talks to the running server (``base_url`` set; trusts its certificate if HTTPS).
    model : str
        The served model's name.
    secret, secret_file : bytes, path
        The server's JWT secret, and the file it was read from.
    model_dir, public_key, signing_key : path
        The served (signed) model directory and the key pair of its signature.
    audit_log, audit_key : path, bytes
        The server's audit log and its HMAC key.
    card : ModelCard
        The served model's card.
    x_train, y_train : arrays
        The training set the card claims.
    policy : dict
        ``{"eps": ..., "min_robust_accuracy": ..., "max_epsilon": ...}``: the release policy the
        model must meet. A policy, not a standard: state yours.
    repo_root : path, optional
        The course repository (default: :func:`mlsec_lessons.course.repo_root`).

    Returns
    -------
    list of Component
        Pass it to :func:`mlsec_lessons.governance.coverage.measure`.
    """
    missing = {"eps", "min_robust_accuracy", "max_epsilon"} - set(policy)
    if missing:
        raise InvalidParameterError(f"policy lacks {sorted(missing)}; state the release policy the model must meet")
    root = Path(repo_root) if repo_root is not None else course_root()
    C = Control
    return [
        Component("training data", [
            C("fingerprint recorded in the card", lambda: data_fingerprint_recorded(card, x_train, y_train),
              "SHA-256 of x_train, y_train equals the card's"),
            C("screened for poisoning", None, "lesson 11's detectors exist but are not run in this pipeline"),
        ]),
        Component("training pipeline", [
            C("dependencies pinned", lambda: dependencies_pinned(root / "requirements.lock"),
              "every line of requirements.lock is name==version"),
            C("dependencies scanned for known vulnerabilities", None, "no scanner (e.g. pip-audit) runs"),
        ]),
        Component("model", [
            C(f"robust accuracy >= {policy['min_robust_accuracy']} at eps={policy['eps']}",
              lambda: meets_robustness_policy(card, policy["eps"], policy["min_robust_accuracy"]),
              "PGD result on the card"),
            C(f"DP epsilon <= {policy['max_epsilon']}", lambda: meets_privacy_policy(card, policy["max_epsilon"]),
              "accountant's epsilon on the card"),
        ]),
        Component("model artifact", [
            C("signature verifies", lambda: signature_verifies(model_dir, public_key), "verify_dir"),
            C("tampering detected", lambda: detects_artifact_tampering(model_dir, public_key),
              "flip one bit of a copy, verify_dir"),
            C("refuses pickle", refuses_pickle, "load a validly signed malicious pickle"),
            C("model card signed with it", lambda: card_signed_with_artifact(model_dir, public_key),
              "card in the manifest, naming the signed hash"),
            C("encrypted at rest", lambda: encrypted_at_rest(model_dir), "a *.enc model file"),
        ]),
        Component("prediction API", [
            C("rejects alg=none", lambda: refuses_unsigned_token(client, model), "unsigned admin token -> 401"),
            C("rejects expired tokens", lambda: refuses_expired_token(client, secret, model), "expired token -> 401"),
            C("enforces roles", lambda: refuses_role_escalation(client, secret, model), "user calls reload -> 403"),
            C("rate limit", lambda: enforces_rate_limit(client, secret), "burst -> 429 + Retry-After"),
            C("body size limit", lambda: limits_body_size(client, secret, model), "2 MB body -> 413"),
            C("input validation", lambda: validates_input(client, secret, model), "NaN pixel -> 422"),
            C("security headers", lambda: sends_security_headers(client), "OWASP headers, no Server"),
            C("TLS", lambda: serves_tls(client), "HTTPS; untrusting client refused"),
        ]),
        Component("audit log", [
            C("every request recorded", lambda: logs_every_request(client, audit_log, audit_key, secret, model),
              "4 requests -> 4 entries"),
            C("chain and anchor verify", lambda: log_verifies(audit_log, audit_key), "verify_log"),
            C("tampering detected", lambda: detects_log_tampering(audit_log, audit_key), "edit a copy, verify_log"),
            C("copied to append-only storage", None, "the server could rewrite its own log (lesson 07)"),
        ]),
        Component("secrets and keys", [
            C("JWT secret >= 32 bytes", lambda: secret_is_strong(secret_file), "load_jwt_secret"),
            C("key files mode 0600", lambda: files_private(secret_file, signing_key), "stat"),
            C("outside the repository", lambda: outside_repository(root, secret_file, signing_key, public_key),
              "resolved paths"),
            C("kept in a secret manager and rotated", None, "files on disk, never rotated"),
        ]),
    ]
