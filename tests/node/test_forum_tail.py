"""Each forum's newest committed entries are served from memory (``ForumRuntime.tail``,
node/forums/core.py); older ones from sqlite. Whatever the source, ``ForumEngine.read``
must answer exactly what the database holds: after trims, a restart, an eviction under
the byte budget, replication, and a hub move that truncates the log.

``TAIL_ENTRIES`` is cut to 4 so a few dozen entries cross the trim several times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import node.forums.core as core
from node.forums import ForumEngine
from node.storage import Storage
from protocol.log import HubMoveStatement, build_hub_move, sign_hub_move
from specs.vectors.generate_forum import Scene

from .forumnet import A, B, Net, Script
from .test_forums import ACME, GLOBEX, chain_state, forum_with_b

TAIL = 4
LIMITS = (0, 1, 3, 5, 2 * TAIL + 1, 500)


@pytest.fixture
async def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Net]:
    monkeypatch.setattr(core, "TAIL_ENTRIES", TAIL)
    n = Net(Scene("node-forum-tail"), tmp_path)
    yield n
    await n.close()


def tail_of(engine: ForumEngine, forum: str) -> tuple[int, list[bytes]]:
    rt = engine._forums[forum]
    return rt.tail_first, list(rt.tail)


async def check_tail(engine: ForumEngine, storage: Storage, forum: str) -> None:
    """The tail is bounded, ends at the head, and holds the stored entries at its seqs."""
    first, tail = tail_of(engine, forum)
    if not tail:
        return
    head = engine.state(forum).seq  # type: ignore[union-attr]
    assert first + len(tail) - 1 == head and len(tail) <= 2 * core.TAIL_ENTRIES
    assert tail == [s.entry for s in await storage.read_entries(forum, first, len(tail))]


async def check_reads(
    engine: ForumEngine, storage: Storage, forum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read from 0..head+2, for several limits, equals ``read_entries``; reads that
    start before the tail (or with no tail) go to the database, the others do not."""
    await check_tail(engine, storage, forum)
    head = engine.state(forum).seq  # type: ignore[union-attr]
    first, tail = tail_of(engine, forum)
    real = storage.read_entries
    hits: list[int] = []

    async def counted(forum: str, from_seq: int, limit: int):  # type: ignore[no-untyped-def]
        hits.append(from_seq)
        return await real(forum, from_seq, limit)

    with monkeypatch.context() as m:
        m.setattr(storage, "read_entries", counted)
        for from_seq in range(0, head + 3):
            for limit in LIMITS:
                before = len(hits)
                got_head, raws = await engine.read(forum, from_seq, limit)
                stored = await real(forum, max(1, from_seq), limit)
                assert got_head == head
                assert raws == [s.entry for s in stored], (from_seq, limit)
                from_db = not tail or max(1, from_seq) < first
                assert (len(hits) > before) == from_db, (from_seq, limit, first)


async def post(engine: ForumEngine, s: Script, text: str, author: str = A, epoch: int = 1) -> int:
    result = await engine.submit_local(s.post(author, epoch, text).raw)
    return result.seq or 0  # 0: forwarded to the hub


async def own_forum(engine: ForumEngine, scene: Scene) -> tuple[Script, str]:
    s = Script(scene)
    await engine.submit_local(s.create().raw)
    await engine.submit_local(s.commit(A, 1, [], [A]).raw)
    return s, scene.forum


