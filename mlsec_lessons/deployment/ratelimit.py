"""A token-bucket rate limit, one bucket per token subject.

The source's "rate limit" was a string in a dict (source mistake 13; see the pitfall callout in lesson 07). A token bucket holds up
to ``burst`` tokens and refills at ``rate`` tokens per second; each request takes one. A client
may burst up to ``burst`` requests, then is held to ``rate`` per second on average. When the bucket
is empty the wait until the next token is exactly ``(1 - tokens) / rate``: that is the
``Retry-After`` the server sends with its 429.

:class:`QueryQuota` is the other limit a model server needs: how many instances one subject may have
predicted per day, whatever its rate (lesson 08: a quota bounds what a model thief can learn).
:class:`TokenBudget` is the same for a language model, counted in tokens: a request reserves its
worst case before the model runs and gives back what it did not use (OWASP LLM10, unbounded consumption).
"""
import math
import threading
import time
from collections import OrderedDict

from ..validation import check_int, check_real


class TokenBucket:
    """One bucket: ``burst`` tokens at most, refilled at ``rate`` per second.

    Parameters
    ----------
    rate : float
        Tokens added per second.
    burst : int
        The bucket's capacity (and how full it starts).
    clock : callable
        Returns the time in seconds; :func:`time.monotonic` unless a test passes a fake one.

    Examples
    --------
    >>> t = [0.0]
    >>> bucket = TokenBucket(rate=2, burst=3, clock=lambda: t[0])
    >>> [bucket.take() for _ in range(4)]    # 3 allowed, then wait 0.5 s for the next token
    [0.0, 0.0, 0.0, 0.5]
    >>> t[0] = 0.5
    >>> bucket.take()
    0.0
    """

    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = check_real(rate, "rate", min_value=0, include_boundaries="neither")
        self.burst, self.clock = check_int(burst, "burst", min_value=1), clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self):
        """Take one token: return 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        # refill for the time elapsed, never above capacity
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """A :class:`TokenBucket` per key (the token's ``sub``), safe to call from several threads.

    At most ``max_keys`` buckets are kept; the least recently used is dropped first. Only holders
    of a valid token get a bucket (authentication runs first), so the keys cannot be flooded by
    anonymous clients.

    Examples
    --------
    >>> limiter = RateLimiter(rate=1, burst=2, clock=lambda: 0.0)
    >>> [limiter.check("alice") for _ in range(3)], limiter.check("bob")
    ([0.0, 0.0, 1.0], 0.0)
    """

    def __init__(self, rate, burst, max_keys=10_000, clock=time.monotonic):
        TokenBucket(rate, burst, clock)  # validates rate and burst now, not on the first request
        max_keys = check_int(max_keys, "max_keys", min_value=1)
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key):
        """Take one token from ``key``'s bucket: 0.0 if allowed, else the seconds to wait."""
        with self._lock:
            bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst, self.clock)
            self._buckets[key] = bucket  # most recently used goes last
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return bucket.take()


class QueryQuota:
    """At most ``limit`` predicted instances per key (the token's ``sub``) in each ``period_s`` window.

    A rate limit caps how *fast* a client may ask; a quota caps how *much* it may learn from the model
    in a day, which is what a model thief needs. Instances are counted, not requests, so one request
    with 256 instances uses 256. Each key's window starts at its first query and is a fixed window:
    when it ends, the count starts again from zero. A request that would go over the quota is refused
    whole, and nothing is counted for it.

    Parameters
    ----------
    limit : int
        Instances allowed per window.
    period_s : float, default=86400
        The window's length in seconds (a day).
    clock : callable
        Returns the time in seconds; :func:`time.monotonic` unless a test passes a fake one.

    Examples
    --------
    >>> t = [0.0]
    >>> quota = QueryQuota(limit=100, period_s=60, clock=lambda: t[0])
    >>> quota.take("eve", 80), quota.take("eve", 30), quota.remaining("eve")   # 30 more would be 110
    (0.0, 60.0, 20)
    >>> t[0] = 60.0
    >>> quota.take("eve", 30), quota.remaining("eve")
    (0.0, 70)
    """

    def __init__(self, limit, period_s=86400.0, clock=time.monotonic):
        self.limit = check_int(limit, "limit", min_value=1)
        self.period_s = check_real(period_s, "period_s", min_value=0, include_boundaries="neither")
        self.clock = clock
        self._used = {}  # key -> [window start, instances used]
        self._lock = threading.Lock()

    def _window(self, key, now):
        window = self._used.get(key)
        if window is None or now - window[0] >= self.period_s:
            window = self._used[key] = [now, 0]
        return window

    def _charge(self, key, n):
        """Count ``n`` for ``key`` under the lock: ``(0.0, window)``, or ``(seconds to wait, None)``."""
        n = check_int(n, "n", min_value=1)
        with self._lock:
            now = self.clock()
            window = self._window(key, now)
            if window[1] + n > self.limit:
                return window[0] + self.period_s - now, None
            window[1] += n
            return 0.0, window

    def take(self, key, n=1):
        """Count ``n`` instances for ``key``: 0.0 if allowed, else the seconds until its window resets."""
        return self._charge(key, n)[0]

    def remaining(self, key):
        """Instances ``key`` may still ask for in its current window."""
        with self._lock:
            return self.limit - self._window(key, self.clock())[1]


