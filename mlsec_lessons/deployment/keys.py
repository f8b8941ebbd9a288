"""Secrets and keys for deployment: a JWT secret, an Ed25519 signing pair, an AES-GCM key.

Keys are never written into the repository. The development ones live in
``cache_dir()/deployment`` and are created on first use with mode 0600 (owner only).
A real deployment passes its own files, or an environment variable for the
encryption key, and keeps them in a secret manager.

Files are created with "first writer wins": the key is written to a private
temporary file and hard-linked into place, which fails if another process got
there first, so two servers starting at once never end up with two different keys.
"""
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..cache import cache_dir
from ..errors import InvalidParameterError, ParameterTypeError

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key must be at least as long as the hash output
AES_KEY_BYTES = 32  # AES-256-GCM

MAKE_SECRET = 'python -c "import secrets; print(secrets.token_hex(32))"'

DEV_JWT_SECRET = "dev_jwt_secret.txt"
DEV_SIGNING_KEY = "dev_signing_ed25519.pem"
DEV_VERIFY_KEY = "dev_signing_ed25519.pub.pem"


def check_key(key, name="key", *, min_bytes=MIN_SECRET_BYTES, exact=False, allow_text=False, hint=""):
    """``key`` as ``bytes``, if it is bytes of the right length; else an error that names it.

    The one check behind every symmetric key of the package: the HS256 secret, the audit log's HMAC
    key (at least 32 bytes) and the AES-256 key (exactly 32).

    Parameters
    ----------
    key : bytes, bytearray (or str with ``allow_text``)
    name : str
        The argument's name, for the message.
    min_bytes : int
        The length needed (at least, or exactly with ``exact=True``).
    allow_text : bool
        Accept a ``str`` and encode it as UTF-8 (an HS256 secret read from a text file).
    hint : str
        Appended to the message, e.g. how to make a good key.

    Examples
    --------
    >>> check_key(bytes(32), "secret") == bytes(32)
    True
    >>> check_key(b"short", "secret")
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: secret must be at least 32 bytes, got 5
    >>> check_key(None, "secret")
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.ParameterTypeError: secret must be at least 32 bytes, got NoneType
    """
    if allow_text and isinstance(key, str):
        key = key.encode()
    need = f"{'' if exact else 'at least '}{min_bytes} bytes"
    suffix = f"; {hint}" if hint else ""
    if not isinstance(key, (bytes, bytearray)):
        raise ParameterTypeError(f"{name} must be {need}, got {type(key).__name__}{suffix}")
    if len(key) < min_bytes or (exact and len(key) != min_bytes):
        raise InvalidParameterError(f"{name} must be {need}, got {len(key)}{suffix}")
    return bytes(key)


def deployment_dir():
    """``cache_dir()/deployment``, created with mode 0700 if needed."""
    path = cache_dir() / "deployment"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path, data, overwrite=False):
    """Write ``data`` (bytes) to ``path`` with mode 0600; never a moment with wider permissions.

    With ``overwrite=False`` an existing file is kept and ``False`` returned (another
    process won the race); ``True`` means this call wrote the file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic, and fails if the file exists: the first writer wins
            return True
        except FileExistsError:
            return False
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------- JWT secret (HS256)

def generate_jwt_secret(path, overwrite=False):
    """Write a new random HS256 secret (32 random bytes, hex-encoded) to ``path`` with mode 0600.

    Returns ``path``. Refuses to replace an existing file unless ``overwrite=True``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidParameterError(f"path={str(path)!r} already exists; pass overwrite=True to replace the secret")
    write_private(path, (secrets.token_hex(MIN_SECRET_BYTES) + "\n").encode(), overwrite=True)
    return path


def dev_jwt_secret_file():
    """The development JWT secret file, created on first use in the cache directory.

    Examples
    --------
    >>> path = dev_jwt_secret_file()
    >>> len(load_jwt_secret(path)) >= 32
    True
    >>> oct(path.stat().st_mode & 0o777) if os.name == "posix" else "0o600"
    '0o600'
    """
    path = deployment_dir() / DEV_JWT_SECRET
    if not path.exists():
        write_private(path, (secrets.token_hex(MIN_SECRET_BYTES) + "\n").encode())
    return path


