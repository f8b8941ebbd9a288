"""Signed, encrypted model artifacts: every tamper is caught, unsafe formats are refused."""
import base64
import os
import stat
import threading

import numpy as np
import pytest

import mlsec_lessons

mlsec_lessons.quiet()

import keras  # noqa: E402

from mlsec_lessons import course, data, models  # noqa: E402
from mlsec_lessons.deployment import artifacts, keys, unsafe_pickle  # noqa: E402
from mlsec_lessons.deployment.artifacts import IntegrityError  # noqa: E402


@pytest.fixture
def cache(fresh_cache):
    return fresh_cache


@pytest.fixture
def keypair(tmp_path):
    return keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")


@pytest.fixture
def signed(tmp_path, keypair):
    """A signed directory of plain files, one in a subfolder."""
    d = tmp_path / "model"
    (d / "assets").mkdir(parents=True)
    (d / "weights.bin").write_bytes(os.urandom(256))
    (d / "config.json").write_text('{"layers": 3}')
    (d / "assets" / "vocab.txt").write_text("a\nb\n")
    artifacts.sign_dir(d, keypair[0])
    return d


@pytest.fixture(scope="module")
def small_model():
    mlsec_lessons.seed_everything(0)
    return models.build("logistic", (8, 8, 1), 10)


# ---------------------------------------------------------------- sign and verify

def test_signed_dir_verifies_and_lists_every_file(signed, keypair):
    manifest = artifacts.verify_dir(signed, keypair[1])
    assert sorted(manifest["files"]) == ["assets/vocab.txt", "config.json", "weights.bin"]
    assert manifest["files"]["weights.bin"] == artifacts.file_sha256(signed / "weights.bin")


