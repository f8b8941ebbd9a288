"""Model artifacts you can trust: safe formats, a signed manifest, encryption at rest.

A model directory holds the model in a format that cannot run code when loaded
(Keras ``.keras`` with ``safe_mode=True``, or skops with explicit trusted types;
never pickle), an ``input.json`` with the model's input contract, a language model's
``language_model.json`` (its vocabulary, context and system prompt; see
:mod:`~mlsec_lessons.deployment.language_model`), and

* ``MANIFEST.json``: the SHA-256 of every other file, and the input contract;
* ``MANIFEST.sig``: an Ed25519 signature over the exact bytes of ``MANIFEST.json``.

The signature makes the hashes trustworthy: anyone can recompute a hash, only the
holder of the private key can sign a manifest. Verification names every added,
removed or changed file. The hash covers the bytes of the weights, not the
hyperparameters (the source's ``sha256(str(get_params()))`` gives an untrained and a
trained model the same "integrity hash").

Examples
--------
>>> import tempfile, pathlib
>>> from mlsec_lessons.deployment.keys import generate_signing_key
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> priv, pub = generate_signing_key(d / "k.pem", d / "k.pub.pem")
>>> model_dir = d / "model"; model_dir.mkdir()
>>> _ = (model_dir / "weights.bin").write_bytes(b"0123")
>>> _ = sign_dir(model_dir, priv)
>>> sorted(verify_dir(model_dir, pub)["files"])
['weights.bin']
>>> _ = (model_dir / "weights.bin").write_bytes(b"0124")
>>> verify_dir(model_dir, pub)
Traceback (most recent call last):
...
mlsec_lessons.deployment.artifacts.IntegrityError: ... failed verification: changed: weights.bin
"""
import base64
import hashlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..cache import fingerprint
from ..errors import InvalidParameterError, SecurityError
from .keys import AES_KEY_BYTES, check_key, load_encryption_key, load_private_key, load_public_key, write_private

__all__ = ["IntegrityError", "save_keras_model", "save_sklearn_model", "sign_dir", "verify_dir",
           "load_verified_model", "model_input_spec", "weights_sha256", "file_hashes", "check_files",
           "encrypt_file", "decrypt_file", "load_encryption_key", "file_sha256"]

MANIFEST, SIGNATURE, INPUT = "MANIFEST.json", "MANIFEST.sig", "input.json"
LANGUAGE_MODEL = "language_model.json"  # present only in a language model's directory
MODEL_FILES = ("model.keras", "model.skops")  # the only formats the loader accepts
ENCRYPTED_SUFFIX = ".enc"
# Formats whose loading can run code (pickle, and legacy Keras HDF5 with its marshalled
# Lambda layers); refused even when validly signed.
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".h5", ".hdf5")
ENC_MAGIC = b"MLSEC-AESGCM-1\n"


class IntegrityError(SecurityError):
    """A model directory is unsigned, its signature is bad, or its files differ from the manifest.

    A :class:`~mlsec_lessons.errors.SecurityError`, never a ``ValueError``: an ``except ValueError``
    written for bad input must not swallow a tampered model.

    ``added``, ``removed`` and ``changed`` list the offending file names.
    """

    def __init__(self, message, added=(), removed=(), changed=()):
        super().__init__(message)
        self.added, self.removed, self.changed = list(added), list(removed), list(changed)


# ---------------------------------------------------------------- hashing

