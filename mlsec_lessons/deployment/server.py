"""The course's model server: FastAPI + uvicorn, with every control the source only described.

The source's ``SecureModelDeployment`` had a fake endpoint URL and a "rate limit" that was a
string. This one serves a signed model over real HTTP, and each request passes, in order:

================================  ======  ========================================================
check                             status  where
================================  ======  ========================================================
``Authorization: Bearer`` token   401     :func:`~mlsec_lessons.deployment.auth.verify_token`
rate limit for the token's sub    429     :class:`~mlsec_lessons.deployment.ratelimit.RateLimiter`
role and model scope              403     :func:`~mlsec_lessons.deployment.auth.authorize`
the model exists                  404
content type is JSON              415
body size, before parsing         413     :func:`~mlsec_lessons.deployment.validation.read_body`
JSON, shape, type, NaN, range     422     :func:`~mlsec_lessons.deployment.validation.validate_instances`
query quota, if one is set        429     :class:`~mlsec_lessons.deployment.ratelimit.QueryQuota`
================================  ======  ========================================================

Every response carries the security headers (:mod:`.headers`) and no ``Server`` header, and every
request, allowed or not, is appended to the HMAC-chained audit log before its response is
finished: time, method, path, status, decision, latency, the token's ``sub`` and the model once they
are known, the reason for a refusal, and ``input_sha256``, the hash of the body, for requests whose
body was read (``null`` when the request was refused before that: 401, 403, 413, 415, and 429 from
the rate limit).

Options for lesson 08 (model theft): ``outputs="probabilities"`` returns class probabilities beside
the labels, optionally through an output ``postprocessor``; ``monitors`` see every allowed prediction
request (a PRADA detector, an adversarial-input detector, a drift test) and their alerts become
``event="alert"`` entries of the same audit log.

A model is served only if its signed manifest verifies; ``/reload`` re-verifies, and a
model that no longer verifies is refused with 409 while the last verified one goes on serving.

Examples
--------
>>> import httpx
>>> from mlsec_lessons.deployment.server import BackgroundServer
>>> with BackgroundServer() as server:                       # doctest: +SKIP
...     httpx.get(server.url + "/healthz").json()
{'status': 'ok'}
"""
import hashlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h11
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..validation import check_real
from . import auth
from .headers import ASGI_HEADERS
from .ratelimit import ClientLimiter, QueryQuota, RateLimiter, retry_after_header
from .validation import BodyTimeout, BodyTooLarge, ValidationError, parse_json, read_body, validate_instances

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """The token's subject is over its rate; answered 429 with ``Retry-After``."""

    def __init__(self, wait_s):
        super().__init__(f"rate limit exceeded; retry in {wait_s:.2f} s")
        self.wait_s = wait_s


class QuotaExceeded(RateLimited):
    """The subject has used its query quota for this period; answered 429 with ``Retry-After``."""

    def __init__(self, quota, sub, n, wait_s):
        Exception.__init__(self, f"query quota exhausted: this subject may have {quota.limit} instances predicted "
                                 f"per {quota.period_s:g} s, {quota.remaining(sub)} are left and the request "
                                 f"asked for {n}; the quota resets in {wait_s:.0f} s")
        self.wait_s = wait_s


OUTPUTS = ("labels", "probabilities")


class ModelRefused(Exception):
    """A model whose artifact failed verification on reload; answered 409, the old model stays."""


@dataclass
class ServedModel:
    """A verified model and the facts the server needs about it."""

    name: str
    directory: Path
    model: object
    sha256: str
    shape: tuple
    low: float
    high: float

    def predict(self, x):
        """Class labels for a validated batch. Only labels: scores would help an attacker copy the model."""
        return np.argmax(self.model.predict_on_batch(x), axis=1).tolist()

    def predict_with_scores(self, x):
        """Class labels and class probabilities (the softmax of the model's logits) from one forward pass."""
        logits = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.argmax(logits, axis=1).tolist(), z / z.sum(axis=1, keepdims=True)

    def describe(self):
        return {"name": self.name, "model_sha256": self.sha256,
                "input": {"shape": list(self.shape), "min": self.low, "max": self.high}}


