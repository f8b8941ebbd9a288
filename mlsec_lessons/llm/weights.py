"""The language models lesson 13 ships as signed weights, and how to regenerate them.

Lesson 13 compares two small transformers (the assistant, and the same assistant trained with an
instruction hierarchy). Each takes about 100 s to train on 2 CPU cores (``benchmarks/results/llm.md``),
together more than the lesson's budget, so the repository ships their weights (about 0.3 MB each) in
``mlsec_lessons/llm/weights/``, one signed directory per model in lesson 07's format: ``model.keras`` (safe to load: no code),
``recipe.json`` (how it was trained), ``MANIFEST.json`` (their SHA-256) and ``MANIFEST.sig`` (an
Ed25519 signature). :func:`pretrained` verifies the directory against the public key shipped beside
it, ``release.pub.pem``, before it loads anything: a changed weight file or recipe is refused.

``make llm-weights`` (:func:`build`) trains every :data:`RECIPES` entry from its seed and signs the
result. The private key is never in the repository: it is read from ``$MLSEC_WEIGHTS_KEY`` (a PEM
file); without one, a new pair is generated and its public half replaces ``release.pub.pem``, so a
fork that retrains signs with its own key.

The shipped weights were trained with Keras' ``fit``, before the course's trainer
(:func:`mlsec_lessons.models.fit_epochs`) replaced it; the trainer draws its batches differently, so
retraining today gives other weights. Retrained once with it (2026-12-07), the plain assistant
followed 0.85 of the injected instructions where ``tests/test_llm_weights.py`` asks for 0.9, so the
shipped weights were kept until a recipe with more training passes every band.
"""
import argparse
import json
import os
import time
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from ..cache import fingerprint
from ..deployment.artifacts import load_verified_model, save_keras_model, sign_dir
from ..deployment.keys import generate_signing_key
from ..errors import InvalidParameterError
from . import corpus
from .model import train_assistant

WEIGHTS = Path(__file__).with_name("weights")
PUBLIC_KEY = WEIGHTS / "release.pub.pem"
RECIPE = "recipe.json"

# name -> (function, keyword arguments): what `make llm-weights` trains. More steps than a lesson could
# afford: spelling, the last thing a model this small learns, needs them. `training_data` fingerprints
# what each one was trained on, so a test notices when the corpus changes and the weights were not rebuilt.
RECIPES = {
    "assistant": (train_assistant, {"hierarchy": False, "n_dialogues": 4096, "epochs": 40, "seed": 0}),
    "assistant-hierarchy": (train_assistant, {"hierarchy": True, "n_dialogues": 4096, "epochs": 40, "seed": 0}),
}


def names():
    """The shipped models' names."""
    return tuple(RECIPES)


def _check_name(name):
    if name not in RECIPES:
        raise InvalidParameterError(f"no shipped model named {name!r}; there are {', '.join(RECIPES)}")


def training_data(name):
    """A fingerprint of the token ids the recipe of ``name`` trains on (and of the vocabulary)."""
    _check_name(name)
    _, kwargs = RECIPES[name]
    mix = corpus.HIERARCHY_MIX if kwargs.get("hierarchy") else corpus.MIX
    ids = corpus.training_set(kwargs["n_dialogues"], seed=kwargs["seed"], mix=mix)
    return fingerprint(ids, np.array(corpus.vocabulary().words))


@cache
def pretrained(name):
    """The shipped model ``name``, verified against ``release.pub.pem`` and loaded in safe mode.

    Raises :class:`~mlsec_lessons.deployment.artifacts.IntegrityError` if any file of its directory
    was changed, added or removed since it was signed. The same model object is returned on each
    call in a process (generation does not change it).

    Examples
    --------
    >>> pretrained("assistant").count_params()
    74391
    """
    _check_name(name)
    model, _ = load_verified_model(WEIGHTS / name, PUBLIC_KEY)
    return model


def recipe(name):
    """How the shipped model ``name`` was trained: its recipe, the training time, and the versions used."""
    _check_name(name)
    return json.loads((WEIGHTS / name / RECIPE).read_text())


def _signing_key():
    """The private key to sign with: ``$MLSEC_WEIGHTS_KEY``, or a new pair whose public half is shipped."""
    path = os.environ.get("MLSEC_WEIGHTS_KEY")
    if path:
        return Path(path)
    private = Path.home() / ".config" / "mlsec-lessons" / "weights-signing.pem"
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        generate_signing_key(private, PUBLIC_KEY, overwrite=True)
        print(f"new signing key {private}; its public half is now {PUBLIC_KEY}")
    return private


def _deflate(path):
    """Rewrite the zip archive at ``path`` compressed: Keras stores it uncompressed, 1 MB for 75k weights."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def build(selected=None, *, out=WEIGHTS, key=None):
    """Train the models of :data:`RECIPES` (all, or ``selected``) from their seeds and write them signed.

    Training goes through the course's cache (a model trained before is loaded, not retrained) and
    takes a few minutes per model from an empty cache.
    """
    import keras
    import tensorflow as tf

    selected = list(RECIPES) if selected is None else list(selected)
    unknown = sorted(set(selected) - set(RECIPES))
    if unknown:
        raise InvalidParameterError(f"unknown models {unknown}; there are {', '.join(RECIPES)}")
    key = _signing_key() if key is None else Path(key)
    for name in selected:
        train, kwargs = RECIPES[name]
        start = time.perf_counter()
        fitted = train(progress=True, **kwargs)
        directory = Path(out) / name
        _deflate(save_keras_model(fitted.model, directory))
        (directory / RECIPE).write_text(json.dumps({
            "function": f"{train.__module__}.{train.__name__}", "arguments": kwargs,
            "training_data": training_data(name),
            # None when the course's cache had it: the seconds of that earlier training are not kept
            "training_seconds": None if fitted.provenance.from_cache else round(time.perf_counter() - start, 1),
            "tensorflow": tf.__version__, "keras": keras.__version__}, indent=2) + "\n")
        sign_dir(directory, key)
        print(f"{name}: signed in {directory}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train and sign the language models lesson 13 ships.")
    parser.add_argument("names", nargs="*", help=f"which ones (default: all of {', '.join(RECIPES)})")
    args = parser.parse_args(argv)
    build(args.names or None)


if __name__ == "__main__":
    main()
