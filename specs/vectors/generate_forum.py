"""Write specs/vectors/forum-log.json and rules.json (specs/protocol.md §6 and §7).

Every key comes from a fixed seed SHA-256("PFP/1 test vector " + label); every time is a
fixed millisecond count; event nonces are SHA-256 of a label. Entries are produced by
protocol.log.append_entry and folded through protocol.rules.apply_entry while generating,
so every valid case is checked before it is written and every invalid case is checked to
fail with its error. ``Scene`` is also what the unit tests use to build forums.

Run: python specs/vectors/generate_forum.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from protocol.codec import decode, encode  # noqa: E402
from protocol.descriptor import Device, build_attestation  # noqa: E402
from protocol.errors import ProtocolError  # noqa: E402
from protocol.group import (  # noqa: E402
    SUITES,
    SealedContent,
    SealedSecret,
    attachment_ref,
    check_attachment,
    detach_content,
    seal_content,
)
from protocol.identity import make_forum_id  # noqa: E402
from protocol.keys import AgreementKey, SigningKey, VerifyKey, sign_object  # noqa: E402
from protocol.log import (  # noqa: E402
    ZERO_HASH,
    Entry,
    Event,
    append_entry,
    build_event,
)
from protocol.rules import ForumState, apply_entry  # noqa: E402

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODES = ("acme.example", "globex.example", "initech.example", "umbrella.example")
ORGS = {n: n.split(".")[0].capitalize() + " Corp" for n in NODES}


def seed(label: str) -> bytes:
    return hashlib.sha256(("PFP/1 test vector " + label).encode()).digest()


class Scene:
    """Fixed keys for nodes and member devices; builds events, attestations, entries."""

    def __init__(self, label: str = "forum") -> None:
        self.label = label
        self.node_key = {n: SigningKey(seed(f"node {n}")) for n in NODES}
        self.forum = make_forum_id(seed(f"{label} id")[:16], "acme.example")
        self._count = 0

    def sign_key(self, member: str, i: int = 0) -> SigningKey:
        return SigningKey(seed(f"device {member} {i} sign"))

    def agree_key(self, member: str, i: int = 0) -> AgreementKey:
        return AgreementKey(seed(f"device {member} {i} agree"))

    def device(self, member: str, i: int = 0) -> Device:
        return Device(self.sign_key(member, i).verify_key, self.agree_key(member, i).public)

    def agree_kid(self, member: str, i: int = 0) -> str:
        return self.agree_key(member, i).public.key_id

    def attestation(self, member: str, devices: Sequence[int] = (0,), ts: int = T0) -> Any:
        node = member.split(":", 1)[1]
        att = build_attestation(
            node=node, member=member, org=ORGS[node],
            devices=[self.device(member, i) for i in devices], ts=ts, key=self.node_key[node],
        )  # fmt: skip
        return att.to_wire()

    def lookup(self, node: str, kid: str, ts: int) -> VerifyKey | None:
        key = self.node_key.get(node)
        return key.verify_key if key is not None and key.key_id == kid else None

    def nonce(self) -> bytes:
        self._count += 1
        return seed(f"{self.label} nonce {self._count}")[:16]

    def event(
        self, type: str, author: str, body: dict[str, Any], *, epoch: int, ts: int, device: int = 0
    ) -> Event:
        return build_event(
            forum=self.forum, type=type, author=author, device_key=self.sign_key(author, device),
            ts=ts, nonce=self.nonce(), epoch=epoch, body=body,
        )  # fmt: skip

    def content(
        self, type: str, author: str, text: str, *, epoch: int, ts: int, device: int = 0
    ) -> Event:
        """A content event sealed (AES-GCM) under this scene's secret for ``epoch``."""
        key = self.sign_key(author, device)
        nonce = self.nonce()
        header = {"v": 1, "forum": self.forum, "type": type, "author": author,
                  "kid": key.key_id, "ts": ts, "nonce": nonce, "epoch": epoch}  # fmt: skip
        sealed = seal_content(
            seed(f"{self.label} epoch {epoch} secret"), header=header,
            plaintext=encode({"text": text}), nonce=seed(f"{self.label} ct {ts}")[:12],
        )  # fmt: skip
        return build_event(
            forum=self.forum, type=type, author=author, device_key=key, ts=ts, nonce=nonce,
            epoch=epoch, body={"ct": sealed.to_wire()},
        )  # fmt: skip

    def detached(
        self, type: str, author: str, text: str, *, epoch: int, ts: int, expires: int
    ) -> tuple[Event, bytes]:
        """A detached content event (§6.9) and its attachment: sealed as ``content`` seals,
        the event carrying only ``{ct_ref, expires}``."""
        key = self.sign_key(author)
        nonce = self.nonce()
        header = {"v": 1, "forum": self.forum, "type": type, "author": author,
                  "kid": key.key_id, "ts": ts, "nonce": nonce, "epoch": epoch}  # fmt: skip
        sealed = seal_content(
            seed(f"{self.label} epoch {epoch} secret"), header=header,
            plaintext=encode({"text": text}), nonce=seed(f"{self.label} ct {ts}")[:12],
        )  # fmt: skip
        body, attachment = detach_content(sealed, expires=expires)
        event = build_event(
            forum=self.forum, type=type, author=author, device_key=key, ts=ts, nonce=nonce,
            epoch=epoch, body=body,
        )  # fmt: skip
        return event, attachment

    def secrets(self, epoch: int, agree_kids: Sequence[str]) -> list[Any]:
        """Placeholder sealed secrets of the right size: the rules check who, not what."""
        size = SUITES[1].sealed_secret_bytes
        out = []
        for kid in sorted(agree_kids):
            enc = (seed(f"{self.label} epoch {epoch} to {kid}") * 3)[:size]
            out.append(SealedSecret(suite=1, to=kid, enc=enc).to_wire())
        return out


