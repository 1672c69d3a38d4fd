"""What every layer of a running node shares, and the typed keys to reach it in the app.

Handlers get ``request.app[CTX]`` (settings, identity, clock, randomness) and
``request.app[STORAGE]``; nothing reads a global. Clock and randomness are fields so tests
can fix them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .config import NodeConfig
from .datadir import DataDir
from .federation import Federation
from .identity import NodeIdentity
from .metrics import NodeMetrics
from .ratelimit import RateLimits
from .storage import Storage

if TYPE_CHECKING:  # node.forums imports this module
    from .forums import ForumEngine


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


CLOCK_OFFSET_ENV = "PEERFORUM_CLOCK_OFFSET_MS"


def clock_from_env() -> Callable[[], int]:
    """The wall clock, shifted by ``PEERFORUM_CLOCK_OFFSET_MS`` when set. TEST ONLY: the
    fault tests run a node "an hour" or "days" later without waiting; every node of such
    a test gets the same offset, as real clocks would agree. Read here, once, at startup;
    an operator never sets it (``peerforum doctor`` compares clocks against peers)."""
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return wall_clock_ms
    offset = int(raw)
    return lambda: time.time_ns() // 1_000_000 + offset


@dataclass
class NodeContext:
    data: DataDir
    config: NodeConfig
    identity: NodeIdentity
    admin_token: str
    clock: Callable[[], int] = wall_clock_ms
    rng: Callable[[int], bytes] = os.urandom
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    limits: RateLimits | None = None

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = RateLimits.from_config(self.config.limits)

    @property
    def rate_limits(self) -> RateLimits:
        assert self.limits is not None
        return self.limits


CTX = web.AppKey("ctx", NodeContext)
STORAGE = web.AppKey("storage", Storage)
# Outgoing HTTP (fetching peer descriptors; delivery will share it).
HTTP = web.AppKey("http", aiohttp.ClientSession)
FEDERATION = web.AppKey("federation", Federation)  # delivery to and from peers
FORUMS: web.AppKey[ForumEngine] = web.AppKey("forums")  # the forum log engine
# Open inbox WebSockets (routes/federation.py), closed first when the node stops.
INBOX_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("inbox_sockets")
