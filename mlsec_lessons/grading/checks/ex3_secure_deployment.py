"""Checks for exercise 3, secure model deployment.

``impl`` is the student's module, ``ref`` the reference solution. The checks build small Keras
models, then run the JWT negative matrix (every way a token can be wrong must give a 401, and a
valid token without the right must give a 403) and the tamper cases (a changed weight, an
edited registry, a model never deployed). Tokens for the matrix are made here with PyJWT, not
with the student's ``issue_token``, so that a bug there cannot hide a bug in the check.
"""
import base64
import json
import secrets
import time

import jwt
import pytest

# the library's answers to this exercise (PyJWT and cryptography are the tools to use)
OFF_LIMITS = {"mlsec_lessons.deployment.auth": "*", "mlsec_lessons.deployment.artifacts": "*",
              "mlsec_lessons.deployment.server": "*", "mlsec_lessons.deployment.keys": "*"}

CHECK_TIME_LIMIT = 30  # the first check imports TensorFlow
# imported once by the fork server each worker is forked from (grading/forkserver.py)
PRELOAD = ["numpy", "jwt", "cryptography.hazmat.primitives.asymmetric.ed25519"]
ISS, AUD = "mlsec-lessons", "mlsec-model-api"


def points(n):
    return pytest.mark.points(n)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def secret():
    return secrets.token_bytes(32)


@pytest.fixture(scope="module")
def keras_models():
    """Three tiny models: ``a`` and ``b`` share an architecture but not their weights."""
    import mlsec_lessons as ml

    ml.quiet()
    ml.seed_everything(0)
    import keras

    from mlsec_lessons import models

    a = models.mlp(input_shape=(6,), n_classes=2, hidden=(4,))
    b = keras.models.clone_model(a)  # the same configuration, layer names included; new random weights
    c = models.mlp(input_shape=(6,), n_classes=2, hidden=(5,))
    assert a.get_config() == b.get_config(), "the grader's twin models differ in configuration"
    return a, b, c


def deployment(impl, secret):
    return impl.SecureModelDeployment(secret)


def claims(**changes):
    now = int(time.time())
    base = {"sub": "alice", "role": "user", "models": ["digits"], "iss": ISS, "aud": AUD,
            "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(secret, algorithm="HS256", **changes):
    return jwt.encode(claims(**changes), secret, algorithm=algorithm)


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none_token():
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(role='admin', models=['*']))}."


def tampered_copy(model):
    """A model with the same architecture and one weight moved by 1e-3."""
    import keras

    copy = keras.models.clone_model(model)
    weights = [w.copy() for w in model.get_weights()]
    weights[0][0, 0] += 1e-3
    copy.set_weights(weights)
    return copy


# --------------------------------------------------------------------------- set-up
@points(1)
def test_refuses_a_weak_secret(impl):
    for weak in (b"your-secret-key", b"x" * 31, "a string secret that is long enough....."):
        try:
            impl.SecureModelDeployment(weak)
        except ValueError:
            continue
        raise AssertionError(f"SecureModelDeployment({weak!r}) should raise ValueError: an HS256 secret must "
                             "be at least 32 random bytes (the source used 'your-secret-key')")


@points(1)
def test_accepts_a_secret_of_32_bytes(impl):
    for n in (32, 64):  # the rule is at least 32 bytes: exactly 32 is enough
        try:
            impl.SecureModelDeployment(secrets.token_bytes(n))
        except NotImplementedError:
            raise
        except ValueError as e:
            raise AssertionError(f"SecureModelDeployment(secrets.token_bytes({n})) raised ValueError ({e}); an "
                                 f"HS256 secret needs at least 32 random bytes, and {n} is enough") from None


# --------------------------------------------------------------------------- model integrity
@points(2)
def test_digest_covers_the_weights(impl, keras_models):
    a, b, c = keras_models
    digest = impl.model_digest(a)
    assert isinstance(digest, str) and len(digest) == 64 and int(digest, 16) >= 0, (
        f"model_digest must return 64 hex characters (SHA-256), got {digest!r}")
    assert impl.model_digest(a) == digest, "model_digest must give the same digest for the same model twice"
    assert impl.model_digest(b) != digest, (
        "two models with the same architecture but different weights got the same digest: "
        "hash the weights, not only the configuration (the source's mistake 11)")
    assert impl.model_digest(tampered_copy(a)) != digest, "changing one weight by 1e-3 must change the digest"