class Chain:
    """A forum log being built: appends entries and folds them as it goes."""

    def __init__(
        self, scene: Scene, entries: Sequence[Entry] = (), state: ForumState | None = None
    ) -> None:
        self.scene = scene
        self.entries = list(entries)
        self.state = state

    @property
    def head(self) -> bytes:
        return self.entries[-1].hash if self.entries else ZERO_HASH

    def seal(self, event: Event, *, ts: int, hub: str | None = None, key: SigningKey | None = None,
             seq: int | None = None, prev: bytes | None = None) -> Entry:  # fmt: skip
        """Sequence ``event`` without applying it (for invalid cases, override anything)."""
        hub = hub or (self.state.hub if self.state else "acme.example")
        return append_entry(
            self.head if prev is None else prev, len(self.entries) + 1 if seq is None else seq,
            event.raw, key or self.scene.node_key[hub], hub, ts,
        )  # fmt: skip

    def add(self, event: Event, *, ts: int, hub: str | None = None) -> Entry:
        entry = self.seal(event, ts=ts, hub=hub)
        self.apply(entry)
        return entry

    def apply(self, entry: Entry) -> ForumState:
        self.state = apply_entry(
            self.state, entry, hub_key_at=self.scene.lookup, node_keys=self.scene.lookup
        )
        self.entries.append(entry)
        return self.state

    def copy(self) -> Chain:
        return Chain(self.scene, self.entries, self.state)


# ---------------------------------------------------------------------------- histories

A, B, C, D = (
    "@alice:acme.example",
    "@bob:globex.example",
    "@carol:initech.example",
    "@dave:umbrella.example",
)
E = "@eve:initech.example"


