"""Token buckets keyed by who is asking (peer, member, address).

Each key earns ``rate`` tokens per second up to ``burst``; a request spends one. Time is
an argument so tests need no sleeping. The number of keys is bounded: the least recently
used bucket is forgotten first, and a forgotten bucket is simply full again, so an
attacker cycling through addresses costs memory ``max_keys`` at most.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .config import LimitsConfig


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float  # 0 when allowed


class TokenBucket:
    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1 are required")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(
        self, key: str, now_s: float, cost: float = 1.0, need: float | None = None
    ) -> Decision:
        """Spend ``cost`` tokens if ``need`` (default: ``cost``) are there, else none.

        A ``need`` below ``cost`` lets a charge larger than the burst through (a batch of
        events): the bucket goes into debt and refills from below zero at ``rate``, so
        the long-run rate holds all the same."""
        need = cost if need is None else need
        tokens, at = self._buckets.pop(key, (self.burst, now_s))
        # A clock that steps backwards must not mint tokens.
        tokens = min(self.burst, tokens + max(0.0, now_s - at) * self.rate)
        if tokens >= need:
            self._remember(key, tokens - cost, now_s)
            return Decision(True, 0.0)
        self._remember(key, tokens, now_s)
        return Decision(False, (need - tokens) / self.rate)

    def _remember(self, key: str, tokens: float, now_s: float) -> None:
        self._buckets[key] = (tokens, now_s)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimits:
    """One bucket family per kind of caller: ``ip``, ``peer``, ``member``."""

    def __init__(self, buckets: dict[str, TokenBucket]) -> None:
        self._buckets = buckets

    @classmethod
    def from_config(cls, limits: LimitsConfig) -> RateLimits:
        return cls(
            {
                "ip": TokenBucket(limits.ip_rps, limits.ip_burst),
                "peer": TokenBucket(limits.peer_rps, limits.peer_burst),
                "member": TokenBucket(limits.member_rps, limits.member_burst),
            }
        )

    def take(
        self, kind: str, key: str, now_s: float, cost: float = 1.0, need: float | None = None
    ) -> Decision:
        return self._buckets[kind].take(key, now_s, cost, need)

    def burst(self, kind: str) -> float:
        return self._buckets[kind].burst
