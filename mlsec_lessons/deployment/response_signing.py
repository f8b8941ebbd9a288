"""Signed prediction responses (OWASP ML09, output integrity).

A prediction can be altered after the model made it: by a proxy, a compromised service
between the model and its consumer, or anyone who can write to the channel. TLS protects
one hop; a signature protects the result end to end. The server signs the exact bytes of
each response body with its Ed25519 key (the same kind of key that signs model manifests,
:mod:`mlsec_lessons.deployment.keys`), and the client verifies them with the public key
before it acts on the prediction. The body carries the client's ``request_id`` and the time
it was issued, so an old, validly signed response cannot be replayed for a new request.

Examples
--------
>>> import tempfile, pathlib
>>> from mlsec_lessons.deployment.keys import generate_signing_key
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> priv, pub = generate_signing_key(d / "k.pem", d / "k.pub.pem")
>>> body, sig = sign_response({"label": 7}, priv, request_id="r-1", issued_at=100.0)
>>> verify_response(body, sig, pub, request_id="r-1", now=101.0)["label"]
7
>>> verify_response(body.replace(b'"label": 7', b'"label": 1'), sig, pub, request_id="r-1", now=101.0)
Traceback (most recent call last):
...
mlsec_lessons.deployment.artifacts.IntegrityError: the response signature does not verify: ...
"""
import base64
import binascii
import json
import math
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InvalidParameterError
from .artifacts import IntegrityError
from .keys import load_private_key, load_public_key

SIGNATURE_HEADER = "X-Response-Signature"


def _private(key):
    return key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)


def _public(key):
    return key if isinstance(key, Ed25519PublicKey) else load_public_key(key)


def sign_response(payload, private_key, *, request_id, issued_at=None):
    """The response body (canonical JSON bytes) and its Ed25519 signature (base64 text).

    Parameters
    ----------
    payload : dict
        What the server answers, e.g. ``{"label": 7, "scores": [...]}``; JSON-serialisable,
        without the reserved keys ``request_id`` and ``issued_at``.
    private_key : path or Ed25519PrivateKey
    request_id : str
        The identifier the client sent with its request; binds the response to it.
    issued_at : float or None
        Unix time; ``None`` means now.

    Returns
    -------
    (bytes, str)
        Send the bytes as the body and the string in the ``X-Response-Signature`` header.
    """
    if not isinstance(payload, dict):
        raise InvalidParameterError(f"payload must be a dict, got {type(payload).__name__}")
    if {"request_id", "issued_at"} & set(payload):
        raise InvalidParameterError("payload must not set request_id or issued_at; they are added and signed here")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidParameterError(f"request_id must be a non-empty string, got {request_id!r}")
    issued_at = time.time() if issued_at is None else float(issued_at)
    body = json.dumps({**payload, "request_id": request_id, "issued_at": issued_at}, sort_keys=True,
                      allow_nan=False).encode()
    return body, base64.b64encode(_private(private_key).sign(body)).decode("ascii")


def verify_response(body, signature, public_key, *, request_id, max_age_s=60.0, now=None):
    """Verify a signed response and return its payload; raise ``IntegrityError`` otherwise.

    Checks, in order: the signature over the exact bytes, that the body answers
    ``request_id``, and that it was issued at most ``max_age_s`` seconds before ``now``.
    """
    if not isinstance(body, (bytes, bytearray)):
        raise InvalidParameterError(f"body must be the raw response bytes, got {type(body).__name__}")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise IntegrityError("the response signature is not valid base64") from None
    try:
        _public(public_key).verify(raw_signature, bytes(body))
    except InvalidSignature:
        raise IntegrityError("the response signature does not verify: the body was changed or signed by "
                             "another key") from None
    payload = json.loads(body)
    if payload.get("request_id") != request_id:
        raise IntegrityError(f"the response answers request {payload.get('request_id')!r}, not {request_id!r} "
                             "(a replayed response)")
    now = time.time() if now is None else float(now)
    age = now - float(payload["issued_at"])
    if not math.isfinite(age) or age > max_age_s or age < -max_age_s:
        raise IntegrityError(f"the response was issued {age:.0f} s before now; at most {max_age_s:.0f} s is accepted")
    return payload
