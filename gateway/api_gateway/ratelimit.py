"""RequestRateLimiter: a token bucket per route and key (client address or token subject), the way Spring Cloud
Gateway's filter is configured (replenish rate per second, burst capacity). Buckets live in each worker process:
with W workers a client can get up to W times the rate (Spring shares its buckets through Redis instead)."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    replenish_rate: float  # tokens per second
    burst_capacity: int  # the most a bucket holds
    key: str  # "address" or "subject"


class RateLimiter:
    def __init__(self) -> None:
        # (route id, key) -> (tokens, when they were counted)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, route_id: str, limit: RateLimit, key: str, now: float) -> float:
        """0 when a request may pass (one token taken), else the seconds until the next token."""
        bucket = (route_id, key)
        capacity = float(limit.burst_capacity)
        tokens, counted = self._buckets.get(bucket, (capacity, now))
        tokens = min(capacity, tokens + (now - counted) * limit.replenish_rate)
        if tokens >= 1.0:
            self._buckets[bucket] = (tokens - 1.0, now)
            return 0.0
        self._buckets[bucket] = (tokens, now)
        return (1.0 - tokens) / limit.replenish_rate

    def prune(self, limits: dict[str, RateLimit], now: float) -> None:
        """Forget buckets that have refilled: they hold nothing a new bucket would not."""
        for (route_id, key), (tokens, counted) in list(self._buckets.items()):
            limit = limits.get(route_id)
            if limit is None or tokens + (now - counted) * limit.replenish_rate >= limit.burst_capacity:
                del self._buckets[(route_id, key)]


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
