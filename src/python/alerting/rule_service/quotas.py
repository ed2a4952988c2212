"""Token buckets, one per key (pure; the clock is given): the per-tenant request rate limit,
and the per-peer limit on failed authentications (auth.py).

Each rule-service instance limits on its own, so N instances admit up to N times the rate;
the limits protect each instance and Postgres behind it from one tenant's or one peer's flood.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate` requests per second on average, bursts of up to `burst`, per key."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str) -> float:
        """Take one token for `key`: 0.0 when admitted, else the seconds until one is free."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)  # the least recently used; it restarts full
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = self._tokens(bucket, now)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def wait(self, key: str) -> float:
        """The seconds until `key` has a token (0.0: it has one now), taking none."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        return max(0.0, 1.0 - self._tokens(bucket, self.clock())) / self.rate

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        """The bucket's tokens at `now`: refilled at the rate, up to the burst."""
        return min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
