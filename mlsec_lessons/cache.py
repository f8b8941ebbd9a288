"""Where trained artifacts live between runs, and the one way to load-or-compute-and-save them.

Two entry points cover every trainer in the package:

* :func:`cached_fit` builds a Keras model, then loads its weights from the cache or trains it and
  stores them. It returns a :class:`Fitted` record: the model, its :class:`PrivacySpend` (``None``
  for a non-private model) and its :class:`Provenance` (cache path, whether it was loaded, the
  seconds training took, the library versions).
* :func:`cached_arrays` does the same for a dict of numpy arrays (shadow-model logits, a
  substitute's weights), stored as ``.npz`` and read back without pickle.

The cache key covers what the caller says determines the result (``config``), the kind of
result, and the versions of mlsec-lessons, Keras, TensorFlow, scikit-learn and numpy: a new
version of any of them gives a new key, never a stale model. Files are written under a
temporary name and renamed, so a half-written file is never read as a cached result. While one
process computes a result, another that needs the same one (two notebooks open at once, ``make
test``'s parallel workers) waits for it and loads it instead of computing it a second time.

Set ``MLSEC_CACHE_DIR`` to move the cache (CI and tests point it at a scratch folder).
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
import uuid
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so two processes may both compute a missing result
    fcntl = None

from .errors import InvalidParameterError, MLSecError, ParameterTypeError
from .records import OneRowFrame
from .reproducibility import seeded
from .validation import check_seed

WEIGHTS_SUFFIX = ".weights.npz"
# name in the key: the distributions that may provide it (TensorFlow ships under several names)
_PACKAGES = {"keras": ("keras",), "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
             "scikit-learn": ("scikit-learn",), "numpy": ("numpy",)}
# Bumped when the package's trainers change what the same config computes (2: models.fit_epochs replaced
# Keras' fit), so that a cache filled by older code is never read as today's result.
TRAINERS_VERSION = 2
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)  # a damaged file: compute again


class CacheError(MLSecError, RuntimeError):
    """A result cannot be stored in the cache as asked (for instance, an array that would need pickle)."""


def cache_dir():
    """The cache directory, created if needed: ``$MLSEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlsec-lessons``,
    else ``~/.cache/mlsec-lessons``."""
    root = os.environ.get("MLSEC_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "mlsec-lessons"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def fingerprint(*arrays):
    """SHA-256 over the dtype, shape and bytes of each array: same data, same digest."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(**parts):
    """A short, stable key for a JSON-serialisable description of what was computed."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def versions():
    """The versions a cached result depends on: this package, Keras, TensorFlow, scikit-learn, numpy.

    Read from the installed package metadata, so asking imports no TensorFlow.

    Examples
    --------
    >>> sorted(versions())
    ['keras', 'mlsec_lessons', 'numpy', 'scikit-learn', 'tensorflow']
    """
    from . import __version__

    found = {"mlsec_lessons": __version__}
    for name, distributions in _PACKAGES.items():
        found[name] = None
        for distribution in distributions:
            try:
                found[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


# --------------------------------------------------------------------------- the records
@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a result came from.

    Attributes
    ----------
    cache_path : Path or None
        The file that holds it; ``None`` when caching was off.
    from_cache : bool
        Loaded from that file (True) or computed in this call (False).
    seconds : float
        Wall time of the training or computation; 0.0 when loaded.
    versions : dict
        :func:`versions` when the key was made (they are part of the key).
    key : str
        The cache key: a digest of the kind, the config and the versions.
    """

    cache_path: Path | None
    from_cache: bool
    seconds: float
    versions: dict
    key: str

    def to_frame(self):
        """One row: path, from_cache, seconds, key and one column per version."""
        import pandas as pd

        row = {"cache_path": None if self.cache_path is None else str(self.cache_path),
               "from_cache": self.from_cache, "seconds": self.seconds, "key": self.key}
        row.update({f"version {k}": v for k, v in self.versions.items()})
        return pd.DataFrame([row])


@dataclasses.dataclass(frozen=True)
class PrivacySpend(OneRowFrame):
    """The (epsilon, delta) a DP-SGD run spent, and what the accountant was told.

    ``epsilon`` is ``inf`` for a run without noise (``noise_multiplier=0``): clipping alone gives no
    privacy guarantee.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    l2_norm_clip: float
    accountant: str = "RDP (dp_accounting)"


@dataclasses.dataclass(frozen=True, eq=False)
class Fitted:
    """A trained Keras model with what it cost and where it came from.

    Attributes
    ----------
    model : keras.Model
        Compiled, outputs logits.
    privacy : PrivacySpend or None
        ``None`` for a model trained without differential privacy.
    provenance : Provenance
    config : dict
        The settings that determined the weights (what the cache key hashes, less the versions).
    """

    model: object
    privacy: PrivacySpend | None
    provenance: Provenance
    config: dict = dataclasses.field(default_factory=dict)

    def to_frame(self):
        """One row: the model's name and size, the privacy spent and the provenance."""
        import pandas as pd

        row = {"model": self.model.name, "parameters": int(self.model.count_params()),
               "epsilon": math.nan if self.privacy is None else self.privacy.epsilon,
               "delta": math.nan if self.privacy is None else self.privacy.delta}
        return pd.concat([pd.DataFrame([row]), self.provenance.to_frame()], axis=1)


