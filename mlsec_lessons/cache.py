"""Where trained artifacts live between runs: a directory outside the repository.

Set ``MLSEC_CACHE_DIR`` to move it (CI and tests point it at a scratch folder).
"""
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np


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


def save_weights(model, path, config):
    """Write ``model``'s weights to ``path`` (``*.weights.h5``) and ``config`` beside it as JSON.

    The weights go to a temporary file that is then renamed, so a half-written file is never
    mistaken for a cached model; the file holds weights only, never optimizer state.
    """
    import keras  # here, not at the top: reading the cache needs no TensorFlow

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    weights_only = keras.models.clone_model(model)
    weights_only.set_weights(model.get_weights())
    weights_only.save_weights(tmp)
    tmp.replace(path)
    path.with_suffix("").with_suffix(".json").write_text(json.dumps(config, indent=2, default=str))


def load_or_fit(model, path, config, fit):
    """Load ``model``'s weights from ``path``, or train it with ``fit()`` and save them there.

    ``path`` None trains without caching. ``fit()`` trains ``model`` in place and may return the
    seconds it took (else the wall time is used). Sets ``model.from_cache``, ``model.train_seconds``
    (0.0 when loaded) and ``model.cache_path``; returns ``model``.
    """
    model.train_seconds = 0.0
    if path is not None and Path(path).exists():
        model.load_weights(path)
        model.from_cache = True
    else:
        start = time.perf_counter()
        seconds = fit()
        model.train_seconds = time.perf_counter() - start if seconds is None else seconds
        model.from_cache = False
        if path is not None:
            save_weights(model, path, config)
    model.cache_path = path
    return model