async def test_hub_reads_equal_the_database_across_trims(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await net.start(ACME)
    storage = net.storages[ACME]
    s, forum = await own_forum(hub, net.scene)
    await check_reads(hub, storage, forum, monkeypatch)
    for i in range(3 * TAIL):  # one entry per commit: the tail grows to 2x, then is cut
        await post(hub, s, f"one {i}")
        await check_tail(hub, storage, forum)
    await check_reads(hub, storage, forum, monkeypatch)
    first, _ = tail_of(hub, forum)
    assert first > 1  # some reads started before the tail
    # A burst: group commit puts many entries (more than 2x at once) in one commit.
    await asyncio.gather(*(post(hub, s, f"burst {i}") for i in range(5 * TAIL)))
    await check_reads(hub, storage, forum, monkeypatch)
    for i in range(3):
        await post(hub, s, f"after {i}")
    await check_reads(hub, storage, forum, monkeypatch)
    _, raws = await hub.read(forum, 1, 500)
    assert chain_state(net, raws) == hub.state(forum)


async def test_reads_after_a_restart_come_from_the_database(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await net.start(ACME)
    s, forum = await own_forum(hub, net.scene)
    for i in range(3 * TAIL):
        await post(hub, s, f"before {i}")
    await net.stop(ACME)
    hub = await net.start(ACME)
    storage = net.storages[ACME]
    assert tail_of(hub, forum)[1] == []  # nothing in memory yet: every read is a db read
    await check_reads(hub, storage, forum, monkeypatch)
    seq = await post(hub, s, "after the restart")
    assert tail_of(hub, forum) == (seq, [(await storage.read_entries(forum, seq, 1))[0].entry])
    await check_reads(hub, storage, forum, monkeypatch)


async def test_the_forum_appended_to_longest_ago_loses_its_tail(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await net.start(ACME)
    storage = net.storages[ACME]
    scripts = [await own_forum(hub, Scene(f"node-forum-tail {i}")) for i in range(3)]
    forums = [f for _, f in scripts]
    for s, forum in scripts:  # appended to in the order they were created
        seq = await post(hub, s, f"{forum} first")
    entry = len((await storage.read_entries(forums[-1], seq, 1))[0].entry)
    # Room for one full tail of posts (2 x TAIL_ENTRIES) and half of another.
    monkeypatch.setattr(core, "TAIL_BYTES", 3 * TAIL * entry)
    appended, kept_counts = list(forums), []
    order = [0, 1, 2, 0, 0, 1, 2, 2, 1, 0, 2, 1] * 3
    for step, i in enumerate(order):
        s, forum = scripts[i]
        await post(hub, s, f"{forum} {step}")
        appended = [f for f in appended if f != forum] + [forum]
        kept = [f for f in forums if tail_of(hub, f)[1]]
        kept_counts.append(len(kept))
        sizes = {f: sum(map(len, tail_of(hub, f)[1])) for f in forums}
        assert hub._tail_bytes == sum(sizes.values()) == sum(hub._tails.values())
        assert forum in kept  # the forum just appended to keeps its tail
        assert hub._tail_bytes <= core.TAIL_BYTES or kept == [forum]
        # Those dropped were appended to before every one kept.
        assert appended[-len(kept) :] == sorted(kept, key=appended.index)
        for f in forums:
            await check_tail(hub, storage, f)
    assert {2, 3} <= set(kept_counts)  # the budget did bite
    for f in forums:
        await check_reads(hub, storage, f, monkeypatch)


async def test_one_byte_budget_keeps_only_the_newest_forum(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "TAIL_BYTES", 1)
    hub = await net.start(ACME)
    storage = net.storages[ACME]
    (s1, f1), (s2, f2) = [await own_forum(hub, Scene(f"node-forum-tail {i}")) for i in (1, 2)]
    for i in range(3 * TAIL):
        await post(hub, s1, f"first {i}")
    assert tail_of(hub, f1)[1] and not tail_of(hub, f2)[1]
    await check_reads(hub, storage, f1, monkeypatch)
    await post(hub, s2, "second")
    assert tail_of(hub, f2)[1] and not tail_of(hub, f1)[1]
    for f in (f1, f2):
        await check_reads(hub, storage, f, monkeypatch)
    await post(hub, s1, "first again")  # starts over at the new entry
    assert tail_of(hub, f1)[0] == hub.state(f1).seq  # type: ignore[union-attr]
    for f in (f1, f2):
        await check_reads(hub, storage, f, monkeypatch)


async def test_a_replica_tail_equals_its_database(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    rep_db = net.storages[GLOBEX]
    for i in range(3 * TAIL):  # pushed one by one, some forwarded from the replica's member
        member = B if i % 3 == 0 else A
        await post(rep if member == B else hub, s, f"pushed {i}", member, epoch=2)
        await net.flush()
        await check_tail(rep, rep_db, forum)
    await check_reads(rep, rep_db, forum, monkeypatch)
    net.down.add(GLOBEX)  # an outage: one push of many entries when it is back
    for i in range(3 * TAIL):
        await hub.submit_local(s.post(A, 2, f"while away {i}").raw)
    net.down.clear()
    await net.flush()
    assert rep.state(forum) == hub.state(forum)
    await check_reads(rep, rep_db, forum, monkeypatch)
    # A gap: the latest entries arrive first, the rest is backfilled from the hub.
    base = rep.state(forum).seq  # type: ignore[union-attr]
    net.down.add(GLOBEX)
    for i in range(3 * TAIL):
        await hub.submit_local(s.post(A, 2, f"gap {i}").raw)
    net.queue.clear()
    net.down.clear()
    _, raws = await hub.read(forum, base + 1, 500)
    await rep.on_entries(ACME, forum, raws[2 * TAIL :])
    await net.settle()
    assert rep.state(forum) == hub.state(forum) and rep.gaps(forum) == []
    await check_reads(rep, rep_db, forum, monkeypatch)
    for f_from in range(1, rep.state(forum).seq + 2):  # type: ignore[union-attr]
        assert await rep.read(forum, f_from, 7) == await hub.read(forum, f_from, 7)


async def test_a_hub_move_cuts_the_dropped_entries_from_the_tail(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, forum = await forum_with_b(net)
    old, new = net.engines[ACME], net.engines[GLOBEX]
    for i in range(3 * TAIL):
        await old.submit_local(s.post(A, 2, f"certified {i}").raw)
    await net.flush()
    certified = new.state(forum)
    assert certified is not None
    late = [s.post(A, 2, f"late {i}") for i in range(3)]
    for ev in late:  # sequenced by the old hub past the certified point, replicated
        await old.submit_local(ev.raw)
    await net.flush()
    _, dropped = await new.read(forum, certified.seq + 1, 500)
    assert len(dropped) == 3
    first, tail = tail_of(new, forum)
    assert first <= certified.seq and tail[-3:] == dropped  # the tail spans the cut
    net.down.add(ACME)  # the old hub dies
    st = HubMoveStatement(forum, certified.seq, certified.head, ACME, GLOBEX)
    sigs = [sign_hub_move(st, m, net.scene.sign_key(m)) for m in (A, B)]
    move = s.ev("hub.move", B, {"certificate": build_hub_move(st, sigs).to_wire()}, 2)
    assert (await new.submit_local(move.raw)).seq == certified.seq + 1
    assert new.state(forum).seq == certified.seq + 1  # type: ignore[union-attr]
    _, tail = tail_of(new, forum)
    assert not set(dropped) & set(tail)
    for seq in range(certified.seq + 1, certified.seq + 4):
        _, raws = await new.read(forum, seq, 500)
        assert not set(dropped) & set(raws)
    assert (await new.read(forum, certified.seq + 2, 500))[1] == []
    await check_reads(new, net.storages[GLOBEX], forum, monkeypatch)

    await new.submit_local(s.post(B, 2, "on the new hub").raw)
    net.down.clear()  # the old hub comes back as a replica: it rewinds past its own entries
    await net.flush()
    await net.flush()
    assert old.state(forum) == new.state(forum)
    for engine, name in ((old, ACME), (new, GLOBEX)):
        _, raws = await engine.read(forum, 1, 500)
        assert not set(dropped) & set(raws) and not set(dropped) & set(tail_of(engine, forum)[1])
        assert chain_state(net, raws) == engine.state(forum)
        await check_reads(engine, net.storages[name], forum, monkeypatch)
