"""The victim as a model thief sees it: a prediction API over HTTP, called with a valid token.

Everything the thief learns comes through :meth:`HttpVictim.predict`, which posts batches to the
server's ``/v1/models/<name>/predict`` and counts every instance it sends. The server decides what
comes back: class probabilities (possibly rounded or perturbed by an output defense) or only labels,
which the client turns into one-hot rows so that a thief's code reads both the same way.
"""
import time

import httpx
import numpy as np

from ..errors import MLSecError
from ..validation import check_int


class QueryRefused(MLSecError, RuntimeError):
    """The server refused a query for good (a quota, a revoked token): the thief keeps what it has.

    ``answers`` holds the rows answered before the refusal, ``status`` the HTTP status.
    """

    def __init__(self, message, status, answers):
        super().__init__(message)
        self.status, self.answers = status, answers


class HttpVictim:
    """A classifier whose ``predict`` calls the model server over HTTP with a bearer token.

    Parameters
    ----------
    url : str
        The server's base URL, e.g. ``BackgroundServer.url``.
    token : str
        A JWT for the thief's account (``mlsec token`` or :func:`~mlsec_lessons.deployment.auth.issue_token`).
    model : str, default="digits"
        The served model's name.
    n_classes : int, default=10
    batch_size : int, default=100
        Instances per request (the server accepts up to its ``max_batch``).
    max_wait_s : float, default=5.0
        A 429 whose ``Retry-After`` is at most this long is a rate limit: wait and retry. A longer one
        (a daily quota) raises :class:`QueryRefused`.
    transport : httpx transport or None
        For tests (e.g. ``httpx.ASGITransport``); ``None`` uses real sockets.

    Attributes
    ----------
    queries : int
        Instances answered so far: the attacker's query count.
    requests : int
        HTTP requests sent, refused ones included.
    outputs : str or None
        ``"probabilities"`` or ``"labels"``: what the server returned last.

    Examples
    --------
    >>> victim = HttpVictim(server.url, token)                  # doctest: +SKIP
    >>> victim.predict(x[:3]).shape, victim.queries             # doctest: +SKIP
    ((3, 10), 3)
    """

    def __init__(self, url, token, model="digits", n_classes=10, batch_size=100, max_wait_s=5.0, timeout=30.0,
                 transport=None):
        check_int(batch_size, "batch_size", min_value=1)
        check_int(n_classes, "n_classes", min_value=2)
        self.model, self.n_classes, self.batch_size, self.max_wait_s = model, int(n_classes), int(batch_size), max_wait_s
        self.client = httpx.Client(base_url=url, timeout=timeout, transport=transport,
                                   headers={"Authorization": f"Bearer {token}"})
        self.queries, self.requests, self.outputs = 0, 0, None

    def _post(self, batch):
        while True:
            self.requests += 1
            r = self.client.post(f"/v1/models/{self.model}/predict", json={"instances": batch.tolist()})
            if r.status_code == 429 and float(r.headers.get("retry-after", "inf")) <= self.max_wait_s:
                time.sleep(float(r.headers["retry-after"]))  # the rate limit: slow down, then go on
                continue
            return r

    def _rows(self, body):
        if "probabilities" in body:
            self.outputs = "probabilities"
            return np.asarray(body["probabilities"], dtype=np.float64)
        self.outputs = "labels"
        return np.eye(self.n_classes)[np.asarray(body["predictions"], dtype=int)]

    def predict(self, x):
        """One row per input: the returned probabilities, or a one-hot row of the returned label.

        Raises
        ------
        QueryRefused
            If the server refuses a batch other than for a short rate-limit wait; ``answers`` holds
            the rows answered before it.
        """
        x = np.asarray(x, dtype=np.float32)
        rows = []
        for start in range(0, len(x), self.batch_size):
            r = self._post(x[start:start + self.batch_size])
            if r.status_code != 200:
                answered = np.concatenate(rows) if rows else np.zeros((0, self.n_classes))
                try:
                    reason = r.json()["detail"]
                except (ValueError, KeyError, TypeError):  # not the server's JSON error (a proxy's page)
                    reason = r.text[:200]
                raise QueryRefused(f"{r.status_code}: {reason}", r.status_code, answered)
            rows.append(self._rows(r.json()))
            self.queries += len(rows[-1])
        return np.concatenate(rows) if rows else np.zeros((0, self.n_classes))

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