def history(scene: Scene) -> tuple[Chain, dict[str, int]]:
    """A forum's life: creation, three admissions, roles, a new device, a removal, a leave,
    a hub move. Returns the chain and the length of the chain after each named step."""
    ch, marks, t = Chain(scene), {}, T0
    k = scene.agree_kid

    def step(name: str, ev: Event, hub: str | None = None) -> None:
        nonlocal t
        t += 60_000
        ch.add(ev, ts=t, hub=hub)
        marks[name] = len(ch.entries)

    def ev(type: str, author: str, body: dict[str, Any], epoch: int) -> Event:
        return scene.event(type, author, body, epoch=epoch, ts=t)

    def commit(author: str, n: int, admit: list[str], kids: list[str]) -> Event:
        body = {"epoch": n, "admit": admit, "secrets": scene.secrets(n, kids)}
        return ev("epoch.commit", author, body, n - 1)

    def invite(author: str, candidate: str, epoch: int) -> Event:
        body = {"candidate": candidate, "attestation": scene.attestation(candidate)}
        return ev("member.invite", author, body, epoch)

    def accept(candidate: str, epoch: int) -> Event:
        return ev("member.accept", candidate, {"invite": last_id()}, epoch)

    def last_id() -> bytes:
        return ch.entries[-1].signed_event.event_id

    say = scene.content
    step(
        "create",
        ev("forum.create", A, {"hub": "acme.example", "attestation": scene.attestation(A)}, 0),
    )
    step("epoch1", commit(A, 1, [], [k(A)]))
    step("post1", say("post", A, "Welcome to the forum.", epoch=1, ts=t))
    step("invite_b", invite(A, B, 1))
    step("accept_b", accept(B, 0))  # a candidate need not know the epoch
    step("epoch2", commit(A, 2, [B], [k(A), k(B)]))
    step("invite_c", invite(B, C, 2))
    step("accept_c", accept(C, 0))
    step("invite_d", invite(A, D, 2))
    step("accept_d", accept(D, 2))
    step("epoch3", commit(B, 3, [C, D], [k(A), k(B), k(C), k(D)]))
    step("post3", say("dilemma", C, "Should we enter the Nordic market?", epoch=3, ts=t))
    step("roles", ev("role.assign", A, {"member": B, "roles": ["timekeeper"]}, 3))
    step("device_b", ev("device.add", B, {"attestation": scene.attestation(B, (0, 1), ts=t)}, 3))
    step("epoch4", commit(B, 4, [], [k(A), k(B), k(B, 1), k(C), k(D)]))
    step("remove_c", ev("member.remove", A, {"subject": C}, 4))
    step("epoch5", commit(A, 5, [], [k(A), k(B), k(B, 1), k(D)]))
    step("leave_d", ev("member.leave", D, {}, 5))
    step("epoch6", commit(B, 6, [], [k(A), k(B), k(B, 1)]))
    step(
        "reply6",
        scene.content("reply", B, "Talk to the Oslo chamber first.", epoch=6, ts=t, device=1),
    )
    cert = hub_move(scene, ch, "globex.example", [(A, 0), (B, 1)])
    step(
        "hub_move",
        scene.event("hub.move", A, {"certificate": cert}, epoch=6, ts=t),
        hub="globex.example",
    )
    step("post7", scene.content("post", A, "We have moved to the Globex hub.", epoch=6, ts=t))
    return ch, marks


def hub_move(scene: Scene, ch: Chain, new_hub: str, signers: Sequence[tuple[str, int]]) -> Any:
    from protocol.hubmove import HubMoveStatement, build_hub_move, sign_hub_move

    assert ch.state is not None
    st = HubMoveStatement(ch.scene.forum, ch.state.seq, ch.state.head, ch.state.hub, new_hub)
    sigs = [sign_hub_move(st, m, scene.sign_key(m, i)) for m, i in signers]
    return build_hub_move(st, sigs).to_wire()


def must_fail(fn: Callable[[], object], error: str, desc: str) -> None:
    try:
        fn()
    except ProtocolError as exc:
        if exc.code != error:
            raise AssertionError(f"{desc}: expected {error}, got {exc.code}: {exc}") from exc
        return
    raise AssertionError(f"{desc}: expected {error}, but it was accepted")


# ---------------------------------------------------------------------------- rules.json


