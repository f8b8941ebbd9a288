"""The server's errors, and how each becomes a response.

Every failure a client can cause becomes a 4xx with a reason it can read; nothing a client sends
gives a 5xx. Each handler also writes the reason into the request's audit record.

==============================================  ======
error                                           status
==============================================  ======
:class:`~.auth.AuthError`                       401 or 403
:class:`RateLimited`, :class:`QuotaExceeded`    429 with ``Retry-After``
:class:`TokenBudgetExceeded`                    429 with ``Retry-After``
:class:`~.validation.BodyTimeout`               408, connection closed
:class:`~.validation.BodyTooLarge`              413, connection closed
:class:`~.validation.ValidationError`           422
:class:`ModelRefused`                           409
the client went away mid-body                   499 (audited as ``event="client-disconnect"``)
==============================================  ======
"""
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import MLSecError
from . import auth
from .ratelimit import retry_after_header
from .validation import BodyTimeout, BodyTooLarge, ValidationError

CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer


class RateLimited(MLSecError):
    """The token's subject (or the client's address) is over its rate; answered 429 with ``Retry-After``."""

    def __init__(self, wait_s, message=None):
        super().__init__(message or f"rate limit exceeded; retry in {wait_s:.2f} s")
        self.wait_s = wait_s


class QuotaExceeded(RateLimited):
    """The subject has used its query quota for this period; answered 429 with ``Retry-After``."""

    def __init__(self, quota, sub, n, wait_s):
        super().__init__(wait_s, f"query quota exhausted: this subject may have {quota.limit} instances predicted "
                                 f"per {quota.period_s:g} s, {quota.remaining(sub)} are left and the request "
                                 f"asked for {n}; the quota resets in {wait_s:.0f} s")


class TokenBudgetExceeded(RateLimited):
    """The subject's token budget cannot cover the request's worst case; answered 429 with ``Retry-After``."""

    def __init__(self, budget, sub, n, wait_s):
        super().__init__(wait_s, f"token budget exhausted: this subject may use {budget.limit} tokens (prompt and "
                                 f"generated) per {budget.period_s:g} s, {budget.remaining(sub)} are left and the "
                                 f"request may use up to {n} (its prompt plus max_new_tokens; ask for fewer new "
                                 f"tokens, or wait); the budget resets in {wait_s:.0f} s")


class ModelRefused(MLSecError):
    """A model whose artifact failed verification on reload; answered 409, the old model stays."""


def error_response(status, reason, headers=None):
    """The JSON error every refusal sends: ``{"detail": reason}``."""
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


def decision(status):
    """The audit log's ``decision`` for a response status."""
    if status == CLIENT_CLOSED:
        return "abandoned"
    return "allow" if status < 400 else "deny" if status < 500 else "error"


def add_error_handlers(app):
    """Register a handler per error: a 4xx with a reason, and the reason in the audit record."""

    async def on_auth(request, e):
        request.state.audit["reason"] = e.reason
        # RFC 6750: a 401 says which scheme to use and, for a bad token, that it is invalid
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if e.status == 401 else None
        return error_response(e.status, e.reason, challenge)

    async def on_rate(request, e):
        request.state.audit["reason"] = str(e)
        return error_response(429, str(e), {"Retry-After": retry_after_header(e.wait_s)})

    async def on_input(request, e):  # ValidationError (422), BodyTooLarge (413), BodyTimeout (408)
        request.state.audit["reason"] = str(e)
        # the rest of a body that was too large or too slow is never read: close the connection
        return error_response(e.status, str(e), None if e.status == 422 else {"Connection": "close"})

    async def on_disconnect(request, e):
        # the client went away before its body arrived: nobody reads this answer, but the log does
        request.state.audit.update(event="client-disconnect", reason="client disconnected before its body arrived")
        return error_response(CLIENT_CLOSED, "client disconnected")

    async def on_refused(request, e):
        request.state.audit["reason"] = str(e)
        return error_response(409, str(e))

    async def on_fastapi_validation(request, e):
        reason = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        request.state.audit["reason"] = reason
        return error_response(422, reason)

    async def on_http(request, e):
        request.state.audit["reason"] = str(e.detail)
        return error_response(e.status_code, e.detail, getattr(e, "headers", None))

    app.add_exception_handler(auth.AuthError, on_auth)
    app.add_exception_handler(RateLimited, on_rate)
    for kind in (ValidationError, BodyTooLarge, BodyTimeout):
        app.add_exception_handler(kind, on_input)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(ModelRefused, on_refused)
    app.add_exception_handler(RequestValidationError, on_fastapi_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