# --------------------------------------------------------------------------- seeding without side effects
# --------------------------------------------------------------------------- files
def _tmp_beside(path):
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_atomic(path, write):
    """``write(file_object)`` into a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)  # atomic: readers see the old file, or none, or the whole new one
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_sidecar(path, kind, config, versions_now):
    """``config`` and the versions as JSON beside ``path``, so a person can tell what a file holds."""
    stem = path.name.removesuffix(WEIGHTS_SUFFIX).removesuffix(".npz")
    blob = json.dumps({"kind": kind, "config": config, "versions": versions_now}, indent=2, default=str)
    _write_atomic(path.with_name(stem + ".json"), lambda f: f.write(blob.encode()))


def _check_arrays(arrays, what):
    if not isinstance(arrays, dict) or not arrays:
        raise CacheError(f"{what} must return a non-empty dict of arrays, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise CacheError(f"{what}: array names must be identifiers, got {name!r}")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise CacheError(f"{what}: array {name!r} has dtype object, which .npz stores only with pickle")
        out[name] = value
    return out


def _load_npz(path):
    with np.load(path, allow_pickle=False) as f:  # never unpickle what is on disk
        return {name: f[name] for name in f.files}


def _read_cached(path):
    """The arrays in ``path``, or None if there is no such file or it cannot be read (then it is recomputed)."""
    if path is None or not path.exists():
        return None
    try:
        return _load_npz(path)
    except _UNREADABLE as error:
        warnings.warn(f"ignoring unreadable cache file {path.name} ({type(error).__name__}: {error}); "
                      "computing it again", RuntimeWarning, stacklevel=3)
        return None


@contextlib.contextmanager
def _computing(path):
    """Hold the lock of ``path`` (a file beside it) for the block: one process at a time computes a result.

    An advisory ``flock``: the system releases it when the holder closes the file or dies, so a
    killed trainer never leaves the others waiting. ``None`` (caching off) locks nothing.
    """
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_or_lock(stack, path):
    """The cached arrays at ``path``; if there are none, ``None`` with the lock of ``path`` held on ``stack``.

    A process that waited for the lock reads again: the holder has usually stored the result meanwhile.
    """
    saved = _read_cached(path)
    if saved is None:
        stack.enter_context(_computing(path))
        saved = _read_cached(path)
    return saved


def save_weights(model, path, config=None, kind=""):
    """Write ``model``'s weights (only its weights: never an optimizer's state) to ``path`` atomically.

    The file is an ``.npz`` of ``model.get_weights()`` in order, readable without pickle.
    ``config`` (if given) is written beside it as JSON, to tell what the file holds.
    """
    path = Path(path)
    weights = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    _write_atomic(path, lambda f: np.savez(f, **weights))
    if config is not None:
        _write_sidecar(path, kind, config, versions())


def _check_kind(kind):
    if not isinstance(kind, str) or not kind or any(c in kind for c in "/\\") or kind.startswith("."):
        raise InvalidParameterError(f"kind must be a non-empty file-name-safe string, got {kind!r}")
    return kind


def _entry(kind, config, cache, folder, suffix, seed=None):
    if not isinstance(config, dict):
        raise ParameterTypeError(f"config must be a dict, got {type(config).__name__}")
    if cache and isinstance(seed, np.random.Generator):
        raise InvalidParameterError("seed must be an int to cache a result: a Generator's state is not a key")
    versions_now = versions()
    key = cache_key(kind=kind, config=config, seed=seed, versions=versions_now, trainers=TRAINERS_VERSION)
    path = cache_dir() / folder / f"{kind}-{key}{suffix}" if cache else None
    return versions_now, key, path


# --------------------------------------------------------------------------- the two entry points
def cached_fit(kind, config, build, fit, *, seed=0, cache=True, privacy=None, folder="models"):
    """Build a Keras model and load its weights from the cache, or train it and store them.

    Parameters
    ----------
    kind : str
        A file-name-safe label, the start of the file name (e.g. ``"digits-small_cnn"``).
    config : dict
        JSON-serialisable description of everything that determines the weights (architecture,
        hyperparameters, a :func:`fingerprint` of the data). The key also holds ``kind``,
        ``seed`` and :func:`versions`.
    build : callable
        ``build() -> keras.Model``: the untrained model, compiled or not. Called in both cases,
        under :func:`seeded` so the initial weights are reproducible.
    fit : callable
        ``fit(model)`` trains ``model`` in place (under :func:`seeded` too). Its return value is ignored.
    seed : int, numpy Generator or None, default=0
        Seeds Python, numpy and TensorFlow for ``build`` and ``fit``; the caller's Python and numpy
        generator states are restored afterwards. ``None`` leaves the generators as they are.
    cache : bool, default=True
        ``False`` always trains and writes nothing.
    privacy : PrivacySpend or None
        The privacy the training spends (a DP-SGD trainer knows it before training).
    folder : str, default="models"
        Sub-folder of :func:`cache_dir`.

    Returns
    -------
    Fitted

    Examples
    --------
    >>> import keras
    >>> from mlsec_lessons import models
    >>> x, y = np.zeros((8, 4), "float32"), np.arange(8) % 2
    >>> fitted = cached_fit("demo-logistic", {"epochs": 1},
    ...                     lambda: models.compile_for_training(models.logistic((4,), 2)),
    ...                     lambda m: m.fit(x, y, epochs=1, verbose=0), cache=False)
    >>> fitted.provenance.from_cache, fitted.privacy is None
    (False, True)
    """
    kind = _check_kind(kind)
    if not callable(build) or not callable(fit):
        raise ParameterTypeError("build and fit must be callables: build() -> model, fit(model)")
    if privacy is not None and not isinstance(privacy, PrivacySpend):
        raise ParameterTypeError(f"privacy must be a PrivacySpend or None, got {type(privacy).__name__}")
    versions_now, key, path = _entry(kind, config, cache, folder, WEIGHTS_SUFFIX, check_seed(seed))
    with contextlib.ExitStack() as lock:
        saved = _read_or_lock(lock, path)  # read before building: a damaged file leaves no half-set model behind
        with seeded(seed):
            model = build()
            if saved is not None:
                try:
                    model.set_weights([saved[name] for name in sorted(saved, key=lambda n: int(n[1:]))])
                except ValueError as error:
                    raise CacheError(f"{path} holds weights of another architecture under the same key ({error}); "
                                     "delete it to train again") from None
                return Fitted(model, privacy, Provenance(path, True, 0.0, versions_now, key), dict(config))
            start = time.perf_counter()
            fit(model)
            seconds = time.perf_counter() - start
        if path is not None:
            save_weights(model, path, config, kind)
    return Fitted(model, privacy, Provenance(path, False, float(seconds), versions_now, key), dict(config))


def cached_arrays(kind, config, compute, *, cache=True, folder="arrays"):
    """Load a dict of numpy arrays from the cache, or compute it with ``compute()`` and store it.

    Stored as ``.npz`` and read with ``allow_pickle=False``: an array that would need pickle
    (dtype object) is refused with :class:`CacheError` when it is stored, and never unpickled
    when it is read. ``compute`` owns its randomness (it should draw from a seeded Generator);
    nothing here seeds anything.

    Parameters
    ----------
    kind : str
        File-name-safe label, the start of the file name.
    config : dict
        JSON-serialisable description of what determines the arrays.
    compute : callable
        ``compute() -> dict`` of array name to array.
    cache : bool, default=True
    folder : str, default="arrays"

    Returns
    -------
    (dict, Provenance)
        The arrays exactly as a cache hit returns them (what was stored), and where they came from.

    Examples
    --------
    >>> arrays, prov = cached_arrays("demo", {"n": 3}, lambda: {"x": np.arange(3)}, cache=False)
    >>> arrays["x"].tolist(), prov.from_cache
    ([0, 1, 2], False)
    """
    kind = _check_kind(kind)
    if not callable(compute):
        raise ParameterTypeError("compute must be a callable returning a dict of arrays")
    versions_now, key, path = _entry(kind, config, cache, folder, ".npz")
    with contextlib.ExitStack() as lock:
        saved = _read_or_lock(lock, path)
        if saved is not None:
            return saved, Provenance(path, True, 0.0, versions_now, key)
        start = time.perf_counter()
        arrays = _check_arrays(compute(), "compute()")
        seconds = time.perf_counter() - start
        if path is not None:
            _write_atomic(path, lambda f: np.savez_compressed(f, **arrays))
            _write_sidecar(path, kind, config, versions_now)
    return arrays, Provenance(path, False, float(seconds), versions_now, key)