def rules_vectors() -> dict[str, Any]:
    scene = Scene()
    ch, marks = history(scene)
    assert ch.state is not None
    k = scene.agree_kid
    invalid: list[dict[str, Any]] = []

    def case(desc: str, error: str, after: str, make: Callable[[Chain], list[Entry]]) -> None:
        n = marks[after]
        base = Chain(scene, ch.entries[:n])
        base.state = None
        for e in ch.entries[:n]:
            base.state = apply_entry(base.state, e, hub_key_at=scene.lookup, node_keys=scene.lookup)
        extra = make(base)
        for e in extra[:-1]:
            base.apply(e)
        must_fail(lambda: base.apply(extra[-1]), error, desc)
        invalid.append(
            {"desc": desc, "error": error, "prefix": n, "extra": [e.raw.hex() for e in extra]}
        )

    ts = T0 + 10_000_000

    def post(author: str, epoch: int, device: int = 0) -> Callable[[Chain], list[Entry]]:
        return lambda b: [
            b.seal(scene.content("post", author, "x", epoch=epoch, ts=ts, device=device), ts=ts)
        ]

    case(
        "broken chain: prev is not the hash of entry 3",
        "entry.broken_chain",
        "post1",
        lambda b: [
            b.seal(scene.content("post", A, "x", epoch=1, ts=ts), ts=ts, prev=seed("wrong")[:32])
        ],
    )
    case(
        "wrong seq: entry 5 follows entry 3",
        "entry.bad_seq",
        "post1",
        lambda b: [b.seal(scene.content("post", A, "x", epoch=1, ts=ts), ts=ts, seq=5)],
    )
    case(
        "wrong hub key: names the hub and its kid but is signed by another node's key",
        "sig.invalid",
        "post1",
        lambda b: [_forge(b.seal(scene.content("post", A, "x", epoch=1, ts=ts), ts=ts), scene)],
    )
    case(
        "entry signed by a node that is not the hub",
        "entry.wrong_hub",
        "post1",
        lambda b: [
            b.seal(scene.content("post", A, "x", epoch=1, ts=ts), ts=ts, hub="umbrella.example")
        ],
    )
    case("a removed member's event", "rules.removed_member", "epoch5", post(C, 5))
    case("a left member's event", "rules.removed_member", "epoch6", post(D, 6))
    case(
        "an event signed by a device not registered for its author",
        "rules.unknown_device",
        "post1",
        post(A, 1, device=7),
    )
    case("an event by someone who is no member", "rules.not_member", "post1", post(E, 1))
    case(
        "stale epoch: a post naming epoch 1 after epoch 2 was committed",
        "rules.stale_epoch",
        "epoch2",
        post(B, 1),
    )
    case(
        "content while epoch_required (after a removal, before the new epoch)",
        "rules.epoch_required",
        "remove_c",
        post(A, 4),
    )

    def commit(n: int, admit: list[str], kids: list[str]) -> Callable[[Chain], list[Entry]]:
        body = {"epoch": n, "admit": admit, "secrets": scene.secrets(n, kids)}
        return lambda b: [b.seal(scene.event("epoch.commit", A, body, epoch=n - 1, ts=ts), ts=ts)]

    def move(signers: list[tuple[str, int]], epoch: int) -> Callable[[Chain], list[Entry]]:
        def make(b: Chain) -> list[Entry]:
            body = {"certificate": hub_move(scene, b, "globex.example", signers)}
            event = scene.event("hub.move", A, body, epoch=epoch, ts=ts)
            return [b.seal(event, ts=ts, hub="globex.example")]

        return make

    def one(
        author: str, type: str, body: dict[str, Any], epoch: int
    ) -> Callable[[Chain], list[Entry]]:
        return lambda b: [b.seal(scene.event(type, author, body, epoch=epoch, ts=ts), ts=ts)]

    mismatch = "epoch.recipients_mismatch"
    case("epoch recipients miss one active device (bob's second)", mismatch, "remove_c",
         commit(5, [], [k(A), k(B), k(D)]))  # fmt: skip
    case("epoch recipients include one extra device (the removed carol's)", mismatch, "remove_c",
         commit(5, [], [k(A), k(B), k(B, 1), k(C), k(D)]))  # fmt: skip
    case("hub move signed by 2 of 4 active members (no strict majority)", "hubmove.no_quorum",
         "post3", move([(A, 0), (B, 0)], 3))  # fmt: skip
    case(
        "an event type not in the rule table",
        "rules.unknown_type",
        "post1",
        lambda b: [b.seal(scene.event("forum.rename", A, {}, epoch=1, ts=ts), ts=ts)],
    )
    case("role.assign by a member who is not a moderator", "rules.not_permitted", "epoch3",
         one(B, "role.assign", {"member": B, "roles": ["moderator"]}, 3))  # fmt: skip
    case("member.accept with no invitation", "rules.no_invitation", "post1",
         one(E, "member.accept", {"invite": bytes(32)}, 1))  # fmt: skip
    case("epoch.commit admitting a candidate who has not accepted", "rules.no_invitation",
         "invite_b", commit(2, [B], [k(A), k(B)]))  # fmt: skip
    reinvite = {"candidate": B, "attestation": scene.attestation(B)}
    case("member.invite of an active member", "rules.already_member", "epoch2",
         one(A, "member.invite", reinvite, 2))  # fmt: skip

    detached = detached_vectors(scene, ch)  # last: its nonces follow every case above
    return {
        "source": "Generated by specs/vectors/generate_forum.py from fixed seeds "
        "SHA-256('PFP/1 test vector ' + label) and fixed times; each entry was built by "
        "protocol.log.append_entry and folded by protocol.rules.apply_entry. 'history' is one "
        "forum's life; its entries folded from nothing give 'state' (ForumState.to_wire, bytes "
        "as hex). Each invalid case: fold the first 'prefix' history entries, then the 'extra' "
        "entries; all but the last apply, the last fails with 'error'. Node keys: 'nodes' "
        "(any ts). Sealed secrets are placeholder bytes of the right size; content is real "
        "AES-GCM under the secret SHA-256('PFP/1 test vector forum epoch N secret').",
        "nodes": {
            n: {"kid": key.key_id, "key": key.verify_key.raw.hex()}
            for n, key in scene.node_key.items()
        },
        "forum": scene.forum,
        "history": {
            "marks": marks,
            "entries": [e.raw.hex() for e in ch.entries],
            "state": _hex(ch.state.to_wire()),
        },
        "invalid": invalid,
        "detached": detached,
    }