def file_sha256(path):
    """SHA-256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def weights_sha256(model):
    """SHA-256 over a model's learned parameters: what an integrity hash must cover.

    Keras models: every weight array. scikit-learn estimators: every fitted
    attribute (a name ending in ``_``) that is an array or a number.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> a = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> b = LogisticRegression().fit([[1.0], [0.0]], [0, 1])
    >>> str(a.get_params()) == str(b.get_params()), weights_sha256(a) == weights_sha256(b)
    (True, False)
    """
    if hasattr(model, "get_weights"):
        return fingerprint(*model.get_weights())
    fitted = sorted(k for k in vars(model) if k.endswith("_") and not k.startswith("_"))
    arrays = [np.asarray(getattr(model, k)) for k in fitted
              if isinstance(getattr(model, k), (np.ndarray, int, float, np.number))]
    if not arrays:
        raise InvalidParameterError(f"model={type(model).__name__} has no weights or fitted array attributes; is it fitted?")
    return fingerprint(*arrays)


# ---------------------------------------------------------------- saving in safe formats

def model_input_spec(model):
    """The input contract ``(shape, low, high)``: shape without the batch axis, and the valid range.

    A model loaded by :func:`load_verified_model` or saved by :func:`save_keras_model`
    carries the range from its signed ``input.json``; any other model gets
    ``(-inf, inf)``, that is, no range check beyond finiteness.
    """
    spec = getattr(model, "mlsec_input", None)
    if spec is not None:
        return spec
    shape = model.input_shape if hasattr(model, "input_shape") else (None, int(model.n_features_in_))
    return tuple(int(s) for s in shape[1:]), -math.inf, math.inf


def _write_input_spec(model, directory, input_range):
    shape, low, high = model_input_spec(model)
    if input_range is not None:
        low, high = (float(v) for v in input_range)
        if not low < high:
            raise InvalidParameterError(f"input_range must be (low, high) with low < high, got {input_range!r}")
    (Path(directory) / INPUT).write_text(
        json.dumps({"shape": list(shape), "min": _finite_or_none(low), "max": _finite_or_none(high)},
                   indent=2, sort_keys=True) + "\n")  # null for unbounded: JSON has no infinity
    model.mlsec_input = (tuple(shape), low, high)  # a tuple: Keras would wrap a dict in a tracker


def _finite_or_none(v):
    return v if math.isfinite(v) else None


def save_keras_model(model, directory, input_range=None):
    """Save a Keras model as ``directory/model.keras`` (weights and architecture, no optimizer
    state, no Python code) and its input contract as ``input.json``. Returns the model path.

    ``input_range=(low, high)`` is the valid input range, e.g. ``(0.0, 1.0)`` for images.
    """
    import keras

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean = keras.models.clone_model(model)  # uncompiled: the file holds no optimizer state
    clean.set_weights(model.get_weights())
    path = directory / "model.keras"
    keras.saving.save_model(clean, path)
    _write_input_spec(model, directory, input_range)
    return path


def save_sklearn_model(estimator, directory, input_range=None):
    """Save a fitted scikit-learn estimator with skops as ``directory/model.skops``. Returns the path."""
    import skops.io as sio

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.skops"
    sio.dump(estimator, path)
    _write_input_spec(estimator, directory, input_range)
    return path


# ---------------------------------------------------------------- signed manifest

def _walk(directory):
    """Relative POSIX paths of every file under ``directory`` except the manifest and signature."""
    directory = Path(directory)
    files = []
    for root, dirs, names in os.walk(directory, followlinks=False):
        for name in dirs + names:
            p = Path(root) / name
            if p.is_symlink():  # a link could point anywhere, and change after signing
                raise IntegrityError(f"{p} is a symbolic link; model directories must hold plain files")
        for name in names:
            rel = (Path(root) / name).relative_to(directory).as_posix()
            if rel not in (MANIFEST, SIGNATURE):
                files.append(rel)
    return sorted(files)


def file_hashes(directory):
    """``{relative path: SHA-256}`` of every file in ``directory`` but the manifest and its signature."""
    directory = Path(directory)
    return {rel: file_sha256(directory / rel) for rel in _walk(directory)}


def check_files(directory, expected):
    """Raise :class:`IntegrityError` naming every file added, removed or changed against ``expected``."""
    actual = file_hashes(directory)
    added = sorted(set(actual) - set(expected))
    removed = sorted(set(expected) - set(actual))
    changed = sorted(rel for rel in set(actual) & set(expected) if actual[rel] != expected[rel])
    if added or removed or changed:
        parts = [f"{what}: {', '.join(names)}" for what, names in
                 (("changed", changed), ("added", added), ("removed", removed)) if names]
        raise IntegrityError(f"{directory} failed verification: {'; '.join(parts)}", added, removed, changed)


def _manifest_bytes(directory):
    directory = Path(directory)
    manifest = {"format": "mlsec-manifest/1", "hash": "sha256", "files": file_hashes(directory)}
    if (directory / INPUT).is_file():
        manifest["input"] = json.loads((directory / INPUT).read_text())
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def sign_dir(directory, private_key_path):
    """Hash every file in ``directory`` into ``MANIFEST.json`` and sign it into ``MANIFEST.sig``.

    Returns the manifest as a dict. Re-signing replaces both files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidParameterError(f"directory={str(directory)!r} is not a directory")
    key = load_private_key(private_key_path)
    body = _manifest_bytes(directory)
    (directory / MANIFEST).write_bytes(body)
    (directory / SIGNATURE).write_text(base64.b64encode(key.sign(body)).decode() + "\n")
    return json.loads(body)