def _flip_a_bit(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("tamper, kind, name", [
    (lambda d: _flip_a_bit(d / "weights.bin"), "changed", "weights.bin"),
    (lambda d: (d / "assets" / "vocab.txt").write_text("a\nb\nc\n"), "changed", "assets/vocab.txt"),
    (lambda d: (d / "backdoor.py").write_text("print('hi')"), "added", "backdoor.py"),
    (lambda d: (d / "assets" / "extra.bin").write_bytes(b"x"), "added", "assets/extra.bin"),
    (lambda d: (d / "config.json").unlink(), "removed", "config.json"),
])
def test_any_added_removed_or_changed_file_is_named(signed, keypair, tamper, kind, name):
    tamper(signed)
    with pytest.raises(IntegrityError, match="failed verification") as err:
        artifacts.verify_dir(signed, keypair[1])
    assert getattr(err.value, kind) == [name]
    assert f"{kind}: {name}" in str(err.value)


def test_several_tampers_are_all_named(signed, keypair):
    _flip_a_bit(signed / "weights.bin")
    (signed / "config.json").unlink()
    (signed / "evil.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(IntegrityError) as err:
        artifacts.verify_dir(signed, keypair[1])
    msg = str(err.value)
    assert "changed: weights.bin" in msg and "added: evil.pkl" in msg and "removed: config.json" in msg


def test_rewriting_the_manifest_to_match_a_tampered_file_breaks_the_signature(signed, keypair):
    _flip_a_bit(signed / "weights.bin")
    manifest = (signed / "MANIFEST.json").read_text()
    old = artifacts.verify_dir.__globals__["json"].loads(manifest)["files"]["weights.bin"]
    (signed / "MANIFEST.json").write_text(manifest.replace(old, artifacts.file_sha256(signed / "weights.bin")))
    with pytest.raises(IntegrityError, match="bad signature"):
        artifacts.verify_dir(signed, keypair[1])


def test_a_signature_by_another_key_is_rejected(signed, keypair, tmp_path):
    other = keys.generate_signing_key(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    artifacts.sign_dir(signed, other[0])  # the attacker re-signs with their own key
    assert artifacts.verify_dir(signed, other[1])
    with pytest.raises(IntegrityError, match="bad signature"):
        artifacts.verify_dir(signed, keypair[1])


def test_garbage_signature_is_rejected(signed, keypair):
    (signed / "MANIFEST.sig").write_text(base64.b64encode(b"\0" * 64).decode())
    with pytest.raises(IntegrityError, match="bad signature"):
        artifacts.verify_dir(signed, keypair[1])
    (signed / "MANIFEST.sig").write_text("not base64 at all!")
    with pytest.raises(IntegrityError, match="bad signature"):
        artifacts.verify_dir(signed, keypair[1])


@pytest.mark.parametrize("remove", [["MANIFEST.json", "MANIFEST.sig"], ["MANIFEST.sig"], ["MANIFEST.json"]])
def test_unsigned_dir_is_refused(signed, keypair, remove):
    for name in remove:
        (signed / name).unlink()
    with pytest.raises(IntegrityError, match="not signed"):
        artifacts.verify_dir(signed, keypair[1])


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlinks_are_refused(signed, keypair, tmp_path):
    (tmp_path / "outside.bin").write_bytes(b"x")
    (signed / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(IntegrityError, match="symbolic link"):
        artifacts.verify_dir(signed, keypair[1])


def test_bad_arguments_are_value_errors(tmp_path, keypair):
    with pytest.raises(ValueError, match="not a directory"):
        artifacts.sign_dir(tmp_path / "nope", keypair[0])
    with pytest.raises(ValueError, match="no public key"):
        artifacts.verify_dir(tmp_path, tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="does not hold a PEM public key"):
        artifacts.verify_dir(tmp_path, keypair[0])  # a private key where the public one belongs


# ---------------------------------------------------------------- loading in safe formats only

def test_keras_round_trip_gives_the_same_predictions(small_model, keypair, tmp_path):
    d = tmp_path / "m"
    path = artifacts.save_keras_model(small_model, d, input_range=(0.0, 1.0))
    artifacts.sign_dir(d, keypair[0])
    model, sha = artifacts.load_verified_model(d, keypair[1])
    x = data.load_digits().x_test[:16]
    np.testing.assert_allclose(model.predict(x, verbose=0), small_model.predict(x, verbose=0), rtol=1e-6)
    assert sha == artifacts.file_sha256(path)
    assert artifacts.model_input_spec(model) == ((8, 8, 1), 0.0, 1.0)


def test_loader_verifies_before_loading(small_model, keypair, tmp_path):
    d = tmp_path / "m"
    artifacts.save_keras_model(small_model, d)
    artifacts.sign_dir(d, keypair[0])
    _flip_a_bit(d / "model.keras")
    with pytest.raises(IntegrityError, match="changed: model.keras") as err:
        artifacts.load_verified_model(d, keypair[1])
    assert str(err.value).startswith(str(d)) and err.value.changed == ["model.keras"]  # not the temp copy


def test_loader_refuses_a_validly_signed_pickle(keypair, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    canary = tmp_path / "canary.txt"
    unsafe_pickle.make_malicious_pickle(d / "model.pkl", canary)
    artifacts.sign_dir(d, keypair[0])  # signing proves who made it, not that it is safe
    with pytest.raises(IntegrityError, match="refusing to load model.pkl"):
        artifacts.load_verified_model(d, keypair[1])
    assert not canary.exists()


def test_loader_refuses_a_pickle_disguised_as_keras(keypair, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    canary = tmp_path / "canary.txt"
    unsafe_pickle.make_malicious_pickle(d / "model.keras", canary)
    artifacts.sign_dir(d, keypair[0])
    with pytest.raises(IntegrityError, match="refusing to load model.keras"):
        artifacts.load_verified_model(d, keypair[1])
    assert not canary.exists()


def test_keras_safe_mode_refuses_a_lambda_layer(keypair, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    lam = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    lam.save(d / "model.keras")
    artifacts.sign_dir(d, keypair[0])
    with pytest.raises(ValueError, match="Lambda"):
        artifacts.load_verified_model(d, keypair[1])


def test_skops_round_trip_and_untrusted_types_refused(keypair, tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    x = np.random.default_rng(0).random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    good = tmp_path / "good"
    clf = LogisticRegression().fit(x, y)
    artifacts.save_sklearn_model(clf, good)
    artifacts.sign_dir(good, keypair[0])
    loaded, _ = artifacts.load_verified_model(good, keypair[1])
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))
    assert artifacts.model_input_spec(loaded)[0] == (3,)

    bad = tmp_path / "bad"
    bad.mkdir()
    sio.dump(FunctionTransformer(os.system), bad / "model.skops")  # would call os.system on transform
    artifacts.sign_dir(bad, keypair[0])
    with pytest.raises(IntegrityError, match="not trusted: .*system"):
        artifacts.load_verified_model(bad, keypair[1])


# ---------------------------------------------------------------- hashing weights, not hyperparameters

def test_weights_hash_tells_an_untrained_model_from_a_trained_one():
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((40, 3))
    a = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    b = LogisticRegression().fit(x, (x[:, 1] > 0.5).astype(int))
    assert str(a.get_params()) == str(b.get_params())  # the source's "integrity hash" input
    assert artifacts.weights_sha256(a) != artifacts.weights_sha256(b)

    untrained = models.build("logistic", (8, 8, 1), 10)
    trained = keras.models.clone_model(untrained)
    trained.set_weights([w + 0.01 for w in untrained.get_weights()])
    assert untrained.get_config()["layers"] == trained.get_config()["layers"]
    assert artifacts.weights_sha256(untrained) != artifacts.weights_sha256(trained)
    with pytest.raises(ValueError, match="fitted"):
        artifacts.weights_sha256(LogisticRegression())


# ---------------------------------------------------------------- encryption at rest

def test_encryption_round_trip_and_ciphertext_hides_the_plaintext(tmp_path):
    key = os.urandom(32)
    plain = b"model weights " * 100
    p = tmp_path / "model.keras"
    p.write_bytes(plain)
    enc = artifacts.encrypt_file(p, key)
    assert enc.name == "model.keras.enc" and not p.exists()
    assert b"model weights" not in enc.read_bytes()
    out = artifacts.decrypt_file(enc, key)
    assert out.read_bytes() == plain
    if os.name == "posix":
        assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_same_plaintext_encrypts_differently_each_time(tmp_path):
    key = os.urandom(32)
    blobs = []
    for i in range(2):
        p = tmp_path / f"{i}" / "m.bin"
        p.parent.mkdir()
        p.write_bytes(b"same")
        blobs.append(artifacts.encrypt_file(p, key).read_bytes())
    assert blobs[0] != blobs[1]  # fresh nonce per file


@pytest.mark.parametrize("attack", ["flip ciphertext", "flip tag", "flip nonce", "wrong key", "rename", "truncate"])
def test_gcm_tag_catches_tampering(tmp_path, attack):
    key = os.urandom(32)
    p = tmp_path / "model.keras"
    p.write_bytes(os.urandom(1000))
    enc = artifacts.encrypt_file(p, key)
    raw = bytearray(enc.read_bytes())
    offset = {"flip ciphertext": len(artifacts.ENC_MAGIC) + 12 + 500, "flip tag": len(raw) - 1,
              "flip nonce": len(artifacts.ENC_MAGIC) + 3}.get(attack)
    if offset is not None:
        raw[offset] ^= 0x80
        enc.write_bytes(bytes(raw))
    elif attack == "truncate":
        enc.write_bytes(bytes(raw[:-20]))
    elif attack == "rename":
        enc = enc.rename(tmp_path / "other.keras.enc")
    with pytest.raises(IntegrityError, match="decryption failed"):
        artifacts.decrypt_file(enc, os.urandom(32) if attack == "wrong key" else key)
    assert not (tmp_path / "model.keras").exists() and not (tmp_path / "other.keras").exists()


def test_encrypted_signed_model_loads_only_with_the_key(small_model, keypair, tmp_path):
    d = tmp_path / "m"
    artifacts.save_keras_model(small_model, d)
    key = os.urandom(32)
    artifacts.encrypt_file(d / "model.keras", key)
    artifacts.sign_dir(d, keypair[0])
    assert sorted(p.name for p in d.iterdir()) == ["MANIFEST.json", "MANIFEST.sig", "input.json", "model.keras.enc"]
    model, sha = artifacts.load_verified_model(d, keypair[1], key=key)
    assert sha == artifacts.file_sha256(d / "model.keras.enc")
    assert model.predict(np.zeros((1, 8, 8, 1), "float32"), verbose=0).shape == (1, 10)
    assert not (d / "model.keras").exists()  # decrypted into a private temp dir only
    with pytest.raises(ValueError, match="encrypted"):
        artifacts.load_verified_model(d, keypair[1])
    with pytest.raises(IntegrityError, match="decryption failed"):
        artifacts.load_verified_model(d, keypair[1], key=os.urandom(32))


def test_encryption_key_from_file_or_environment(tmp_path, monkeypatch):
    path = keys.generate_encryption_key(tmp_path / "model.key")
    from_file = keys.load_encryption_key(path)
    assert len(from_file) == 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv("MLSEC_MODEL_KEY", "ab" * 32)
    assert keys.load_encryption_key() == bytes([0xAB] * 32)
    assert keys.load_encryption_key(path) == from_file  # an explicit file wins over the variable
    assert artifacts.load_encryption_key is keys.load_encryption_key
    monkeypatch.setenv("MLSEC_MODEL_KEY", "ab" * 16)
    with pytest.raises(ValueError, match="64 hex characters"):
        keys.load_encryption_key()
    monkeypatch.delenv("MLSEC_MODEL_KEY")
    with pytest.raises(ValueError, match="no encryption key"):
        keys.load_encryption_key()
    with pytest.raises(ValueError, match="already exists"):
        keys.generate_encryption_key(path)
    with pytest.raises(ValueError, match="key must be 32 bytes"):
        artifacts.encrypt_file(path, b"short")


# ---------------------------------------------------------------- keys

def test_dev_secrets_are_private_stable_and_outside_the_repo(cache):
    secret_file = keys.dev_jwt_secret_file()
    assert secret_file.parent == cache / "deployment"
    assert keys.dev_jwt_secret_file() == secret_file
    first = keys.load_jwt_secret(secret_file)
    assert len(first) >= 32 and keys.load_jwt_secret(keys.dev_jwt_secret_file()) == first
    priv, pub = keys.dev_signing_key()
    assert keys.dev_signing_key() == (priv, pub)
    assert keys.load_private_key(priv).public_key() == keys.load_public_key(pub)
    if os.name == "posix":
        for p in (secret_file, priv):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600
    repo = os.path.dirname(os.path.dirname(os.path.abspath(mlsec_lessons.__file__)))
    assert not str(secret_file).startswith(repo + os.sep) or "MLSEC_CACHE_DIR" in os.environ


def test_concurrent_first_use_gives_one_secret(cache):
    results = []
    threads = [threading.Thread(target=lambda: results.append(keys.load_jwt_secret(keys.dev_jwt_secret_file())))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_weak_or_missing_jwt_secret_is_refused(tmp_path):
    (tmp_path / "weak").write_text("your-secret-key\n")
    with pytest.raises(ValueError, match="15 bytes"):
        keys.load_jwt_secret(tmp_path / "weak")
    with pytest.raises(ValueError, match="no JWT secret"):
        keys.load_jwt_secret(tmp_path / "missing")
    path = keys.generate_jwt_secret(tmp_path / "s")
    assert len(keys.load_jwt_secret(path)) == 64
    with pytest.raises(ValueError, match="already exists"):
        keys.generate_jwt_secret(path)


def test_signing_key_is_not_silently_replaced(keypair):
    with pytest.raises(ValueError, match="already exists"):
        keys.generate_signing_key(*keypair)


def test_derived_keys_are_independent():
    secret = os.urandom(32)
    assert keys.derive_key(secret, "audit-log") == keys.derive_key(secret, "audit-log")
    assert keys.derive_key(secret, "audit-log") != keys.derive_key(secret, "tokens")
    assert len(keys.derive_key(secret, "audit-log")) == 32 and keys.derive_key(secret, "audit-log") != secret
    with pytest.raises(ValueError, match="purpose"):
        keys.derive_key(secret, "")


# ---------------------------------------------------------------- the demo model

def test_demo_model_dir_is_signed_verifies_and_is_built_once(cache):
    d = course.demo_model_dir(epochs=3)
    priv, pub = keys.dev_signing_key()
    manifest = artifacts.verify_dir(d, pub)
    assert sorted(manifest["files"]) == ["input.json", "model.keras"]
    assert manifest["input"] == {"shape": [8, 8, 1], "min": 0.0, "max": 1.0}
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in d.rglob("*"))
    mtime = (d / "MANIFEST.sig").stat().st_mtime_ns
    assert course.demo_model_dir(epochs=3) == d and (d / "MANIFEST.sig").stat().st_mtime_ns == mtime
    model, _ = artifacts.load_verified_model(d, pub)
    digits = data.load_digits()
    assert models.accuracy(model, digits.x_test, digits.y_test) > 0.3  # 3 epochs: learning, far above 0.1