@points(1)
def test_digest_covers_the_architecture(impl, keras_models):
    a, _, c = keras_models
    assert impl.model_digest(a) != impl.model_digest(c), "models with different architectures got the same digest"


@points(2)
def test_deploy_signs_the_digest(impl, ref, secret, keras_models):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    a = keras_models[0]
    record = deployment(impl, secret).deploy_model_securely(a, "digits")
    assert isinstance(record, dict), f"deploy_model_securely must return a dict, got {type(record).__name__}"
    missing = {"model_name", "model_sha256", "signature", "public_key"} - set(record)
    assert not missing, f"the deployment record lacks {sorted(missing)}"
    assert record["model_sha256"] == ref.model_digest(a), (
        "record['model_sha256'] is not the SHA-256 of the model's architecture and weights")
    public_key = load_pem_public_key(record["public_key"].encode())
    try:
        public_key.verify(bytes.fromhex(record["signature"]), f"digits\n{record['model_sha256']}".encode())
    except Exception:
        raise AssertionError("record['signature'] is not an Ed25519 signature of "
                             "f'{model_name}\\n{model_sha256}' under record['public_key']") from None


@points(2)
def test_verify_accepts_the_deployed_model(impl, secret, keras_models):
    a = keras_models[0]
    d = deployment(impl, secret)
    d.deploy_model_securely(a, "digits")
    assert d.verify_model_integrity("digits", a) is True, "verify_model_integrity rejected the model it deployed"


@points(2)
def test_verify_rejects_a_tampered_model(impl, secret, keras_models):
    a, b, _ = keras_models
    d = deployment(impl, secret)
    d.deploy_model_securely(a, "digits")
    assert d.verify_model_integrity("digits", tampered_copy(a)) is False, (
        "a model with one weight changed by 1e-3 passed verify_model_integrity")
    assert d.verify_model_integrity("digits", b) is False, (
        "a model with the same architecture but other weights passed verify_model_integrity")


@points(1)
def test_verify_rejects_an_unknown_model(impl, secret, keras_models):
    d = deployment(impl, secret)
    assert d.verify_model_integrity("never-deployed", keras_models[0]) is False, (
        "verify_model_integrity must return False for a model name that was never deployed")


@points(2)
def test_verify_rejects_an_edited_registry(impl, ref, secret, keras_models):
    a = keras_models[0]
    evil = tampered_copy(a)
    d = deployment(impl, secret)
    d.deploy_model_securely(a, "digits")
    # an attacker who can write the registry swaps in the digest of their model, but cannot sign it
    registry = d.registry  # a copy, from the student's process: edit it, then write it back there
    registry["digits"]["model_sha256"] = ref.model_digest(evil)
    d.registry = registry
    assert d.verify_model_integrity("digits", evil) is False, (
        "after the registry's digest was replaced, the tampered model passed: verify the record's "
        "signature before trusting its digest")


# --------------------------------------------------------------------------- tokens
@points(2)
def test_issued_token_has_the_required_claims(impl, secret):
    issued = deployment(impl, secret).issue_token("alice", role="admin", models=["digits"], ttl=60)
    header = jwt.get_unverified_header(issued)
    assert header.get("alg") == "HS256", f"issue_token should sign with HS256, the header says {header}"
    got = jwt.decode(issued, secret, algorithms=["HS256"], audience=AUD, issuer=ISS)
    missing = {"exp", "iat", "sub", "aud", "iss", "role", "models"} - set(got)
    assert not missing, f"the issued token lacks the claims {sorted(missing)}"
    assert got["sub"] == "alice" and got["role"] == "admin" and got["models"] == ["digits"], (
        f"the issued token's claims do not match the arguments: {got}")
    assert 55 <= got["exp"] - got["iat"] <= 65, f"ttl=60 gave exp - iat = {got['exp'] - got['iat']}"