def detached_vectors(scene: Scene, ch: Chain) -> dict[str, Any]:
    """§6.9: a detached update after the whole history, bodies the rule table refuses, and
    attachments the hub refuses (check_attachment)."""
    ts = T0 + 20_000_000
    expires = ts + 30 * 86_400_000
    update, attachment = scene.detached("update", A, "Q3 was hard.", epoch=6, ts=ts,
                                        expires=expires)  # fmt: skip
    good = ch.copy()
    entry = good.add(update, ts=ts)
    check_attachment(update.body, attachment)
    sealed = SealedContent.from_wire(decode(attachment))
    assert attachment_ref(attachment) == update.body["ct_ref"]

    invalid: list[dict[str, Any]] = []
    ct = sealed.to_wire()
    ref = update.body["ct_ref"]
    for desc, body in (
        ("expires without ct_ref (an inline body cannot expire)", {"ct": ct, "expires": expires}),
        ("expires alone", {"expires": expires}),
        ("ct_ref without expires", {"ct_ref": ref}),
        ("ct together with ct_ref", {"ct": ct, "ct_ref": ref, "expires": expires}),
        ("ct_ref of 31 bytes", {"ct_ref": ref[:31], "expires": expires}),
        ("ct_ref as str", {"ct_ref": ref.hex(), "expires": expires}),
        ("negative expires", {"ct_ref": ref, "expires": -1}),
    ):
        extra = ch.copy().seal(scene.event("update", A, body, epoch=6, ts=ts), ts=ts)
        must_fail(lambda e=extra: ch.copy().apply(e), "rules.bad_body", desc)
        invalid.append({"desc": desc, "error": "rules.bad_body", "entry": extra.raw.hex()})

    other, other_att = scene.detached("update", B, "Hiring.", epoch=6, ts=ts + 1, expires=expires)
    garbage = encode({"suite": 1, "nonce": bytes(12)})  # canonical, but no ct
    bad_ref = scene.event("update", A, {"ct_ref": attachment_ref(garbage), "expires": expires},
                          epoch=6, ts=ts)  # fmt: skip
    inline = scene.content("update", A, "inline", epoch=6, ts=ts)
    attachments: list[dict[str, Any]] = []
    for desc, error, ev, att in (
        ("no attachment for a detached event", "content.attachment_mismatch", update, None),
        ("another event's attachment", "content.attachment_mismatch", update, other_att),
        ("an attachment for an inline event", "content.attachment_mismatch", inline, attachment),
        ("hashes to ct_ref but is no SealedContent", "content.attachment_mismatch", bad_ref,
         garbage),
        ("an attachment over 64 KiB", "event.too_large", update, bytes(65_537)),
    ):  # fmt: skip
        must_fail(lambda ev=ev, att=att: check_attachment(ev.body, att), error, desc)
        attachments.append({"desc": desc, "error": error, "event": ev.raw.hex(),
                            "attachment": None if att is None else att.hex()})  # fmt: skip
    assert other.body["ct_ref"] == attachment_ref(other_att)
    return {
        "desc": "After the whole history: 'valid' applies; its attachment hashes to the "
        "event's ct_ref and opens (§8.6, the event's header as AAD) under the epoch 6 secret "
        "to 'plaintext'. Each 'invalid' entry, applied after the history instead, fails "
        "with 'error'. Each 'attachments' case fails check_attachment(event body, attachment).",
        "prefix": len(ch.entries),
        "valid": {
            "entry": entry.raw.hex(),
            "attachment": attachment.hex(),
            "ct_ref": ref.hex(),
            "expires": expires,
            "epoch_secret": seed(f"{scene.label} epoch 6 secret").hex(),
            "plaintext": encode({"text": "Q3 was hard."}).hex(),
        },
        "invalid": invalid,
        "attachments": attachments,
    }


