"""Node-enforced forum rules as one pure fold (PFP/1 §7).

Normative text: specs/protocol.md §7. ``apply_entry(state, entry)`` is the only
way a forum's state changes: every node folds the same entries through it and so holds
the same state. ``RULES`` is the rule table — which event types exist, who may submit
each, and what each does; a type not in the table is ``rules.unknown_type``.

States are immutable and share what they do not change: a content entry costs one small
object (new ``seq`` and ``head``), never a copy of the roster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final, TypeVar

from .descriptor import Attestation, Device, KeySet, verify_attestation
from .errors import RemoteProtocolError
from .group import REF_BYTES, SealedContent, SealedSecret, check_recipients
from .hubmove import HubMoveCertificate, verify_hub_move
from .identity import forum_origin, node_of, parse_member_id
from .keys import VerifyKey
from .log import (
    ZERO_HASH,
    Entry,
    EquivocationProof,
    Event,
    verify_entry,
    verify_equivocation,
    verify_event,
)
from .schema import check_fields, field, non_negative

T = TypeVar("T")
KeyLookup = Callable[[str, str, int], VerifyKey | None]
"""``(node name, kid, ts) -> key`` valid for that node at ``ts``, or None if unknown.

It may raise ``sig.key_expired`` itself (see ``protocol.descriptor.key_valid_at``)."""

ACTIVE: Final = "active"
REMOVED: Final = "removed"
LEFT: Final = "left"
ROLES: Final = frozenset({"moderator", "moderator-elect", "timekeeper"})
CONTENT_TYPES: Final = (
    *("post", "reply", "update", "dilemma", "response", "rating", "motion", "vote"),
    *("meeting", "agenda", "rsvp", "attendance", "commitment", "checkin", "resource"),
    *("parking", "survey", "charter", "pledge", "intake", "waiver", "notice"),
)


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Member:
    id: str
    status: str  # ACTIVE | REMOVED | LEFT
    roles: frozenset[str]
    org: str
    devices: Mapping[str, Device]  # device id (key_id of its signing key) -> Device


@dataclass(frozen=True)
class Invitation:
    candidate: str
    invite: bytes  # event id of the member.invite
    org: str
    devices: Mapping[str, Device]  # attested devices; the accept must use one of them
    accepted: bool


@dataclass(frozen=True)
class ForumState:
    forum: str
    hub: str
    seq: int  # seq of the last applied entry (0 before any)
    head: bytes  # its entry hash (32 zero bytes before any)
    epoch: int
    epoch_required: bool  # membership or devices changed since the last epoch.commit
    frozen: bool  # the hub was proven to equivocate; only hub.move is accepted
    members: Mapping[str, Member]
    invitations: Mapping[str, Invitation]

    def active(self) -> Iterable[Member]:
        return (m for m in self.members.values() if m.status == ACTIVE)

    def roster(self) -> dict[str, dict[str, VerifyKey]]:
        """Active members' device signing keys: ``{member: {device id: key}}``."""
        return {m.id: {k: d.sign for k, d in m.devices.items()} for m in self.active()}

    def recipients(self) -> set[str]:
        """Key ids of every active device's X25519 key: who an epoch must be sealed to."""
        return {d.agree.key_id for m in self.active() for d in m.devices.values()}

    def to_wire(self) -> dict[str, Any]:
        """A canonical summary (vectors, snapshots, comparing replicas)."""
        return {
            "forum": self.forum, "hub": self.hub, "seq": self.seq, "head": self.head,
            "epoch": self.epoch, "epoch_required": self.epoch_required, "frozen": self.frozen,
            "members": {
                m.id: {"status": m.status, "roles": sorted(m.roles), "org": m.org,
                       "devices": _devices_wire(m.devices)}
                for m in self.members.values()
            },
            "invitations": {
                i.candidate: {"invite": i.invite, "org": i.org, "accepted": i.accepted,
                              "devices": _devices_wire(i.devices)}
                for i in self.invitations.values()
            },
        }  # fmt: skip


def _devices_wire(devices: Mapping[str, Device]) -> dict[str, Any]:
    return {k: d.to_wire() for k, d in devices.items()}