@points(1)
def test_issue_token_refuses_bad_arguments(impl, secret):
    d = deployment(impl, secret)
    for kwargs, why in (({"role": "root"}, "for an unknown role"), ({"ttl": 0}, "for ttl=0"),
                        ({"ttl": -60}, "for ttl=-60")):
        try:
            d.issue_token("alice", **kwargs)
        except ValueError:
            continue
        raise AssertionError(f"issue_token should raise ValueError {why}")


@points(1)
def test_issue_token_accepts_the_shortest_ttl(impl, secret):
    d = deployment(impl, secret)
    try:
        issued = d.issue_token("alice", ttl=1)
    except NotImplementedError:
        raise
    except ValueError as e:
        raise AssertionError(f"issue_token('alice', ttl=1) raised ValueError ({e}): a ttl is refused only when it "
                             "is not positive, and 1 second is positive") from None
    got = jwt.decode(issued, secret, algorithms=["HS256"], audience=AUD, issuer=ISS, leeway=10)
    assert got["exp"] - got["iat"] in (1, 2), (  # 2: the clock may tick between two readings
        f"issue_token('alice', ttl=1) gave exp - iat = {got['exp'] - got['iat']}, not 1 second")
    claims = d.authenticate_request(issued, "digits")
    assert claims["sub"] == "alice", f"the token issued with ttl=1 was read as {claims!r}"


@points(2)
def test_accepts_a_valid_token(impl, secret):
    d = deployment(impl, secret)
    got = d.authenticate_request(token(secret), "digits")
    assert isinstance(got, dict) and got.get("sub") == "alice", (
        f"authenticate_request should return the token's claims for a valid token, got {got!r}")
    own = d.issue_token("bob", role="user", models=["digits"])
    assert d.authenticate_request(own, "digits")["sub"] == "bob", "your own issued token was not accepted"


@points(1)
def test_tolerates_small_clock_skew(impl, secret):
    now = int(time.time())
    skewed = token(secret, iat=now - 600, exp=now - 3)  # expired 3 s ago: within a 10 s leeway
    try:
        deployment(impl, secret).authenticate_request(skewed, "digits")
    except impl.AuthenticationError:
        raise AssertionError("a token that expired 3 s ago was refused: allow a small leeway (10 s) "
                             "for clock skew between servers") from None


@points(1)
def test_clock_skew_leeway_is_ten_seconds(impl, secret):
    d = deployment(impl, secret)
    # 3 s either side of the stated 10 s, so that the check does not depend on the call's own timing
    cases = [(-600, -7, True, "a token that expired 7 s ago"), (-600, -13, False, "a token that expired 13 s ago"),
             (7, 600, True, "a token issued 7 s in the future"), (13, 600, False, "a token issued 13 s in the future")]
    for iat, exp, accept, what in cases:  # seconds from now
        now = int(time.time())
        ok = accepted(impl, d, token(secret, iat=now + iat, exp=now + exp))
        assert ok == accept, (
            f"{what} was {'refused' if accept else 'accepted'}: tolerate clock skew of leeway=10 s on exp and "
            "iat, and no more (pass leeway=self.leeway to jwt.decode)")


def accepted(impl, deployment, jwt_token):
    """Whether ``deployment`` lets ``jwt_token`` call the digits model."""
    try:
        deployment.authenticate_request(jwt_token, "digits")
        return True
    except impl.AuthenticationError:
        return False


@points(1)
def test_leeway_is_the_configured_one(impl, secret):
    for leeway, late, accept in ((0, 3, False), (30, 20, True)):
        d = impl.SecureModelDeployment(secret, leeway=leeway)
        now = int(time.time())
        ok = accepted(impl, d, token(secret, iat=now - 600, exp=now - late))
        assert ok == accept, (
            f"with SecureModelDeployment(secret, leeway={leeway}), a token that expired {late} s ago was "
            f"{'refused' if accept else 'accepted'}: use the leeway the deployment was given (self.leeway), "
            "not a number of your own")


