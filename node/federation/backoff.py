"""Delivery health of one destination as a small state graph (pure: time and chance are
arguments, the state is a ``peer_delivery`` row).

    closed --failure--> closed (backoff)       ... after `open_after` failures in a row:
    closed --failure--> open --due--> half_open --success--> closed
                                      half_open --failure--> open (longer backoff)
    any    --success--> closed

``closed`` delivers everything due; ``open`` sends nothing until ``next_attempt_ms``;
``half_open`` sends one probe batch whose outcome decides. Every failure waits a delay
drawn with *full jitter* — uniform in [0, min(cap, base * 2^(failures-1))] — so many
nodes recovering from the same outage do not retry in lockstep.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from ..storage.delivery import BreakerState, PeerDelivery


@dataclass(frozen=True)
class BackoffPolicy:
    base_ms: int = 500
    cap_ms: int = 3_600_000
    open_after: int = 5  # consecutive failures that open the breaker

    def ceiling_ms(self, failures: int) -> int:
        """Upper bound of the delay after ``failures`` failures in a row (>= 1)."""
        exponent = min(max(failures - 1, 0), 40)  # 2^40 * base is far past any cap
        return int(min(self.cap_ms, self.base_ms * (1 << exponent)))


DEFAULT_POLICY: Final = BackoffPolicy()

# Which states may send, and how much: anything not listed here is a bug.
SENDS: Final[dict[BreakerState, str]] = {"closed": "all", "half_open": "probe", "open": "none"}


def due(state: PeerDelivery, now_ms: int) -> PeerDelivery | None:
    """The state to send in now, or None while waiting. An open breaker whose wait is over
    becomes half-open: it may send one probe."""
    if now_ms < state.next_attempt_ms:
        return None
    if state.breaker == "open":
        return replace(state, breaker="half_open")
    return state


def on_success(state: PeerDelivery) -> PeerDelivery:
    return PeerDelivery(state.peer)


def on_failure(
    state: PeerDelivery,
    error: str,
    now_ms: int,
    chance: float,
    policy: BackoffPolicy = DEFAULT_POLICY,
    retry_after_ms: int = 0,
) -> PeerDelivery:
    """One more failure. ``chance`` in [0, 1) draws the jittered delay; a peer's
    ``Retry-After`` is a floor (it said when it will have room again)."""
    failures = state.failures + 1
    if state.breaker == "half_open" or failures >= policy.open_after:
        breaker: BreakerState = "open"
    else:
        breaker = "closed"
    delay = int(chance * policy.ceiling_ms(failures))
    if breaker == "open":
        # An open breaker waits at least the base, so a probe never follows at once.
        delay = max(delay, policy.base_ms)
    delay = min(policy.cap_ms, max(delay, retry_after_ms))
    return PeerDelivery(state.peer, breaker, failures, delay, now_ms + delay, error[:500])


def chance_from(rng_bytes: bytes) -> float:
    """A float in [0, 1) from 7 random bytes (53 bits, as random.random)."""
    return (int.from_bytes(rng_bytes[:7], "big") >> 3) / float(1 << 53)


BREAKER_GAUGE: Final[dict[BreakerState, int]] = {"closed": 0, "half_open": 1, "open": 2}
