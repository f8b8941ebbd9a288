"""What the server serves: one class per kind of model, behind one small interface.

The prediction route (``POST /v1/models/{name}/predict``) knows nothing of kinds. Once the request
is authenticated, authorised and its body read, it hands the parsed JSON to the served model's
:meth:`Served.respond`, which checks the body (422), charges the subject's limits (429), runs the
model and returns the answer. Each kind brings its own body contract and its own limit:

==========================================================  ==========================  =======================
kind                                                        body                        limit per subject
==========================================================  ==========================  =======================
:class:`ServedModel` (a classifier)                         ``{"instances": [...]}``    instances per period
:class:`~.language_model.ServedLanguageModel`               ``{"prompt": "..."}``       tokens per period
==========================================================  ==========================  =======================

:func:`~mlsec_lessons.deployment.app.load_model` picks the class from the verified directory.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import QuotaExceeded
from .hooks import run_monitors
from .validation import validate_instances


@dataclass(frozen=True)
class Call:
    """One request that passed authentication, authorisation and the body limits, as a model sees it.

    Attributes
    ----------
    sub : str
        The token's subject: whose limits are charged.
    settings : ServerSettings
        The server's configuration.
    state : object
        The app's state: ``quota``, ``token_budget``, ``output_policy``, ``monitors``, ``audit``.
    record : dict
        The request's audit record: a field set here is written with the request's audit entry.
    """

    sub: str
    settings: object
    state: object
    record: dict


@runtime_checkable
class Served(Protocol):
    """A verified model the server answers for: its facts, and how it answers one request."""

    name: str
    directory: Path
    sha256: str
    kind: str

    def describe(self) -> dict:
        """What ``GET /v1/models`` says about it."""
        ...

    async def respond(self, payload, call: Call) -> dict:
        """The JSON answer to the parsed body ``payload``; raises the server's 422 and 429 errors."""
        ...


@dataclass
class ServedModel:
    """A verified classifier and the facts the server needs about it."""

    name: str
    directory: Path
    model: object
    sha256: str
    shape: tuple
    low: float
    high: float
    kind = "classifier"

    @classmethod
    def from_model(cls, name, directory, model, sha256):
        """Serve a model loaded by :func:`~.artifacts.load_verified_model`, under ``name``."""
        from .artifacts import IntegrityError, model_input_spec

        if getattr(model, "mlsec_language_model", None) is not None:  # swapped for a language model meanwhile
            raise IntegrityError(f"{directory}: changed while it was loaded (it now holds a language model)")
        shape, low, high = model_input_spec(model)
        return cls(name, Path(directory), model, sha256, tuple(shape), low, high)

    def predict(self, x):
        """Class labels for a validated batch. Only labels: scores would help an attacker copy the model."""
        return np.argmax(self.model.predict_on_batch(x), axis=1).tolist()

    def predict_with_scores(self, x):
        """Class labels and class probabilities (the softmax of the model's logits) from one forward pass."""
        logits = np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.argmax(logits, axis=1).tolist(), z / z.sum(axis=1, keepdims=True)

    def describe(self):
        return {"name": self.name, "kind": self.kind, "model_sha256": self.sha256,
                "input": {"shape": list(self.shape), "min": self.low, "max": self.high}}

    async def respond(self, payload, call):
        """Validate ``{"instances": [...]}`` (422), count them against the query quota (429), predict.

        The answer goes through the server's output policy, and the monitors see the request.
        """
        x = validate_instances(payload, self.shape, self.low, self.high, call.settings.max_batch)
        quota = call.state.quota
        if quota is not None:  # counted only for valid requests: a 422 costs no quota
            wait = quota.take(call.sub, len(x))
            if wait > 0:
                raise QuotaExceeded(quota, call.sub, len(x), wait)
        labels, extra = call.state.output_policy(self, x)
        run_monitors(call.state.monitors, call.state.audit, model=self.name, sub=call.sub, x=x, labels=labels)
        return {"predictions": labels, "model": self.name, "model_sha256": self.sha256, **extra}