# Every way a token can be wrong: (id, how to make it, why it must fail)
UNAUTHENTICATED = [
    ("missing_token", lambda s: "", "an empty token"),
    ("none_token", lambda s: None, "no token at all"),
    ("malformed", lambda s: "not.a.jwt", "a malformed token"),
    ("bad_signature", lambda s: token(secrets.token_bytes(32)), "a token signed with another secret"),
    ("alg_none", lambda s: alg_none_token(), "an unsigned token with alg 'none'"),
    ("alg_from_header", lambda s: token(s, algorithm="HS512"),
     "a token signed with HS512: pin algorithms=['HS256'], never take them from the token's header"),
    ("expired", lambda s: token(s, iat=int(time.time()) - 900, exp=int(time.time()) - 300),
     "a token that expired 5 minutes ago"),
    ("wrong_audience", lambda s: token(s, aud="another-api"), "a token for another audience"),
    ("wrong_issuer", lambda s: token(s, iss="evil-issuer"), "a token from another issuer"),
    ("unknown_role", lambda s: token(s, role="root"), "a token with the unknown role 'root'"),
] + [(f"missing_{claim}", (lambda c: lambda s: token(s, **{c: None}))(claim), f"a token without '{claim}'")
     for claim in ("exp", "iat", "sub", "aud", "iss", "role")]


@pytest.mark.parametrize("make, why", [pytest.param(m, w, id=i, marks=points(1)) for i, m, w in UNAUTHENTICATED])
def test_refuses_with_401(impl, secret, make, why):
    bad = make(secret)
    try:
        got = deployment(impl, secret).authenticate_request(bad, "digits")
    except impl.AuthenticationError as e:
        assert secret.hex() not in str(e) and repr(secret) not in str(e), "the error message leaks the secret"
        return
    except impl.AuthorizationError:
        raise AssertionError(f"{why} raised AuthorizationError (403); it is not authenticated at all: "
                             "raise AuthenticationError (401)") from None
    raise AssertionError(f"{why} was accepted: authenticate_request returned {got!r}")


FORBIDDEN = [
    ("role_escalation", {}, "digits", "admin", "a user token asking for an admin action"),
    ("model_out_of_scope", {"models": ["fraud"]}, "digits", "user", "a token scoped to 'fraud' asking for 'digits'"),
    ("no_model_scope", {"models": None}, "digits", "user", "a token with no 'models' claim"),
]


@pytest.mark.parametrize("changes, model, role, why",
                         [pytest.param(c, m, r, w, id=i, marks=points(1)) for i, c, m, r, w in FORBIDDEN])
def test_refuses_with_403(impl, secret, changes, model, role, why):
    try:
        got = deployment(impl, secret).authenticate_request(token(secret, **changes), model, required_role=role)
    except impl.AuthorizationError:
        return
    except impl.AuthenticationError:
        raise AssertionError(f"{why} raised AuthenticationError (401); the token is valid, the request is "
                             "not allowed: raise AuthorizationError (403)") from None
    raise AssertionError(f"{why} was allowed: authenticate_request returned {got!r}")


@points(1)
def test_each_role_may_do_its_own_actions(impl, secret):
    d = deployment(impl, secret)
    for role in ("user", "admin"):  # the boundary of the rank comparison: the same rank is allowed
        try:
            got = d.authenticate_request(token(secret, role=role), "digits", required_role=role)
        except (impl.AuthenticationError, impl.AuthorizationError) as e:
            raise AssertionError(f"a valid {role} token asking for a {role} action was refused "
                                 f"({type(e).__name__}: {e}): a role may do what its own rank allows") from None
        assert got["role"] == role, f"authenticate_request returned {got!r} for a valid {role} token"


@points(1)
def test_admin_may_do_what_a_user_may(impl, secret):
    d = deployment(impl, secret)
    got = d.authenticate_request(token(secret, role="admin", models=["*"]), "digits", required_role="user")
    assert got["role"] == "admin", "an admin token with models ['*'] was refused a user action"