def verify_dir(directory, public_key_path):
    """Check the signature, then every file against the manifest. Returns the manifest.

    Raises :class:`IntegrityError` for an unsigned directory, a bad signature, or any
    added, removed or changed file (all of them named in the message).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidParameterError(f"directory={str(directory)!r} is not a directory")
    key = load_public_key(public_key_path)
    missing = [n for n in (MANIFEST, SIGNATURE) if not (directory / n).is_file()]
    if missing:
        raise IntegrityError(f"{directory} is not signed ({' and '.join(missing)} missing); "
                             f"refusing it. Sign it with `mlsec sign {directory} --key KEY`")
    body = (directory / MANIFEST).read_bytes()
    try:
        key.verify(base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True), body)
    except (InvalidSignature, ValueError):
        # Nothing in an unauthenticated manifest can be trusted, so stop before reading it.
        raise IntegrityError(f"{directory}: bad signature: {MANIFEST} was changed, or was not signed by "
                             f"the key in {public_key_path}") from None
    manifest = json.loads(body)
    check_files(directory, manifest["files"])
    return manifest


# ---------------------------------------------------------------- encryption at rest (AES-256-GCM)

def encrypt_file(path, key, remove_plaintext=True):
    """Encrypt ``path`` into ``path + ".enc"`` with AES-256-GCM; returns the new path.

    Layout: a magic line, a fresh random 96-bit nonce, then ciphertext and 16-byte tag.
    The file name is bound as associated data, so swapping two encrypted files fails
    to decrypt. A nonce must never repeat under one key; random 96-bit nonces are
    safe for far more files than a course will ever encrypt.
    """
    path = Path(path)
    nonce = os.urandom(12)
    out = path.with_name(path.name + ENCRYPTED_SUFFIX)
    sealed = AESGCM(_aes_key(key)).encrypt(nonce, path.read_bytes(), ENC_MAGIC + path.name.encode())
    out.write_bytes(ENC_MAGIC + nonce + sealed)
    if remove_plaintext:
        path.unlink()
    return out


def decrypt_file(path, key, out=None):
    """Decrypt a file made by :func:`encrypt_file` into ``out`` (default: ``path`` without ``.enc``).

    The GCM tag authenticates the ciphertext: a changed byte, a wrong key or a renamed
    file raises :class:`IntegrityError` and writes nothing. The plaintext is written
    with mode 0600. Returns the output path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "model.keras"
    >>> _ = p.write_bytes(b"weights")
    >>> key = bytes(32)
    >>> enc = encrypt_file(p, key)
    >>> decrypt_file(enc, key).read_bytes()
    b'weights'
    >>> decrypt_file(enc, bytes([1] * 32))
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.artifacts.IntegrityError: ...model.keras.enc: decryption failed ...
    """
    path = Path(path)
    if not path.name.endswith(ENCRYPTED_SUFFIX):
        raise InvalidParameterError(f"path={str(path)!r} does not end in {ENCRYPTED_SUFFIX!r}")
    name = path.name[:-len(ENCRYPTED_SUFFIX)]
    blob = path.read_bytes()
    if not blob.startswith(ENC_MAGIC):
        raise IntegrityError(f"{path}: not a file made by encrypt_file")
    nonce, sealed = blob[len(ENC_MAGIC):len(ENC_MAGIC) + 12], blob[len(ENC_MAGIC) + 12:]
    try:
        plain = AESGCM(_aes_key(key)).decrypt(nonce, sealed, ENC_MAGIC + name.encode())
    except InvalidTag:
        raise IntegrityError(f"{path}: decryption failed (wrong key, or the file was changed or renamed)") from None
    out = Path(out) if out is not None else path.with_name(name)
    write_private(out, plain, overwrite=True)
    return out


def _aes_key(key):
    return check_key(key, "key", min_bytes=AES_KEY_BYTES, exact=True, hint="AES-256; see load_encryption_key()")


# ---------------------------------------------------------------- loading

def _looks_like_pickle(path):
    with open(path, "rb") as f:
        head = f.read(2)
    # Pickle protocols 2-5 start with the PROTO opcode 0x80 and the protocol number.
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _refuse_unsafe(directory):
    unsafe = [rel for rel in _walk(directory)
              if rel.lower().endswith(UNSAFE_SUFFIXES) or _looks_like_pickle(Path(directory) / rel)]
    if unsafe:
        raise IntegrityError(f"{directory}: refusing to load {', '.join(unsafe)}: pickle and legacy HDF5 models "
                             f"can run code when loaded, signed or not. Save the model as .keras or with skops")


def load_verified_model(directory, public_key_path, key=None, trusted=None):
    """Verify ``directory``, then load its model in safe mode. Returns ``(model, sha256_hex)``.

    The directory is first copied to a private temporary folder and the copy is
    verified and loaded, so a file swapped after the check is never the one loaded.

    Parameters
    ----------
    directory : path
        A signed model directory holding ``model.keras`` or ``model.skops`` (or the
        same with ``.enc``, encrypted with :func:`encrypt_file`).
    public_key_path : path
        The Ed25519 public key the manifest must be signed with.
    key : bytes, optional
        The AES key for an encrypted model (see :func:`load_encryption_key`).
    trusted : list of str, optional
        For skops: extra types to trust beyond skops' defaults. Anything else
        untrusted makes skops refuse the file.

    Returns
    -------
    model, sha256_hex
        The loaded model, with ``model.mlsec_input`` (see :func:`model_input_spec`) set from
        the signed manifest and, for a language model, ``model.mlsec_language_model`` set to the
        text of its verified ``language_model.json``; and the SHA-256 of the model file as signed.
    """
    with tempfile.TemporaryDirectory(prefix="mlsec-model-") as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(directory, copy, symlinks=True)
        try:
            return _verify_and_load(copy, public_key_path, key, trusted)
        except IntegrityError as e:  # name the caller's directory, not our private copy
            raise IntegrityError(str(e).replace(str(copy), str(directory)), e.added, e.removed, e.changed) from None


def _verify_and_load(copy, public_key_path, key, trusted):
    manifest = verify_dir(copy, public_key_path)
    _refuse_unsafe(copy)
    stored = [n for n in MODEL_FILES + tuple(m + ENCRYPTED_SUFFIX for m in MODEL_FILES) if (copy / n).is_file()]
    if len(stored) != 1:
        raise IntegrityError(f"{copy}: expected exactly one of {', '.join(MODEL_FILES)} "
                             f"(optionally {ENCRYPTED_SUFFIX}), found {stored or 'none'}")
    name = stored[0]
    if name.endswith(ENCRYPTED_SUFFIX):
        if key is None:
            raise InvalidParameterError(f"{name} is encrypted; pass key=load_encryption_key(...)")
        plain = decrypt_file(copy / name, key)
    else:
        plain = copy / name
    model = _load_safe(plain, trusted)
    spec = manifest.get("input")
    if spec is not None:
        low = -math.inf if spec["min"] is None else spec["min"]
        high = math.inf if spec["max"] is None else spec["max"]
        model.mlsec_input = (tuple(int(s) for s in spec["shape"]), float(low), float(high))
    if (copy / LANGUAGE_MODEL).is_file():  # read from the verified copy, like the model itself
        model.mlsec_language_model = (copy / LANGUAGE_MODEL).read_text()  # a str: Keras tracks no str
    return model, manifest["files"][name]


def _load_safe(path, trusted):
    if path.name == "model.keras":
        import keras

        if not zipfile.is_zipfile(path):
            raise IntegrityError(f"{path.name} is not a Keras v3 zip archive")
        # safe_mode=True refuses Lambda layers and any other deserialised Python code.
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    import skops.io as sio

    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in (trusted or [])]
    if untrusted:
        raise IntegrityError(f"{path.name} contains types that are not trusted: {', '.join(untrusted)}; "
                             f"review them and pass trusted=[...] if they are safe")
    return sio.load(path, trusted=list(trusted or []))
