"""PRADA (Juuti et al., 2019): spot a model-extraction client from the distances between its queries.

Natural queries from one client land at distances from each other that are roughly normally
distributed. Extraction attacks that *synthesise* queries, by small steps away from earlier ones
(Papernot et al., 2017) or along lines (Tramer et al., 2016), do not: many new queries sit at
one small, fixed distance from a query the client already sent. PRADA keeps, per client and per
predicted class, a *growing set* of queries; for every new query it records the L2 distance to
the nearest query in the growing set of its class; and it tests whether those distances look
normal with the Shapiro-Wilk test. ``W < delta`` raises the alarm.

The growing set takes a new query only if it is farther than ``mean - std`` of the distances
recorded when earlier queries joined it, so near-duplicates do not pile up in it. (The authors'
public code also counts a distance of 0 for the first member; on the digits that admits more
queries and pulls honest clients' ``W`` down, so it is left out here.)
"""
import numpy as np
from scipy import stats

from ..errors import InvalidParameterError
from ..validation import check_int, check_real


class PradaStream:
    """PRADA's state for one client: growing sets, recorded distances, the latest ``W``.

    Parameters
    ----------
    delta : float
        Flag the client when the Shapiro-Wilk statistic ``W`` falls below it.
    min_distances : int
        ``W`` is computed once this many distances are recorded (the paper waits for 100).
    outlier_std : float
        Distances farther than this many standard deviations from their mean are left out of the
        test, as in the authors' code.
    """

    def __init__(self, delta=0.95, min_distances=100, outlier_std=3.0):
        self.delta, self.min_distances, self.outlier_std = delta, min_distances, outlier_std
        self.growing = {}     # class -> array of queries in the growing set
        self.joined = {}      # class -> distances of the queries that joined it
        self.threshold = {}   # class -> mean - std of those distances, never decreasing
        self.distances = []   # the minimum distance of every query after the first of its class
        self.w = None
        self.flagged = False
        self.first_flag = None  # the query count at the first alarm
        self.queries = 0
        self.history = []     # per query: W after it (nan before the first test)

    def update(self, x, label):
        """Take one query (any shape) and the class the model gave it; return ``W`` (``None`` until known)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        self.queries += 1
        if label not in self.growing:
            self.growing[label], self.joined[label], self.threshold[label] = x[None], [], 0.0
            self.history.append(np.nan if self.w is None else self.w)
            return self.w
        d = float(np.sqrt(np.min(np.sum((self.growing[label] - x) ** 2, axis=1))))
        self.distances.append(d)
        if d > self.threshold[label]:
            self.growing[label] = np.vstack([self.growing[label], x])
            self.joined[label].append(d)
            joined = np.asarray(self.joined[label])
            self.threshold[label] = max(self.threshold[label], joined.mean() - joined.std())
        if len(self.distances) >= self.min_distances:
            self.w = shapiro_w(self.distances, self.outlier_std)
            self.flagged = self.w < self.delta
        self.history.append(np.nan if self.w is None else self.w)
        return self.w


def shapiro_w(distances, outlier_std=3.0):
    """Shapiro-Wilk ``W`` of ``distances`` after dropping values more than ``outlier_std`` std from the mean."""
    d = np.asarray(distances, dtype=np.float64)
    if d.std() > 0:
        d = d[np.abs(d - d.mean()) <= outlier_std * d.std()]
    if len(d) < 3 or np.ptp(d) == 0:
        return 0.0  # identical distances: as far from normal as it gets (scipy would warn and return 1)
    return float(stats.shapiro(d).statistic)


class PRADA:
    """PRADA over many clients: one :class:`PradaStream` per subject.

    Parameters
    ----------
    delta : float, default=0.95
        Threshold on the Shapiro-Wilk ``W``; lower flags fewer clients.
    min_distances : int, default=100
        Distances recorded before the first test.
    outlier_std : float, default=3.0

    Attributes
    ----------
    streams_ : dict
        ``{subject: PradaStream}``.
    alerts_ : list of dict
        One entry per client, the first time it is flagged.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> seed = rng.random((20, 64))
    >>> steps = seed[rng.integers(0, 20, 300)] + 0.1 * np.sign(rng.normal(size=(300, 64)))
    >>> prada = PRADA()
    >>> _ = prada.observe("thief", steps, np.zeros(300, int))
    >>> prada.flagged("thief")
    True
    """

    name = "prada"

    def __init__(self, delta=0.95, min_distances=100, outlier_std=3.0):
        self.delta = delta
        self.min_distances = min_distances
        self.outlier_std = outlier_std
        self.check_settings()  # a bad setting fails here, not on the request that reaches the monitor

    def check_settings(self):
        """Raise ``ValueError`` (``TypeError`` for a wrong type) for a bad setting, like the other monitors."""
        check_real(self.delta, "delta", min_value=0, max_value=1, include_boundaries="neither")
        check_int(self.min_distances, "min_distances", min_value=3)
        check_real(self.outlier_std, "outlier_std", min_value=0, include_boundaries="neither")

    def _check(self):
        self.check_settings()  # again: a setting changed after construction is caught before it is used
        if not hasattr(self, "streams_"):
            self.streams_, self.alerts_ = {}, []

    def observe(self, subject, x, labels):
        """Feed one request's inputs and the labels the model gave them, in order.

        Returns the new alerts (a list with at most one dict): the server writes each to its audit log.
        """
        self._check()
        x, labels = np.asarray(x), np.asarray(labels)
        if len(x) != len(labels):
            raise InvalidParameterError(f"x has {len(x)} inputs but labels has {len(labels)}")
        stream = self.streams_.setdefault(subject, PradaStream(self.delta, self.min_distances, self.outlier_std))
        new = []
        for xi, label in zip(x, labels):
            was_flagged = stream.flagged
            stream.update(xi, int(label))
            if stream.flagged and not was_flagged and stream.first_flag is None:  # once per client
                stream.first_flag = stream.queries
                new.append({"monitor": self.name, "sub": subject, "queries": stream.queries,
                            "w": round(stream.w, 4),
                            "reason": f"query distances are not normal (Shapiro-Wilk W={stream.w:.3f} < "
                                      f"{self.delta}): model extraction suspected"})
        self.alerts_ += new
        return new

    def flagged(self, subject):
        """Whether ``subject`` is flagged now (``False`` for a subject never seen)."""
        self._check()
        return subject in self.streams_ and self.streams_[subject].flagged

    def w(self, subject):
        """The latest ``W`` of ``subject`` (``None`` before ``min_distances`` distances)."""
        self._check()
        return self.streams_[subject].w if subject in self.streams_ else None
