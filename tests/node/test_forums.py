"""The forum log engine: sequencing, dedupe, refusals, gaps and backfill, equivocation,
hub move, invitations and restart — engines over real sqlite files, fake federation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.config import StorageConfig
from node.context import NodeContext
from node.forums.snapshot import SNAPSHOT_IDLE_S, load_state
from node.storage import Storage
from protocol.codec import decode, encode
from protocol.errors import ProtocolError
from protocol.log import (
    Entry,
    EquivocationProof,
    HubMoveStatement,
    append_entry,
    build_head,
    build_hub_move,
    sign_hub_move,
    verify_equivocation,
)
from protocol.rules import fold
from specs.vectors.generate_forum import D, Scene

from .forumnet import A, B, Net, Script

ACME, GLOBEX = "acme.example", "globex.example"


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = Net(Scene("node-forums"), tmp_path)
    yield n
    await n.close()


def chain_state(net: Net, raws: list[bytes]):  # type: ignore[no-untyped-def]
    s = net.scene
    return fold([Entry.from_bytes(r) for r in raws], hub_key_at=s.lookup, node_keys=s.lookup)


async def forum_with_b(net: Net) -> tuple[Script, str]:
    """acme hosts a forum of A; B (on globex) is invited, accepts, and is admitted."""
    hub, rep = await net.start(ACME), await net.start(GLOBEX)
    s = Script(net.scene)
    forum = net.scene.forum
    await hub.submit_local(s.create().raw)
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    invite = s.invite(A, B, 1)
    await hub.submit_local(invite.raw)
    await net.flush()  # forum.invite -> globex, which backfills the chain from seq 1
    assert [i.forum for i in await rep.invites_for(B)] == [forum]
    assert rep.state(forum) is not None and rep.state(forum).seq == 3  # type: ignore[union-attr]
    forwarded = await rep.submit_local(s.accept(B, invite).raw)
    assert forwarded.status == "forwarded" and forwarded.seq is None
    await net.flush()
    sub = await rep.submission(forum, forwarded.event_id)
    assert sub is not None and sub.state == "sequenced"
    await hub.submit_local(s.commit(A, 2, [B], [A, B]).raw)
    await net.flush()
    assert rep.state(forum) == hub.state(forum)
    assert rep.forums_of(B) == [forum] and await rep.invites_for(B) == []
    return s, forum


async def test_group_commit_sequences_a_burst_in_few_transactions(net: Net) -> None:
    hub = await net.start(ACME)
    s, forum = Script(net.scene), net.scene.forum
    assert (await hub.submit_local(s.create().raw)).seq == 1
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    posts = [s.post(A, 1, f"p{i}") for i in range(400)]
    db = net.storages[ACME].engine
    before = db.batches_committed
    results = await asyncio.gather(*(hub.submit_local(p.raw) for p in posts))
    assert sorted(r.seq or 0 for r in results) == list(range(3, 403))
    assert db.batches_committed - before <= 10  # hundreds of entries per transaction
    head, raws = await hub.read(forum, 1, 500)
    assert head == 402 and len(raws) == 402
    folded = chain_state(net, raws)
    assert folded == hub.state(forum)
    assert hub.metrics.sequenced.get() == 402
    assert await hub.wait_for(forum, 402, 0.01) == 402


async def test_repeated_events_keep_their_first_seq(net: Net) -> None:
    hub = await net.start(ACME)
    s, forum = Script(net.scene), net.scene.forum
    await hub.submit_local(s.create().raw)
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    p = s.post(A, 1)
    first, again, same_batch = await asyncio.gather(
        hub.submit_local(p.raw), hub.submit_local(p.raw), hub.submit_local(p.raw)
    )
    assert first.seq == again.seq == same_batch.seq == 3
    assert (await hub.submit_local(p.raw)).seq == 3
    assert hub.state(forum).seq == 3  # type: ignore[union-attr]


async def test_hub_refuses_events_that_break_rules(net: Net) -> None:
    hub = await net.start(ACME)
    s = Script(net.scene)
    await hub.submit_local(s.create().raw)

    async def code(raw: bytes) -> str:
        with pytest.raises(ProtocolError) as info:
            await hub.submit_local(raw)
        return info.value.code

    assert await code(s.post(A, 0).raw) == "rules.epoch_required"
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    assert await code(s.post(A, 5).raw) == "rules.stale_epoch"
    assert await code(s.create().raw) == "rules.not_permitted"  # one forum.create per forum
    results = await hub.on_submit(GLOBEX, net.scene.forum, [s.post(B, 1).raw])
    assert results[0]["error"] == "rules.not_member"
    assert hub.metrics.submissions_refused.get(code="rules.stale_epoch") == 1
    assert hub.state(net.scene.forum).seq == 2  # type: ignore[union-attr]


async def test_replica_refuses_and_records_bad_entries(net: Net) -> None:
    s, forum = await forum_with_b(net)
    rep = net.engines[GLOBEX]
    st = rep.state(forum)
    assert st is not None
    keys = net.scene.node_key
    forged = append_entry(st.head, st.seq + 1, s.post(A, 2).raw, keys["initech.example"],
                          "initech.example", net.clock)  # fmt: skip
    ghost = append_entry(st.head, st.seq + 1, s.post(D, 2).raw, keys[ACME], ACME, net.clock)
    assert await rep.on_entries(ACME, forum, [forged.raw]) == st.seq
    assert await rep.on_entries(ACME, forum, [ghost.raw]) == st.seq
    codes = sorted(e.code for e in await rep.evidence(forum))
    assert codes == ["entry.wrong_hub", "rules.not_member"]
    assert rep.metrics.refused.get(code="rules.not_member") == 1
    assert rep.state(forum) == st
    with pytest.raises(ProtocolError) as info:  # only the hub may push entries
        await rep.on_entries("initech.example", forum, [forged.raw])
    assert info.value.code == "entry.wrong_hub"


async def test_replica_detects_a_gap_and_backfills_it(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    base = rep.state(forum).seq  # type: ignore[union-attr]
    net.down.add(GLOBEX)
    for i in range(40):  # half from globex's member, forwarded while globex hears nothing
        if i % 2:
            await hub.on_submit(GLOBEX, forum, [s.post(B, 2, f"m{i}").raw])
        else:
            await hub.submit_local(s.post(A, 2, f"m{i}").raw)
    net.queue.clear()
    _, raws = await hub.read(forum, base + 1, 500)
    assert len(raws) == 40
    net.down = {ACME}  # the hub cannot be reached for backfill yet
    assert await rep.on_entries(ACME, forum, raws[30:]) == base
    assert rep.gaps(forum) == [(base + 1, base + 30)]
    await net.settle()
    assert rep.state(forum).seq == base  # type: ignore[union-attr]
    net.down.clear()
    assert await rep.on_entries(ACME, forum, raws[35:]) in (base, base + 40)
    await net.settle()
    assert rep.state(forum) == hub.state(forum) and rep.gaps(forum) == []
    assert rep.metrics.backfill.get(role="sent") >= 2
    assert hub.metrics.backfill.get(role="served") >= 1
    with pytest.raises(ProtocolError) as info:
        await hub.on_backfill("initech.example", forum, 1, 10)
    assert info.value.code == "api.forbidden"


async def test_heads_are_cosigned_and_an_equivocating_hub_is_frozen(net: Net) -> None:
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    await hub.submit_local(s.post(A, 2).raw)
    await net.flush()
    head = await hub.issue_head(forum)
    assert head is not None
    await net.flush()
    assert await net.storages[ACME].cosigners(forum, head.seq) == [GLOBEX]
    # The hub signs a second entry for a seq the replica already holds.
    st = rep.state(forum)
    assert st is not None
    _, prev = await rep.read(forum, st.seq - 1, 1)
    fork = append_entry(Entry.from_bytes(prev[0]).hash, st.seq, s.post(A, 2, "other").raw,
                        net.scene.node_key[ACME], ACME, net.clock)  # fmt: skip
    assert await rep.on_entries(ACME, forum, [fork.raw]) == st.seq
    assert rep.state(forum).frozen  # type: ignore[union-attr]
    [record] = await rep.frozen_forums()
    assert record.id == forum and record.proof is not None
    proof = EquivocationProof.from_wire(decode(record.proof))
    verify_equivocation(proof, net.scene.node_key[ACME].verify_key)  # offline, by anyone
    await net.flush()  # forum.proof reaches the hub, which freezes too
    assert hub.state(forum).frozen  # type: ignore[union-attr]
    for engine in (hub, rep):
        with pytest.raises(ProtocolError) as info:
            await engine.submit_local(s.post(A if engine is hub else B, 2).raw)
        assert info.value.code == "forum.frozen"
    assert rep.metrics.frozen.get() == 1


async def test_a_conflicting_hub_head_is_proof_enough(net: Net) -> None:
    s, forum = await forum_with_b(net)
    rep = net.engines[GLOBEX]
    st = rep.state(forum)
    assert st is not None
    lie = build_head(forum, st.seq, bytes(32), net.scene.node_key[ACME], ACME, net.clock)
    await rep.on_head(ACME, {"forum": forum, "head": encode(lie.to_wire()), "cosigs": []})
    assert rep.state(forum).frozen  # type: ignore[union-attr]
    record = (await rep.frozen_forums())[0]
    assert record.proof is not None
    verify_equivocation(EquivocationProof.from_wire(decode(record.proof)))


async def test_hub_move_with_a_quorum_continues_the_chain(net: Net) -> None:
    s, forum = await forum_with_b(net)
    old, new = net.engines[ACME], net.engines[GLOBEX]
    certified = new.state(forum)
    assert certified is not None
    late = s.post(A, 2, "sequenced by the old hub after the certified point")
    await old.submit_local(late.raw)
    await net.flush()
    assert new.state(forum).seq == certified.seq + 1  # type: ignore[union-attr]
    net.down.add(ACME)  # the old hub dies
    st = HubMoveStatement(forum, certified.seq, certified.head, ACME, GLOBEX)
    sigs = [sign_hub_move(st, m, net.scene.sign_key(m)) for m in (A, B)]
    move = s.ev("hub.move", B, {"certificate": build_hub_move(st, sigs).to_wire()}, 2)
    result = await new.submit_local(move.raw)
    assert result.seq == certified.seq + 1 and new.state(forum).hub == GLOBEX  # type: ignore[union-attr]
    await new.submit_local(s.post(B, 2, "on the new hub").raw)
    net.down.clear()  # the old node comes back as a replica and re-submits A's event
    await net.flush()
    await net.flush()
    assert old.state(forum) == new.state(forum)
    final = new.state(forum)
    assert final is not None and final.hub == GLOBEX and final.seq == certified.seq + 3
    _, raws = await new.read(forum, 1, 500)
    assert late.event_id in {Entry.from_bytes(r).signed_event.event_id for r in raws}
    assert chain_state(net, raws) == final
    stale = append_entry(final.head, final.seq + 1, s.post(A, 2).raw, net.scene.node_key[ACME],
                         ACME, net.clock)  # fmt: skip
    with pytest.raises(ProtocolError) as info:
        await new.on_entries(ACME, forum, [stale.raw])
    assert info.value.code == "entry.wrong_hub"


async def test_restart_reloads_state_and_continues_the_chain(net: Net) -> None:
    hub = await net.start(ACME)
    s, forum = Script(net.scene), net.scene.forum
    await hub.submit_local(s.create().raw)
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    await asyncio.gather(*(hub.submit_local(s.post(A, 1, str(i)).raw) for i in range(50)))
    before = hub.state(forum)
    await net.stop(ACME)
    hub = await net.start(ACME)
    assert hub.state(forum) == before
    dup = await hub.submit_local(s.post(A, 1, "after restart").raw)
    assert dup.seq == 53
    _, raws = await hub.read(forum, 1, 500)
    assert chain_state(net, raws) == hub.state(forum)


async def test_snapshots_trail_the_log_and_a_restart_folds_the_rest(net: Net) -> None:
    """Not every commit writes the state's snapshot: a crash leaves an older one, and the
    restart folds the entries after it (every check applies) into the same state. A
    quiet forum's snapshot catches up on its own; a clean stop writes it too."""
    hub = await net.start(ACME)
    s, forum = Script(net.scene), net.scene.forum
    await hub.submit_local(s.create().raw)
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    for i in range(30):
        await hub.submit_local(s.post(A, 1, str(i)).raw)

    async def stored() -> tuple[int, int]:
        (rec,) = [r for r in await net.storages[ACME].list_forum_records() if r.id == forum]
        snap = load_state(rec.state) if rec.state is not None else None
        return (snap.seq if snap is not None else 0), rec.head_seq

    snap_seq, head = await stored()
    assert 1 <= snap_seq < head == 32  # the snapshot was not written with every commit
    before = hub.state(forum)
    crashed = net.engines.pop(ACME)  # no close(): what kill -9 leaves
    for rt in crashed._forums.values():
        if rt.snapshot_timer is not None:
            rt.snapshot_timer.cancel()
    for task in list(crashed._tasks):
        task.cancel()
    await net.storages.pop(ACME).close()
    hub = await net.start(ACME)
    assert hub.state(forum) == before
    assert (await hub.submit_local(s.post(A, 1, "after").raw)).seq == 33
    await asyncio.sleep(SNAPSHOT_IDLE_S + 0.5)  # quiet: the snapshot catches up
    assert await stored() == (33, 33)
    await hub.submit_local(s.post(A, 1, "last").raw)
    await net.stop(ACME)  # a clean stop writes it at once
    net.storages[ACME] = await Storage.open(net.root / f"{ACME}.db", StorageConfig(),
                                            lambda: net.clock)  # fmt: skip
    assert await stored() == (34, 34)
    await net.storages.pop(ACME).close()


