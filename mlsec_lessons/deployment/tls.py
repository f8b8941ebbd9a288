"""A self-signed TLS certificate for serving the course's model over HTTPS on your own machine.

A self-signed certificate encrypts the connection but proves nothing about who the server is
unless the client has been given this exact certificate to trust (``httpx.Client(verify=cert)``).
Production servers use a certificate from a CA their clients already trust.
"""
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import InvalidParameterError
from ..validation import check_int


def _san(hostnames):
    names = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def self_signed_cert(cert_path, key_path, hostnames=("localhost", "127.0.0.1"), days=30):
    """Write an ECDSA P-256 key (mode 0600) and a self-signed certificate for ``hostnames``.

    Parameters
    ----------
    cert_path, key_path : path-like
        Where to write the certificate and the private key (PEM).
    hostnames : sequence of str
        DNS names and IP addresses the certificate is valid for (its subjectAltName).
    days : int
        Validity; short, since this is for development.

    Returns
    -------
    (Path, Path)
        The certificate and key paths.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> cert, key = self_signed_cert(folder / "cert.pem", folder / "key.pem")
    >>> x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string()
    'CN=localhost'
    >>> oct(key.stat().st_mode & 0o777)
    '0o600'
    >>> import shutil; shutil.rmtree(folder)
    """
    hostnames = list(hostnames)
    if not hostnames or not all(isinstance(h, str) and h for h in hostnames):
        raise InvalidParameterError(f"hostnames must be a non-empty list of names or addresses, got {hostnames!r}")
    days = check_int(days, "days", min_value=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)  # self-signed: it is its own issuer
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(hostnames), critical=False)
        # it must act as its own trust anchor, so it is a CA that may sign only itself
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(cert_path), Path(key_path)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    # create the key file 0600 from the start: never a moment when others can read it
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    os.chmod(key_path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
