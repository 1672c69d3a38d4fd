"""Issue 4, test 4: a member or device added without a valid admission is caught by the
members' clients, which refuse to seal to it (DESIGN §4 "no ghost members").

Three real nodes; Alice's node is the hub. Two ways a ghost can be pushed at a client:

1. A colluding member's client skips the vote: it invites Mallory with an envelope that
   names no passing nomination, Mallory accepts, and the colluder commits her admission.
   The nodes accept it (membership is node-enforced, votes are not). Every honest client
   that could read the forum then raises ``unauthorized_admission``, refuses to seal
   content under the epoch that reaches her, and its next sync removes her (sealed
   ``{unauthorized: seq}``) and commits an epoch without her: she opens nothing later.
2. A lying home node, played by a proxy in front of Carol's node: it pads the forum
   state it reports with a device Bob never enrolled, then serves a hub-signed entry
   (signed with the hub's own ``node.key``) adding that device for Bob. Carol's client
   trusts neither: ``forum sync`` refuses to seal (``client.ghost``) and the forged
   entry fails her own fold (``rules.unknown_device``); no epoch is committed.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.member import GhostMemberError, MemberClient, actions
from cli.member.charter import pledge_hash
from cli.member.sealing import readable
from node.keystore import load_keys
from protocol.descriptor import Device, build_attestation
from protocol.errors import ProtocolError
from protocol.keys import AgreementKey, SigningKey, b64u
from protocol.log import Entry, append_entry, build_event

from .conftest import Nodes
from .federation_kit import Org, wait_until
from .harness import run_cli
from .member_kit import Person, admit, enroll, settle, start_orgs

PEOPLE = [Person("alice", "Acme", "Retail", 0), Person("bob", "Beta", "Banking", 1),
          Person("carol", "Coda", "Energy", 2), Person("mallory", "Mal", "Media", 1),
          Person("dave", "Delta", "Health", 2)]  # fmt: skip


@dataclass
class Trio:
    orgs: list[Org]
    c: dict[str, MemberClient]
    forum: str
    root: Path


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    root = tmp_path_factory.mktemp("ghost")
    nodes = Nodes(root)
    try:
        orgs = start_orgs(nodes, 3)
        c = enroll(orgs, PEOPLE, root)
        forum = c["alice"].create_forum("ghost watch")
        admit(forum, [c["alice"]], c["bob"], "n", "r")
        admit(forum, [c["alice"], c["bob"]], c["carol"], "n", "r")
        yield Trio(orgs, c, forum, root)
    finally:
        for node in nodes.started:
            node.kill()


def test_admission_without_a_vote_is_alerted_and_undone(trio: Trio) -> None:
    alice, bob, carol, mallory = (trio.c[h] for h in ("alice", "bob", "carol", "mallory"))
    forum, honest = trio.forum, [trio.c["alice"], trio.c["carol"]]
    everyone = [alice, bob, carol, mallory]
    # Bob's client bypasses the vote: an invitation naming no nomination, then the commit.
    charter = bob.view(forum).charter
    envelope: dict[str, Any] = {
        "forum_name": "ghost watch", "charter": charter, "pledge": charter["pledge"],
        "pledge_hash": pledge_hash(charter), "motion": "no-such-motion",
        "nominated_by": bob.member, "note": "trust me",
    }  # fmt: skip
    bob.issue_invite(forum, mallory.member, envelope)
    settle(forum, everyone)
    wait_until("mallory's invitation", mallory.invites)
    mallory.accept(forum)
    settle(forum, everyone)
    assert bob._commit_epoch(forum, [mallory.member])  # the nodes accept it: no vote there
    settle(forum, everyone)
    tainted = alice.verified(forum)[0].epoch
    mallory.verified(forum)  # she opens the epoch that was sealed to her
    assert mallory.profile.epoch_secret(forum, tainted) is not None

    for m in honest:  # every honest client sees it and will not seal under that epoch
        alerts = [a for a in m.view(forum).alerts if a["kind"] == "unauthorized_admission"]
        assert [a["member"] for a in alerts] == [mallory.member]
        assert "no nomination" in alerts[0]["text"]
        with pytest.raises(GhostMemberError, match="without a passing nomination"):
            m.content(forum, "post", {"text": "not to mallory"}, duties=False)

    # Carol's next sync (through the CLI) removes Mallory and seals an epoch without her.
    synced = run_cli("forum", "sync", forum, "--profile", str(carol.profile.root), "--json")
    assert synced.returncode == 0, synced.stderr
    report = synced.json()
    assert report["ghosts"] == [mallory.member] and report["committed"] is True
    settle(forum, [alice, bob, carol])
    state, entries = alice.verified(forum)
    assert state.epoch == tainted + 1 and state.members[mallory.member].status == "removed"
    commit = entries[-1].signed_event
    assert commit.type == "epoch.commit"
    assert mallory.agree_key.public.key_id not in {s["to"] for s in commit.body["secrets"]}
    post = alice.post(forum, "after the ghost left")
    settle(forum, [alice, bob, carol])
    assert carol.read(forum)["entries"][-1]["body"]["text"] == "after the ghost left"
    _, entries = carol.verified(forum)
    last = next(e for e in entries if b64u(e.signed_event.event_id) == post)
    assert readable(mallory.profile, last, mallory.agree_key).get("unreadable") is True
    view = alice.view(forum)  # undoing it needed no vote and raises nothing new
    assert view.ghosts() == []
    assert not [a for a in view.alerts if a["kind"] == "unauthorized_removal"]


# ---------------------------------------------------------------------------- lying node


class LyingNode:
    """An HTTP proxy that answers as Carol's node, rewriting what the node says."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.pad_state: Callable[[dict[str, Any]], None] | None = None
        self.extra_entry: bytes | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, None)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                proxy.forward(self, self.rfile.read(n))

            def do_DELETE(self) -> None:
                proxy.forward(self, None)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, h: http.server.BaseHTTPRequestHandler, data: bytes | None) -> None:
        req = urllib.request.Request(self.upstream + h.path, data=data, method=h.command)
        for k in ("Authorization", "Content-Type", "Accept"):
            if h.headers.get(k):
                req.add_header(k, h.headers[k])
        try:
            with urllib.request.urlopen(req, timeout=40) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        if status == 200 and h.command == "GET":
            body = self.rewrite(h.path, body)
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def rewrite(self, path: str, body: bytes) -> bytes:
        route = path.split("?")[0]
        if route.endswith("/state") and self.pad_state is not None:
            doc = json.loads(body)
            self.pad_state(doc)
            return json.dumps(doc).encode()
        if route.endswith("/entries") and self.extra_entry is not None:
            doc = json.loads(body)
            forged = Entry.from_bytes(self.extra_entry)
            start = int(path.split("from=")[1].split("&")[0])
            if start <= forged.seq and doc["head"] == forged.seq - 1:
                doc["entries"].append(b64u(self.extra_entry))
                doc["head"] = forged.seq
            return json.dumps(doc).encode()
        return body