def _forge(entry: Entry, scene: Scene) -> Entry:
    """Re-sign ``entry`` with another node's key while keeping the hub's kid."""
    wire = entry.to_wire()
    del wire["sig"]
    signed = sign_object("entry", wire, scene.node_key["umbrella.example"])
    return Entry.from_wire(signed)


def _hex(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _hex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_hex(x) for x in v]
    return v


# ---------------------------------------------------------------------------- forum-log.json


def log_vectors() -> dict[str, Any]:
    from protocol.hubmove import HubMoveCertificate, verify_hub_move
    from protocol.log import (
        build_head,
        cosign_head,
        make_equivocation_proof,
        verify_entry,
        verify_equivocation,
    )

    scene = Scene()
    ch, marks = history(scene)
    acme, globex = scene.node_key["acme.example"], scene.node_key["globex.example"]
    e1, e2, e3 = ch.entries[:3]
    ts = T0 + 20_000_000
    head = build_head(scene.forum, 3, e3.hash, acme, "acme.example", ts)
    cosig = cosign_head(head, globex, "globex.example", ts + 1000)

    # the hub forks at seq 4: two different entries, and a head naming a third hash
    fork = Chain(scene, ch.entries[:3])
    fork_a = fork.seal(scene.content("post", A, "version A", epoch=1, ts=ts), ts=ts)
    fork_b = fork.seal(scene.content("post", A, "version B", epoch=1, ts=ts), ts=ts)
    fork_head = build_head(scene.forum, 4, fork_b.hash, acme, "acme.example", ts)
    proof = make_equivocation_proof(fork_a, fork_b, acme.verify_key)
    proof_head = make_equivocation_proof(fork_a, fork_head, acme.verify_key)

    move = ch.entries[marks["hub_move"] - 1].signed_event.body["certificate"]
    before_move = Chain(scene, ch.entries[: marks["hub_move"] - 1])
    before_move.state = None
    for e in before_move.entries:
        before_move.state = apply_entry(
            before_move.state, e, hub_key_at=scene.lookup, node_keys=scene.lookup
        )
    assert before_move.state is not None
    roster = before_move.state.roster()
    verify_hub_move(HubMoveCertificate.from_wire(move), roster)

    invalid: list[dict[str, Any]] = []

    def bad_entry(
        desc: str, error: str, entry: Entry, key: VerifyKey, seq: int, prev: bytes
    ) -> None:
        must_fail(lambda: verify_entry(entry, key, seq=seq, prev=prev), error, desc)
        invalid.append({"desc": desc, "error": error, "kind": "entry", "entry": entry.raw.hex(),
                        "hub_key": key.raw.hex(), "seq": seq, "prev": prev.hex()})  # fmt: skip

    bad_entry(
        "broken chain: entry 3 checked against another prev",
        "entry.broken_chain",
        e3,
        acme.verify_key,
        3,
        e1.hash,
    )
    bad_entry(
        "wrong seq: entry 3 where 2 is expected", "entry.bad_seq", e3, acme.verify_key, 2, e2.hash
    )
    bad_entry(
        "wrong hub key: entry signed with another key under the hub's kid",
        "sig.invalid",
        _forge(e3, scene),
        acme.verify_key,
        3,
        e2.hash,
    )

    def bad_proof(desc: str, items: list[tuple[str, bytes]], seq: int, key: VerifyKey) -> None:
        from protocol.log import EquivocationProof

        p = EquivocationProof(scene.forum, seq, "acme.example", key.raw, (items[0], items[1]))
        must_fail(lambda: verify_equivocation(p, acme.verify_key), "equivocation.invalid", desc)
        proof_hex, key_hex = encode(p.to_wire()).hex(), acme.verify_key.raw.hex()
        invalid.append({"desc": desc, "error": "equivocation.invalid", "kind": "equivocation",
                        "proof": proof_hex, "hub_key": key_hex})  # fmt: skip

    ent = "entry"
    bad_proof(
        "not an equivocation: the same entry twice",
        [(ent, fork_a.raw), (ent, fork_a.raw)],
        4,
        acme.verify_key,
    )
    bad_proof(
        "not an equivocation: entry and head agree on the hash",
        [(ent, fork_b.raw), ("head", encode(fork_head.to_wire()))],
        4,
        acme.verify_key,
    )
    bad_proof(
        "not an equivocation: different seqs",
        [(ent, e3.raw), (ent, fork_a.raw)],
        4,
        acme.verify_key,
    )
    bad_proof(
        "not an equivocation: one item's signature is not the hub's",
        [(ent, fork_a.raw), (ent, _forge(fork_b, scene).raw)],
        4,
        acme.verify_key,
    )
    bad_proof(
        "proof carries a key other than the hub's",
        [(ent, fork_a.raw), (ent, fork_b.raw)],
        4,
        globex.verify_key,
    )

    def bad_move(desc: str, error: str, cert: Any) -> None:
        must_fail(lambda: verify_hub_move(HubMoveCertificate.from_wire(cert), roster), error, desc)
        invalid.append(
            {"desc": desc, "error": error, "kind": "hub_move", "certificate": encode(cert).hex()}
        )

    half = hub_move(scene, before_move, "globex.example", [(A, 0)])
    bad_move(
        "1 of 2 active members signed (a tie is no strict majority)", "hubmove.no_quorum", half
    )
    twice = dict(move, sigs=[move["sigs"][0], move["sigs"][0]])
    bad_move("the same member signed twice", "hubmove.invalid", twice)
    forged = dict(move, new_hub="umbrella.example")
    bad_move("signatures over another new hub", "hubmove.invalid", forged)
    outsider = hub_move(scene, before_move, "globex.example", [(A, 0), (B, 0), (C, 0)])
    bad_move("a removed member's signature", "hubmove.invalid", outsider)

    def rows(r: Any) -> Any:
        return {m: {k: v.raw.hex() for k, v in devs.items()} for m, devs in r.items()}

    return {
        "source": "Generated by specs/vectors/generate_forum.py (fixed seeds SHA-256('PFP/1 "
        "test vector ' + label), fixed times). Objects are canonical msgpack as hex. The entries "
        "are the first three of rules.json's history; the forks are two different entries the "
        "acme.example hub signed for seq 4. Each invalid case fails with 'error': kind 'entry' "
        "via verify_entry(entry, hub_key, seq, prev); 'equivocation' via verify_equivocation("
        "proof, hub_key); 'hub_move' via verify_hub_move(certificate, roster).",
        "nodes": {
            n: {"kid": key.key_id, "key": key.verify_key.raw.hex()}
            for n, key in scene.node_key.items()
        },
        "forum": scene.forum,
        "event": {
            "desc": "alice's first post (content sealed under epoch 1)",
            "device_key": scene.sign_key(A).verify_key.raw.hex(),
            "device_seed_label": f"device {A} 0 sign",
            "encoded": e3.event.hex(),
            "event_id": e3.signed_event.event_id.hex(),
        },
        "entries": [{"encoded": e.raw.hex(), "hash": e.hash.hex()} for e in (e1, e2, e3)],
        "hub_key": acme.verify_key.raw.hex(),
        "head": {"encoded": encode(head.to_wire()).hex(), "hub_key": acme.verify_key.raw.hex()},
        "cosignature": {
            "encoded": encode(cosig.to_wire()).hex(),
            "node_key": globex.verify_key.raw.hex(),
        },
        "equivocation": [
            {"desc": "two entries for seq 4", "proof": encode(proof.to_wire()).hex()},
            {"desc": "an entry and a head for seq 4", "proof": encode(proof_head.to_wire()).hex()},
        ],
        "hub_move": {"certificate": encode(move).hex(), "roster": rows(roster)},
        "invalid": invalid,
    }


if __name__ == "__main__":
    for name, data in (("rules.json", rules_vectors()), ("forum-log.json", log_vectors())):
        (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print("wrote", HERE / name)
