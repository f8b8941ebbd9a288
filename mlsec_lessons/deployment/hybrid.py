"""A hybrid signature on a model's manifest: Ed25519 *and* ML-DSA-65, both required (lesson 07).

A model signed today may still be trusted in ten years. Ed25519 falls to a large quantum computer
(Shor's algorithm recovers the private key from the public one), so an attacker who keeps a signed
model and its public key now can forge a "signed" model later: *harvest now, forge later*. ML-DSA
(FIPS 204) is believed to resist that attack, but it is young. Signing with both, and accepting only
when both verify, stays safe while either one holds.

The signed manifest carries more than the file hashes:

* ``context``: what the model is for (``"digits-classifier/production"``). ML-DSA takes it as its
  context string; Ed25519 signs it at the front of the message. A manifest signed for one context
  never verifies for another.
* ``version``, ``issued_at`` and ``expires_at``: the verifier refuses an expired manifest, and one
  older than the version it already runs. Without them an attacker replays an old, validly signed
  model with a known flaw as if it were current (a rollback).

Both signatures cover a domain-separated message, not the bare manifest, so the Ed25519 half can
never be stripped off and passed to :func:`~.artifacts.verify_dir` as a single signature.

Examples
--------
>>> key = generate_hybrid_key()
>>> body, sigs = sign_manifest_hybrid({"files": {}}, key, context="demo", version=2, valid_for_s=60)
>>> verify_manifest_hybrid(body, sigs, key.public_key(), context="demo", min_version=2)["version"]
2
>>> verify_manifest_hybrid(body, sigs, key.public_key(), context="demo", min_version=3)
Traceback (most recent call last):
...
mlsec_lessons.deployment.artifacts.IntegrityError: manifest version 2 is older than version 3 ...
"""
import base64
import json
import time
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from ..errors import InvalidParameterError, ParameterTypeError
from ..validation import check_int
from .artifacts import MANIFEST, SIGNATURE, IntegrityError, check_files, file_hashes
from .keys import write_private

__all__ = ["HybridPrivateKey", "HybridPublicKey", "generate_hybrid_key", "sign_manifest_hybrid",
           "verify_manifest_hybrid", "sign_dir_hybrid", "verify_dir_hybrid", "save_hybrid_key",
           "load_hybrid_public_key", "load_hybrid_private_key"]

FORMAT = "mlsec-manifest-hybrid/1"
DOMAIN = b"mlsec-lessons hybrid manifest v1\n"  # no single-signature message starts like this
ALGORITHMS = ("ed25519", "ml-dsa-65")


class HybridPublicKey(NamedTuple):
    """The two public keys; a manifest verifies only if both of its signatures do."""
    ed25519: Ed25519PublicKey
    mldsa: MLDSA65PublicKey


class HybridPrivateKey(NamedTuple):
    """The two private keys that sign every manifest together."""
    ed25519: Ed25519PrivateKey
    mldsa: MLDSA65PrivateKey

    def public_key(self):
        return HybridPublicKey(self.ed25519.public_key(), self.mldsa.public_key())


def generate_hybrid_key():
    """A fresh Ed25519 + ML-DSA-65 private key pair."""
    return HybridPrivateKey(Ed25519PrivateKey.generate(), MLDSA65PrivateKey.generate())


def _context_bytes(context):
    if not isinstance(context, str):
        raise ParameterTypeError(f"context must be a str, got {type(context).__name__}")
    raw = context.encode()
    if not 1 <= len(raw) <= 255:  # FIPS 204 allows a context of at most 255 bytes
        raise InvalidParameterError(f"context must be 1-255 bytes in UTF-8, got {len(raw)} ({context[:40]!r})")
    return raw


def _message(context, body):
    # the context is length-prefixed, so ("ab", "c...") and ("a", "bc...") never give the same bytes
    return DOMAIN + bytes([len(context)]) + context + body


def sign_manifest_hybrid(manifest, key, *, context, version, valid_for_s, now=None):
    """Add context, version and validity to ``manifest`` and sign it with both keys.

    Returns ``(body, signatures)``: the manifest's exact bytes, and ``{"ed25519": ..., "ml-dsa-65": ...}``
    with each signature base64-encoded.
    """
    if not isinstance(manifest, dict):
        raise ParameterTypeError(f"manifest must be a dict, got {type(manifest).__name__}")
    if not isinstance(key, HybridPrivateKey):
        raise ParameterTypeError(f"key must be a HybridPrivateKey, got {type(key).__name__}")
    ctx = _context_bytes(context)
    issued = int(time.time() if now is None else now)
    body = dict(manifest, format=FORMAT, context=context, version=check_int(version, "version", min_value=1),
                issued_at=issued, expires_at=issued + check_int(valid_for_s, "valid_for_s", min_value=1))
    body = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
    message = _message(ctx, body)
    signatures = {"ed25519": key.ed25519.sign(message), "ml-dsa-65": key.mldsa.sign(message, ctx)}
    return body, {name: base64.b64encode(sig).decode() for name, sig in signatures.items()}