def test_a_lying_node_cannot_get_a_ghost_device_sealed_to(trio: Trio) -> None:
    alice, bob, carol, dave = (trio.c[h] for h in ("alice", "bob", "carol", "dave"))
    forum = trio.forum
    settle(forum, [alice, bob, carol])
    members = [m for m in (alice, bob, carol) if m.view(forum).status.get(m.member) == "active"]
    # Dave is nominated and voted in properly, and accepts: an admission epoch is due.
    motion = actions.nominate(alice, forum, dave.member)
    settle(forum, members)
    for m in members:
        actions.vote(m, forum, motion, True)
    settle(forum, members)
    assert alice.sync(forum)["invited"] == [dave.member]
    settle(forum, [*members, dave])
    wait_until("dave's invitation", dave.invites)
    dave.accept(forum)
    settle(forum, [*members, dave])

    # Bob's node key signs an attestation of a device bob never enrolled.
    bob_node = trio.orgs[1]
    ghost_sign, ghost_agree = SigningKey(os.urandom(32)), AgreementKey(os.urandom(32))
    ghost = Device(ghost_sign.verify_key, ghost_agree.public)
    now = int(time.time() * 1000)
    att = build_attestation(node=bob_node.name, member=bob.member, org="Beta",
                            devices=[ghost], ts=now,
                            key=load_keys(bob_node.data / "node.key").current)  # fmt: skip

    def pad(doc: dict[str, Any]) -> None:
        for m in doc["members"]:
            if m["member"] == bob.member:
                m["devices"].append({"kid": ghost.device_id, "sign": b64u(ghost.sign.raw),
                                     "agree": b64u(ghost.agree.raw)})  # fmt: skip

    lying = LyingNode(trio.orgs[2].url)
    profile = trio.root / "carol"
    real_url = carol.session.base
    carol.profile.save_settings(node_url=lying.url)
    try:
        epoch = alice.verified(forum)[0].epoch
        # 1. The node reports a padded roster: carol's sync refuses before sealing anything.
        lying.pad_state = pad
        refused = run_cli("forum", "sync", forum, "--profile", str(profile), "--json")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.json()["error"] == "client.ghost"
        assert "unverified device" in refused.json()["message"]
        assert alice.verified(forum)[0].epoch == epoch  # nothing was committed
        # 2. The hub's key signs an entry adding the ghost device "for bob": carol's own
        # fold refuses it (only a device of bob's may add one), so she seals nothing.
        lying.pad_state = None
        state, entries = alice.verified(forum)
        event = build_event(forum=forum, type="device.add", author=bob.member,
                            device_key=ghost_sign, ts=now, nonce=os.urandom(16),
                            epoch=state.epoch, body={"attestation": att.to_wire()})  # fmt: skip
        hub = trio.orgs[0]
        lying.extra_entry = append_entry(entries[-1].hash, state.seq + 1, event.raw,
                                         load_keys(hub.data / "node.key").current, hub.name,
                                         now).raw  # fmt: skip
        fresh = MemberClient(profile)
        with pytest.raises(ProtocolError) as caught:
            fresh.sync(forum)
        assert caught.value.code == "rules.unknown_device"
        assert alice.verified(forum)[0].epoch == epoch
    finally:
        carol.profile.save_settings(node_url=real_url)
        lying.server.shutdown()
    # The honest node again: Dave is admitted, sealed to real devices only.
    assert MemberClient(profile).sync(forum)["admitted"] == [dave.member]
    settle(forum, [*members, dave])
    _, entries = dave.verified(forum)
    commit = entries[-1].signed_event
    assert ghost.agree.key_id not in {s["to"] for s in commit.body["secrets"]}
