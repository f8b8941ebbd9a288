"""The server's ASGI middleware: an audit entry and the security headers on every response, and a
rate limit per client address before anything else runs.

Order, outermost first: :class:`AuditAndHeaders`, then :class:`ClientAddressLimit`, then the app.
A request refused by the address limit therefore still gets the headers and (the first of a
flood) its audit entry, but never costs a token check.
"""
import logging
import time

from .errors import decision, error_response
from .headers import ASGI_HEADERS
from .ratelimit import retry_after_header

log = logging.getLogger(__name__)


class AuditAndHeaders:
    """Security headers on every response, and one audit entry per request.

    The entry is appended *before* the last piece of the response is sent, so a client that has
    its answer can rely on the request being in the log. An exception that escapes the app
    (a bug, never a client's input) becomes a plain 500 that still has the headers and is logged.
    A request marked ``unaudited`` (a repeated refusal of a flood) is counted elsewhere, not written.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        record = {"sub": None, "model": None, "reason": "", "input_sha256": None}
        state = scope.setdefault("state", {})
        state["audit"] = record
        status = {}
        audit = scope["app"].state.audit

        def write():
            if state.get("unaudited"):
                return
            code = status.get("code", 500)
            audit.append(method=scope["method"], path=scope["path"], status=code, decision=decision(code),
                         latency_ms=round((time.perf_counter() - start) * 1000, 3), **record)

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
            await error_response(500, "internal error")(scope, receive, wrapped_send)


class ClientAddressLimit:
    """A token bucket per client address, before authentication: 429 with ``Retry-After``.

    Uses ``app.state.client_limiter`` (a :class:`~mlsec_lessons.deployment.ratelimit.ClientLimiter`,
    or ``None`` for no limit). Only the first refusal per address in each interval is audited
    (``unaudited_before``: how many were not), so a flood of anonymous requests cannot grow the
    audit log without bound.
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
        state = scope.setdefault("state", {})
        if record:
            state.setdefault("audit", {}).update(reason=reason, client=address, unaudited_before=skipped)
        else:
            state["unaudited"] = True
        await error_response(429, reason, {"Retry-After": retry_after_header(wait)})(scope, receive, send)