def load_jwt_secret(path):
    """The secret in ``path`` as bytes, without surrounding whitespace (files are text).

    Raises ``ValueError`` if the file is missing or the secret is shorter than 32
    bytes: a short HS256 secret can be brute-forced offline from a single token.
    Length is the only check that can be made here; the secret must also be random
    (``python -c "import secrets; print(secrets.token_hex(32))"``), not a password.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> weak = pathlib.Path(tempfile.mkdtemp()) / "secret"
    >>> _ = weak.write_text("your-secret-key")
    >>> load_jwt_secret(weak)
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: the JWT secret in ... is 15 bytes; it must be at least 32 random bytes ...
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"path={str(path)!r}: no JWT secret file there")
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise InvalidParameterError(f"the JWT secret in {str(path)!r} is {len(secret)} bytes; it must be at least "
                         f"{MIN_SECRET_BYTES} random bytes ({MAKE_SECRET})")
    return secret


def derive_key(secret, purpose):
    """A separate 32-byte key for ``purpose`` (e.g. ``"audit-log"``), derived from ``secret`` with HMAC.

    One secret, several independent keys: knowing the audit key does not give the
    JWT secret, and a token MAC can never be replayed as an audit-log MAC.

    Examples
    --------
    >>> derive_key(bytes(32), "audit-log") != derive_key(bytes(32), "other")
    True
    """
    if not purpose or not isinstance(purpose, str):
        raise InvalidParameterError(f"purpose must be a non-empty string, got {purpose!r}")
    return hmac.new(bytes(secret), b"mlsec-lessons/" + purpose.encode(), hashlib.sha256).digest()


# ---------------------------------------------------------------- Ed25519 signing pair

def _public_pem(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_signing_key(private_path, public_path, overwrite=False):
    """Create an Ed25519 key pair as PEM files: the private key 0600, the public key 0644.

    Returns ``(private_path, public_path)``. Refuses to replace existing files unless
    ``overwrite=True`` (replacing a signing key silently would orphan every signature).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> priv, pub = generate_signing_key(d / "k.pem", d / "k.pub.pem")
    >>> load_private_key(priv).public_key() == load_public_key(pub)
    True
    """
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise InvalidParameterError(f"{str(p)!r} already exists; pass overwrite=True to replace the key pair")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_private(private_path, pem, overwrite=True)
    public_path.write_bytes(_public_pem(key))
    return private_path, public_path


def dev_signing_key():
    """The development Ed25519 pair ``(private_key_path, public_key_path)``, created on first use.

    The public key is derived from the private one, so concurrent first calls agree.
    """
    d = deployment_dir()
    private_path, public_path = d / DEV_SIGNING_KEY, d / DEV_VERIFY_KEY
    if not private_path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        write_private(private_path, pem)  # if another process won, its key stays
    if not public_path.exists():
        write_private(public_path, _public_pem(load_private_key(private_path)), overwrite=True)
        public_path.chmod(0o644)
    return private_path, public_path


def load_private_key(path):
    """An Ed25519 private key from a PEM file; ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_private_key(_read(path, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise InvalidParameterError(f"path={str(path)!r} does not hold an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidParameterError(f"path={str(path)!r} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path):
    """An Ed25519 public key from a PEM file; ``ValueError`` for anything else."""
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except ValueError as e:
        raise InvalidParameterError(f"path={str(path)!r} does not hold a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidParameterError(f"path={str(path)!r} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read(path, what):
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"path={str(path)!r}: no {what} file there")
    return path.read_bytes()


# ---------------------------------------------------------------- AES-256-GCM key for encryption at rest

def generate_encryption_key(path, overwrite=False):
    """Write a new random AES-256 key, hex-encoded, to ``path`` with mode 0600; returns ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidParameterError(f"path={str(path)!r} already exists; pass overwrite=True to replace the key")
    write_private(path, (secrets.token_hex(AES_KEY_BYTES) + "\n").encode(), overwrite=True)
    return path


def load_encryption_key(path=None, env="MLSEC_MODEL_KEY"):
    """The 32-byte AES key from ``path`` if given, else from the environment variable ``env``.

    Both hold the key as 64 hex characters. The key is never a default: with neither
    a file nor the variable this raises ``ValueError`` saying how to make one.

    Examples
    --------
    >>> os.environ["MLSEC_DOCTEST_KEY"] = "00" * 32
    >>> len(load_encryption_key(env="MLSEC_DOCTEST_KEY"))
    32
    >>> load_encryption_key(env="MLSEC_NO_SUCH_VARIABLE")
    Traceback (most recent call last):
    ...
    mlsec_lessons.errors.InvalidParameterError: no encryption key: pass path=... or set MLSEC_NO_SUCH_VARIABLE ...
    """
    if path is not None:
        text, source = _read(path, "encryption key").decode("ascii", "replace"), f"path={str(path)!r}"
    elif os.environ.get(env):
        text, source = os.environ[env], f"${env}"
    else:
        raise InvalidParameterError(f"no encryption key: pass path=... or set {env} to 64 hex characters ({MAKE_SECRET})")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != AES_KEY_BYTES:
        raise InvalidParameterError(f"the encryption key in {source} must be {2 * AES_KEY_BYTES} hex characters "
                         f"({AES_KEY_BYTES} bytes)")
    return key
