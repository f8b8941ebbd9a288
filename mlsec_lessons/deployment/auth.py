"""JSON Web Tokens for the model server, done with PyJWT and nothing by hand.

The source's version (source mistake 12; see the pitfall callout in lesson 07) checked ``exp`` itself, had no ``aud`` or ``iss``,
signed with ``"your-secret-key"`` and muddled the admin check. Here:

* the secret is at least 32 random bytes (HS256), or an Ed25519 key pair (EdDSA);
* the accepted algorithms are pinned by the server, never read from the token's header, so
  ``alg: none`` and algorithm confusion fail;
* ``exp``, ``iat``, ``sub``, ``aud``, ``iss`` and ``role`` are required and PyJWT checks the
  times, with a small leeway for clock skew; the subject must not be empty, and a token may live
  at most a day (``exp - iat``, configurable), so a leaked one stops working;
* authentication (who are you: :func:`verify_token`, 401) is kept apart from authorisation
  (may you do this: :func:`authorize`, 403).
"""
import time

import jwt

from ..errors import InvalidParameterError, SecurityError
from ..validation import check_real
from .keys import check_key

AUDIENCE = "mlsec-model-server"
ISSUER = "mlsec-lessons"
ROLES = ("user", "admin")
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "role")
MIN_SECRET_BYTES = 32  # RFC 7518 section 3.2: an HS256 key at least as long as the hash output
LEEWAY_S = 10  # seconds of clock skew tolerated on exp and iat
# a token's exp - iat at most: one that lives ten years is a password that cannot be changed
MAX_LIFETIME_S = 86400


class AuthError(SecurityError):
    """A request that fails authentication (status 401) or authorisation (status 403).

    ``reason`` is safe to show the client: it says what is wrong, never what the secret is.
    """

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = int(status)
        self.reason = str(reason)


def _signing_key(key, algorithm):
    if algorithm == "HS256":
        return check_key(key, "an HS256 secret", min_bytes=MIN_SECRET_BYTES, allow_text=True)
    if algorithm == "EdDSA":
        return key  # PyJWT accepts PEM bytes or a cryptography Ed25519 key object
    raise InvalidParameterError(f"algorithm must be 'HS256' or 'EdDSA', got {algorithm!r}")


def issue_token(secret, sub, role, models=None, ttl=900, aud=AUDIENCE, iss=ISSUER, algorithm="HS256", now=None):
    """Sign a token for ``sub`` with ``role``, valid for ``ttl`` seconds.

    A ``ttl`` above the server's maximum lifetime (:data:`MAX_LIFETIME_S` by default) is signed
    all the same, and the server refuses the token: issuers and servers are configured apart.

    Parameters
    ----------
    secret : bytes or Ed25519 private key
        HS256: at least 32 bytes. EdDSA: the private key (PEM bytes or a key object).
    sub : str
        Who the token is for; the rate limit and the audit log are kept per ``sub``.
    role : {"user", "admin"}
    models : list of str or None
        The models the token may use; ``None`` means every model.
    ttl : int
        Lifetime in seconds (short: a stolen token is useful only this long).
    aud, iss : str
        Audience (which service accepts it) and issuer (who made it).
    algorithm : {"HS256", "EdDSA"}
    now : float or None
        Issue time as a Unix timestamp (tests use it to make expired tokens).

    Returns
    -------
    str
        The encoded token.

    Examples
    --------
    >>> secret = bytes(range(32))
    >>> token = issue_token(secret, "alice", "user", models=["digits"], now=1_000_000)
    >>> claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE,
    ...                     options={"verify_exp": False})
    >>> claims["sub"], claims["role"], claims["models"], claims["exp"] - claims["iat"]
    ('alice', 'user', ['digits'], 900)
    """
    key = _signing_key(secret, algorithm)
    if not isinstance(sub, str) or not sub:
        raise InvalidParameterError(f"sub must be a non-empty string, got {sub!r}")
    if role not in ROLES:
        raise InvalidParameterError(f"role must be one of {ROLES}, got {role!r}")
    ttl = check_real(ttl, "ttl", min_value=0, include_boundaries="neither")
    if models is not None:
        if isinstance(models, str) or not all(isinstance(m, str) and m for m in models):
            raise InvalidParameterError(f"models must be a list of model names or None, got {models!r}")
        models = list(models)
    iat = int(time.time() if now is None else now)
    claims = {"sub": sub, "role": role, "aud": aud, "iss": iss, "iat": iat, "exp": iat + int(ttl)}
    if models is not None:
        claims["models"] = models
    return jwt.encode(claims, key, algorithm=algorithm)