class TokenBudget(QueryQuota):
    """At most ``limit`` tokens per key (the token's ``sub``) in each ``period_s`` window, for a language model.

    A request's cost is known only once the model has stopped, so it is charged twice: before
    generating, :meth:`reserve` takes its worst case (every prompt token, plus every token it may
    generate) or refuses it whole; after, :meth:`settle` gives back what it did not use. A client
    therefore cannot overrun its budget with one long request, nor with many at once: concurrent
    requests each hold their worst case until they finish. Windows are :class:`QueryQuota`'s: fixed,
    from a key's first request.

    Parameters
    ----------
    limit : int
        Tokens allowed per window.
    period_s : float, default=86400
        The window's length in seconds (a day).
    clock : callable
        Returns the time in seconds; :func:`time.monotonic` unless a test passes a fake one.

    Examples
    --------
    >>> t = [0.0]
    >>> budget = TokenBudget(limit=100, period_s=60, clock=lambda: t[0])
    >>> wait, held = budget.reserve("eve", 64)      # a 14-token prompt that may generate 50 more
    >>> wait, budget.remaining("eve")
    (0.0, 36)
    >>> budget.reserve("eve", 64)[0]                 # a second one at once would overrun: wait for the window
    60.0
    >>> budget.settle(held, used=20)                 # it stopped after 6 new tokens: 44 come back
    >>> budget.remaining("eve"), budget.reserve("eve", 64)[0]
    (80, 0.0)
    """

    def reserve(self, key, n):
        """Hold ``n`` tokens for ``key``: ``(0.0, reservation)`` if allowed, else ``(seconds to wait, None)``.

        The reservation is what :meth:`settle` needs: ``(key, n, start of the window it was taken from)``.
        """
        wait, window = self._charge(key, n)
        return wait, None if window is None else (key, n, window[0])

    def settle(self, reservation, used):
        """Give back the tokens of ``reservation`` that were not ``used`` (``used=0`` refunds it all).

        Nothing is given back if the window the tokens were taken from has ended since: the new
        window never counted them.
        """
        key, n, start = reservation
        used = check_int(used, "used", min_value=0, max_value=n)
        with self._lock:
            window = self._used.get(key)
            if window is not None and window[0] == start:
                window[1] -= n - used


class ClientLimiter:
    """A :class:`RateLimiter` per client address, checked *before* authentication, that says which
    refusals to record.

    Without it anyone could send unauthenticated requests as fast as the network allows, and each
    would cost a JWT check and an audit entry. A flood from one address is refused with 429 after
    ``burst`` requests, and only the first refusal per address in each ``log_interval_s`` is worth
    an audit entry; the others are counted, and the count goes into the next entry that is written.

    Parameters
    ----------
    rate, burst : float, int
        Requests per second per address, and bursts of ``burst``.
    log_interval_s : float, default=10
        At most one audited refusal per address in this many seconds.
    max_keys : int
        Addresses remembered at most (least recently used dropped first).
    clock : callable

    Examples
    --------
    >>> t = [0.0]
    >>> limiter = ClientLimiter(rate=1, burst=2, log_interval_s=10, clock=lambda: t[0])
    >>> [limiter.check("10.0.0.1") for _ in range(5)]     # (wait, record it?, refusals not recorded)
    [(0.0, False, 0), (0.0, False, 0), (1.0, True, 0), (1.0, False, 0), (1.0, False, 0)]
    >>> t[0] = 10.0; limiter.check("10.0.0.1"), limiter.check("10.0.0.1")
    ((0.0, False, 0), (0.0, False, 0))
    >>> [limiter.check("10.0.0.1") for _ in range(2)]      # the next recorded refusal carries the 2 unrecorded
    [(1.0, True, 2), (1.0, False, 0)]
    """

    def __init__(self, rate, burst, log_interval_s=10.0, max_keys=10_000, clock=time.monotonic):
        self.limiter = RateLimiter(rate, burst, max_keys=max_keys, clock=clock)
        self.log_interval_s = check_real(log_interval_s, "log_interval_s", min_value=0)
        self.clock = clock
        self._refusals = OrderedDict()  # address -> [time of the last recorded refusal, unrecorded since]
        self._lock = threading.Lock()
        self.unrecorded = 0  # refusals not written to the audit log, in all

    def check(self, address):
        """``(wait_s, record, unrecorded)``: 0.0 if allowed, else the seconds to wait; whether this
        refusal should be audited; and how many refusals of ``address`` were not audited before it."""
        wait = self.limiter.check(address)
        if wait == 0.0:
            return 0.0, False, 0
        with self._lock:
            now = self.clock()
            state = self._refusals.pop(address, None) or [-math.inf, 0]
            self._refusals[address] = state
            if len(self._refusals) > self.limiter.max_keys:
                self._refusals.popitem(last=False)
            if now - state[0] >= self.log_interval_s:
                skipped, state[0], state[1] = state[1], now, 0
                return wait, True, skipped
            state[1] += 1
            self.unrecorded += 1
            return wait, False, 0


def retry_after_header(wait_s):
    """``Retry-After`` is whole seconds (RFC 9110); round up so a client that obeys it succeeds.

    Examples
    --------
    >>> retry_after_header(0.05), retry_after_header(1.0), retry_after_header(1.2)
    ('1', '1', '2')
    """
    return str(max(1, math.ceil(wait_s)))
