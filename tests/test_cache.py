"""The one load-or-train-and-save core: cached_fit (Keras weights) and cached_arrays (.npz)."""
import dataclasses
import os
import random
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

from mlsec_lessons import cache, models
from mlsec_lessons.errors import MLSecError
from mlsec_lessons.privacy import dp_sgd

X = np.random.default_rng(0).random((64, 4)).astype(np.float32)
Y = (X[:, 0] > 0.5).astype(np.int64)
CONFIG = {"epochs": 2, "data": cache.fingerprint(X, Y)}


def build():
    return models.compile_for_training(models.mlp((4,), 2, hidden=(8,)))


def fit(model):
    model.fit(X, Y, epochs=2, batch_size=16, verbose=0)


def test_a_second_call_loads_the_same_weights(fresh_cache):
    first = cache.cached_fit("toy", CONFIG, build, fit)
    again = cache.cached_fit("toy", CONFIG, build, fit)
    assert isinstance(first, cache.Fitted) and first.privacy is None
    assert not first.provenance.from_cache and first.provenance.seconds > 0
    assert again.provenance.from_cache and again.provenance.seconds == 0.0
    assert again.provenance.cache_path == first.provenance.cache_path
    assert first.provenance.cache_path.name.endswith(cache.WEIGHTS_SUFFIX)
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert again.provenance.versions == cache.versions() and set(cache.versions()) == {
        "mlsec_lessons", "keras", "tensorflow", "scikit-learn", "numpy"}
    frame = again.to_frame()
    assert frame.loc[0, "from_cache"] and frame.loc[0, "version scikit-learn"] == cache.versions()["scikit-learn"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.model = None


def test_loading_writes_and_expects_no_optimizer_state(fresh_cache):
    """The file holds the weights only, so loading into a compiled (even nested) model says nothing."""
    def nested():
        inner = models.compile_for_training(models.mlp((4,), 2, hidden=(8,)))
        inner.fit(X, Y, epochs=1, verbose=0)  # a built optimizer inside the outer model
        return models.compile_for_training(keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)]))

    first = cache.cached_fit("nested", CONFIG, nested, fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cache.cached_fit("nested", CONFIG, nested, fit)
    assert again.provenance.from_cache
    with np.load(first.provenance.cache_path, allow_pickle=False) as saved:
        assert len(saved.files) == len(first.model.get_weights())  # no optimizer variables


def test_the_key_changes_with_the_config_the_seed_and_a_version(fresh_cache, monkeypatch):
    base = cache.cached_fit("toy", CONFIG, build, fit).provenance
    other_config = cache.cached_fit("toy", CONFIG | {"epochs": 3}, build, fit).provenance
    other_seed = cache.cached_fit("toy", CONFIG, build, fit, seed=1).provenance
    real = cache.versions()
    monkeypatch.setattr(cache, "versions", lambda: real | {"scikit-learn": "0.0.1"})
    other_sklearn = cache.cached_fit("toy", CONFIG, build, fit).provenance
    monkeypatch.setattr(cache, "versions", lambda: real | {"keras": "0.0.1"})
    other_keras = cache.cached_fit("toy", CONFIG, build, fit).provenance
    keys = {p.key for p in (base, other_config, other_seed, other_sklearn, other_keras)}
    assert len(keys) == 5
    assert not any(p.from_cache for p in (other_config, other_seed, other_sklearn, other_keras))


def test_a_half_written_file_is_never_read(fresh_cache, monkeypatch):
    def crash(model):
        raise KeyboardInterrupt  # training dies: nothing may be left where a cached model would be

    with pytest.raises(KeyboardInterrupt):
        cache.cached_fit("toy", CONFIG, build, crash)
    assert not list(fresh_cache.rglob("*.npz"))

    real_savez = np.savez

    def die_halfway(file, **arrays):  # the disk fills up in the middle of the write
        real_savez(file, **arrays)
        file.truncate(file.tell() // 2)
        raise OSError("no space left on device")

    monkeypatch.setattr(np, "savez", die_halfway)
    with pytest.raises(OSError):
        cache.cached_fit("toy", CONFIG, build, fit)
    monkeypatch.undo()
    assert not list(fresh_cache.rglob("*.npz")) and not list(fresh_cache.rglob("*.tmp"))

    # a damaged file at the final path (copied in by hand, a crash of the disk itself) is trained over
    path = cache.cached_fit("toy", CONFIG, build, fit).provenance.cache_path
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="unreadable cache file"):
        again = cache.cached_fit("toy", CONFIG, build, fit)
    assert not again.provenance.from_cache
    assert cache.cached_fit("toy", CONFIG, build, fit).provenance.from_cache


def test_cached_arrays_round_trip_and_refuse_pickles(fresh_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"logits": np.arange(6, dtype=np.float32).reshape(2, 3), "mask": np.array([True, False])}

    first, p1 = cache.cached_arrays("arr", {"n": 2}, compute)
    again, p2 = cache.cached_arrays("arr", {"n": 2}, compute)
    assert len(calls) == 1 and not p1.from_cache and p2.from_cache and p2.seconds == 0.0
    assert p1.cache_path.suffix == ".npz" and p1.key == p2.key
    np.testing.assert_array_equal(first["logits"], again["logits"])
    assert again["mask"].dtype == bool

    with pytest.raises(cache.CacheError, match="pickle"):
        cache.cached_arrays("arr", {"n": 3}, lambda: {"bad": np.array([{"a": 1}], dtype=object)})
    # a file that holds a pickle (written by someone else) is never unpickled: it is computed again
    _, p = cache.cached_arrays("arr", {"n": 4}, compute)
    with p.cache_path.open("wb") as f:
        np.savez(f, bad=np.array([{"a": 1}], dtype=object))
    with pytest.warns(RuntimeWarning, match="unreadable"):
        arrays, p4 = cache.cached_arrays("arr", {"n": 4}, compute)
    assert not p4.from_cache and set(arrays) == {"logits", "mask"}


# Another process computes the result {"x": [1, 2, 3]} under the key ("shared", {"n": 1}): it says so in
# the file argv[1], then takes argv[2] seconds over it.
OTHER_PROCESS = """
import sys, time
from pathlib import Path
from mlsec_lessons import cache
def compute():
    Path(sys.argv[1]).write_text("computing")
    time.sleep(float(sys.argv[2]))
    return {"x": [1, 2, 3]}
cache.cached_arrays("shared", {"n": 1}, compute)
"""


def start_computing(tmp_path, seconds):
    started = tmp_path / "started"
    other = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, str(started), str(seconds)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not started.exists():
        assert other.poll() is None and time.monotonic() < deadline, "the other process never started computing"
        time.sleep(0.05)
    return other


def test_a_result_another_process_is_computing_is_waited_for_not_computed_again(fresh_cache, tmp_path):
    other = start_computing(tmp_path, seconds=1.5)
    calls = []
    arrays, provenance = cache.cached_arrays("shared", {"n": 1}, lambda: calls.append(1) or {"x": [9]})
    assert other.wait(timeout=60) == 0
    assert calls == [] and provenance.from_cache, "computed a second time instead of waiting for the other process"
    assert arrays["x"].tolist() == [1, 2, 3]


def test_a_killed_process_leaves_no_one_waiting(fresh_cache, tmp_path):
    other = start_computing(tmp_path, seconds=600)
    other.kill()
    other.wait(timeout=60)
    start = time.monotonic()
    arrays, provenance = cache.cached_arrays("shared", {"n": 1}, lambda: {"x": [9]})
    assert not provenance.from_cache and arrays["x"].tolist() == [9]
    assert time.monotonic() - start < 10


def test_no_global_random_state_is_reseeded(fresh_cache):
    np.random.seed(123)
    random.seed(123)
    before = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    cache.cached_fit("toy", CONFIG, build, fit, seed=0, cache=False)
    models.train(_tiny_data(), "logistic", epochs=1, progress=False, cache=False)
    dp_sgd.train_dp_sgd(_tiny_data(), "logistic", epochs=1, batch_size=16, progress=False, cache=False)
    assert (np.random.random(), random.random()) == before


def test_the_same_seed_gives_the_same_weights_uncached():
    a = cache.cached_fit("toy", CONFIG, build, fit, seed=3, cache=False).model.get_weights()
    b = cache.cached_fit("toy", CONFIG, build, fit, seed=3, cache=False).model.get_weights()
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def test_bad_arguments_are_named():
    with pytest.raises(MLSecError, match="kind"):
        cache.cached_fit("../escape", CONFIG, build, fit)
    with pytest.raises(TypeError, match="config"):
        cache.cached_fit("toy", ["epochs"], build, fit)
    with pytest.raises(TypeError, match="privacy"):
        cache.cached_fit("toy", CONFIG, build, fit, privacy={"epsilon": 1.0})
    with pytest.raises(ValueError, match="seed"):
        cache.cached_fit("toy", CONFIG, build, fit, seed=np.random.default_rng(0))


def _tiny_data():
    from mlsec_lessons.data import Dataset

    return Dataset("tiny", X, Y, X[:8], Y[:8], n_classes=2)


def test_shadow_sets_carry_their_provenance_and_show_as_a_frame(fresh_cache):
    from sklearn.linear_model import LogisticRegression

    from mlsec_lessons.privacy_attacks.shadows import train_shadow_models

    x, y = np.random.default_rng(1).normal(size=(40, 3)), np.arange(40) % 2
    first = train_shadow_models(LogisticRegression(), x, y, n_models=3)
    again = train_shadow_models(LogisticRegression(), x, y, n_models=3)
    assert not first.provenance.from_cache and again.provenance.from_cache
    assert again.provenance.cache_path.parent.name == "shadows"
    frame = again.to_frame()
    assert list(frame.index) == [0, 1, 2] and (frame["members"] == 20).all()
    by_membership = again.accuracy_by_membership()
    assert frame["accuracy on members"].mean() == pytest.approx(by_membership["members"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.logits = None


def test_weights_come_back_in_order_however_many_there_are(fresh_cache):
    class Many:  # 1001 weight arrays: past the point where name order and index order differ
        def __init__(self, fill):
            self.weights = [np.full(1, fill + i, np.float32) for i in range(1001)]

        def get_weights(self):
            return self.weights

        def set_weights(self, weights):
            self.weights = list(weights)

    cache.cached_fit("many", {}, lambda: Many(0), lambda m: None)
    loaded = cache.cached_fit("many", {}, lambda: Many(5000), lambda m: None)
    assert loaded.provenance.from_cache
    assert [float(w[0]) for w in loaded.model.get_weights()] == list(range(1001))
