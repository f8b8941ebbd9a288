"""The model server's FastAPI app: its routes and the models it serves.

:func:`create_app` takes one :class:`~mlsec_lessons.deployment.settings.ServerSettings` and wires
the pieces: the middleware (:mod:`.middleware`), the error handlers (:mod:`.errors`), the output
policy and the monitors (:mod:`.hooks`), and one served-model class per kind of model (:mod:`.served`,
:mod:`.language_model`). :mod:`.runner` serves the app.
"""
import hashlib
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InvalidParameterError
from . import auth
from .artifacts import IntegrityError
from .errors import ModelRefused, RateLimited, add_error_handlers
from .hooks import output_policy
from .middleware import AuditAndHeaders, ClientAddressLimit
from .ratelimit import ClientLimiter, QueryQuota, RateLimiter, TokenBudget
from .served import Call, ServedModel
from .settings import ServerSettings
from .validation import parse_json, read_body

log = logging.getLogger(__name__)


def load_model(directory, public_key, name=None, encryption_key=None):
    """Verify a signed model directory and load it; raises :class:`~.artifacts.IntegrityError`.

    A directory with a signed ``language_model.json`` is served as a
    :class:`~.language_model.ServedLanguageModel`, any other as a classifier (:class:`~.served.ServedModel`).

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
    from .artifacts import LANGUAGE_MODEL, load_verified_model

    directory = Path(directory)
    kind = ServedModel
    if (directory / LANGUAGE_MODEL).is_file():  # a hint only: what was verified decides (from_model checks)
        from .language_model import ServedLanguageModel as kind  # importing it registers the transformer's layers
    model, sha256 = load_verified_model(directory, public_key, key=encryption_key)
    return kind.from_model(name or directory.name, directory, model, sha256)


def model_dirs(model_dir):
    """``{name: directory}``: one signed model directory, or a folder of them."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InvalidParameterError(f"model_dir must be a directory, got {str(model_dir)!r}")
    children = sorted(d for d in model_dir.iterdir() if (d / "MANIFEST.json").is_file())
    if (model_dir / "MANIFEST.json").is_file() or not children:
        return {model_dir.name: model_dir}  # an unsigned directory ends up here and is refused
    return {d.name: d for d in children}


def audit_key(audit_key_file=None, secret_file=None):
    """The audit log's HMAC key: the contents of ``audit_key_file``, else derived from the JWT secret
    (``secret_file``, or the development secret). ``mlsec audit verify`` uses the same rule.

    Derived with :func:`~mlsec_lessons.deployment.keys.derive_key`, never the JWT secret itself, so
    the two keys are independent; whoever checks the log needs ``audit_key_file``, or the secret.
    """
    from . import keys

    if audit_key_file is not None:
        return keys.load_jwt_secret(audit_key_file)  # the same >= 32 byte check as any secret
    return keys.derive_key(keys.load_jwt_secret(secret_file or keys.dev_jwt_secret_file()), "audit-log")


def open_audit(settings):
    """The settings' audit log (an :class:`~.audit.AuditLog`, made from a path if need be)."""
    from . import keys
    from .audit import AuditLog

    if isinstance(settings.audit_log, AuditLog):
        return settings.audit_log
    path = keys.deployment_dir() / "audit.jsonl" if settings.audit_log is None else settings.audit_log
    return AuditLog(path, audit_key(settings.audit_key_file, settings.secret_file))


def _require_json(request):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise StarletteHTTPException(415, f"content-type must be application/json, got {kind or 'none'!r}")


