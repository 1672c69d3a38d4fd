"""Detached content on the forum engine (protocol §6.9): the hub's attachment check,
attachments beside pushed and forwarded events, retention, and backfill after expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.errors import ProtocolError
from protocol.log import Entry
from protocol.rules import fold
from specs.vectors.generate_forum import A, B, Scene

from .forumnet import Net, Script
from .test_forums import ACME, GLOBEX, forum_with_b

DAY = 86_400_000


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = Net(Scene("node-attachments"), tmp_path)
    yield n
    await n.close()


def update(s: Script, author: str, epoch: int, text: str, expires: int) -> tuple[bytes, bytes]:
    s.t += 1000
    ev, attachment = s.scene.detached(
        "update", author, text, epoch=epoch, ts=s.t, expires=expires
    )  # fmt: skip
    return ev.raw, attachment


def files_hold(net: Net, node: str, data: bytes) -> bool:
    """Whether the node's database or its WAL still holds ``data`` anywhere."""
    db = net.root / f"{node}.db"
    return any(p.exists() and data in p.read_bytes() for p in (db, Path(f"{db}-wal")))


async def test_the_hub_refuses_an_update_without_its_own_attachment(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub = net.engines[ACME]
    raw, attachment = update(s, A, 2, "mine", net.clock + DAY)
    _, other = update(s, A, 2, "another", net.clock + DAY)
    for given in (None, other, attachment + b"\x00"):
        with pytest.raises(ProtocolError) as exc:
            await hub.submit_local(raw, attachment=given)
        assert exc.value.code == "content.attachment_mismatch"
    inline = s.post(A, 2)
    with pytest.raises(ProtocolError) as exc:
        await hub.submit_local(inline.raw, attachment=attachment)
    assert exc.value.code == "content.attachment_mismatch"
    # From a peer: refused in the result, nothing sequenced.
    raw_b, att_b = update(s, B, 2, "from bob", net.clock + DAY)
    [outcome] = await hub.on_submit(GLOBEX, forum, [raw_b], [other])
    assert outcome["error"] == "content.attachment_mismatch"
    [outcome] = await hub.on_submit(GLOBEX, forum, [raw_b], [other, att_b])  # by hash
    assert "seq" in outcome


async def test_attachments_reach_every_node_and_leave_at_expiry(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    soon, later = net.clock + 60_000, net.clock + 30 * DAY
    raw_b, att_b = update(s, B, 2, "bob's quarter", soon)
    forwarded = await rep.submit_local(raw_b, attachment=att_b)  # forwarded with it
    assert forwarded.status == "forwarded"
    raw_a, att_a = update(s, A, 2, "alice's quarter", later)
    await hub.submit_local(raw_a, attachment=att_a)
    await net.flush()
    seq = hub.state(forum).seq  # type: ignore[union-attr]
    assert rep.state(forum) == hub.state(forum)
    for engine in (hub, rep):
        kept = await engine.attachments_for(forum, 1, seq)
        assert sorted(kept.values()) == sorted([att_a, att_b])

    net.clock = soon  # expired: never served again, even before the job runs
    for engine in (hub, rep):
        assert list((await engine.attachments_for(forum, 1, seq)).values()) == [att_a]
        answer = await engine.on_backfill(ACME if engine is rep else GLOBEX, forum, 1, 500)
        assert answer.get("attachments") == [att_a]
        assert await engine.delete_expired_attachments() == 1
        assert await engine.delete_expired_attachments() == 0
        assert await engine.storage.count_attachments() == 1  # only what expires later
    for node in (ACME, GLOBEX):
        assert not files_hold(net, node, att_b), f"{node} kept an expired attachment"
        assert files_hold(net, node, raw_b)  # the entry itself stays

    # A node that joins the log now folds every entry, the expired update included.
    entries = [s.entry for s in await net.storages[ACME].read_entries(forum, 1, 500)]
    state = fold([Entry.from_bytes(e) for e in entries], hub_key_at=net.scene.lookup,
                 node_keys=net.scene.lookup)  # fmt: skip
    assert state is not None and state.head == hub.state(forum).head  # type: ignore[union-attr]


async def test_a_replica_rebuilt_after_expiry_backfills_and_verifies(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub = net.engines[ACME]
    raw, attachment = update(s, A, 2, "gone soon", net.clock + 1000)
    await hub.submit_local(raw, attachment=attachment)
    await net.flush()
    net.clock += 2000
    await hub.delete_expired_attachments()
    await net.stop(GLOBEX)
    for p in net.root.glob(f"{GLOBEX}.db*"):
        p.unlink()
    fresh = await net.start(GLOBEX)
    net.acks.clear()
    hub._notify(forum)  # the hub pushes from seq 1; the invitation in it lets globex in
    await net.flush()
    assert fresh.state(forum) == hub.state(forum)
    assert await fresh.storage.count_attachments() == 0
    assert net.errors == []


async def test_an_expired_attachment_is_never_stored(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    raw, attachment = update(s, A, 2, "already old", net.clock - 1)
    await hub.submit_local(raw, attachment=attachment)  # sequenced: the entry is valid
    await net.flush()
    assert rep.state(forum) == hub.state(forum)
    for engine in (hub, rep):
        assert await engine.storage.count_attachments() == 0
