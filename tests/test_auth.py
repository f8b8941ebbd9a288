"""auth.py on its own: tokens PyJWT makes and checks, the reasons for refusal, and 401 vs 403.

The live server's version of the negative matrix is in test_server.py.
"""
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlsec_lessons.deployment import auth
from mlsec_lessons.deployment.auth import AuthError, authorize, bearer_token, issue_token, verify_token

SECRET = bytes(range(32))


def test_round_trip_and_claims_are_checked_by_pyjwt_itself():
    tok = issue_token(SECRET, "alice", "admin", models=["digits"], ttl=60)
    got = verify_token(tok, SECRET)
    assert {k: got[k] for k in ("sub", "role", "models", "aud", "iss")} == {
        "sub": "alice", "role": "admin", "models": ["digits"], "aud": auth.AUDIENCE, "iss": auth.ISSUER}
    assert got["exp"] - got["iat"] == 60
    # an independent decode with PyJWT agrees: issue_token makes a standard token
    assert jwt.decode(tok, SECRET, algorithms=["HS256"], audience=auth.AUDIENCE) == got


@pytest.mark.parametrize("secret", [b"your-secret-key", b"x" * 31, "short", None])
def test_short_or_missing_secrets_are_refused(secret):
    with pytest.raises((ValueError, TypeError), match="at least 32 bytes"):  # None: a TypeError
        issue_token(secret, "alice", "user")


@pytest.mark.parametrize("kwargs, name", [
    (dict(sub=""), "sub"), (dict(role="root"), "role"), (dict(ttl=0), "ttl"), (dict(ttl=True), "ttl"),
    (dict(models="digits"), "models"), (dict(algorithm="none"), "algorithm"), (dict(algorithm="HS512"), "algorithm"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    args = dict(secret=SECRET, sub="alice", role="user") | kwargs
    with pytest.raises((ValueError, TypeError), match=name):  # ttl=True: a TypeError
        issue_token(**args)


def _claims(**changes):
    now = int(time.time())
    c = {"sub": "eve", "role": "user", "aud": auth.AUDIENCE, "iss": auth.ISSUER, "iat": now, "exp": now + 60}
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


@pytest.mark.parametrize("make, reason", [
    (lambda: jwt.encode(_claims(), b"y" * 32, algorithm="HS256"), "bad signature"),
    (lambda: jwt.encode(_claims(), SECRET * 2, algorithm="HS384"), "algorithm not allowed"),
    (lambda: jwt.encode(_claims(exp=int(time.time()) - 11), SECRET, algorithm="HS256"), "token expired"),
    (lambda: jwt.encode(_claims(iat=int(time.time()) + 60), SECRET, algorithm="HS256"), "issued in the future"),
    (lambda: jwt.encode(_claims(aud=[auth.AUDIENCE, "other"]), SECRET, algorithm="HS256"), "wrong audience"),
    (lambda: jwt.encode(_claims(iss="nobody"), SECRET, algorithm="HS256"), "wrong issuer"),
    (lambda: jwt.encode(_claims(sub=42), SECRET, algorithm="HS256"), "invalid sub"),
    (lambda: jwt.encode(_claims(role=None), SECRET, algorithm="HS256"), "missing claim 'role'"),
    (lambda: "a.b", "malformed token"),
    (lambda: "", "missing token"),
])
def test_verify_token_refusals_are_401_with_their_reason(make, reason):
    with pytest.raises(AuthError) as e:
        verify_token(make(), SECRET)
    assert e.value.status == 401 and reason in e.value.reason
    assert SECRET.hex() not in e.value.reason and e.value.__cause__ is None  # nothing of the key leaks


def test_a_token_may_live_at_most_the_maximum_lifetime():
    day = auth.MAX_LIFETIME_S
    assert verify_token(issue_token(SECRET, "alice", "user", ttl=day), SECRET)["sub"] == "alice"  # at the limit
    with pytest.raises(AuthError, match=f"lifetime {day + 1} s is over the maximum of {day} s") as e:
        verify_token(issue_token(SECRET, "alice", "user", ttl=day + 1), SECRET)
    assert e.value.status == 401
    short = issue_token(SECRET, "alice", "user", ttl=120)
    assert verify_token(short, SECRET, max_lifetime=120)["sub"] == "alice"
    with pytest.raises(AuthError, match="over the maximum of 60 s"):
        verify_token(short, SECRET, max_lifetime=60)
    for bad in (0, -5, True, None, "60"):
        with pytest.raises((ValueError, TypeError), match="max_lifetime"):  # True: a TypeError
            verify_token(short, SECRET, max_lifetime=bad)


@pytest.mark.parametrize("sub", ["", " ", "\t"])
def test_an_empty_subject_is_refused(sub):
    # the rate limit, the quota and the audit log are kept per subject: an empty one is nobody
    with pytest.raises(AuthError, match="invalid sub claim") as e:
        verify_token(jwt.encode(_claims(sub=sub), SECRET, algorithm="HS256"), SECRET)
    assert e.value.status == 401


def test_alg_none_is_refused_even_when_the_payload_claims_admin():
    forged = jwt.encode(_claims(role="admin"), None, algorithm="none")
    assert jwt.decode(forged, options={"verify_signature": False})["role"] == "admin"  # the attack
    with pytest.raises(AuthError, match="algorithm not allowed"):
        verify_token(forged, SECRET)


def test_leeway_tolerates_a_little_clock_skew_only():
    just_expired = jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    assert verify_token(just_expired, SECRET)["sub"] == "eve"
    with pytest.raises(AuthError, match="expired"):
        verify_token(just_expired, SECRET, leeway=0)


def test_eddsa_tokens_verify_with_the_public_key_only():
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tok = issue_token(pem, "svc", "user", algorithm="EdDSA")
    assert verify_token(tok, public, algorithms=("EdDSA",))["sub"] == "svc"
    with pytest.raises(AuthError, match="algorithm not allowed"):  # an HS256-pinned verifier refuses it
        verify_token(tok, SECRET)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(AuthError, match="bad signature"):
        verify_token(tok, other, algorithms=("EdDSA",))


def test_authorize_separates_role_from_scope():
    user, admin = {"sub": "u", "role": "user"}, {"sub": "a", "role": "admin", "models": ["digits"]}
    authorize(user, model="anything")
    authorize(admin, model="digits", admin=True)
    for claims, kwargs, why in [(user, dict(admin=True), "needs 'admin'"),
                                (admin, dict(model="other", admin=True), "not scoped"),
                                ({"sub": "u", "role": "user", "models": []}, dict(model="digits"), "not scoped")]:
        with pytest.raises(AuthError, match=why) as e:
            authorize(claims, **kwargs)
        assert e.value.status == 403


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic abc", "Token abc"])
def test_bearer_header_must_say_bearer_and_carry_a_token(header):
    with pytest.raises(AuthError) as e:
        bearer_token(header)
    assert e.value.status == 401


def test_bearer_scheme_is_case_insensitive():
    assert bearer_token("bearer abc") == bearer_token("Bearer abc") == "abc"
