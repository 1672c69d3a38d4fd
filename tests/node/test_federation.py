"""Delivery between two in-process nodes on 127.0.0.1: push, catch-up from the ack after
an outage, dead letters, rotation, a key swapped without a statement; and the backoff
state graph on its own, with an injected clock and chance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.federation import PeerUnreachable
from node.federation.backoff import BackoffPolicy, chance_from, due, on_failure, on_success
from node.keystore import generate_keys
from node.storage.delivery import PeerDelivery

from .conftest import NOW_MS
from .test_federation_helpers import Clock, Node, eventually, free_port, pair, start_node

FORUM = "!f:hub"

# ---------------------------------------------------------------------------- state graph


def test_backoff_full_jitter_and_breaker_transitions() -> None:
    policy = BackoffPolicy(base_ms=500, cap_ms=3_600_000, open_after=3)
    s = PeerDelivery("b")
    s = on_failure(s, "x", NOW_MS, 0.999, policy)
    assert (s.breaker, s.failures) == ("closed", 1) and 0 <= s.backoff_ms < 500
    assert due(s, NOW_MS) is None and due(s, s.next_attempt_ms) == s
    s = on_failure(s, "x", NOW_MS, 0.5, policy)
    assert s.backoff_ms == 500  # half of the 1 s ceiling
    s = on_failure(s, "x", NOW_MS, 0.0, policy)
    assert s.breaker == "open" and s.backoff_ms == 500  # open waits at least the base
    probe = due(s, s.next_attempt_ms)
    assert probe is not None and probe.breaker == "half_open"
    again = on_failure(probe, "y", NOW_MS, 0.999, policy)
    assert again.breaker == "open" and again.last_error == "y"
    assert on_success(probe) == PeerDelivery("b")
    assert policy.ceiling_ms(100) == 3_600_000  # capped at an hour
    assert on_failure(s, "z", NOW_MS, 0.0, policy, retry_after_ms=7000).backoff_ms == 7000
    assert 0 <= chance_from(b"\xff" * 7) < 1 and chance_from(bytes(7)) == 0


# ---------------------------------------------------------------------------- two nodes


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node, Clock]]:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock)
    await pair(hub, peer)
    hub.forums.members[FORUM] = {peer.name}
    yield hub, peer, clock
    await hub.stop()
    await peer.stop()


async def test_push_delivers_entries_and_moves_the_ack(nodes: tuple[Node, Node, Clock]) -> None:
    hub, peer, _ = nodes
    hub.forums.append(FORUM, 3)
    hub.fed.notify_forum(FORUM)

    async def acked() -> bool:
        return await hub.storage.get_ack(peer.name, FORUM) == 3

    await eventually(acked)
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]
    assert peer.posts == ["/_pf/v1/inbox"]  # three entries, one envelope, one request
    assert peer.batches == 1


async def test_a_departed_node_gets_entries_up_to_its_exit_and_none_after(
    nodes: tuple[Node, Node, Clock],
) -> None:
    # The peer's last member is removed by entry 4: its node must see that entry (it
    # learns the membership ended) and nothing sequenced after it.
    hub, peer, _ = nodes
    hub.forums.append(FORUM, 3)
    hub.fed.notify_forum(FORUM)

    async def acked(n: int) -> bool:
        return await hub.storage.get_ack(peer.name, FORUM) == n

    await eventually(lambda: acked(3))
    hub.forums.members[FORUM] = set()
    hub.forums.append(FORUM, 1)  # the removal
    hub.fed.notify_forum(FORUM)
    await eventually(lambda: acked(4))
    hub.forums.append(FORUM, 2)  # the new epoch and later entries
    hub.fed.notify_forum(FORUM)
    await asyncio.sleep(0.5)
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM][:4]
    assert hub.fed.push_cap(peer.name, FORUM) is None  # caught up: forgotten


async def test_catch_up_after_an_outage_pages_from_the_ack(tmp_path: Path) -> None:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    port = free_port()
    peer = await start_node(tmp_path / "peer", clock, port=port)
    await pair(hub, peer)
    hub.forums.members[FORUM] = {peer.name}
    hub.forums.append(FORUM, 10)
    hub.fed.notify_forum(FORUM)
    await eventually(lambda: _ack_is(hub, peer.name, 10))
    await peer.stop()  # the outage: 400 entries of 8 KiB pile up (3.2 MiB)
    hub.forums.append(FORUM, 400, pad=8192)
    sender = hub.fed.sender(peer.name)
    sender.mark(FORUM)
    assert await sender.round() is True  # failed: backing off
    state = await hub.storage.get_delivery(peer.name)
    assert state.failures == 1 and state.next_attempt_ms > NOW_MS and state.last_error
    assert await sender.round() is True  # not due yet: nothing sent
    peer = await start_node(tmp_path / "peer", clock, port=port)
    peer.forums.received[FORUM] = list(hub.forums.logs[FORUM][:10])  # its log survived
    clock.now = state.next_attempt_ms
    assert await sender.round() is False  # all sent
    await eventually(lambda: _ack_is(hub, peer.name, 410))  # the last ack is written behind
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]
    assert 4 <= peer.batches <= 5  # pages of <= 1 MiB, not 400 envelopes
    assert (await hub.storage.get_delivery(peer.name)).failures == 0
    await hub.stop()
    await peer.stop()


async def test_a_push_cut_short_drops_the_batch_filled_behind_it(tmp_path: Path) -> None:
    """Catching up, the sender fills the next batch while one is on its way; when the
    peer's ack stops short of what it was sent, that batch is dropped, not sent over the
    gap, and delivery resumes from the ack."""
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock)
    await pair(hub, peer)
    hub.forums.members[FORUM] = {peer.name}
    hub.forums.append(FORUM, 400, pad=8192)  # ~124 entries per 1 MiB batch
    room = {"left": 150}  # the peer takes 150 entries, then nothing more for now

    async def short(origin: str, forum: str, entries: list[bytes], attachments: Any = None) -> int:
        got = peer.forums.received.setdefault(forum, [])
        for entry in entries:
            if len(got) >= room["left"]:
                break
            if entry not in got:
                got.append(entry)
        return len(got)

    peer.forums.on_entries = short  # type: ignore[method-assign]
    sender = hub.fed.sender(peer.name)
    fills: list[dict[str, int] | None] = []
    fill = sender._fill

    async def spy(after: dict[str, int] | None = None) -> Any:
        fills.append(after)
        return await fill(after)

    sender._fill = spy  # type: ignore[method-assign]
    sender.mark(FORUM)
    assert await sender.round() is True  # the second batch was cut short: backing off
    assert any(after is not None for after in fills)  # batches were filled behind others
    await eventually(lambda: _ack_is(hub, peer.name, 150))
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM][:150]
    room["left"] = 10**6
    clock.now = (await hub.storage.get_delivery(peer.name)).next_attempt_ms
    assert await sender.round() is False
    await eventually(lambda: _ack_is(hub, peer.name, 400))
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]  # in order, once each
    await hub.stop()
    await peer.stop()


async def _ack_is(hub: Node, peer: str, seq: int) -> bool:
    return await hub.storage.get_ack(peer, FORUM) == seq


async def test_outbox_rows_deliver_and_wait_out_a_peer_refusal(
    nodes: tuple[Node, Node, Clock],
) -> None:
    """A refusal of us as a whole (blocked) is a failure of the round, not of the rows:
    they stay queued, and go out once the peer lets us in again and we retry."""
    hub, peer, clock = nodes
    await hub.fed.enqueue(peer.name, "forum.head", {"forum": FORUM})

    async def handled() -> bool:
        return ("head", hub.name) in peer.forums.calls

    await eventually(handled)
    await eventually(lambda: _depth(hub, 0))
    await peer.storage.set_peer_status(hub.name, "blocked", NOW_MS)
    await hub.fed.enqueue(peer.name, "node.ping", {})

    async def failed() -> bool:
        return (await hub.storage.get_delivery(peer.name)).failures >= 1

    await eventually(failed)
    state = await hub.storage.get_delivery(peer.name)
    assert state.last_error == "envelope.blocked_peer"
    assert await _dead(hub, 0) and await _depth(hub, 1)
    headers = {"Authorization": f"Bearer {hub.ctx.admin_token}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(hub.url + "/admin/outbox", headers=headers) as resp:
            view = await resp.json()
        assert view["peers"][0]["peer"] == peer.name and view["peers"][0]["queued"] == 1
        assert view["peers"][0]["last_error"] == "envelope.blocked_peer"
        await peer.storage.set_peer_status(hub.name, "approved", NOW_MS)
        async with s.post(hub.url + "/admin/outbox/retry", headers=headers, json={}) as resp:
            assert (await resp.json())["requeued"] == 0  # nothing was dead
    await eventually(lambda: _depth(hub, 0))


async def _depth(node: Node, n: int) -> bool:
    return sum(s.queued for s in await node.storage.outbox_summary()) == n


async def _dead(node: Node, n: int) -> bool:
    return len(await node.storage.dead_letters()) == n


async def test_request_answers_or_raises_unreachable(nodes: tuple[Node, Node, Clock]) -> None:
    hub, peer, _ = nodes
    hub.forums.append(FORUM, 4)
    path = f"/_pf/v1/forums/{FORUM}/backfill"
    body = {"forum": FORUM, "from": 3, "limit": 10}
    answer = await peer.fed.request(hub.name, path, "forum.backfill", body)
    assert answer["head"] == 4 and answer["entries"] == hub.forums.logs[FORUM][2:]
    await hub.stop()
    with pytest.raises(PeerUnreachable):
        await peer.fed.request(hub.name, path, "forum.backfill", body)


async def test_rotation_reaches_peers_and_traffic_continues(
    nodes: tuple[Node, Node, Clock],
) -> None:
    hub, peer, clock = nodes
    old_kid = hub.ctx.identity.keys.kid
    headers = {"Authorization": f"Bearer {hub.ctx.admin_token}"}
    async with aiohttp.ClientSession() as s, s.post(
        hub.url + "/admin/key/rotate", headers=headers
    ) as resp:
        new_kid = (await resp.json())["kid"]

    async def rotated() -> bool:
        record = await peer.storage.get_peer(hub.name)
        assert record is not None
        keys = {k.kid: k.expired_ms for k in record.pinned_keys}
        return new_kid in keys and keys.get(old_kid) is not None

    await eventually(rotated)
    hub.forums.append(FORUM, 2)
    hub.fed.notify_forum(FORUM)  # signed by the new key now
    await eventually(lambda: _ack_is(hub, peer.name, 2))


async def test_a_key_swapped_without_a_statement_cuts_the_peer_off(
    nodes: tuple[Node, Node, Clock],
) -> None:
    hub, peer, clock = nodes
    hub.ctx.identity.replace_keys(generate_keys(lambda n: b"s" * n, NOW_MS))  # no statement
    hub.forums.append(FORUM, 1)
    hub.fed.notify_forum(FORUM)

    async def cut_off() -> bool:
        record = await peer.storage.get_peer(hub.name)
        return record is not None and record.status == "key_changed"

    await eventually(cut_off)  # the peer refetched the descriptor: an unknown key
    state = await hub.storage.get_delivery(peer.name)
    assert state.failures >= 1 and state.last_error == "sig.unknown_key"
    assert await hub.storage.get_ack(peer.name, FORUM) == 0