# PyJWT's exceptions, most specific first, and the reason the client is told.
_REASONS = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.ImmatureSignatureError, "token issued in the future"),
    (jwt.InvalidIssuedAtError, "invalid iat claim"),
    (jwt.exceptions.InvalidSubjectError, "invalid sub claim"),
    (jwt.DecodeError, "malformed token"),
)


def verify_token(token, key, *, audience=AUDIENCE, issuer=ISSUER, algorithms=("HS256",), leeway=LEEWAY_S,
                 max_lifetime=MAX_LIFETIME_S):
    """Check a token's signature and claims; return the claims or raise :class:`AuthError` (401).

    Parameters
    ----------
    token : str
        The encoded token (without ``Bearer``).
    key : bytes or Ed25519 public key
        The HS256 secret, or the EdDSA public key.
    audience, issuer : str
        What ``aud`` and ``iss`` must be.
    algorithms : tuple of str
        The algorithms accepted; pinned by the server, never taken from the token.
    leeway : float
        Seconds of clock skew tolerated on ``exp`` and ``iat``.
    max_lifetime : float
        The longest ``exp - iat`` accepted, in seconds.

    Examples
    --------
    >>> secret = bytes(range(32))
    >>> verify_token(issue_token(secret, "alice", "user"), secret)["sub"]
    'alice'
    >>> verify_token(issue_token(secret, "alice", "user", ttl=10 * 365 * 86400), secret)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.auth.AuthError: token lifetime 315360000 s is over the maximum of 86400 s
    >>> verify_token(issue_token(secret, "alice", "user", aud="another-service"), secret)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.auth.AuthError: wrong audience
    """
    max_lifetime = check_real(max_lifetime, "max_lifetime", min_value=0, include_boundaries="neither")
    if not token:
        raise AuthError(401, "missing token")
    try:
        claims = jwt.decode(
            token, key, algorithms=list(algorithms), audience=audience, issuer=issuer, leeway=leeway,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True, "enforce_minimum_key_length": True})
    except jwt.MissingRequiredClaimError as e:
        raise AuthError(401, f"missing claim {e.claim!r}") from None
    except jwt.PyJWTError as e:
        reason = next((text for kind, text in _REASONS if isinstance(e, kind)), "invalid token")
        raise AuthError(401, reason) from None  # `from None`: the traceback never carries the key
    if not claims["sub"].strip():  # PyJWT has checked that it is a string
        raise AuthError(401, "invalid sub claim: it is empty")
    lifetime = claims["exp"] - claims["iat"]
    if lifetime > max_lifetime:
        raise AuthError(401, f"token lifetime {lifetime:.0f} s is over the maximum of {max_lifetime:.0f} s")
    if claims["role"] not in ROLES:
        raise AuthError(401, f"invalid role claim; expected one of {', '.join(ROLES)}")
    models = claims.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise AuthError(401, "invalid models claim; expected a list of model names")
    return claims


def authorize(claims, model=None, admin=False):
    """Raise :class:`AuthError` (403) unless verified ``claims`` allow this request.

    Parameters
    ----------
    claims : dict
        What :func:`verify_token` returned.
    model : str or None
        The model the request is for; checked against the token's ``models`` scope.
    admin : bool
        Whether the request needs the admin role.

    Examples
    --------
    >>> authorize({"sub": "bob", "role": "user", "models": ["digits"]}, model="digits")
    >>> authorize({"sub": "bob", "role": "user"}, model="digits", admin=True)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.auth.AuthError: role 'user' may not do this; it needs 'admin'
    """
    if admin and claims.get("role") != "admin":
        raise AuthError(403, f"role {claims.get('role')!r} may not do this; it needs 'admin'")
    scope = claims.get("models")
    if model is not None and scope is not None and model not in scope:
        raise AuthError(403, f"token is not scoped for model {model!r}")


def bearer_token(header):
    """The token in an ``Authorization: Bearer <token>`` header, or :class:`AuthError` (401).

    Examples
    --------
    >>> bearer_token("Bearer abc.def.ghi")
    'abc.def.ghi'
    >>> bearer_token(None)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.auth.AuthError: missing token: send 'Authorization: Bearer <token>'
    """
    if not header:
        raise AuthError(401, "missing token: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()
