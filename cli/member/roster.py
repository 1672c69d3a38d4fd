"""No ghost members: whom a device may seal an epoch secret to (specs §7.5, §8.4).

The node that serves a forum is not trusted to say who is in it. Before sealing, the
client takes the roster from its *own* fold of the hub-signed log, and then checks every
device on it against an attestation found in that log and verified under the home
node's key that the client itself fetched and pinned. A device that fails — a roster
the node padded, an attestation signed by the wrong key — stops the commit: sealing to
it would let a reader in that no member admitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from protocol.codec import encode
from protocol.descriptor import Attestation, Device, KeySet, verify_attestation
from protocol.errors import ProtocolError
from protocol.identity import node_of
from protocol.keys import AgreementPublicKey, b64u
from protocol.log import Entry
from protocol.rules import ForumState, KeyLookup

ATTESTED_IN = {"forum.create": "author", "device.add": "author", "member.invite": "candidate"}


class GhostMemberError(Exception):
    """A device or member on the roster was not properly admitted or attested."""


def attested_devices(
    entries: Iterable[Entry], node_keys: KeyLookup
) -> dict[str, dict[str, Device]]:
    """``{member: {device id: device}}`` from every attestation in the log that verifies."""
    out: dict[str, dict[str, Device]] = {}
    for entry in entries:
        ev = entry.signed_event
        who = ATTESTED_IN.get(ev.type)
        if who is None:
            continue
        member = ev.author if who == "author" else ev.body.get("candidate")
        att = _verified(ev.body.get("attestation"), member, node_keys)
        if att is not None and isinstance(member, str):
            out.setdefault(member, {}).update({d.device_id: d for d in att.devices})
    return out


# Attestations that verified, by (encoded attestation, key): a view folds every
# attestation of the log each time, and an Ed25519 check per attestation per view adds up.
_GOOD: dict[tuple[bytes, bytes], Attestation] = {}


def _verified(obj: Any, member: object, node_keys: KeyLookup) -> Attestation | None:
    if not isinstance(member, str) or not isinstance(obj, dict):
        return None
    try:
        att = Attestation.from_wire(obj)
        key = node_keys(att.node, att.kid, att.ts)
        if key is None or att.member != member or att.node != node_of(member):
            return None
        memo = (encode(obj), key.raw)
        if memo not in _GOOD:
            _GOOD[memo] = verify_attestation(obj, expected_node=att.node, keys=KeySet((key,)))
        return _GOOD[memo]
    except ProtocolError:
        return None


def attested_devices_of(att_map: Any) -> tuple[Device, ...]:
    """The devices of an attestation already verified (``MemberClient.attestation``)."""
    return Attestation.from_wire(att_map).devices


def roster_after(state: ForumState, admit: Iterable[str]) -> dict[str, Mapping[str, Device]]:
    """Active members' devices, plus those of the candidates this commit admits."""
    roster: dict[str, Mapping[str, Device]] = {m.id: m.devices for m in state.active()}
    for candidate in admit:
        inv = state.invitations.get(candidate)
        if inv is None or not inv.accepted:
            raise GhostMemberError(f"{candidate} has no accepted invitation")
        roster[candidate] = inv.devices
    return roster


def sealing_keys(
    roster: Mapping[str, Mapping[str, Device]], attested: Mapping[str, Mapping[str, Device]]
) -> list[AgreementPublicKey]:
    """The X25519 keys to seal to, each checked against a verified attestation."""
    keys = []
    for member in sorted(roster):
        for kid, device in sorted(roster[member].items()):
            if attested.get(member, {}).get(kid) != device:
                raise GhostMemberError(f"{member} device {kid} has no verified attestation")
            keys.append(device.agree)
    return keys


def compare_reported(reported: Mapping[str, Any], state: ForumState) -> None:
    """The node's view of the roster must not hold anyone our verified fold does not.

    ``reported`` is the client API's forum state; it is compared only when it describes
    the same ``seq`` as our fold (a newer one is simply not folded yet).
    """
    if reported.get("seq") != state.seq:
        return
    ours = {m.id: m.devices for m in state.active()}
    for m in reported.get("members", []):
        if m.get("status") != "active":
            continue
        devices = ours.get(m.get("member"))
        if devices is None:
            raise GhostMemberError(f"node lists {m.get('member')} who is not in the verified log")
        for d in m.get("devices", []):
            mine = devices.get(d.get("kid"))
            if mine is None or b64u(mine.agree.raw) != d.get("agree"):
                raise GhostMemberError(f"node lists an unverified device of {m.get('member')}")