async def test_the_app_runs_the_engine_as_a_service(aiohttp_client: Any, ctx: NodeContext) -> None:
    from node.app import make_app
    from node.context import FORUMS

    client = await aiohttp_client(make_app(ctx))
    engine = client.app[FORUMS]
    assert engine.name == ctx.identity.name and engine.state("!x") is None
    assert await engine.wait_for("!x", 1, 0.01) == 0


async def test_a_long_run_is_checked_ahead_on_two_threads_and_still_in_order(net: Net) -> None:
    """Runs of PREVERIFY_MIN entries or more have their signatures checked on a second
    thread first; that only warms a cache: a forged entry in the middle is refused in
    its place, what precedes it is applied, nothing after it."""
    s, forum = await forum_with_b(net)
    hub, rep = net.engines[ACME], net.engines[GLOBEX]
    base = rep.state(forum).seq  # type: ignore[union-attr]
    net.down.add(GLOBEX)
    for i in range(40):
        await hub.submit_local(s.post(A, 2, f"run {i}").raw)
    net.queue.clear()
    _, raws = await hub.read(forum, base + 1, 500)
    st20 = decode(raws[19])
    forged = encode({**decode(raws[20]), "sig": bytes(64)})
    assert st20["seq"] == base + 20
    net.down.add(ACME)  # no backfill: only what this push carries
    ack = await rep.on_entries(ACME, forum, raws[:20] + [forged] + raws[21:])
    assert ack == base + 20
    assert [e.code for e in await rep.evidence(forum)] == ["sig.invalid"]
    assert rep._verifier is not None  # the run was long enough to be checked ahead
    net.down.clear()
    assert await rep.on_entries(ACME, forum, raws[20:]) == base + 40
    assert rep.state(forum) == hub.state(forum)
