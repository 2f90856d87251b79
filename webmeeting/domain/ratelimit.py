"""Token-bucket rate limiting (pure: the caller passes the time).

Enforced at the edge, before any function runs: Cloud Armor rate-based rules in production,
the local front door here. Counting in Firestore would make rejected requests write.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """One bucket per key (the client address): ``rate`` tokens per second, ``burst`` at most."""

    rate: float
    burst: float
    max_keys: int = 100_000  # forget idle clients beyond this many
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Whether ``key`` may spend ``cost`` tokens now (spent if so)."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens, now)
        return allowed