def _frozen_map(d: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(d)


def freeze(state: ForumState, proof: EquivocationProof, hub_key: VerifyKey) -> ForumState:
    """The state after a proof that the current hub equivocated (``equivocation.invalid``)."""
    if (proof.forum, proof.hub) != (state.forum, state.hub):
        raise RemoteProtocolError("equivocation.invalid", "proof is not against this forum's hub")
    verify_equivocation(proof, hub_key)
    return replace(state, frozen=True)


# ---------------------------------------------------------------------------- the rule table


@dataclass(frozen=True)
class Context:
    """What a rule sees: the state before, the event, its body, and key lookups."""

    state: ForumState
    event: Event
    body: dict[str, Any]
    node_keys: KeyLookup


Effect = Callable[[Context], ForumState]


@dataclass(frozen=True)
class Rule:
    who: str  # "creator" | "candidate" | "member" | "moderator"
    required: tuple[str, ...]  # body fields
    optional: tuple[str, ...]
    effect: Effect
    content: bool = False  # refused while epoch_required
    # Other (required, optional) body shapes taken instead of the first: content is sealed
    # inline {ct} or detached {ct_ref, expires} (§6.9), and never a mix of the two.
    alternatives: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()

    def check_body(self, body: Any, what: str) -> None:
        """Step R4: ``body`` fits one of the rule's shapes (the caller makes any miss bad_body)."""
        if not self.alternatives:
            check_fields(body, self.required, self.optional, what)
            return
        shapes = ((self.required, self.optional), *self.alternatives)
        for required, optional in shapes:
            if isinstance(body, dict) and set(required) <= body.keys() <= {*required, *optional}:
                return
        fits = " or ".join("{" + ", ".join(r) + "}" for r, _ in shapes)
        raise RemoteProtocolError("schema.unknown_field", f"{what} body must be {fits}")


def _bad_body(what: str) -> RemoteProtocolError:
    return RemoteProtocolError("rules.bad_body", what)


def _in_body(check: Callable[..., T], *args: Any) -> T:
    """Run a schema check on an event body: whatever it finds is ``rules.bad_body``."""
    try:
        return check(*args)
    except RemoteProtocolError as exc:
        raise _bad_body(exc.message) from exc


def _body_field(body: dict[str, Any], name: str, typ: type[Any], ev: Event) -> Any:
    return _in_body(field, body, name, typ, ev.type)


def _member_id(body: dict[str, Any], name: str, ev: Event) -> str:
    value = _body_field(body, name, str, ev)
    try:
        parse_member_id(value)
    except RemoteProtocolError as exc:
        raise _bad_body(f"{ev.type}.{name}: {exc.message}") from exc
    return str(value)


def _attested(obj: Any, member: str, node_keys: KeyLookup) -> Attestation:
    """Verify an attestation of ``member`` by its home node (``attestation.invalid``)."""
    try:
        att = Attestation.from_wire(obj)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError("attestation.invalid", exc.message) from exc
    if att.member != member:
        raise RemoteProtocolError("attestation.invalid", f"attests {att.member}, not {member}")
    key = node_keys(att.node, att.kid, att.ts)
    if key is None:
        raise RemoteProtocolError("sig.unknown_key", f"no key {att.kid} for {att.node}")
    return verify_attestation(obj, expected_node=node_of(member), keys=KeySet((key,)))


def _device_map(att: Attestation) -> Mapping[str, Device]:
    return _frozen_map({d.device_id: d for d in att.devices})


def _with_member(s: ForumState, m: Member, **changes: Any) -> ForumState:
    members = dict(s.members)
    members[m.id] = m
    return replace(s, members=_frozen_map(members), **changes)


def _sealed(ctx: Context) -> None:
    if "sealed" in ctx.body:
        _content(ctx.body["sealed"])


def _content(obj: Any) -> SealedContent:
    return _sealed_part(SealedContent.from_wire, obj)


def _sealed_part(read: Callable[[Any], T], obj: Any) -> T:
    """A malformed sealed object is ``rules.bad_body``; an unknown suite keeps its code."""
    try:
        return read(obj)
    except RemoteProtocolError as exc:
        if exc.code == "epoch.unknown_suite":
            raise
        raise _bad_body(exc.message) from exc


def create_forum(ctx: Context) -> ForumState:
    ev = ctx.event
    hub = _body_field(ctx.body, "hub", str, ev)
    if hub != forum_origin(ev.forum):
        raise _bad_body("forum.create hub must be the node named in the forum id")
    att = _attested(ctx.body["attestation"], ev.author, ctx.node_keys)
    devices = _device_map(att)
    founder = Member(ev.author, ACTIVE, frozenset({"moderator"}), att.org, devices)
    return ForumState(
        forum=ev.forum, hub=hub, seq=0, head=ZERO_HASH, epoch=0, epoch_required=True,
        frozen=False, members=_frozen_map({ev.author: founder}), invitations=_frozen_map({}),
    )  # fmt: skip


def invite_member(ctx: Context) -> ForumState:
    s, ev = ctx.state, ctx.event
    candidate = _member_id(ctx.body, "candidate", ev)
    current = s.members.get(candidate)
    if current is not None and current.status == ACTIVE:
        raise RemoteProtocolError("rules.already_member", candidate)
    _sealed(ctx)
    att = _attested(ctx.body["attestation"], candidate, ctx.node_keys)
    invitation = Invitation(candidate, ev.event_id, att.org, _device_map(att), accepted=False)
    return replace(s, invitations=_frozen_map({**s.invitations, candidate: invitation}))


def accept_invitation(ctx: Context) -> ForumState:
    s, ev = ctx.state, ctx.event
    invitation = s.invitations[ev.author]  # the author check found it
    invite = _body_field(ctx.body, "invite", bytes, ev)
    if invite != invitation.invite or invitation.accepted:
        raise RemoteProtocolError("rules.no_invitation", "not the open invitation")
    accepted = replace(invitation, accepted=True)
    return replace(s, invitations=_frozen_map({**s.invitations, ev.author: accepted}))


def commit_epoch(ctx: Context) -> ForumState:
    s, ev, body = ctx.state, ctx.event, ctx.body
    if _body_field(body, "epoch", int, ev) != s.epoch + 1:
        raise RemoteProtocolError("rules.stale_epoch", f"epoch.commit must name {s.epoch + 1}")
    admit = [_member_id({"m": a}, "m", ev) for a in _body_field(body, "admit", list, ev)]
    if len(set(admit)) != len(admit):
        raise _bad_body("epoch.commit admits a candidate twice")
    members, invitations = dict(s.members), dict(s.invitations)
    for candidate in admit:
        inv = invitations.pop(candidate, None)
        if inv is None or not inv.accepted:
            raise RemoteProtocolError("rules.no_invitation", f"{candidate} has not accepted")
        members[candidate] = Member(candidate, ACTIVE, frozenset(), inv.org, inv.devices)
    secrets = [
        _sealed_part(SealedSecret.from_wire, obj) for obj in _body_field(body, "secrets", list, ev)
    ]
    after = replace(s, members=_frozen_map(members), invitations=_frozen_map(invitations))
    check_recipients(secrets, sorted(after.recipients()))
    return replace(after, epoch=s.epoch + 1, epoch_required=False)


def remove_member(ctx: Context) -> ForumState:
    s = ctx.state
    subject = _member_id(ctx.body, "subject", ctx.event)
    _sealed(ctx)
    m = s.members.get(subject)
    if m is not None and m.status == ACTIVE:
        return _with_member(s, replace(m, status=REMOVED, roles=frozenset()), epoch_required=True)
    if subject in s.invitations:  # withdrawing an invitation changes no keys
        rest = {k: v for k, v in s.invitations.items() if k != subject}
        return replace(s, invitations=_frozen_map(rest))
    raise RemoteProtocolError("rules.not_member", f"{subject} is not an active member")


def leave_forum(ctx: Context) -> ForumState:
    m = ctx.state.members[ctx.event.author]
    return _with_member(ctx.state, replace(m, status=LEFT, roles=frozenset()), epoch_required=True)


def add_device(ctx: Context) -> ForumState:
    s, ev = ctx.state, ctx.event
    m = s.members[ev.author]
    att = _attested(ctx.body["attestation"], ev.author, ctx.node_keys)
    new = {k: d for k, d in _device_map(att).items() if k not in m.devices}
    if not new:
        raise _bad_body("device.add attests no new device")
    devices = _frozen_map({**m.devices, **new})
    return _with_member(s, replace(m, devices=devices), epoch_required=True)


def remove_device(ctx: Context) -> ForumState:
    s, ev = ctx.state, ctx.event
    m = s.members[ev.author]
    device = _body_field(ctx.body, "device", str, ev)
    if device not in m.devices:
        raise RemoteProtocolError("rules.unknown_device", f"{device} is not {ev.author}'s")
    if len(m.devices) == 1:
        raise _bad_body("device.remove would leave the member without a device")
    devices = _frozen_map({k: d for k, d in m.devices.items() if k != device})
    return _with_member(s, replace(m, devices=devices), epoch_required=True)


def assign_roles(ctx: Context) -> ForumState:
    s, ev = ctx.state, ctx.event
    target = _member_id(ctx.body, "member", ev)
    roles = _body_field(ctx.body, "roles", list, ev)
    if not all(isinstance(r, str) and r in ROLES for r in roles) or len(set(roles)) != len(roles):
        raise _bad_body(f"roles must be distinct names from {sorted(ROLES)}")
    m = s.members.get(target)
    if m is None or m.status != ACTIVE:
        raise RemoteProtocolError("rules.not_member", f"{target} is not an active member")
    return _with_member(s, replace(m, roles=frozenset(roles)))


def move_hub(ctx: Context) -> ForumState:
    s = ctx.state
    cert = certificate_of(ctx.event)
    st = cert.statement
    if (st.forum, st.old_hub, st.last_seq, st.last_hash) != (s.forum, s.hub, s.seq, s.head):
        raise RemoteProtocolError("hubmove.invalid", "certificate is not for this forum's head")
    verify_hub_move(cert, s.roster())
    return replace(s, hub=st.new_hub, frozen=False)


def certificate_of(event: Event) -> HubMoveCertificate:
    """The certificate of a ``hub.move`` event (``hubmove.invalid`` if malformed)."""
    try:
        return HubMoveCertificate.from_wire(event.body.get("certificate"))
    except RemoteProtocolError as exc:
        raise RemoteProtocolError("hubmove.invalid", exc.message) from exc


def post_content(ctx: Context) -> ForumState:
    body, what = ctx.body, ctx.event.type
    if "ct" in body:
        _content(body["ct"])
        return ctx.state
    # Detached (§6.9): nodes see only the reference and when to delete what it names.
    ref = _in_body(field, body, "ct_ref", bytes, what)
    if len(ref) != REF_BYTES:
        raise _bad_body(f"{what}.ct_ref must be {REF_BYTES} bytes")
    _in_body(non_negative, body, "expires", what)
    return ctx.state


_CONTENT_RULE: Final = Rule(
    "member", ("ct",), (), post_content, content=True, alternatives=((("ct_ref", "expires"), ()),)
)

RULES: Final[Mapping[str, Rule]] = MappingProxyType(
    {
        "forum.create": Rule("creator", ("hub", "attestation"), (), create_forum),
        "member.invite": Rule("member", ("candidate", "attestation"), ("sealed",), invite_member),
        "member.accept": Rule("candidate", ("invite",), (), accept_invitation),
        "epoch.commit": Rule("member", ("epoch", "admit", "secrets"), (), commit_epoch),
        "member.remove": Rule("member", ("subject",), ("sealed",), remove_member),
        "member.leave": Rule("member", (), (), leave_forum),
        "device.add": Rule("member", ("attestation",), (), add_device),
        "device.remove": Rule("member", ("device",), (), remove_device),
        "role.assign": Rule("moderator", ("member", "roles"), (), assign_roles),
        "hub.move": Rule("member", ("certificate",), (), move_hub),
        **{t: _CONTENT_RULE for t in CONTENT_TYPES},
    }
)


# ---------------------------------------------------------------------------- the fold


def _author_device(state: ForumState | None, ev: Event, rule: Rule, ctx: Context) -> Device:
    """Steps R4-R5: the author may submit this type, and the device that signed."""
    if rule.who == "creator":
        att = _attested(ctx.body["attestation"], ev.author, ctx.node_keys)
        devices = _device_map(att)
    elif rule.who == "candidate":
        assert state is not None
        invitation = state.invitations.get(ev.author)
        if invitation is None:
            raise RemoteProtocolError("rules.no_invitation", f"{ev.author} is not invited")
        devices = invitation.devices
    else:
        assert state is not None
        m = state.members.get(ev.author)
        if m is None:
            raise RemoteProtocolError("rules.not_member", ev.author)
        if m.status != ACTIVE:
            raise RemoteProtocolError("rules.removed_member", f"{ev.author} has {m.status}")
        devices = m.devices
    device = devices.get(ev.kid)
    if device is None:
        raise RemoteProtocolError("rules.unknown_device", f"{ev.kid} is not {ev.author}'s")
    if rule.who == "moderator" and state and "moderator" not in state.members[ev.author].roles:
        raise RemoteProtocolError("rules.not_permitted", f"{ev.type} needs a moderator")
    return device


def check_event(state: ForumState | None, event: Event, *, node_keys: KeyLookup) -> ForumState:
    """Steps R1-R8: the state after ``event``, or the error a hub answers its submitter.

    The returned state keeps the old ``seq`` and ``head``; ``apply_entry`` sets them.
    """
    if state is None:
        if event.type != "forum.create":
            raise RemoteProtocolError("forum.unknown", f"{event.forum} has no forum.create")
        placeholder = ForumState(event.forum, "", 0, ZERO_HASH, 0, False, False, {}, {})
    else:
        placeholder = state
        if event.forum != state.forum:  # R1
            raise RemoteProtocolError("event.wrong_forum", f"event is for {event.forum}")
        if state.frozen and event.type != "hub.move":  # R2
            raise RemoteProtocolError("forum.frozen", state.forum)
    rule = RULES.get(event.type)  # R3
    if rule is None:
        raise RemoteProtocolError("rules.unknown_type", event.type)
    if state is not None and rule.who == "creator":
        raise RemoteProtocolError("rules.not_permitted", "forum.create only at seq 1")
    _in_body(rule.check_body, event.body, event.type)
    ctx = Context(placeholder, event, event.body, node_keys)
    device = _author_device(state, event, rule, ctx)  # R4-R5
    verify_event(event, device.sign)  # R6
    if (
        rule.who == "creator"
        and event.epoch != 0
        or rule.who in ("member", "moderator")
        and (event.epoch != placeholder.epoch)
    ):
        raise RemoteProtocolError("rules.stale_epoch", f"event epoch {event.epoch}")  # R7
    if rule.content and placeholder.epoch_required:
        raise RemoteProtocolError("rules.epoch_required", "membership changed; commit an epoch")
    return rule.effect(ctx)  # R8


def apply_entry(
    state: ForumState | None, entry: Entry, *, hub_key_at: KeyLookup, node_keys: KeyLookup
) -> ForumState:
    """Steps E1-E6 then R1-R8: the state after ``entry``; never mutates ``state``."""
    ev = entry.signed_event
    if state is None:
        seq, prev, hub = 1, ZERO_HASH, forum_origin(entry.forum)
    else:
        if entry.forum != state.forum:  # E1
            raise RemoteProtocolError("event.wrong_forum", f"entry is for {entry.forum}")
        if state.frozen and ev.type != "hub.move":  # E2
            raise RemoteProtocolError("forum.frozen", state.forum)
        seq, prev, hub = state.seq + 1, state.head, state.hub
    if entry.seq != seq:  # E3
        raise RemoteProtocolError("entry.bad_seq", f"expected seq {seq}, got {entry.seq}")
    if entry.prev != prev:  # E4
        raise RemoteProtocolError("entry.broken_chain", f"seq {entry.seq} does not chain")
    if state is not None and ev.type == "hub.move":  # the new hub signs the move
        hub = certificate_of(ev).statement.new_hub
    if entry.hub != hub:  # E5
        raise RemoteProtocolError("entry.wrong_hub", f"signed by {entry.hub}, hub is {hub}")
    key = hub_key_at(entry.hub, entry.kid, entry.ts)  # E6
    if key is None:
        raise RemoteProtocolError("sig.unknown_key", f"no key {entry.kid} for {entry.hub}")
    verify_entry(entry, key)
    after = check_event(state, ev, node_keys=node_keys)
    return replace(after, seq=entry.seq, head=entry.hash)


def fold(
    entries: Iterable[Entry],
    *,
    hub_key_at: KeyLookup,
    node_keys: KeyLookup,
    state: ForumState | None = None,
) -> ForumState | None:
    """Apply ``entries`` in order from ``state`` (None: a forum not yet created)."""
    for entry in entries:
        state = apply_entry(state, entry, hub_key_at=hub_key_at, node_keys=node_keys)
    return state
