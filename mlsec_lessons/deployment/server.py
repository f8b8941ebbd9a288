"""The course's model server: FastAPI + uvicorn, with every control the source only described.

The source's ``SecureModelDeployment`` had a fake endpoint URL and a "rate limit" that was a
string. This one serves a signed model over real HTTP. Before a request reaches the app, the server
(:mod:`.runner`) refuses headers over 64 KiB (431, connection closed) and connections over 64 (503).
Then each request passes, in order:

================================  ======  ========================================================
check                             status  where
================================  ======  ========================================================
requests per client address       429     :class:`~mlsec_lessons.deployment.middleware.ClientAddressLimit`
``Authorization: Bearer`` token   401     :func:`~mlsec_lessons.deployment.auth.verify_token`
rate limit for the token's sub    429     :class:`~mlsec_lessons.deployment.ratelimit.RateLimiter`
role and model scope              403     :func:`~mlsec_lessons.deployment.auth.authorize`
the model exists                  404
content type is JSON              415
body size, before parsing         413     :func:`~mlsec_lessons.deployment.validation.read_body`
body arrives within 10 s          408     :func:`~mlsec_lessons.deployment.validation.read_body`
JSON                              422     :func:`~mlsec_lessons.deployment.validation.parse_json`
*a classifier:*
shape, type, NaN, range           422     :func:`~mlsec_lessons.deployment.validation.validate_instances`
query quota, if one is set        429     :class:`~mlsec_lessons.deployment.ratelimit.QueryQuota`
*a language model:*
prompt and max_new_tokens         422     :meth:`~mlsec_lessons.deployment.language_model.LanguageModelSpec.check`
token budget, if one is set       429     :class:`~mlsec_lessons.deployment.ratelimit.TokenBudget`
================================  ======  ========================================================

The route hands the body to the served model's kind (:mod:`.served`): a classifier takes
``{"instances": [...]}``, a language model (:mod:`.language_model`) takes ``{"prompt": "...",
"max_new_tokens": 16}`` and answers text and its token counts.

Every response carries the security headers (:mod:`.headers`) and no ``Server`` header, and every
request, allowed or not, is appended to the HMAC-chained audit log before its response is
finished: time, method, path, status, decision, latency, the token's ``sub`` and the model once they
are known, the reason for a refusal, the ``tokens`` a language model's answer cost, and
``input_sha256``, the hash of the body, for requests whose body was read (``null`` when the request
was refused before that: 401, 403, 413, 415, and 429 from the rate limit). A client that leaves before its body arrived is recorded as status 499,
``event="client-disconnect"``; of a flood refused per address, only the first refusal in ten seconds
is recorded, with the count of the others.

Options for lesson 08 (model theft) are two hooks (:mod:`.hooks`): ``outputs="probabilities"``
returns class probabilities beside the labels, optionally through an output ``postprocessor``;
``monitors`` see every allowed prediction request (a PRADA detector, an adversarial-input detector, a
drift test) and their alerts become ``event="alert"`` entries of the same audit log.

The server is configured by one :class:`~.settings.ServerSettings`. This module gathers the public
names of its parts: the app (:mod:`.app`), its middleware (:mod:`.middleware`), its errors
(:mod:`.errors`), its hooks (:mod:`.hooks`) and its runner (:mod:`.runner`).

A model is served only if its signed manifest verifies; ``/reload`` re-verifies, and a
model that no longer verifies is refused with 409 while the last verified one goes on serving.

Examples
--------
>>> import httpx
>>> from mlsec_lessons.deployment.server import BackgroundServer
>>> from mlsec_lessons.course import demo_model_dir
>>> with BackgroundServer(model_dir=demo_model_dir()) as server:       # doctest: +SKIP
...     httpx.get(server.url + "/healthz").json()
{'status': 'ok'}
"""
from .app import audit_key, create_app, load_model, model_dirs, open_audit
from .errors import (
    CLIENT_CLOSED,
    ModelRefused,
    QuotaExceeded,
    RateLimited,
    TokenBudgetExceeded,
    add_error_handlers,
    decision,
)
from .hooks import OUTPUTS, LabelsOnly, Monitor, OutputPolicy, Probabilities, output_policy, run_monitors
from .middleware import AuditAndHeaders, ClientAddressLimit
from .runner import BackgroundServer, HeaderLimitedHttpTools, ServerStartError, serve, uvicorn_options
from .served import Call, Served, ServedModel
from .settings import ServerSettings

__all__ = ["ServedModel", "Served", "Call", "audit_key", "create_app", "load_model", "model_dirs", "open_audit",
           "CLIENT_CLOSED", "ModelRefused", "QuotaExceeded", "RateLimited", "TokenBudgetExceeded", "add_error_handlers",
           "decision", "OUTPUTS",
           "LabelsOnly", "Monitor", "OutputPolicy", "Probabilities", "output_policy", "run_monitors",
           "AuditAndHeaders", "ClientAddressLimit", "BackgroundServer", "HeaderLimitedHttpTools", "ServerStartError",
           "serve", "uvicorn_options", "ServerSettings"]
