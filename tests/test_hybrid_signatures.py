"""The hybrid Ed25519 + ML-DSA-65 manifest signature: both must verify, for the right context,
unexpired, and not older than the version already trusted."""
import base64

import pytest
from cryptography.exceptions import InvalidSignature

from mlsec_lessons.deployment import artifacts, hybrid, keys
from mlsec_lessons.deployment.artifacts import IntegrityError
from mlsec_lessons.errors import InvalidParameterError, ParameterTypeError

NOW = 1_800_000_000
CTX = "digits-classifier/production"


@pytest.fixture(scope="module")
def key():
    return hybrid.generate_hybrid_key()


@pytest.fixture(scope="module")
def signed(key):
    return hybrid.sign_manifest_hybrid({"files": {"model.keras": "00" * 32}}, key, context=CTX, version=3,
                                       valid_for_s=3600, now=NOW)


def verify(body, sigs, key, **kw):
    kw = {"context": CTX, "min_version": 3, "now": NOW + 10, **kw}
    return hybrid.verify_manifest_hybrid(body, sigs, key.public_key(), **kw)


def flip(b64):
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip(key, signed):
    body, sigs = signed
    manifest = verify(body, sigs, key)
    assert manifest["context"] == CTX and manifest["version"] == 3 and manifest["expires_at"] == NOW + 3600
    assert len(base64.b64decode(sigs["ed25519"])) == 64 and len(base64.b64decode(sigs["ml-dsa-65"])) == 3309


@pytest.mark.parametrize("name", ["ed25519", "ml-dsa-65"])
def test_each_signature_tampered_alone_is_refused_by_name(key, signed, name):
    body, sigs = signed
    with pytest.raises(IntegrityError, match=f"bad {name} signature"):
        verify(body, {**sigs, name: flip(sigs[name])}, key)


def test_a_changed_manifest_fails_both(key, signed):
    body, sigs = signed
    with pytest.raises(IntegrityError, match="bad ed25519 and ml-dsa-65 signature"):
        verify(body.replace(b'"version": 3', b'"version": 9'), sigs, key)


@pytest.mark.parametrize("name", ["ed25519", "ml-dsa-65"])
def test_one_half_from_another_key_is_refused(key, signed, name):
    body, sigs = signed
    _, other = hybrid.sign_manifest_hybrid({"files": {"model.keras": "00" * 32}}, hybrid.generate_hybrid_key(),
                                           context=CTX, version=3, valid_for_s=3600, now=NOW)
    assert other != sigs
    with pytest.raises(IntegrityError, match=f"bad {name} signature"):
        verify(body, {**sigs, name: other[name]}, key)


def test_swapped_public_keys_are_refused(key, signed):
    body, sigs = signed
    wrong = hybrid.HybridPublicKey(key.public_key().ed25519, hybrid.generate_hybrid_key().public_key().mldsa)
    with pytest.raises(IntegrityError, match="bad ml-dsa-65 signature"):
        hybrid.verify_manifest_hybrid(body, sigs, wrong, context=CTX, min_version=3, now=NOW)


def test_wrong_context_is_refused_and_named(key, signed):
    body, sigs = signed
    with pytest.raises(IntegrityError, match="bad ed25519 and ml-dsa-65 signature: the manifest says it was "
                                             "signed for context 'digits-classifier/production', not 'digits-"):
        verify(body, sigs, key, context="digits-classifier/staging")


def test_expired_manifest_is_refused(key, signed):
    body, sigs = signed
    verify(body, sigs, key, now=NOW + 3599)
    with pytest.raises(IntegrityError, match="expired"):
        verify(body, sigs, key, now=NOW + 3600)


def test_rolled_back_version_is_refused(key, signed):
    body, sigs = signed
    verify(body, sigs, key, min_version=3)
    with pytest.raises(IntegrityError, match="older than version 4"):
        verify(body, sigs, key, min_version=4)


@pytest.mark.parametrize("drop", [("ed25519",), ("ml-dsa-65",), ("ed25519", "ml-dsa-65")])
def test_missing_signature_is_refused_by_name(key, signed, drop):
    body, sigs = signed
    with pytest.raises(IntegrityError, match=f"missing {' and '.join(drop)} signature"):
        verify(body, {k: v for k, v in sigs.items() if k not in drop}, key)


