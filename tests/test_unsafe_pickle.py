"""A pickle is a program: loading one runs code. The course's loader refuses it; scanners help a little."""
import pickle

import numpy as np
import pytest

from mlsec_lessons.deployment import artifacts, keys, unsafe_pickle


@pytest.mark.parametrize("payload", unsafe_pickle.PAYLOADS)
def test_loading_the_malicious_pickle_writes_the_canary(tmp_path, payload):
    canary = tmp_path / "canary.txt"
    bad = unsafe_pickle.make_malicious_pickle(tmp_path / "model.pkl", canary, payload=payload)
    assert not canary.exists()  # making the file runs nothing
    result = unsafe_pickle.load_with_pickle(bad)
    assert result.returncode == 0, result.stderr
    assert canary.read_text() == unsafe_pickle.CANARY_TEXT


def test_the_victim_does_not_need_the_attackers_code(tmp_path):
    raw = unsafe_pickle.make_malicious_pickle(tmp_path / "m.pkl", tmp_path / "c.txt").read_bytes()
    assert b"mlsec_lessons" not in raw and b"_Payload" not in raw  # only builtins.exec is named


def test_course_loader_refuses_it_even_when_signed(tmp_path):
    canary = tmp_path / "canary.txt"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    unsafe_pickle.make_malicious_pickle(model_dir / "model.pkl", canary)
    priv, pub = keys.generate_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    artifacts.sign_dir(model_dir, priv)
    with pytest.raises(artifacts.IntegrityError, match="refusing to load model.pkl"):
        artifacts.load_verified_model(model_dir, pub)
    assert not canary.exists()


def test_picklescan_flags_the_exec_payload(tmp_path):
    bad = unsafe_pickle.make_malicious_pickle(tmp_path / "model.pkl", tmp_path / "c.txt", payload="exec")
    report = unsafe_pickle.scan(bad)
    assert report.dangerous == ["builtins.exec"] and report.flagged


def test_picklescan_is_not_a_guarantee(tmp_path):
    # pathlib.Path.write_text is not on picklescan's denylist: a default scan finds nothing "dangerous",
    # only "suspicious" imports, yet loading the file still runs the payload.
    bad = unsafe_pickle.make_malicious_pickle(tmp_path / "model.pkl", tmp_path / "c.txt", payload="pathlib")
    report = unsafe_pickle.scan(bad)
    assert report.dangerous == [] and "pathlib.Path.write_text" in report.suspicious
    assert report.flagged  # which is why "suspicious" must count as a failure
    assert "pathlib.Path.write_text" in unsafe_pickle.scan(bad, strict=True).dangerous


def test_a_plain_data_pickle_is_not_flagged(tmp_path):
    # The negative control: the scanner does not flag everything.
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"w": np.arange(4.0), "b": 0.5}))
    report = unsafe_pickle.scan(path)
    assert report.dangerous == [] and report.suspicious == [] and not report.flagged


def test_a_keras_file_holds_no_pickle(tmp_path):
    import mlsec_lessons

    mlsec_lessons.quiet()
    from mlsec_lessons import models

    path = artifacts.save_keras_model(models.build("logistic", (4,), 2), tmp_path)
    report = unsafe_pickle.scan(path)  # a zip: picklescan looks inside for pickles
    assert not report.flagged


def test_unknown_payload_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="payload must be one of"):
        unsafe_pickle.make_malicious_pickle(tmp_path / "m.pkl", tmp_path / "c.txt", payload="rm -rf")
