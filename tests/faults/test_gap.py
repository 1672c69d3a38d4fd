"""Faults (issue 7): a batch of entries lost in transit after the sender was told it
arrived. The receiver sees the next entry's seq beyond its head, names the gap, fills it
by backfill, and ends with the whole log in order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.integration.conftest import Nodes
from tests.integration.federation_kit import (
    Member,
    Org,
    form_forum,
    new_org,
    peer_all,
    same_log,
    wait_until,
)
from tests.report import record

from .proxy import FaultProxy


def proxied_orgs(nodes: Nodes, n: int, proxies: list[FaultProxy]) -> list[Org]:
    """``n`` peered nodes, each reached by its peers through its own fault proxy."""
    orgs = [new_org(nodes) for _ in range(n)]
    for org in orgs:
        proxy = FaultProxy(org.port)
        proxies.append(proxy)
        config = org.data / "config.toml"
        text = config.read_text().replace('# public_url = "https://acme.example"',
                                          f'public_url = "{proxy.url}"', 1)  # fmt: skip
        assert proxy.url in text
        config.write_text(text)
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(Org.start, orgs))
    peer_all(orgs)
    return orgs


def test_dropped_batch_is_detected_as_a_gap_and_filled(nodes: Nodes) -> None:
    proxies: list[FaultProxy] = []
    try:
        a, b, c = proxied_orgs(nodes, 3, proxies)
        names = ("alice", "bob", "carol")
        alice, bob, carol = (Member(o, h).enroll() for o, h in zip((a, b, c), names, strict=True))
        forum = form_forum(alice, [bob, carol])
        head = same_log([alice, bob, carol], forum.id, 7)[-1].seq
        gaps_before = c.metric("peerforum_forum_backfill_requests_total", role="sent")
        proxies[2].swallow_next()  # C's next forum.entries batch vanishes
        alice.submit(forum.post(alice, "lost on the way to C"))
        wait_until("the batch swallowed", lambda: proxies[2].counts["swallowed"] == 1)
        assert carol.head(forum.id) == head
        alice.submit(forum.post(alice, "arrives after a gap"))
        log = same_log([alice, bob, carol], forum.id, head + 2, timeout=30)
        assert [e.seq for e in log] == list(range(1, head + 3))
        assert c.metric("peerforum_forum_backfill_requests_total", role="sent") > gaps_before
        record("fault_round", 1, fault="dropped batch")
    finally:
        for p in proxies:
            p.close()
