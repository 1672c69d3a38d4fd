"""Members and forums for the benchmark, built through the client API like a member's device.

Members enroll with the member library (``MemberClient.enroll``: device keys, enrollment
proof, session). Forums are then formed with protocol functions over that session:
forum.create, member.invite (across nodes too: the attestation comes through the home
node's member lookup), member.accept on the candidate's own node, and one epoch.commit
sealing a fresh secret to every device. That is the node-enforced minimum (specs §7);
the member library's richer flow (charter, pledges) adds entries the benchmark does not
need and changes while it is being built, so the benchmark does not depend on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.member import MemberClient
from cli.member.api import MemberApiError, Session
from cli.member.api import quote as q
from protocol.codec import Value, decode
from protocol.group import seal_content_map, seal_epoch
from protocol.keys import AgreementKey, SigningKey, b64u, unb64u
from protocol.log import Event, build_event, make_forum_id

from .cluster import BenchError, Node

WAIT_S = 60.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Member:
    """One enrolled device: what the load process needs to sign and submit as it."""

    id: str
    node_name: str
    node_url: str
    profile: Path
    token: str
    sign_seed: bytes
    agree_secret: bytes

    @property
    def sign(self) -> SigningKey:
        return SigningKey(self.sign_seed)

    def session(self) -> Session:
        from cli.member.profile import Profile

        return Session(Profile(self.profile))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.session().call(method, path, body, timeout_s=WAIT_S + 10)


def enroll(node: Node, handle: str, root: Path) -> Member:
    added = node.admin("POST", "/admin/members", {"handle": handle, "org": f"Org {handle}"})
    client = MemberClient.enroll(root / f"{handle}-{node.port}", node.url,
                                 added["enrollment_code"])  # fmt: skip
    sign, agree = client.profile.device()
    token = client.session.token or client.session.login()
    return Member(client.member, node.name, node.url, client.profile.root, token, sign.seed,
                  agree.secret)  # fmt: skip


def event(m: Member, forum: str, type: str, epoch: int,
          body: Callable[[dict[str, Any]], dict[str, Value]]) -> Event:  # fmt: skip
    """A signed event; ``body`` gets the cleartext header (the AAD of sealed content)."""
    sign = m.sign
    ts, nonce = now_ms(), os.urandom(16)
    header = {"v": 1, "forum": forum, "type": type, "author": m.id, "kid": sign.key_id,
              "ts": ts, "nonce": nonce, "epoch": epoch}  # fmt: skip
    return build_event(forum=forum, type=type, author=m.id, device_key=sign, ts=ts,
                       nonce=nonce, epoch=epoch, body=body(header))  # fmt: skip


def post(m: Member, forum: str, epoch: int, secret: bytes, text: str) -> Event:
    """A content event as the member client builds it: the text sealed under the epoch."""
    return event(m, forum, "post", epoch, lambda h: {"ct": seal_content_map(
        secret, header=h, body={"text": text}, nonce=os.urandom(12)).to_wire()})  # fmt: skip


def submit(m: Member, ev: Event) -> dict[str, Any]:
    result: dict[str, Any] = m.call("POST", f"/forums/{q(ev.forum)}/events",
                                    {"event": b64u(ev.raw)})  # fmt: skip
    return result


def attestation(m: Member, of: str) -> dict[str, Any]:
    data = unb64u(m.call("GET", f"/members/{q(of)}/attestation")["attestation"])
    att = decode(data)
    assert isinstance(att, dict)
    return att


def _until(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except MemberApiError as exc:  # not there yet (forbidden, unknown, gap)
            last = exc
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


def head_of(m: Member, forum: str, at_least: int, wait_s: int = 10) -> int:
    """The forum's head on ``m``'s node, long-polling until it reaches ``at_least``."""
    page = m.call("GET", f"/forums/{q(forum)}/entries?from={at_least}&limit=1&wait={wait_s}")
    return int(page["head"])


@dataclass
class Forum:
    id: str
    epoch: int
    secret: bytes
    head: int
    members: list[Member]


def form_forum(creator: Member, others: Sequence[Member]) -> Forum:
    """create, invite everyone, each accepts on its own node, one epoch.commit for all."""
    forum = make_forum_id(os.urandom(16), creator.node_name)
    att = attestation(creator, creator.id)
    submit(creator, event(creator, forum, "forum.create", 0,
                          lambda h: {"hub": creator.node_name, "attestation": att}))  # fmt: skip
    invites: dict[str, bytes] = {}
    for o in others:
        cand = attestation(creator, o.id)
        ev = event(creator, forum, "member.invite", 0,
                   lambda h, o=o, cand=cand: {"candidate": o.id, "attestation": cand})  # fmt: skip
        submit(creator, ev)
        invites[o.id] = ev.event_id
    for o in others:
        # A remote candidate's node learns of the forum from the hub's forum.invite.
        _until(
            f"the invitation of {o.id}",
            lambda o=o: any(i["forum"] == forum for i in o.call("GET", "/invites")["invites"]),
        )
        inv = invites[o.id]
        submit(o, event(o, forum, "member.accept", 0, lambda h, inv=inv: {"invite": inv}))

    def all_accepted() -> bool:
        state = creator.call("GET", f"/forums/{q(forum)}/state")
        return sum(1 for i in state["invitations"] if i["accepted"]) == len(others)

    _until("every acceptance to be sequenced", all_accepted)
    everyone = [creator, *others]
    secret = os.urandom(32)
    recipients = [AgreementKey(m.agree_secret).public for m in everyone]
    sealed = seal_epoch(secret, forum=forum, epoch=1, recipients=recipients)
    body: dict[str, Value] = {"epoch": 1, "admit": sorted(o.id for o in others),
                              "secrets": [s.to_wire() for s in sealed]}  # fmt: skip
    result = submit(creator, event(creator, forum, "epoch.commit", 0, lambda h: body))
    head = int(result["seq"])
    for o in others:  # every follower holds the commit before any load starts
        _until(f"{o.node_name} to hold seq {head}", lambda o=o: head_of(o, forum, head) >= head)
    return Forum(forum, 1, secret, head, everyone)


def member_keys(members: Sequence[Member]) -> Mapping[str, Member]:
    return {m.id: m for m in members}
