"""Detached updates on real nodes (protocol §6.9): readable on every node before they
expire, gone from every node's files after, the chain still whole for a node that joins
later, and shown as expired to every member.

Three organizations, one node each. Alice (node 0) hosts the forum, Bob (node 1) posts
an update that expires a few seconds later (the library takes ``expires`` in ms, so
the test need not wait a retention period), Carol (node 2) joins after it expired.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cli.member import MemberClient
from protocol.keys import unb64u

from .conftest import Nodes
from .federation_kit import Org, wait_until
from .member_kit import Person, admit, enroll, settle, start_orgs

MARK = "DETACHED-UPDATE-7f3a"
LIFE_MS = 12_000  # long enough for both nodes to serve it, short enough to wait out

PEOPLE = [
    Person("alice", "Acme", "Manufacturing", 0),
    Person("bob", "Globex", "Energy", 1),
    Person("carol", "Initech", "Software", 2),
]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[Org], dict[str, MemberClient]]]:
    root = tmp_path_factory.mktemp("detached")
    nodes = Nodes(root)
    try:
        orgs = start_orgs(nodes, 3)
        yield orgs, enroll(orgs, PEOPLE, root)
    finally:
        for node in nodes.started:
            node.kill()


def db_holds(org: Org, data: bytes) -> bool:
    """The node's database or its write-ahead log still holds ``data`` somewhere."""
    files = [p for p in org.data.rglob("node.db*") if p.is_file()]
    assert any(p.name == "node.db" for p in files), files
    return any(data in p.read_bytes() for p in files)


def update_of(c: MemberClient, forum: str, event: str) -> dict[str, object]:
    [entry] = [e for e in c.read(forum)["entries"] if e["event"] == event]
    return entry


def test_an_update_is_read_everywhere_then_deleted_everywhere(
    world: tuple[list[Org], dict[str, MemberClient]],
) -> None:
    orgs, c = world
    alice, bob, carol = c["alice"], c["bob"], c["carol"]
    forum = alice.create_forum(name="Detached")
    admit(forum, [alice], bob, "note", "yes")

    expires = bob.clock() + LIFE_MS
    event = bob.content(forum, "update", {"text": MARK, "expires": expires}, expires=expires)
    settle(forum, [alice, bob])
    attachment = bob._attachments[unb64u(event)]
    for who in (alice, bob):  # each reads it from its own node, before expiry
        entry = update_of(who, forum, event)
        assert entry["body"] == {"text": MARK, "expires": expires}, entry
        assert entry["expires"] == expires
    for org in orgs[:2]:  # the ciphertext is held by both nodes, as ciphertext
        assert db_holds(org, attachment)

    time.sleep(max(0.0, (expires - bob.clock()) / 1000))
    for org in orgs[:2]:
        wait_until(f"{org.name} deletes the attachment", lambda o=org: not db_holds(o, attachment))
        assert org.metric("peerforum_attachments_deleted_total") >= 1

    # Carol joins afterwards: her node backfills the whole log and verifies it; the
    # update's entry is there, its ciphertext is not.
    admit(forum, [alice, bob], carol, "note", "yes")
    settle(forum, [alice, bob, carol])
    assert not db_holds(orgs[2], attachment)
    for who in (alice, bob, carol):
        fresh = MemberClient(str(who.profile.root))  # nothing cached: all from the node
        state, entries = fresh.verified(forum)  # every hub signature and the chain
        assert state.seq == len(entries) and state.members.get(carol.member) is not None
        entry = update_of(fresh, forum, event)
        assert entry.get("expired") is True and "body" not in entry, entry
        view = fresh.view(forum)
        assert all(u["event"] != event or u.get("expired") or u["expires"] <= fresh.clock()
                   for u in view.updates)  # fmt: skip
