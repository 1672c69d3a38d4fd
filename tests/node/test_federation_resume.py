"""Delivery across restarts and outages: queued envelopes survive a restart of the
sender, go out once the peer is back, and the end of an outage is noticed the moment the
peer is heard from (not after a backoff that grew while it was down). Also the signed
``node.ping`` doctor uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.federation import PeerUnreachable
from node.storage.delivery import PeerDelivery

from .test_federation_helpers import Clock, Node, eventually, pair, start_node

FORUM = "!AAAAAAAAAAAAAAAAAAAAAA:hub.example"


async def _depth(node: Node) -> int:
    return sum(s.queued for s in await node.storage.outbox_summary())


async def test_queued_envelopes_survive_a_restart_and_go_out_once(tmp_path: Path) -> None:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock)
    await pair(hub, peer)
    peer_port = peer.ctx.config.listen.rsplit(":", 1)[1]
    await peer.stop()  # the peer is down while we queue
    for i in range(3):
        await hub.fed.enqueue(peer.name, "forum.head", {"forum": FORUM, "n": i})

    async def failed() -> bool:
        return (await hub.storage.get_delivery(peer.name)).failures >= 1

    await eventually(failed)
    with pytest.raises(PeerUnreachable):
        await hub.fed.ping(peer.name)
    hub_port = hub.ctx.config.listen.rsplit(":", 1)[1]
    await hub.stop()  # and the sender restarts too, from its database alone
    assert await _open_depth(tmp_path / "hub", clock) == 3
    peer = await start_node(tmp_path / "peer", clock, port=int(peer_port))
    hub = await start_node(tmp_path / "hub", clock, port=int(hub_port))
    # Its backoff may be long by now: hearing from the peer ends it at once.
    await hub.storage.put_delivery(
        PeerDelivery(peer.name, "open", 6, 3_600_000, clock() + 3_600_000, "down"), clock()
    )
    hub.fed.sender(peer.name).wake()
    await peer.fed.ping(hub.name)  # any envelope from the peer would do

    async def delivered() -> bool:
        # The sender records its success just after settling the rows: wait for both.
        healthy = (await hub.storage.get_delivery(peer.name)).failures == 0
        return healthy and await _depth(hub) == 0 and len(peer.forums.calls) == 3

    await eventually(delivered)
    assert peer.forums.calls == [("head", hub.name)] * 3  # each once
    await hub.stop()
    await peer.stop()


async def _open_depth(root: Path, clock: Clock) -> int:
    """The queue as a restarted node finds it (before it sends anything)."""
    from node.config import StorageConfig
    from node.storage import Storage

    storage = await Storage.open(root / "node.db", StorageConfig(), clock)
    try:
        return sum(s.queued for s in await storage.outbox_summary())
    finally:
        await storage.close()