def load_model(directory, public_key, name=None, encryption_key=None):
    """Verify a signed model directory and load it; raises the artifact module's ``IntegrityError``.

    Parameters
    ----------
    directory : path-like
        A directory signed with :func:`~mlsec_lessons.deployment.artifacts.sign_dir`.
    public_key : path-like
        The Ed25519 public key its manifest must verify against.
    name : str or None
        The name it is served under; the directory's name by default.
    encryption_key : bytes or None
        The AES key, for a model encrypted at rest.
    """
    from .artifacts import load_verified_model, model_input_spec

    directory = Path(directory)
    model, sha256 = load_verified_model(directory, public_key, key=encryption_key)
    shape, low, high = model_input_spec(model)
    return ServedModel(name or directory.name, directory, model, sha256, tuple(shape), low, high)


def _model_dirs(model_dir):
    """``{name: directory}``: one signed model directory, or a folder of them."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"model_dir must be a directory, got {str(model_dir)!r}")
    children = sorted(d for d in model_dir.iterdir() if (d / "MANIFEST.json").is_file())
    if (model_dir / "MANIFEST.json").is_file() or not children:
        return {model_dir.name: model_dir}  # an unsigned directory ends up here and is refused
    return {d.name: d for d in children}


def _open_audit(audit_log, audit_key_file, secret_file):
    """The audit log; its HMAC key is read from ``audit_key_file``, or derived from the JWT secret.

    Derived with :func:`~mlsec_lessons.deployment.keys.derive_key`, never the JWT secret itself, so
    the two keys are independent; whoever checks the log needs ``audit_key_file``, or the secret.
    """
    from . import keys
    from .audit import AuditLog

    if isinstance(audit_log, AuditLog):
        return audit_log
    if audit_log is None:
        audit_log = keys.deployment_dir() / "audit.jsonl"
    return AuditLog(audit_log, audit_key(audit_key_file, secret_file))


def audit_key(audit_key_file=None, secret_file=None):
    """The audit log's HMAC key: the contents of ``audit_key_file``, else derived from the JWT secret
    (``secret_file``, or the development secret). ``mlsec audit verify`` uses the same rule."""
    from . import keys

    if audit_key_file is not None:
        return keys.load_jwt_secret(audit_key_file)  # the same >= 32 byte check as any secret
    return keys.derive_key(keys.load_jwt_secret(secret_file or keys.dev_jwt_secret_file()), "audit-log")


def _monitor_name(monitor):
    return str(getattr(monitor, "name", type(monitor).__name__))


def create_app(model_dir=None, secret_file=None, public_key=None, audit_log=None, audit_key_file=None, *,
               rate=20.0, burst=40, max_body_bytes=1_000_000, max_batch=256, audience=auth.AUDIENCE,
               issuer=auth.ISSUER, leeway=auth.LEEWAY_S, max_token_lifetime=auth.MAX_LIFETIME_S,
               jwt_public_key=None, encryption_key=None,
               outputs="labels", postprocessor=None, quota=None, quota_period_s=86400.0, monitors=(),
               client_rate=100.0, client_burst=200, body_timeout_s=10.0, max_header_bytes=65536,
               max_connections=64):
    """Build the model server's FastAPI app.

    Parameters
    ----------
    model_dir : path-like or None
        A signed model directory (served under its name) or a folder of them.
        ``None``: the course's demo digits model.
    secret_file : path-like or None
        The HS256 secret (at least 32 bytes). ``None``: the development secret in the cache.
    public_key : path-like or None
        The Ed25519 public key model manifests must verify against. ``None``: the development key.
    audit_log : AuditLog, path-like or None
        Where every request is recorded. ``None``: ``audit.jsonl`` in the cache's deployment folder.
    audit_key_file : path-like or None
        The audit log's HMAC key. ``None``: a key derived from the JWT secret (see :func:`audit_key`).
    rate, burst : float, int
        Token bucket per token subject: ``rate`` requests per second, bursts of ``burst``.
    max_body_bytes : int
        Larger request bodies get 413, before they are parsed.
    max_batch : int
        The most instances one prediction request may send.
    audience, issuer : str
        What a token's ``aud`` and ``iss`` must be.
    leeway : float
        Seconds of clock skew tolerated on ``exp`` and ``iat``.
    max_token_lifetime : float
        The longest a token may live (``exp - iat``, seconds; a day by default). A token issued for
        longer, or for an empty subject, is refused with 401.
    jwt_public_key : path-like or None
        An Ed25519 public key (PEM file): accept EdDSA tokens signed by its private key instead of
        HS256 ones. Either way exactly one algorithm is accepted.
    encryption_key : bytes or None
        The AES-256 key for models encrypted at rest
        (:func:`~mlsec_lessons.deployment.keys.load_encryption_key`).
    outputs : {"labels", "probabilities"}
        What a prediction returns besides the labels: nothing (the default), or the class
        probabilities under ``"probabilities"`` (the softmax of the model's logits). Scores help honest
        users and model thieves alike (lesson 08).
    postprocessor : callable or None
        Applied to the probabilities before they are returned, e.g. ART's ``Rounded`` or
        ``ReverseSigmoid`` (an output defense against model extraction); needs
        ``outputs="probabilities"``. The labels are always the model's own.
    quota, quota_period_s : int or None, float
        At most ``quota`` instances predicted per token subject per ``quota_period_s`` seconds
        (a day by default); more gets 429 (:class:`~mlsec_lessons.deployment.ratelimit.QueryQuota`).
        ``None``: no quota.
    monitors : sequence
        Objects with ``observe(sub, x, labels)``, shown every allowed prediction request (inputs and
        labels) in order, e.g. :class:`~mlsec_lessons.theft.prada.PRADA`. Each dict ``observe``
        returns is an alert, appended to the audit log as ``event="alert"``. A monitor that raises
        does not fail the request: the failure goes to the audit log as ``event="monitor-error"``.
    client_rate, client_burst : float, int or None
        Token bucket per client address, checked before authentication: ``client_rate`` requests
        per second, bursts of ``client_burst``; more gets 429 with ``Retry-After``. Only the first
        refusal per address in ten seconds is audited (with the count of those that were not).
        ``client_rate=None``: no limit per address.
    body_timeout_s : float or None
        The whole request body must arrive within this many seconds, else 408 and the connection
        is closed. ``None``: no limit.
    max_header_bytes : int or None
        The most bytes of request line and headers the server buffers (HTTP/1.1 parser h11);
        more gets 431 and the connection is closed. ``None``: uvicorn's default parser, no limit.
    max_connections : int or None
        Open connections at most; more get 503. ``None``: no limit.

    Returns
    -------
    fastapi.FastAPI
        ``app.state`` holds ``models``, ``audit``, ``limiter``, ``quota`` and ``monitors``.

    Raises
    ------
    IntegrityError
        If a model is unsigned or tampered with; the refusal is written to the audit log first.
    """
    from . import keys

    for name, value in (("max_body_bytes", max_body_bytes), ("max_batch", max_batch),
                        ("max_header_bytes", max_header_bytes or 1), ("max_connections", max_connections or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(max_token_lifetime, bool) or not isinstance(max_token_lifetime, (int, float)) \
            or not max_token_lifetime > 0:
        raise ValueError(f"max_token_lifetime must be a positive number of seconds, got {max_token_lifetime!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    if postprocessor is not None and (outputs != "probabilities" or not callable(postprocessor)):
        raise ValueError(f"postprocessor must be a callable and needs outputs='probabilities', got "
                         f"{postprocessor!r} with outputs={outputs!r}")
    quota = None if quota is None else QueryQuota(quota, quota_period_s)
    monitors = tuple(monitors)
    for monitor in monitors:
        if not callable(getattr(monitor, "observe", None)):
            raise ValueError(f"each monitor needs an observe(sub, x, labels) method, got {monitor!r}")
    if jwt_public_key is not None:
        jwt_key, algorithms = keys.load_public_key(jwt_public_key), ("EdDSA",)
    else:
        jwt_key, algorithms = keys.load_jwt_secret(secret_file or keys.dev_jwt_secret_file()), ("HS256",)
    if public_key is None:
        public_key = keys.dev_signing_key()[1]
    if model_dir is None:
        from .artifacts import demo_model_dir

        model_dir = demo_model_dir()
    audit = _open_audit(audit_log, audit_key_file, secret_file)

    models = {}
    for name, directory in _model_dirs(model_dir).items():
        try:
            models[name] = load_model(directory, public_key, name, encryption_key)
        except ValueError as e:  # IntegrityError is a ValueError
            log.error("refused to load model %r from %s: %s", name, directory, e)
            audit.append(event="load", model=name, decision="refused", status=None, reason=str(e))
            raise

    app = FastAPI(title="mlsec-lessons model server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.models = models
    app.state.public_key, app.state.encryption_key = public_key, encryption_key
    app.state.audit = audit
    app.state.limiter = RateLimiter(rate, burst)
    app.state.outputs, app.state.postprocessor = outputs, postprocessor
    app.state.quota, app.state.monitors = quota, monitors
    app.state.max_body_bytes, app.state.max_batch = max_body_bytes, max_batch
    app.state.client_limiter = None if client_rate is None else ClientLimiter(client_rate, client_burst)
    app.state.body_timeout_s = None if body_timeout_s is None else check_real(
        body_timeout_s, "body_timeout_s", min_value=0, include_boundaries="neither")
    app.state.runner = {"max_header_bytes": max_header_bytes, "max_connections": max_connections}

    def authenticate(request):
        """Who is asking (401), and are they within their rate (429)?"""
        token = auth.bearer_token(request.headers.get("authorization"))
        claims = auth.verify_token(token, jwt_key, audience=audience, issuer=issuer,
                                   algorithms=algorithms, leeway=leeway, max_lifetime=max_token_lifetime)
        request.state.audit["sub"] = claims["sub"]
        wait = app.state.limiter.check(claims["sub"])
        if wait > 0:
            raise RateLimited(wait)
        return claims

    def find(name):
        if name not in app.state.models:
            raise StarletteHTTPException(404, f"no model named {name!r}")
        return app.state.models[name]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(request: Request):
        claims = authenticate(request)
        scope = claims.get("models")
        return {"models": [m.describe() for m in app.state.models.values() if scope is None or m.name in scope]}

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request):
        request.state.audit["model"] = name
        claims = authenticate(request)
        auth.authorize(claims, model=name)
        served = find(name)
        _require_json(request)
        body = await read_body(request, app.state.max_body_bytes, app.state.body_timeout_s)
        request.state.audit["input_sha256"] = hashlib.sha256(body).hexdigest()
        x = validate_instances(parse_json(body), served.shape, served.low, served.high, app.state.max_batch)
        if app.state.quota is not None:  # counted only for valid requests: a 422 costs no quota
            wait = app.state.quota.take(claims["sub"], len(x))
            if wait > 0:
                raise QuotaExceeded(app.state.quota, claims["sub"], len(x), wait)
        answer = {"model": served.name, "model_sha256": served.sha256}
        if app.state.outputs == "probabilities":
            labels, scores = served.predict_with_scores(x)
            if app.state.postprocessor is not None:
                scores = np.asarray(app.state.postprocessor(scores), dtype=np.float64)
            answer["probabilities"] = scores.tolist()
        else:
            labels = served.predict(x)
        for monitor in app.state.monitors:
            try:
                alerts = list(monitor.observe(claims["sub"], x, np.asarray(labels)) or ())
            except Exception as e:  # a broken monitor is the operator's problem, not this client's: record it
                log.error("monitor %r failed: %s: %s", _monitor_name(monitor), type(e).__name__, e)
                app.state.audit.append(event="monitor-error", model=name, monitor=_monitor_name(monitor),
                                       error=f"{type(e).__name__}: {e}"[:500])
                continue
            for alert in alerts:
                app.state.audit.append(event="alert", model=name, **alert)
        return {"predictions": labels, **answer}

    @app.post("/v1/models/{name}/reload")
    async def reload(name: str, request: Request):
        request.state.audit["model"] = name
        auth.authorize(authenticate(request), model=name, admin=True)
        served = find(name)
        try:  # verifying and loading take a while: off the event loop
            fresh = await run_in_threadpool(load_model, served.directory, app.state.public_key, name,
                                            app.state.encryption_key)
        except (ValueError, OSError) as e:  # IntegrityError is a ValueError; a vanished directory an OSError
            log.error("refused to reload model %r from %s: %s", name, served.directory, e)
            raise ModelRefused(f"model {name!r} failed verification and was not reloaded; "
                               f"the previously verified model is still served: {e}") from None
        app.state.models[name] = fresh
        return {"reloaded": name, "model_sha256": fresh.sha256}

    _add_error_handlers(app)
    app.add_middleware(ClientAddressLimit)  # before authentication and every route ...
    app.add_middleware(AuditAndHeaders)  # ... but inside this one (added last: outermost), so refusals are audited
    return app


def _require_json(request):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise StarletteHTTPException(415, f"content-type must be application/json, got {kind or 'none'!r}")


def _error(status, reason, headers=None):
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


def _add_error_handlers(app):
    """Every failure a client can cause becomes a 4xx with a reason; nothing it sends gives a 5xx."""

    async def on_auth(request, e):
        request.state.audit["reason"] = e.reason
        # RFC 6750: a 401 says which scheme to use and, for a bad token, that it is invalid
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if e.status == 401 else None
        return _error(e.status, e.reason, challenge)

    async def on_rate(request, e):
        request.state.audit["reason"] = str(e)
        return _error(429, str(e), {"Retry-After": retry_after_header(e.wait_s)})

    async def on_input(request, e):  # ValidationError (422), BodyTooLarge (413), BodyTimeout (408)
        request.state.audit["reason"] = str(e)
        # the rest of a body that was too large or too slow is never read: close the connection
        return _error(e.status, str(e), None if e.status == 422 else {"Connection": "close"})

    async def on_disconnect(request, e):
        # the client went away before its body arrived: nobody reads this answer, but the log does
        request.state.audit.update(event="client-disconnect", reason="client disconnected before its body arrived")
        return _error(CLIENT_CLOSED, "client disconnected")

    async def on_refused(request, e):
        request.state.audit["reason"] = str(e)
        return _error(409, str(e))

    async def on_fastapi_validation(request, e):
        reason = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        request.state.audit["reason"] = reason
        return _error(422, reason)

    async def on_http(request, e):
        request.state.audit["reason"] = str(e.detail)
        return _error(e.status_code, e.detail, getattr(e, "headers", None))

    app.add_exception_handler(auth.AuthError, on_auth)
    app.add_exception_handler(RateLimited, on_rate)
    app.add_exception_handler(ValidationError, on_input)
    app.add_exception_handler(BodyTooLarge, on_input)
    app.add_exception_handler(BodyTimeout, on_input)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(ModelRefused, on_refused)
    app.add_exception_handler(RequestValidationError, on_fastapi_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer


def _decision(status):
    if status == CLIENT_CLOSED:
        return "abandoned"
    return "allow" if status < 400 else "deny" if status < 500 else "error"


class AuditAndHeaders:
    """ASGI middleware: security headers on every response, and one audit entry per request.

    The entry is appended *before* the last piece of the response is sent, so a client that has
    its answer can rely on the request being in the log. An exception that escapes the app
    (a bug, never a client's input) becomes a plain 500 that still has the headers and is logged.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        record = {"sub": None, "model": None, "reason": "", "input_sha256": None}
        scope.setdefault("state", {})["audit"] = record
        status = {}
        audit = scope["app"].state.audit

        def write():
            if scope["state"].get("unaudited"):  # a repeated refusal of a flood: counted, not written
                return
            code = status.get("code", 500)
            audit.append(method=scope["method"], path=scope["path"], status=code,
                         decision=_decision(code), latency_ms=round((time.perf_counter() - start) * 1000, 3),
                         **record)

        async def wrapped_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                message = {**message, "headers": headers + ASGI_HEADERS}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                write()  # before the last byte: a client that has its answer can find it in the log
                status["written"] = True
            await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if "code" in status:  # the response had started: nothing more can be sent
                if not status.get("written"):
                    write()
                raise
            record["reason"] = "internal error"
            await _error(500, "internal error")(scope, receive, wrapped_send)


class ClientAddressLimit:
    """ASGI middleware: a token bucket per client address, before authentication (429 + Retry-After).

    Inside :class:`AuditAndHeaders`, so a refusal has the security headers; only the first refusal
    per address in each interval is audited (``unaudited_before``: how many were not), so a flood
    of anonymous requests cannot grow the audit log without bound.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limiter = scope["app"].state.client_limiter if scope["type"] == "http" else None
        if limiter is None:
            return await self.app(scope, receive, send)
        address = scope["client"][0] if scope.get("client") else "unknown"
        wait, record, skipped = limiter.check(address)
        if wait == 0.0:
            return await self.app(scope, receive, send)
        reason = f"too many requests from {address}; retry in {wait:.2f} s"
        audit = scope.setdefault("state", {}).setdefault("audit", {})
        if record:
            audit.update(reason=reason, client=address, unaudited_before=skipped)
        else:
            scope["state"]["unaudited"] = True
        await _error(429, reason, {"Retry-After": retry_after_header(wait)})(scope, receive, send)


class BackgroundServer:
    """Run the server with uvicorn in a background thread, on a free port; a context manager.

    Parameters
    ----------
    app : ASGI app or None
        The app to serve; ``None`` builds one with ``create_app(**create_app_kwargs)``.
    host : str
        The address to listen on (loopback by default: nothing outside the machine can reach it).
    port : int
        0 picks a free port; ``url`` tells which.
    ssl_certfile, ssl_keyfile : path-like or None
        Serve HTTPS with this certificate and key (see :mod:`.tls`).
    **create_app_kwargs
        Passed to :func:`create_app` when ``app`` is None.

    Examples
    --------
    >>> with BackgroundServer(model_dir="models/digits") as server:      # doctest: +SKIP
    ...     print(httpx.get(server.url + "/healthz").status_code)
    200
    """

    def __init__(self, app=None, *, host="127.0.0.1", port=0, ssl_certfile=None, ssl_keyfile=None,
                 startup_timeout=30.0, **create_app_kwargs):
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise ValueError("give both ssl_certfile and ssl_keyfile, or neither")
        self.app = app if app is not None else create_app(**create_app_kwargs)
        self.host, self.port = host, port
        self.ssl_certfile, self.ssl_keyfile = ssl_certfile, ssl_keyfile
        self.startup_timeout = startup_timeout
        self._server = self._thread = self._socket = None

    @property
    def url(self):
        scheme = "https" if self.ssl_certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self):
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, self.port))  # port 0: the OS picks a free port, no race
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                                **uvicorn_options(self.app))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"mlsec-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self):
        """Ask uvicorn to exit, wait for its thread, and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(host="127.0.0.1", port=8000, tls=False, cert=None, key=None, **create_app_kwargs):
    """Run the server in the foreground (``mlsec serve``) until interrupted.

    ``tls=True`` without ``cert``/``key`` generates a self-signed certificate in the cache and
    prints where, so a client can trust exactly it (``curl --cacert``, ``httpx.Client(verify=...)``).
    """
    import uvicorn

    if (cert is None) != (key is None):
        raise ValueError("give both cert and key, or neither")
    if tls and cert is None:
        from ..cache import cache_dir
        from .tls import self_signed_cert

        folder = cache_dir() / "deployment" / "tls"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_cert(folder / "cert.pem", folder / "key.pem", hostnames=_hostnames(host))
        print(f"self-signed certificate: {cert}", flush=True)
    app = create_app(**create_app_kwargs)
    print(f"serving model(s) {', '.join(app.state.models)} over {'HTTPS' if cert else 'HTTP'}", flush=True)
    uvicorn.run(app, host=host, port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="info",
                **uvicorn_options(app))


class HeaderLimitedH11(H11Protocol):
    """uvicorn's h11 protocol, answering 431 (not 400) when the request line and headers are over the
    limit (``h11_max_incomplete_event_size``): the client learns what it did wrong."""

    def send_400_response(self, msg):
        if len(self.conn.trailing_data[0]) <= self.config.h11_max_incomplete_event_size:
            return super().send_400_response(msg)
        body = b"request header fields too large"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")] + ASGI_HEADERS
        for event in (h11.Response(status_code=431, headers=headers, reason=b"Request Header Fields Too Large"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def uvicorn_options(app):
    """The uvicorn settings that bound what one client can make the server hold: with
    ``max_header_bytes`` the h11 parser (:class:`HeaderLimitedH11`), which buffers at most that many
    bytes of headers, where uvicorn's default parser (httptools) has no limit; ``max_connections``
    open connections (503 beyond). Read from ``app.state.runner`` (set by :func:`create_app`)."""
    runner = getattr(getattr(app, "state", None), "runner", None) or {}
    options = {"server_header": False, "ws": "none", "limit_concurrency": runner.get("max_connections")}
    if runner.get("max_header_bytes"):
        options.update(http=HeaderLimitedH11, h11_max_incomplete_event_size=runner["max_header_bytes"])
    return options


def _hostnames(host):
    names = ["localhost", "127.0.0.1"]
    return names if host in ("127.0.0.1", "localhost", "0.0.0.0") else [host] + names
