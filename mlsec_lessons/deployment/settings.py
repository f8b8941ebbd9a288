"""Everything the model server can be configured with, in one frozen, checked object.

:func:`~mlsec_lessons.deployment.app.create_app` takes a :class:`ServerSettings` (or the same fields
as keywords) and nothing else, so a deployment's configuration can be built, checked, printed and
compared before a server exists. Every field is checked when the object is made: a bad setting
fails at start-up with the field's name, never on the request that first needs it.

Examples
--------
>>> settings = ServerSettings(model_dir="models/digits", rate=5.0, burst=10)
>>> settings.rate, settings.client_rate, settings.max_header_bytes
(5.0, 100.0, 65536)
>>> settings.max_new_tokens, settings.token_budget, settings.token_budget_period_s
(32, 100000, 86400.0)
>>> ServerSettings(model_dir="models/digits", max_batch=0)
Traceback (most recent call last):
...
mlsec_lessons.errors.InvalidParameterError: max_batch must be in [1, inf], got 0
>>> ServerSettings()
Traceback (most recent call last):
...
mlsec_lessons.errors.InvalidParameterError: model_dir is required: ...
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameterError, ParameterTypeError
from ..validation import check_int, check_real
from . import auth
from .hooks import OUTPUTS, output_policy


def _optional_int(value, name):
    return None if value is None else check_int(value, name, min_value=1)


def _positive_real(value, name):
    return check_real(value, name, min_value=0, include_boundaries="neither")


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """The model server's configuration (keyword-only; frozen: change it with :meth:`replace`).

    Parameters
    ----------
    model_dir : path-like
        A signed model directory (served under its name) or a folder of them. Required: the
        server never picks a model for you (the course's demo model is
        :func:`mlsec_lessons.course.demo_model_dir`).
    secret_file : path-like or None
        The HS256 secret (at least 32 bytes). ``None``: the development secret in the cache.
    public_key : path-like or None
        The Ed25519 public key model manifests must verify against. ``None``: the development key.
    audit_log : AuditLog, path-like or None
        Where every request is recorded. ``None``: ``audit.jsonl`` in the cache's deployment folder.
    audit_key_file : path-like or None
        The audit log's HMAC key. ``None``: a key derived from the JWT secret
        (:func:`~mlsec_lessons.deployment.app.audit_key`).
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
    outputs : {"labels", "probabilities"} or OutputPolicy
        What a classifier's prediction returns besides the labels: nothing (the default), the class
        probabilities (the softmax of the model's logits), or whatever an
        :class:`~mlsec_lessons.deployment.hooks.OutputPolicy` hook returns. Scores help honest users
        and model thieves alike (lesson 08).
    postprocessor : callable or None
        Applied to the probabilities before they are returned, e.g. ART's ``Rounded`` or
        ``ReverseSigmoid`` (an output defense against model extraction); needs
        ``outputs="probabilities"``. The labels are always the model's own.
    quota, quota_period_s : int or None, float
        At most ``quota`` instances predicted per token subject per ``quota_period_s`` seconds
        (a day by default); more gets 429. ``None``: no quota.
    max_new_tokens : int
        A language model's per-request cap on generated tokens: a body that asks for more gets 422
        (never silently fewer), and one that does not ask gets this many at most.
    token_budget, token_budget_period_s : int or None, float
        At most ``token_budget`` tokens (prompt and generated) per token subject per
        ``token_budget_period_s`` seconds (a day by default), over every language model served;
        a request whose worst case (its prompt plus ``max_new_tokens``) does not fit in what is
        left gets 429 with ``Retry-After`` (:class:`~mlsec_lessons.deployment.ratelimit.TokenBudget`).
        ``None``: no budget. A request costs at most the model's context (64 tokens for the course's
        transformer), so the default allows at least 1,562 requests a day.
    monitors : sequence of Monitor
        :class:`~mlsec_lessons.deployment.hooks.Monitor` hooks, shown every allowed prediction
        request of a classifier in order (e.g. :class:`~mlsec_lessons.theft.prada.PRADA`). Their
        alerts become ``event="alert"`` audit entries; a monitor that raises does not fail the request: the
        failure is audited as ``event="monitor-error"``.
    client_rate, client_burst : float or None, int
        Token bucket per client address, checked before authentication; more gets 429 with
        ``Retry-After``. Only the first refusal per address in ten seconds is audited, with the
        count of those that were not. ``client_rate=None``: no limit per address.
    body_timeout_s : float or None
        The whole request body must arrive within this many seconds, else 408 and the connection
        is closed. ``None``: no limit.
    header_timeout_s : float or None
        A connection must send a request's line and headers within this many seconds of opening
        (or of starting the request), else 408 and it is closed: a client that sends headers
        slowly, or nothing, cannot hold one of the ``max_connections`` slots. ``None``: no limit.
    max_header_bytes : int or None
        The most bytes of request line and headers buffered; more gets 431 and the connection is
        closed (:class:`~mlsec_lessons.deployment.runner.HeaderLimitedHttpTools`). ``None``: no limit.
    max_connections : int or None
        Open connections at most; more get 503. ``None``: no limit.
    """

    model_dir: object = None
    secret_file: object = None
    public_key: object = None
    audit_log: object = None
    audit_key_file: object = None
    rate: float = 20.0
    burst: int = 40
    max_body_bytes: int = 1_000_000
    max_batch: int = 256
    audience: str = auth.AUDIENCE
    issuer: str = auth.ISSUER
    leeway: float = auth.LEEWAY_S
    max_token_lifetime: float = auth.MAX_LIFETIME_S
    jwt_public_key: object = None
    encryption_key: bytes = None
    outputs: object = "labels"
    postprocessor: object = None
    quota: int = None
    quota_period_s: float = 86400.0
    max_new_tokens: int = 32
    token_budget: int = 100_000
    token_budget_period_s: float = 86400.0
    monitors: tuple = ()
    client_rate: float = 100.0
    client_burst: int = 200
    body_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    max_header_bytes: int = 65536
    max_connections: int = 64

    def __post_init__(self):
        def put(name, value):  # frozen: set the checked, canonical value once, here
            object.__setattr__(self, name, value)

        if self.model_dir is None:
            raise InvalidParameterError(
                "model_dir is required: a signed model directory or a folder of them (the course's demo "
                "model is mlsec_lessons.course.demo_model_dir())")
        if not isinstance(self.model_dir, (str, Path)):
            raise ParameterTypeError(f"model_dir must be a path, got {type(self.model_dir).__name__}")
        put("rate", _positive_real(self.rate, "rate"))
        put("burst", check_int(self.burst, "burst", min_value=1))
        put("max_body_bytes", check_int(self.max_body_bytes, "max_body_bytes", min_value=1))
        put("max_batch", check_int(self.max_batch, "max_batch", min_value=1))
        put("leeway", check_real(self.leeway, "leeway", min_value=0))
        put("max_token_lifetime", _positive_real(self.max_token_lifetime, "max_token_lifetime"))
        put("quota", _optional_int(self.quota, "quota"))
        put("quota_period_s", _positive_real(self.quota_period_s, "quota_period_s"))
        put("max_new_tokens", check_int(self.max_new_tokens, "max_new_tokens", min_value=1))
        put("token_budget", _optional_int(self.token_budget, "token_budget"))
        put("token_budget_period_s", _positive_real(self.token_budget_period_s, "token_budget_period_s"))
        if self.client_rate is not None:
            put("client_rate", _positive_real(self.client_rate, "client_rate"))
        put("client_burst", check_int(self.client_burst, "client_burst", min_value=1))
        if self.body_timeout_s is not None:
            put("body_timeout_s", _positive_real(self.body_timeout_s, "body_timeout_s"))
        if self.header_timeout_s is not None:
            put("header_timeout_s", _positive_real(self.header_timeout_s, "header_timeout_s"))
        put("max_header_bytes", _optional_int(self.max_header_bytes, "max_header_bytes"))
        put("max_connections", _optional_int(self.max_connections, "max_connections"))
        if isinstance(self.outputs, str) and self.outputs not in OUTPUTS:
            raise InvalidParameterError(f"outputs must be one of {OUTPUTS} or an OutputPolicy, got {self.outputs!r}")
        output_policy(self.outputs, self.postprocessor)  # checks the pair
        if isinstance(self.monitors, (str, bytes)) or not hasattr(self.monitors, "__iter__"):
            raise ParameterTypeError(f"monitors must be a sequence of monitors, got {self.monitors!r}")
        put("monitors", tuple(self.monitors))
        for monitor in self.monitors:
            if not callable(getattr(monitor, "observe", None)):
                raise InvalidParameterError(f"each monitor needs an observe(sub, x, labels) method, got {monitor!r}")

    def replace(self, **changes):
        """A copy with ``changes`` applied, checked again."""
        return dataclasses.replace(self, **changes)
