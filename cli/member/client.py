"""The member client: every signature, seal and decryption happens here, on the device.

The home node sees signed events whose content is sealed, and answers with hub-signed
entries. The client never takes the node's word for the forum: it folds the log itself
(``protocol.rules.fold``, with node keys it fetched from each node) and derives from that
fold whom it may seal to (``roster.py``). Randomness (event nonces, epoch secrets,
content nonces) comes from ``os.urandom`` here, at the library boundary.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from node.directory import enroll_message, handle_of_code
from protocol.codec import Value, decode
from protocol.descriptor import KeySet, verify_attestation
from protocol.errors import ProtocolError
from protocol.group import seal_epoch
from protocol.identity import member_id, node_of
from protocol.keys import b64u, key_id, unb64u
from protocol.log import Entry, Event, build_event, make_forum_id
from protocol.rules import ForumState, fold

from .api import PREFIX, MemberApiError, Session, fetch_descriptor, http_json, node_name_of
from .api import now_ms as wall_ms
from .api import quote as q
from .charter import default_charter, pledge_hash
from .invitation import open_invitation, seal_invitation
from .items import attested_profiles, entry_item
from .profile import Profile
from .roster import (
    GhostMemberError,
    attested_devices,
    attested_devices_of,
    compare_reported,
    roster_after,
    sealing_keys,
)
from .sealing import open_epochs, readable, seal_detached, seal_map
from .trust import NodeKeys
from .view import ForumView, Item, fold_view

PAGE = 500
BATCH_EVENTS = 64  # the node's most per batch submit (specs/api.md)
BATCH_BYTES = 1024 * 1024  # a batch request stays under the node's default body limit
Body = dict[str, Value] | Callable[[dict[str, Any]], dict[str, Value]]
COMMIT_RETRIES = 3


class MemberClient:
    def __init__(
        self,
        profile_dir: Path | str,
        *,
        clock: Callable[[], int] = wall_ms,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.profile = Profile(Path(profile_dir))
        self.clock, self.rng = clock, rng
        self.session = Session(self.profile, clock, rng)
        self.member, self.node = self.session.member, self.session.node
        self.sign_key, self.agree_key = self.profile.device()
        self.keys = NodeKeys(self.profile, self.session.base)
        self._folded: dict[str, tuple[ForumState, list[Entry]]] = {}
        self._items: dict[bytes, Item] = {}  # readable entries, opened once
        # Attachments of detached entries (protocol §6.9) as the node served them, by event
        # id; checked against the event's ct_ref before use. Gone once the node deleted them.
        self._attachments: dict[bytes, bytes] = {}

    # ------------------------------------------------------------------ enrollment

    @classmethod
    def enroll(
        cls, profile_dir: Path | str, node_url: str, code: str,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> MemberClient:  # fmt: skip
        """Create this device's keys, spend the code, check the attestation, log in."""
        profile = Profile(Path(profile_dir))
        node = node_name_of(node_url)
        desc, data = fetch_descriptor(node_url, node, wall_ms())
        member = member_id(handle_of_code(code), node)
        sign, agree = profile.create_device(rng)
        proof = sign.sign(enroll_message(code=code, member=member, node=node,
                                         sign=sign.verify_key.raw, agree=agree.public.raw))
        answer = http_json("POST", node_url.rstrip("/") + PREFIX + "/enroll", {
            "code": code, "proof": b64u(proof),
            "device": {"sign": b64u(sign.verify_key.raw), "agree": b64u(agree.public.raw)},
        })  # fmt: skip
        att = verify_attestation(unb64u(answer["attestation"]), expected_node=node,
                                 keys=desc.keys)  # fmt: skip
        if att.member != member or sign.key_id not in {d.device_id for d in att.devices}:
            raise MemberApiError("attestation.invalid", "the node attested another device")
        profile.pin_descriptor(node, data)
        profile.save_settings(node_url=node_url.rstrip("/"), node=node, member=member,
                              kid=sign.key_id, token=None)  # fmt: skip
        client = cls(profile.root, rng=rng)
        client.session.login()
        return client

    def me(self) -> dict[str, Any]:
        return self.session.call("GET", "/me")

    def attestation(self, member: str) -> dict[str, Any]:
        """A member's attestation, verified here under its own node's key."""
        data = unb64u(self.session.call("GET", f"/members/{q(member)}/attestation")["attestation"])
        att_map = decode(data)
        assert isinstance(att_map, dict)
        node = node_of(member)
        key = self.keys(node, str(att_map.get("kid")), int(att_map.get("ts", 0)))
        if key is None:
            raise MemberApiError("sig.unknown_key", f"no key for {member}'s node")
        att = verify_attestation(att_map, expected_node=node, keys=KeySet((key,)))
        if att.member != member:
            raise MemberApiError("attestation.invalid", f"attests {att.member}, not {member}")
        return att_map

    # ------------------------------------------------------------------ the log, verified

    def forums(self) -> list[dict[str, Any]]:
        return list(self.session.call("GET", "/forums")["forums"])

    def invites(self) -> list[dict[str, Any]]:
        return list(self.session.call("GET", "/invites")["invites"])

    def reported_state(self, forum: str) -> dict[str, Any]:
        """The node's view of the forum (cleartext roster); informative only."""
        return self.session.call("GET", f"/forums/{q(forum)}/state")

    def entries(self, forum: str, from_seq: int = 1, wait_s: int = 0) -> tuple[int, list[Entry]]:
        out: list[Entry] = []
        head = 0
        while True:
            page = self.session.call(
                "GET", f"/forums/{q(forum)}/entries?from={from_seq}&limit={PAGE}&wait={wait_s}",
                timeout_s=wait_s + 30,
            )  # fmt: skip
            if page["gaps"]:
                raise MemberApiError("forum.gap", f"{forum}: entries missing {page['gaps']}")
            head, batch = int(page["head"]), [Entry.from_bytes(unb64u(e)) for e in page["entries"]]
            for eid, data in (page.get("attachments") or {}).items():
                self._attachments[unb64u(eid)] = unb64u(data)
            out.extend(batch)
            wait_s = 0
            if not batch or batch[-1].seq >= head:
                return head, out
            from_seq = batch[-1].seq + 1

    def verified(self, forum: str) -> tuple[ForumState, list[Entry]]:
        """Our own fold of the log: hub signatures, chain and rules, all checked here.

        The fold is kept in memory between calls: only entries past our head are fetched
        and folded onto the state we already verified (``fold`` from a state is the same
        pure function, so nothing is taken on trust). If the new entries do not chain
        onto our head (a hub move discarded entries), the whole log is fetched and folded
        again from the start."""
        kept = self._folded.get(forum)
        state: ForumState | None = kept[0] if kept else None
        entries = list(kept[1]) if kept else []
        _, new = self.entries(forum, from_seq=len(entries) + 1)
        try:
            state = fold(new, hub_key_at=self.keys, node_keys=self.keys, state=state)
        except ProtocolError:
            if not kept:
                raise
            _, new = self.entries(forum)
            entries = []
            state = fold(new, hub_key_at=self.keys, node_keys=self.keys)
        if state is None:
            raise MemberApiError("forum.unknown", f"{forum} has no entries")
        entries.extend(new)
        self._folded[forum] = (state, entries)
        open_epochs(self.profile, forum, new, self.agree_key)
        return state, entries

    def members(self, forum: str) -> list[dict[str, Any]]:
        state, _ = self.verified(forum)
        return [{"member": m.id, "org": m.org, "roles": sorted(m.roles)}
                for m in sorted(state.active(), key=lambda m: m.id)]  # fmt: skip

    # ------------------------------------------------------------------ events

    def _event(self, forum: str, type: str, epoch: int, body: Body) -> Event:
        """Sign an event; a callable body seals its parts under the event's own header."""
        ts, nonce = self.clock(), self.rng(16)
        header = {
            "v": 1, "forum": forum, "type": type, "author": self.member,
            "kid": self.sign_key.key_id, "ts": ts, "nonce": nonce, "epoch": epoch,
        }  # fmt: skip
        return build_event(
            forum=forum, type=type, author=self.member, device_key=self.sign_key, ts=ts,
            nonce=nonce, epoch=epoch, body=body(header) if callable(body) else body,
        )  # fmt: skip

    def submit(self, event: Event, attachment: bytes | None = None) -> dict[str, Any]:
        """Send a signed event (and a detached one's attachment); when our node forwarded
        it to another hub, wait (bounded) until the hub's entry for it is back here, so
        this member's next step sees its own write — a client duty run twice would
        otherwise act twice."""
        request = {"event": b64u(event.raw)}
        if attachment is not None:
            request["attachment"] = b64u(attachment)
        result = self.session.call("POST", f"/forums/{q(event.forum)}/events", request)
        if result.get("seq") is None:
            seq = self._await_event(event.forum, event.event_id)
            result = {**result, "seq": seq} if seq is not None else result
        return result

    def submit_many(
        self, events: Sequence[Event], attachments: Mapping[bytes, bytes] | None = None
    ) -> list[dict[str, Any]]:
        """Send signed events in list order, up to BATCH_EVENTS (and about BATCH_BYTES)
        per request, and answer each event's result as the node gave it, in order:
        ``{"event_id", "status", "seq"}`` or ``{"event_id"?, "error", "message"}``.
        ``attachments``: those of detached events, by event id. Unlike ``submit`` this
        does not wait for forwarded events' entries. A refused request raises
        ``MemberApiError`` with earlier batches sent: sending the same events again is
        safe, as the hub answers a repeat with the seq it already has."""
        found = attachments or {}
        out: list[dict[str, Any]] = []
        batch: list[dict[str, str]] = []
        size = 0
        for i, ev in enumerate(events):
            item = {"event": b64u(ev.raw)}
            if ev.event_id in found:
                item["attachment"] = b64u(found[ev.event_id])
            cost = len(item["event"]) + len(item.get("attachment", "")) + 40  # JSON framing
            full = len(batch) == BATCH_EVENTS or size + cost > BATCH_BYTES
            if batch and (full or ev.forum != events[i - 1].forum):  # one forum per request
                out += self._submit_batch(events[i - 1].forum, batch)
                batch, size = [], 0
            batch.append(item)
            size += cost
        if batch:
            out += self._submit_batch(events[-1].forum, batch)
        return out

    def _submit_batch(self, forum: str, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        answer = self.session.call("POST", f"/forums/{q(forum)}/events/batch", {"events": items})
        results = list(answer["results"])
        if len(results) != len(items):
            raise MemberApiError("api.internal", f"{len(results)} results for {len(items)} events")
        return results

    def _await_event(self, forum: str, event_id: bytes, timeout_s: float = 15.0) -> int | None:
        kept = self._folded.get(forum)
        from_seq = len(kept[1]) + 1 if kept else 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wait = max(1, min(5, int(deadline - time.monotonic())))
            page = self.session.call(
                "GET", f"/forums/{q(forum)}/entries?from={from_seq}&limit={PAGE}&wait={wait}",
                timeout_s=wait + 30,
            )  # fmt: skip
            for raw in page["entries"]:
                entry = Entry.from_bytes(unb64u(raw))
                if entry.signed_event.event_id == event_id:
                    return entry.seq
                from_seq = entry.seq + 1
            if page["gaps"]:
                time.sleep(0.05)
        return None

    def _secret(self, forum: str, epoch: int) -> bytes:
        secret = self.profile.epoch_secret(forum, epoch)
        if secret is None:
            raise MemberApiError("content.open_failed", f"no secret for epoch {epoch} of {forum}")
        return secret

    def _sealed(self, forum: str, epoch: int, content: dict[str, Value]) -> Any:
        secret = self._secret(forum, epoch)
        return lambda header: seal_map(secret, header, content, self.rng)

    # ------------------------------------------------------------------ forum operations

    def create_forum(self, name: str | None = None, charter: dict[str, Any] | None = None) -> str:
        """forum.create, epoch 1 sealed to our devices, then the charter and our pledge —
        the name and the charter only as sealed content."""
        forum = make_forum_id(self.rng(16), self.node)
        att = self.attestation(self.member)
        ev = self._event(forum, "forum.create", 0, lambda h: {"hub": self.node, "attestation": att})
        self.submit(ev)
        self._commit_epoch(forum, [])
        rules = charter if charter is not None else default_charter()
        self.content(forum, "charter", {"name": name or "", "charter": rules})
        self.content(forum, "pledge", {"pledge_hash": pledge_hash(rules)})
        return forum

    def view(self, forum: str) -> ForumView:
        """The forum as this member sees it (``view.fold_view`` over what we can open)."""
        _, entries = self.verified(forum)
        return self._view(forum, entries)

    def _view(self, forum: str, entries: list[Entry]) -> ForumView:
        items = [self._item(e) for e in entries]
        extra = [i.body["attestation"] for i in items if i.type == "motion" and i.body
                 and isinstance(i.body.get("attestation"), dict)]  # fmt: skip
        profiles = attested_profiles(entries, self.keys, extra)
        return fold_view(forum, self.member, items, profiles, self.clock())

    def _item(self, entry: Entry) -> Item:
        """An entry opened on this device; kept once everything in it opened (an entry
        never changes, and what did not open may open after the next epoch we fold)."""
        item = self._items.get(entry.hash)
        if item is None:
            attachment = self._attachments.get(entry.signed_event.event_id)
            item = entry_item(self.profile, entry, self.agree_key, attachment, self.clock())
            body = item.body
            if body is not None and all(v is not None for v in body.values()):
                self._items[entry.hash] = item
        return item

    def issue_invite(self, forum: str, candidate: str, envelope: dict[str, Value]) -> str:
        """member.invite with ``envelope`` sealed to the candidate's and members' devices."""
        state, entries = self.verified(forum)
        att = self.attestation(candidate)
        cand_keys = [d.agree for d in attested_devices_of(att)]
        keys = cand_keys + sealing_keys(roster_after(state, []),
                                        attested_devices(entries, self.keys))  # fmt: skip

        def body(h: dict[str, Any]) -> dict[str, Value]:
            sealed = seal_invitation(envelope, header=h, forum=forum, recipients=keys,
                                     rng=self.rng)  # fmt: skip
            return {"candidate": candidate, "attestation": att, "sealed": sealed}

        ev = self._event(forum, "member.invite", state.epoch, body)
        self.submit(ev)
        return b64u(ev.event_id)

    def invitation(self, forum: str) -> tuple[Event, dict[str, Value] | None]:
        """As the candidate: the open invitation's event and its envelope, opened here."""
        inv = next((i for i in self.invites() if i.get("forum") == forum), None)
        if inv is None:
            raise MemberApiError("rules.no_invitation", f"no open invitation to {forum}")
        if inv.get("entry"):
            ev = Entry.from_bytes(unb64u(inv["entry"])).signed_event
        else:  # our own node is the hub: the candidate may read the (sealed) log
            _, entries = self.entries(forum)
            wanted = unb64u(inv["invite"])
            found = [e.signed_event for e in entries if e.signed_event.event_id == wanted]
            if not found:
                raise MemberApiError("rules.no_invitation", f"invitation to {forum} not found")
            ev = found[0]
        sealed = ev.body.get("sealed")
        env = open_invitation(sealed, header=ev.header(), forum=forum, key=self.agree_key)
        return ev, env

    def accept(self, forum: str) -> dict[str, Any]:
        """As the candidate: accept, which signs the pledge the invitation carries.

        ``member.accept`` signs the invitation's event id; that id commits to the sealed
        envelope holding the charter and pledge, so the acceptance is the pledge
        signature. An invitation without a pledge we can read is refused here."""
        ev, env = self.invitation(forum)
        if env is None or not env.get("pledge") or not env.get("pledge_hash"):
            raise MemberApiError("client.no_pledge", "the invitation carries no pledge this "
                                 "device can read: ask the forum to invite you again")
        charter = env.get("charter")
        if not isinstance(charter, dict) or pledge_hash(charter) != env["pledge_hash"]:
            raise MemberApiError("client.no_pledge", "the pledge does not match the charter")
        accept = self._event(forum, "member.accept", ev.epoch, {"invite": ev.event_id})
        self.submit(accept)
        return {"event": b64u(accept.event_id), "invite": b64u(ev.event_id),
                "pledge": env["pledge"], "pledge_hash": b64u(bytes(env["pledge_hash"]))}

    def sync(self, forum: str) -> dict[str, Any]:
        """Client duties (``duties.py``): removals, epochs, invitations, amendments, pledge."""
        from .duties import run_duties

        return run_duties(self, forum)

    def _commit_epoch(self, forum: str, admit: list[str]) -> bool:
        """Commit a new epoch admitting ``admit``; False when another member was first."""
        state, entries = self.verified(forum)
        compare_reported(self.reported_state(forum), state)
        roster = roster_after(state, admit)
        ghosts = [g for g in self._view(forum, entries).ghosts() if g in roster]
        if ghosts:
            raise GhostMemberError(f"{', '.join(ghosts)} was admitted without a passing "
                                   "nomination: remove them before sealing an epoch")
        keys = sealing_keys(roster, attested_devices(entries, self.keys))
        secret, epoch = self.rng(32), state.epoch + 1
        sealed = seal_epoch(secret, forum=forum, epoch=epoch, recipients=keys)
        body: dict[str, Value] = {
            "epoch": epoch, "admit": list(admit), "secrets": [s.to_wire() for s in sealed]
        }  # fmt: skip
        ev = self._event(forum, "epoch.commit", state.epoch, body)
        try:
            result = self.submit(ev)
        except MemberApiError as exc:  # another member committed first: look again
            if exc.code in ("rules.stale_epoch", "rules.no_invitation"):
                return False
            raise
        self._await_seq(forum, result.get("seq") or state.seq + 1)
        self.verified(forum)  # opens the new secret from the log, not from our memory
        return True

    def _await_seq(self, forum: str, seq: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            page = self.session.call("GET", f"/forums/{q(forum)}/entries?from={seq}&limit=1&wait=5",
                                     timeout_s=40)  # fmt: skip
            if page["head"] >= seq:
                return

    def content(
        self, forum: str, type: str, content: dict[str, Value], expires: int | None = None,
        *, duties: bool = True,
    ) -> str:  # fmt: skip
        """Seal ``content`` as a ``type`` entry under the current epoch. With ``expires``
        (ms) it is sealed detached (protocol §6.9): the event names the ciphertext by hash
        and every node deletes the ciphertext when it is due, the entry staying.

        Pending duties run first (``duties=False`` from the duties themselves), so a
        post never goes out under an epoch a removed member still holds."""
        state, entries = self.verified(forum)
        ghosts = self._view(forum, entries).ghosts()
        pending = state.epoch_required or any(i.accepted for i in state.invitations.values())
        if duties and (pending or ghosts):
            self.sync(forum)
            state, entries = self.verified(forum)
            ghosts = self._view(forum, entries).ghosts()
        if state.epoch_required:  # never seal to an epoch a removed device may hold
            raise MemberApiError("rules.epoch_required", "a new epoch is due: run forum sync")
        if ghosts:  # the current epoch reaches someone nobody admitted: seal nothing to it
            raise GhostMemberError(f"{', '.join(ghosts)} was admitted without a passing "
                                   "nomination: run forum sync to remove them first")
        secret = self._secret(forum, state.epoch)

        attachment: list[bytes] = []

        def body(h: dict[str, Any]) -> dict[str, Value]:
            if expires is None:
                return {"ct": seal_map(secret, h, content, self.rng)}
            detached, data = seal_detached(secret, h, content, self.rng, expires)
            attachment.append(data)
            return detached

        ev = self._event(forum, type, state.epoch, body)
        self.submit(ev, attachment[0] if attachment else None)
        if attachment:  # our own, until the node serves it back
            self._attachments[ev.event_id] = attachment[0]
        return b64u(ev.event_id)

    def post(self, forum: str, text: str, reply_to: str | None = None) -> str:
        """A post, or with ``reply_to`` (an event id, or a unique prefix of 4+ characters
        of one readable here) a ``reply`` to it."""
        if reply_to is None:
            return self.content(forum, "post", {"text": text})
        ids = [p["event"] for p in self.view(forum).posts]
        found = [i for i in ids if i == reply_to] or [i for i in ids if i.startswith(reply_to)]
        if len(found) != 1 or len(reply_to) < 4:
            raise MemberApiError("client.unknown_ref", f"no single post matches {reply_to!r}")
        return self.content(forum, "reply", {"text": text, "to": found[0]})

    def read(
        self, forum: str, from_seq: int = 1, wait_seq: int | None = None, timeout_s: int = 0
    ) -> dict[str, Any]:
        """Decrypted entries from ``from_seq``; optionally wait until ``wait_seq`` exists."""
        if wait_seq is not None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                left = max(1, int(deadline - time.monotonic()))
                head, _ = self.entries(forum, from_seq=max(wait_seq, 1), wait_s=min(left, 30))
                if head >= wait_seq:
                    break
        state, entries = self.verified(forum)
        now = self.clock()
        out = [readable(self.profile, e, self.agree_key, self._attachments.get(
            e.signed_event.event_id), now) for e in entries if e.seq >= from_seq]  # fmt: skip
        return {"forum": forum, "head": state.seq, "epoch": state.epoch, "entries": out}

    def remove(self, forum: str, member: str, sealed: dict[str, Value]) -> str:
        """member.remove with its motion and reason sealed (duties carry out the vote)."""
        state, _ = self.verified(forum)
        seal = self._sealed(forum, state.epoch, sealed)
        ev = self._event(forum, "member.remove", state.epoch,
                         lambda h: {"subject": member, "sealed": seal(h)})  # fmt: skip
        self.submit(ev)
        return b64u(ev.event_id)

    def leave(self, forum: str) -> str:
        state, _ = self.verified(forum)
        ev = self._event(forum, "member.leave", state.epoch, lambda h: {})
        self.submit(ev)
        return b64u(ev.event_id)

    # ------------------------------------------------------------------ hub move

    def hub_move_statement(self, forum: str, new_hub: str) -> Any:
        from protocol.log import HubMoveStatement

        state, _ = self.verified(forum)
        return HubMoveStatement(forum, state.seq, state.head, state.hub, node_hub(new_hub))

    def sign_hub_move(self, statement: Any) -> Any:
        from protocol.log import sign_hub_move

        return sign_hub_move(statement, self.member, self.sign_key)

    def move_hub(self, forum: str, new_hub: str, certificate: Any) -> str:
        """Submit the hub.move carrying ``certificate`` (built with protocol.log.build_hub_move)."""
        if certificate.statement.new_hub != node_hub(new_hub):
            raise MemberApiError("hubmove.invalid", "the certificate names another hub")
        state, _ = self.verified(forum)
        ev = self._event(forum, "hub.move", state.epoch,
                         lambda h: {"certificate": certificate.to_wire()})  # fmt: skip
        self.submit(ev)
        return b64u(ev.event_id)

    def logout(self) -> None:
        self.session.logout()


def node_hub(hub: str) -> str:
    """A hub named by URL or by node name."""
    return node_name_of(hub) if "://" in hub else hub


__all__ = ["MemberClient", "ProtocolError", "key_id"]