def verify_manifest_hybrid(body, signatures, public_key, *, context, min_version=1, now=None):
    """Check both signatures, then the context, expiry and version. Returns the manifest as a dict.

    ``min_version`` is the version the verifier already trusts (the one it runs): an older one is a
    rollback. Raises :class:`~.artifacts.IntegrityError` naming the signature or field that failed.
    """
    if not isinstance(body, bytes):
        raise ParameterTypeError(f"body must be bytes (the manifest exactly as signed), got {type(body).__name__}")
    if not isinstance(signatures, dict):
        raise ParameterTypeError(f"signatures must be a dict, got {type(signatures).__name__}")
    if not isinstance(public_key, HybridPublicKey):
        raise ParameterTypeError(f"public_key must be a HybridPublicKey, got {type(public_key).__name__}")
    ctx, min_version = _context_bytes(context), check_int(min_version, "min_version", min_value=1)
    missing = [name for name in ALGORITHMS if not signatures.get(name)]
    if missing:
        raise IntegrityError(f"missing {' and '.join(missing)} signature; a hybrid manifest needs both "
                             f"{' and '.join(ALGORITHMS)}")
    message = _message(ctx, body)
    checks = {"ed25519": lambda sig: public_key.ed25519.verify(sig, message),
              "ml-dsa-65": lambda sig: public_key.mldsa.verify(sig, message, ctx)}
    bad = []
    for name in ALGORITHMS:
        try:
            checks[name](base64.b64decode(signatures[name], validate=True))
        except (InvalidSignature, ValueError, TypeError):
            bad.append(name)
    if bad:
        raise IntegrityError(f"bad {' and '.join(bad)} signature: " + _why(body, context))
    manifest = json.loads(body)
    if manifest.get("format") != FORMAT:
        raise IntegrityError(f"manifest format {manifest.get('format')!r} is not {FORMAT!r}")
    now = time.time() if now is None else now
    if now >= manifest["expires_at"]:
        raise IntegrityError(f"manifest version {manifest['version']} expired {now - manifest['expires_at']:.0f} s "
                             f"ago; a replayed old manifest is refused even though its signatures verify")
    if manifest["version"] < min_version:
        raise IntegrityError(f"manifest version {manifest['version']} is older than version {min_version} "
                             f"already trusted: a rollback to an old signed model is refused")
    return manifest


def _why(body, context):
    """The likely reason, from what the unverified manifest says: for the error message only."""
    try:
        claimed = json.loads(body).get("context")
    except (ValueError, AttributeError):
        claimed = None
    if isinstance(claimed, str) and claimed != context:
        return f"the manifest says it was signed for context {claimed!r}, not {context!r}"
    return "the manifest was changed, or was not signed with this key"


def sign_dir_hybrid(directory, key, *, context, version, valid_for_s, now=None):
    """Hash every file in ``directory`` and write the hybrid-signed ``MANIFEST.json`` and ``MANIFEST.sig``.

    Returns the manifest as a dict. The signature file holds both signatures as JSON, so
    :func:`~.artifacts.verify_dir` refuses such a directory: it needs :func:`verify_dir_hybrid`.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidParameterError(f"directory={str(directory)!r} is not a directory")
    body, signatures = sign_manifest_hybrid({"hash": "sha256", "files": file_hashes(directory)}, key,
                                            context=context, version=version, valid_for_s=valid_for_s, now=now)
    (directory / MANIFEST).write_bytes(body)
    (directory / SIGNATURE).write_text(json.dumps(signatures, indent=2, sort_keys=True) + "\n")
    return json.loads(body)


def verify_dir_hybrid(directory, public_key, *, context, min_version=1, now=None):
    """Verify a directory signed by :func:`sign_dir_hybrid`, then every file. Returns the manifest."""
    directory = Path(directory)
    missing = [n for n in (MANIFEST, SIGNATURE) if not (directory / n).is_file()]
    if missing:
        raise IntegrityError(f"{directory} is not signed ({' and '.join(missing)} missing); refusing it")
    try:
        signatures = json.loads((directory / SIGNATURE).read_text())
    except ValueError:
        signatures = None
    if not isinstance(signatures, dict):
        raise IntegrityError(f"{directory}: {SIGNATURE} does not hold hybrid signatures (an Ed25519-only "
                             f"directory? verify it with artifacts.verify_dir)")
    manifest = verify_manifest_hybrid((directory / MANIFEST).read_bytes(), signatures, public_key,
                                      context=context, min_version=min_version, now=now)
    check_files(directory, manifest["files"])
    return manifest


# ---------------------------------------------------------------- key files: both keys as PEM blocks in one file

def save_hybrid_key(key, private_path, public_path, overwrite=False):
    """Write both private keys (mode 0600) and both public keys (PEM, one after the other). Returns the paths."""
    if not isinstance(key, HybridPrivateKey):
        raise ParameterTypeError(f"key must be a HybridPrivateKey, got {type(key).__name__}")
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise InvalidParameterError(f"{str(p)!r} already exists; pass overwrite=True to replace the key pair")
    write_private(private_path, b"".join(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()) for k in key), overwrite=True)
    public_path.write_bytes(b"".join(k.public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
                                     for k in key.public_key()))
    return private_path, public_path


def _pem_blocks(path):
    text = Path(path).read_text() if Path(path).is_file() else ""
    return [("-----BEGIN" + block).encode() for block in text.split("-----BEGIN")[1:]]


def load_hybrid_private_key(path):
    """A :class:`HybridPrivateKey` from a file written by :func:`save_hybrid_key`."""
    keys = [serialization.load_pem_private_key(b, password=None) for b in _pem_blocks(path)]
    return HybridPrivateKey(*_expect(keys, (Ed25519PrivateKey, MLDSA65PrivateKey), path))


def load_hybrid_public_key(path):
    """A :class:`HybridPublicKey` from a file written by :func:`save_hybrid_key`."""
    keys = [serialization.load_pem_public_key(b) for b in _pem_blocks(path)]
    return HybridPublicKey(*_expect(keys, (Ed25519PublicKey, MLDSA65PublicKey), path))


def _expect(keys, kinds, path):
    if len(keys) != 2 or not all(isinstance(k, kind) for k, kind in zip(keys, kinds)):
        raise InvalidParameterError(f"path={str(path)!r} must hold an Ed25519 and an ML-DSA-65 key, in that order; "
                                    f"found {[type(k).__name__ for k in keys]}")
    return keys
