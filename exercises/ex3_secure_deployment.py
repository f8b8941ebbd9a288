# Generated from solutions/ex3_secure_deployment.py by `make stubs`: do not edit by hand in the
# course repository (change the solution, then run `make stubs`). Students: this is your
# copy; replace each `raise NotImplementedError(...)` with your code, then run the grader.
"""Exercise 3: secure model deployment, made right.

The source's ``SecureModelDeployment`` hashes ``str(model.get_params())`` (the hyperparameters,
so a trained and an untrained model get the same hash), keeps no signature, checks ``exp`` by
hand although PyJWT already does, has no audience or issuer, and signs tokens with the secret
``"your-secret-key"``. Here you write the version that holds up:

* ``model_digest``: SHA-256 over the model's architecture **and its weights**.
* ``deploy_model_securely``: record the digest and sign it with Ed25519, so that whoever can
  write to the registry still cannot make a tampered model pass.
* ``verify_model_integrity``: check the signature, then compare digests in constant time.
* ``issue_token`` and ``authenticate_request``: JWTs with pinned algorithms, required claims
  (``exp``, ``iat``, ``sub``, ``aud``, ``iss``, ``role``), a small leeway, roles and a model scope.
  A request that is not authenticated raises :class:`AuthenticationError` (HTTP 401); one that
  is authenticated but not allowed raises :class:`AuthorizationError` (HTTP 403).

Lesson 07 runs the same controls in a real HTTP server. Try your class in
``exercises/ex3_secure_deployment.ipynb``, then grade it with ``mlsec grade ex3``.
"""
import hashlib
import hmac
import json
import time

import jwt
import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss", "role"]
ROLES = {"user": 0, "admin": 1}  # a higher rank may do everything a lower one may
MIN_SECRET_BYTES = 32  # RFC 7518: an HS256 key must be at least as long as the hash


class AuthenticationError(Exception):
    """The request did not prove who sent it (HTTP 401). The message says why."""
    status = 401


class AuthorizationError(Exception):
    """The sender is known but not allowed to do this (HTTP 403). The message says why."""
    status = 403


def model_digest(model):
    """SHA-256 (hex) of a Keras model's architecture and weights.

    Two models with the same configuration but different weights must get different digests:
    the weights are what an attacker changes.

    Parameters
    ----------
    model : keras.Model
        Anything with ``get_config()`` and ``get_weights()``.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    raise NotImplementedError("Hash everything that makes the model what it is: its architecture and every weight array, with each array's type and shape. Pitfall: the hyperparameters alone give a trained and an untrained model the same digest.")


class SecureModelDeployment:
    """Deploy models with signed digests, and authenticate requests with JWTs.

    Parameters
    ----------
    secret : bytes
        The HS256 key for tokens, at least 32 bytes (``secrets.token_bytes(32)``).
    signing_key : Ed25519PrivateKey, optional
        Signs model digests. Default: a new key.
    issuer, audience : str
        The ``iss`` and ``aud`` every token must carry.
    leeway : float, default=10
        Seconds of clock skew tolerated on ``exp`` and ``iat``.

    Attributes
    ----------
    registry : dict
        ``{model_name: deployment record}``, as returned by :meth:`deploy_model_securely`.
    public_key : Ed25519PublicKey
        Verifies the records' signatures.
    """

    def __init__(self, secret, signing_key=None, issuer="mlsec-lessons", audience="mlsec-model-api", leeway=10):
        raise NotImplementedError("Refuse a secret that is not random bytes long enough for HS256, keep the arguments, and make a signing key when none is given. Pitfall: a guessable string like the source's is no key, and the error message must say what is needed without echoing the secret.")
        self.public_key = self.signing_key.public_key()
        self.issuer, self.audience, self.leeway = issuer, audience, leeway
        self.registry = {}

    # ------------------------------------------------------------------ model integrity
    @staticmethod
    def _signed_message(model_name, digest):
        return f"{model_name}\n{digest}".encode()

    def deploy_model_securely(self, model, model_name):
        """Record ``model``'s digest under ``model_name`` and sign the pair.

        Returns
        -------
        dict
            ``model_name``, ``model_sha256``, ``signature`` (hex), ``public_key`` (PEM) and
            ``deployed_at`` (Unix time). The same record is kept in :attr:`registry`.
        """
        raise NotImplementedError("Digest the model, sign the model's name together with its digest, and keep that record, signature and public key included, in the registry. Pitfall: a digest that is not signed protects nothing against whoever can write to the registry.")

    def verify_model_integrity(self, model_name, model):
        """True if ``model`` is the one deployed under ``model_name``, and its record is signed.

        False for a model name never deployed, a record whose signature does not verify (someone
        edited the registry), or a model whose digest differs from the record's.
        """
        raise NotImplementedError("A model passes only if its name was deployed, its record's signature verifies, and its digest matches the record. Pitfall: compare digests in constant time (an ordinary comparison stops at the first difference and leaks how much matched), and answer False rather than raise on a bad signature.")

    # ------------------------------------------------------------------ tokens
    def issue_token(self, sub, role="user", models=("*",), ttl=900):
        """A signed JWT for ``sub`` with ``role`` and the model scope ``models`` (``"*"``: all).

        Raises
        ------
        ValueError
            For an unknown role or a ttl that is not positive.
        """
        raise NotImplementedError("Put the subject, the role, the models it may use, the issuer, the audience and the issue and expiry times into the claims, and sign them with the secret. Pitfall: refuse an unknown role and a lifetime that is not positive.")

    def authenticate_request(self, token, model_name, required_role="user"):
        """The claims of ``token`` if it may call ``model_name`` with ``required_role``.

        Raises
        ------
        AuthenticationError
            A missing, malformed, forged, ``alg: none``, expired or otherwise invalid token, a
            missing claim, or a wrong audience or issuer (401). The message says which, and
            never contains the secret.
        AuthorizationError
            A valid token whose role is below ``required_role`` or whose ``models`` claim does
            not include ``model_name`` (403).
        """
        raise NotImplementedError("Let PyJWT check the signature, expiry, audience and issuer with the algorithm pinned and every claim required; a token that fails is a 401, and a valid one without the role or the model is a 403. Pitfall: never take the algorithm from the token's own header, and never put the secret in a message.")