def create_app(*, settings=None, **fields):
    """Build the model server's FastAPI app from one :class:`~.settings.ServerSettings`.

    Each request passes, in order: the limit per client address (429), the bearer token (401), the
    rate limit of the token's subject (429), role and model scope (403), the model's existence
    (404), the content type (415), the body's size and arrival time (413, 408), its JSON (422), then
    what the model's kind checks (:meth:`~.served.Served.respond`): a classifier's shape, type,
    finiteness and range (422) and the query quota (429); a language model's prompt and
    ``max_new_tokens`` (422) and the token budget (429). Every request is audited.

    Parameters
    ----------
    settings : ServerSettings or None
        The server's configuration.
    **fields
        :class:`~.settings.ServerSettings` fields: the settings themselves when ``settings`` is
        None (``create_app(model_dir=..., rate=5)``), else changes to it.

    Returns
    -------
    fastapi.FastAPI
        ``app.state`` holds ``settings``, ``models``, ``audit``, ``limiter``, ``client_limiter``,
        ``quota``, ``token_budget``, ``output_policy`` and ``monitors``.

    Raises
    ------
    IntegrityError
        If a model is unsigned or tampered with; the refusal is written to the audit log first.
    InvalidParameterError
        If a setting is bad, or ``model_dir`` is missing.
    """
    from . import keys

    if settings is None:
        settings = ServerSettings(**fields)
    elif not isinstance(settings, ServerSettings):
        raise InvalidParameterError(f"settings must be a ServerSettings, got {type(settings).__name__}")
    elif fields:
        settings = settings.replace(**fields)
    if settings.jwt_public_key is not None:
        jwt_key, algorithms = keys.load_public_key(settings.jwt_public_key), ("EdDSA",)
    else:
        jwt_key, algorithms = keys.load_jwt_secret(settings.secret_file or keys.dev_jwt_secret_file()), ("HS256",)
    public_key = settings.public_key if settings.public_key is not None else keys.dev_signing_key()[1]
    audit = open_audit(settings)

    models = {}
    for name, directory in model_dirs(settings.model_dir).items():
        try:
            models[name] = load_model(directory, public_key, name, settings.encryption_key)
        except (IntegrityError, ValueError) as e:  # tampered or unsigned; or no key for an encrypted model
            log.error("refused to load model %r from %s: %s", name, directory, e)
            audit.append(event="load", model=name, decision="refused", status=None, reason=str(e))
            raise

    app = FastAPI(title="mlsec-lessons model server", docs_url=None, redoc_url=None, openapi_url=None)
    state = app.state
    state.settings, state.models, state.audit, state.public_key = settings, models, audit, public_key
    state.limiter = RateLimiter(settings.rate, settings.burst)
    state.client_limiter = (None if settings.client_rate is None
                            else ClientLimiter(settings.client_rate, settings.client_burst))
    state.quota = None if settings.quota is None else QueryQuota(settings.quota, settings.quota_period_s)
    state.token_budget = (None if settings.token_budget is None
                          else TokenBudget(settings.token_budget, settings.token_budget_period_s))
    state.output_policy = output_policy(settings.outputs, settings.postprocessor)
    state.monitors = settings.monitors

    def authenticate(request):
        """Who is asking (401), and are they within their rate (429)?"""
        token = auth.bearer_token(request.headers.get("authorization"))
        claims = auth.verify_token(token, jwt_key, audience=settings.audience, issuer=settings.issuer,
                                   algorithms=algorithms, leeway=settings.leeway,
                                   max_lifetime=settings.max_token_lifetime)
        request.state.audit["sub"] = claims["sub"]
        wait = state.limiter.check(claims["sub"])
        if wait > 0:
            raise RateLimited(wait)
        return claims

    def find(name):
        if name not in state.models:
            raise StarletteHTTPException(404, f"no model named {name!r}")
        return state.models[name]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(request: Request):
        scope = authenticate(request).get("models")
        return {"models": [m.describe() for m in state.models.values() if scope is None or m.name in scope]}

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request):
        request.state.audit["model"] = name
        claims = authenticate(request)
        auth.authorize(claims, model=name)
        served = find(name)
        _require_json(request)
        body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        request.state.audit["input_sha256"] = hashlib.sha256(body).hexdigest()
        # the kind's own checks, limits and answer (served.py): this route knows no kind
        return await served.respond(parse_json(body), Call(claims["sub"], settings, state, request.state.audit))

    @app.post("/v1/models/{name}/reload")
    async def reload(name: str, request: Request):
        request.state.audit["model"] = name
        auth.authorize(authenticate(request), model=name, admin=True)
        served = find(name)
        try:  # verifying and loading take a while: off the event loop
            fresh = await run_in_threadpool(load_model, served.directory, public_key, name, settings.encryption_key)
        except (IntegrityError, ValueError, OSError) as e:  # tampered; no key; a vanished directory
            log.error("refused to reload model %r from %s: %s", name, served.directory, e)
            raise ModelRefused(f"model {name!r} failed verification and was not reloaded; "
                               f"the previously verified model is still served: {e}") from None
        state.models[name] = fresh
        return {"reloaded": name, "model_sha256": fresh.sha256}

    add_error_handlers(app)
    app.add_middleware(ClientAddressLimit)  # before authentication and every route ...
    app.add_middleware(AuditAndHeaders)  # ... but inside this one (added last: outermost), so refusals are audited
    return app