def test_the_ed25519_half_is_not_a_plain_manifest_signature(key, signed):
    body, sigs = signed
    key.public_key().ed25519.verify(base64.b64decode(sigs["ed25519"]), hybrid.DOMAIN + bytes([len(CTX)])
                                    + CTX.encode() + body)
    with pytest.raises(InvalidSignature):  # the bare manifest was never signed, so no stripping attack
        key.public_key().ed25519.verify(base64.b64decode(sigs["ed25519"]), body)


@pytest.mark.parametrize("kwargs, error", [
    ({"body": "text"}, ParameterTypeError),
    ({"signatures": ["a", "b"]}, ParameterTypeError),
    ({"context": 7}, ParameterTypeError),
    ({"context": ""}, InvalidParameterError),
    ({"context": "x" * 256}, InvalidParameterError),
    ({"min_version": 0}, InvalidParameterError),
    ({"min_version": 2.0}, ParameterTypeError),
    ({"public_key": "pem"}, ParameterTypeError),
])
def test_bad_input_types_are_named(key, signed, kwargs, error):
    body, sigs = signed
    args = {"body": body, "signatures": sigs, "public_key": key.public_key(), "context": CTX, "now": NOW, **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        hybrid.verify_manifest_hybrid(args.pop("body"), args.pop("signatures"), args.pop("public_key"), **args)


@pytest.mark.parametrize("kwargs, error", [
    ({"version": 0}, InvalidParameterError), ({"version": True}, ParameterTypeError),
    ({"valid_for_s": 0}, InvalidParameterError), ({"manifest": "files"}, ParameterTypeError),
    ({"key": "key"}, ParameterTypeError),
])
def test_bad_signing_arguments_are_named(key, kwargs, error):
    args = {"manifest": {}, "key": key, "context": CTX, "version": 1, "valid_for_s": 60, **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        hybrid.sign_manifest_hybrid(args.pop("manifest"), args.pop("key"), **args)


def test_directory_round_trip_tamper_and_plain_verifier(tmp_path, key):
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.keras").write_bytes(b"weights")
    hybrid.sign_dir_hybrid(d, key, context=CTX, version=1, valid_for_s=60)
    assert set(hybrid.verify_dir_hybrid(d, key.public_key(), context=CTX)["files"]) == {"model.keras"}
    _, pub = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    with pytest.raises(IntegrityError, match="bad signature"):   # the Ed25519-only verifier refuses it
        artifacts.verify_dir(d, pub)
    (d / "model.keras").write_bytes(b"weightz")
    with pytest.raises(IntegrityError, match="changed: model.keras"):
        hybrid.verify_dir_hybrid(d, key.public_key(), context=CTX)


def test_an_ed25519_only_directory_is_refused(tmp_path, key):
    d = tmp_path / "model"
    d.mkdir()
    (d / "w.bin").write_bytes(b"0")
    priv, _ = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    artifacts.sign_dir(d, priv)
    with pytest.raises(IntegrityError, match="does not hold hybrid signatures"):
        hybrid.verify_dir_hybrid(d, key.public_key(), context=CTX)
    (d / artifacts.SIGNATURE).unlink()
    with pytest.raises(IntegrityError, match="MANIFEST.sig missing"):
        hybrid.verify_dir_hybrid(d, key.public_key(), context=CTX)


def test_key_files_round_trip(tmp_path, key, signed):
    priv, pub = hybrid.save_hybrid_key(key, tmp_path / "h.pem", tmp_path / "h.pub.pem")
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    body, sigs = signed
    hybrid.verify_manifest_hybrid(body, sigs, hybrid.load_hybrid_public_key(pub), context=CTX, now=NOW)
    again = hybrid.load_hybrid_private_key(priv)
    assert again.public_key().mldsa.public_bytes_raw() == key.public_key().mldsa.public_bytes_raw()
    with pytest.raises(InvalidParameterError, match="already exists"):
        hybrid.save_hybrid_key(key, priv, pub)
    _, ed_only = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    with pytest.raises(InvalidParameterError, match="must hold an Ed25519 and an ML-DSA-65 key"):
        hybrid.load_hybrid_public_key(ed_only)


def test_the_ml_dsa_half_is_bound_to_the_context_by_fips_204_too(key, signed):
    body, sigs = signed
    message, sig = hybrid.DOMAIN + bytes([len(CTX)]) + CTX.encode() + body, base64.b64decode(sigs["ml-dsa-65"])
    key.public_key().mldsa.verify(sig, message, CTX.encode())
    with pytest.raises(InvalidSignature):   # the same bytes under ML-DSA's empty context
        key.public_key().mldsa.verify(sig, message)
