"""Faults (issue 7): a node down for the equivalent of an hour, then of several days.

Time is injected, not waited for: every node restarts with the same
``PEERFORUM_CLOCK_OFFSET_MS`` (node/context.py, test only), as real clocks would all have
moved on together, so envelope skew checks still hold. While the follower is down the
hub's delivery to it backs off and its circuit breaker opens, visibly in /metrics; when
it returns, catch-up is complete, ordered, and costs a bounded number of requests.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from node.context import CLOCK_OFFSET_ENV
from tests.integration import federation_kit
from tests.integration.conftest import Nodes
from tests.integration.federation_kit import Org, form_forum, same_log, three_orgs, wait_until
from tests.report import record

HOUR_MS = 3_600_000
DAYS_MS = 3 * 24 * HOUR_MS  # within the 7-day descriptor validity, past every backoff cap
BACKFILL = "/_pf/v1/forums/{forum}/backfill"


class _ShiftedTime:
    """``time`` for the test's members: their session proofs are dated in the nodes' time."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_s = offset_ms / 1000

    def time(self) -> float:
        return time.time() + self.offset_s

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _clock_offset(offset_ms: int) -> Iterator[None]:
    """Nodes started inside see the shifted clock (harness copies os.environ at start)."""
    old = os.environ.get(CLOCK_OFFSET_ENV)
    os.environ[CLOCK_OFFSET_ENV] = str(offset_ms)
    try:
        yield
    finally:
        if old is None:
            del os.environ[CLOCK_OFFSET_ENV]
        else:
            os.environ[CLOCK_OFFSET_ENV] = old


def _restart_all(orgs: list[Org], offset_ms: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for org in orgs:
        if org.proc is not None and org.proc.proc.poll() is None:
            org.stop()
    with _clock_offset(offset_ms), ThreadPoolExecutor(3) as pool:
        list(pool.map(Org.start, orgs))
    monkeypatch.setattr(federation_kit, "time", _ShiftedTime(offset_ms))


def test_node_down_an_hour_then_days_catches_up_completely(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    orgs, members = three_orgs(nodes)
    a, b, c = orgs
    alice, bob, carol = members
    forum = form_forum(alice, [bob, carol])
    head = same_log(members, forum.id, 7)[-1].seq
    for offset, label in ((HOUR_MS, "an hour"), (DAYS_MS, "three days")):
        b.stop()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i, t=label: alice.submit(forum.post(alice, f"{t} {i}")),
                          range(300)))  # fmt: skip
        head += 300
        # The hub keeps trying B: backoff grows and the breaker opens (2 = open).
        wait_until(f"A's breaker to B opens ({label})", lambda: a.metric(
            "peerforum_federation_breaker", peer=b.name) == 2, timeout=45)  # fmt: skip
        assert a.metric("peerforum_federation_backoff_seconds", peer=b.name) > 0
        # Time passes: everyone restarts that much later, B comes back.
        backfill_before = 0.0  # metrics restart with the process
        _restart_all([a, c, b], offset, monkeypatch)
        log = same_log(members, forum.id, head, timeout=90)
        assert [e.seq for e in log] == list(range(1, head + 1))  # complete, in order
        assert len({e.signed_event.event_id for e in log}) == head  # nothing twice
        backfills = b.metric("peerforum_forum_backfill_requests_total", role="sent")
        inbox = b.metric("peerforum_http_requests_total", route="/_pf/v1/inbox")
        served = a.metric("peerforum_http_requests_total", route=BACKFILL) - backfill_before
        assert backfills <= 4 and served <= 4 and inbox <= 30, (backfills, served, inbox)
        wait_until("A's breaker to B closes", lambda: a.metric(
            "peerforum_federation_breaker", peer=b.name) == 0, timeout=30)  # fmt: skip
        record("fault_round", 1, fault=f"down {label}")
    # Everyone still works in the new time.
    carol.submit(forum.post(carol, "after the days"))
    same_log(members, forum.id, head + 1, timeout=30)
    record("entries_accepted", 600)
    record("entries_lost", 0 if alice.head(forum.id) == head + 1 else 1)
