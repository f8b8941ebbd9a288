"""The security headers on every response, after the OWASP Secure Headers Project.

An API that returns JSON needs few browser features, so the policy denies nearly everything: no
framing, no sniffing, no scripts or other resources, no caching of predictions, no referrer.
Two things are deliberately missing (source mistake 13; see the pitfall callout in lesson 07):

* ``X-XSS-Protection``: deprecated; OWASP says drop it or set it to 0, because the filters it
  switched on could themselves be abused to leak data.
* ``Server``: naming the server and its version helps an attacker pick exploits; uvicorn is run
  with ``server_header=False``.

Examples
--------
>>> SECURITY_HEADERS["X-Content-Type-Options"]
'nosniff'
>>> "X-XSS-Protection" in SECURITY_HEADERS
False
"""

SECURITY_HEADERS = {
    # browsers ignore HSTS over plain HTTP (RFC 6797); over TLS it pins the site to HTTPS for a year
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Permitted-Cross-Domain-Policies": "none",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                           "microphone=(), payment=(), usb=()"),
    "Cache-Control": "no-store, max-age=0",
}

# as ASGI wants them: lower-case latin-1 bytes, ready to append to a response's headers
ASGI_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
