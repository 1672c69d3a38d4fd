"""Moving a forum's hub (PFP/1 §6.6): a certificate signed by a majority of members.

Normative text: specs/protocol.md §6. The members agree on the last entry they
accept and on the node that sequences after it; each signs that statement with one of
its registered devices, and a strict majority of the active members makes it binding.
Moved out of ``protocol.log``, which still re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .codec import Value
from .errors import RemoteProtocolError
from .identity import check_forum_id, check_node_name, parse_member_id
from .keys import SigningKey, VerifyKey, sign_object, signing_input
from .schema import VERSION, check_fields, check_version, fixed_bytes, kid, non_negative
from .schema import field as get
from .schema import sig as check_sig


@dataclass(frozen=True)
class HubMoveStatement:
    """What the members agree on: the last entry they accept, and who sequences next."""

    forum: str
    last_seq: int
    last_hash: bytes
    old_hub: str
    new_hub: str

    def __post_init__(self) -> None:
        check_forum_id(self.forum)
        check_node_name(self.old_hub)
        check_node_name(self.new_hub)
        if type(self.last_seq) is not int or self.last_seq < 1:
            raise RemoteProtocolError("schema.bad_value", "last_seq must be an int >= 1")
        if not isinstance(self.last_hash, bytes) or len(self.last_hash) != 32:
            raise RemoteProtocolError("schema.bad_value", "last_hash must be 32 bytes")

    def to_wire(self) -> dict[str, Value]:
        return {"forum": self.forum, "last_seq": self.last_seq, "last_hash": self.last_hash,
                "old_hub": self.old_hub, "new_hub": self.new_hub}  # fmt: skip

    def signed_part(self, member: str, kid: str) -> dict[str, Value]:
        """What one member device signs (domain ``hubmove``)."""
        return {"v": VERSION, **self.to_wire(), "member": member, "kid": kid}


@dataclass(frozen=True)
class HubMoveSignature:
    member: str
    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        m = self.to_wire()
        parse_member_id(self.member)
        kid(m.get("kid"), "hub move signature.kid")
        check_sig(m["sig"], "hub move signature")

    def to_wire(self) -> dict[str, Value]:
        return {"member": self.member, "kid": self.kid, "sig": self.sig}


@dataclass(frozen=True)
class HubMoveCertificate:
    statement: HubMoveStatement
    sigs: tuple[HubMoveSignature, ...]

    @classmethod
    def from_wire(cls, obj: Any) -> HubMoveCertificate:
        names = ("v", "forum", "last_seq", "last_hash", "old_hub", "new_hub", "sigs")
        m = check_fields(obj, names, what="hub move")
        check_version(m, "hub move")
        st = HubMoveStatement(
            forum=get(m, "forum", str, "hub move"),
            last_seq=non_negative(m, "last_seq", "hub move"),
            last_hash=fixed_bytes(m, "last_hash", 32, "hub move"),
            old_hub=get(m, "old_hub", str, "hub move"),
            new_hub=get(m, "new_hub", str, "hub move"),
        )
        sigs = []
        for s in get(m, "sigs", list, "hub move"):
            s = check_fields(s, ("member", "kid", "sig"), what="hub move signature")
            w = "hub move signature"
            member, key_id = get(s, "member", str, w), kid(s.get("kid"), f"{w}.kid")
            sigs.append(HubMoveSignature(member, key_id, check_sig(s["sig"], w)))
        return cls(st, tuple(sigs))

    def to_wire(self) -> dict[str, Value]:
        return {"v": VERSION, **self.statement.to_wire(), "sigs": [s.to_wire() for s in self.sigs]}


def sign_hub_move(
    statement: HubMoveStatement, member: str, device_key: SigningKey
) -> HubMoveSignature:
    unsigned = statement.signed_part(member, device_key.key_id)
    return HubMoveSignature(
        member, device_key.key_id, sign_object("hubmove", unsigned, device_key)["sig"]
    )


def build_hub_move(
    statement: HubMoveStatement, signatures: Iterable[HubMoveSignature]
) -> HubMoveCertificate:
    """Collect signatures into a certificate (sorted by member, for one canonical form)."""
    return HubMoveCertificate(statement, tuple(sorted(signatures, key=lambda s: (s.member, s.kid))))


def verify_hub_move(
    cert: HubMoveCertificate, roster: Mapping[str, Mapping[str, VerifyKey]]
) -> None:
    """Check ``cert`` against the active members: ``roster[member][device kid] = key``.

    Every signature must be a valid one by a registered device of a distinct active member
    (else ``hubmove.invalid``); their number must be a strict majority of the active
    members (else ``hubmove.no_quorum``).
    """
    st = cert.statement
    if st.new_hub == st.old_hub:
        raise RemoteProtocolError("hubmove.invalid", "new hub is the old hub")
    seen: set[str] = set()
    for s in cert.sigs:
        if s.member in seen:
            raise RemoteProtocolError("hubmove.invalid", f"{s.member} signed twice")
        seen.add(s.member)
        key = roster.get(s.member, {}).get(s.kid)
        if key is None:
            raise RemoteProtocolError(
                "hubmove.invalid", f"{s.member}/{s.kid} is not an active device"
            )
        try:
            key.verify(signing_input("hubmove", st.signed_part(s.member, s.kid)), s.sig)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError("hubmove.invalid", f"bad signature by {s.member}") from exc
    if 2 * len(seen) <= len(roster):
        raise RemoteProtocolError(
            "hubmove.no_quorum", f"{len(seen)} of {len(roster)} active members signed"
        )
