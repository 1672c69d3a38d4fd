"""Hub moves when the old hub is dead for good (scripted network, real sqlite files).

The engine must not lean on the old hub for anything: a new hub that is behind the
certified point fetches the missing entries from another participant, and replicas
backfill from whoever holds the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.hubmove import HubMoveStatement, build_hub_move, sign_hub_move
from specs.vectors.generate_forum import C, Scene

from .forumnet import A, B, Net, Script
from .test_forums import ACME, GLOBEX, chain_state

INITECH = "initech.example"


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = Net(Scene("node-forums-move"), tmp_path)
    yield n
    await n.close()


async def forum_of_three(net: Net) -> tuple[Script, str, str]:
    """acme hosts A's forum; B (globex) and C (initech) are admitted."""
    hub = await net.start(ACME)
    await net.start(GLOBEX)
    await net.start(INITECH)
    s, forum = Script(net.scene), net.scene.forum
    await hub.submit_local(s.create().raw)
    await hub.submit_local(s.commit(A, 1, [], [A]).raw)
    for m in (B, C):
        invite = s.invite(A, m, 1)
        await hub.submit_local(invite.raw)
        await net.flush()
        await net.engines[m.split(":")[1]].submit_local(s.accept(m, invite).raw)
        await net.flush()
    await hub.submit_local(s.commit(A, 2, [B, C], [A, B, C]).raw)
    await net.flush()
    return s, forum, C


async def test_a_new_hub_behind_the_certified_point_fetches_from_a_replica(net: Net) -> None:
    s, forum, c_member = await forum_of_three(net)
    old, new, other = net.engines[ACME], net.engines[GLOBEX], net.engines[INITECH]
    net.down.add(GLOBEX)  # B misses the next entries...
    for i in range(3):
        await old.submit_local(s.post(A, 2, f"while globex was away {i}").raw)
    await net.flush()
    certified = other.state(forum)
    assert certified is not None and new.state(forum).seq < certified.seq  # type: ignore[union-attr]
    net.down = {ACME}  # ...then the old hub dies for good, before B could catch up
    st = HubMoveStatement(forum, certified.seq, certified.head, ACME, GLOBEX)
    sigs = [sign_hub_move(st, m, net.scene.sign_key(m)) for m in (B, c_member)]
    move = s.ev("hub.move", B, {"certificate": build_hub_move(st, sigs).to_wire()}, 2)
    result = await new.submit_local(move.raw)  # backfills from initech, then moves
    assert result.seq == certified.seq + 1
    assert new.state(forum).hub == GLOBEX  # type: ignore[union-attr]
    await new.submit_local(s.post(B, 2, "on the new hub").raw)
    await net.flush()
    assert other.state(forum) == new.state(forum)
    _, raws = await new.read(forum, 1, 500)
    assert chain_state(net, raws) == new.state(forum)
