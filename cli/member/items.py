"""From the verified log to the view's input: entries opened on this device, and the
attested profile (org, industry, title) of everyone the log names.

Organizations come only from attestations verified here under the home node's own key:
the conflict check and the composition view must not rest on a claim a nominator typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from protocol.keys import AgreementKey, b64u
from protocol.log import Entry
from protocol.rules import CONTENT_TYPES, KeyLookup

from .invitation import open_invitation
from .profile import Profile
from .roster import ATTESTED_IN, _verified
from .sealing import _open, expired, sealed_part
from .view import Item

CLEAR_FIELDS = {
    "forum.create": ("hub",), "member.invite": ("candidate",), "member.remove": ("subject",),
    "epoch.commit": ("epoch", "admit"), "role.assign": ("member", "roles"),
    "member.leave": (), "device.add": (), "device.remove": ("device",), "hub.move": (),
}  # fmt: skip


def entry_item(
    profile: Profile, entry: Entry, key: AgreementKey, attachment: bytes | None = None,
    now: int | None = None,
) -> Item:  # fmt: skip
    """``attachment``: a detached entry's (protocol §6.9); without it, past ``expires``
    (at ``now``), the item's body is ``{"expired": True}``."""
    ev = entry.signed_event
    body: dict[str, Any] | None
    expires = ev.body.get("expires")
    if ev.type in CONTENT_TYPES and now is not None and expired(entry, attachment, now):
        body = {"expired": True}
    elif ev.type in CONTENT_TYPES:
        body = _open(profile, entry, sealed_part(entry, attachment))
    elif ev.type == "member.accept":
        body = {"invite": b64u(ev.body["invite"])}
    else:
        body = {f: ev.body.get(f) for f in CLEAR_FIELDS.get(ev.type, ())}
        if ev.type == "member.invite" and "sealed" in ev.body:
            body["sealed"] = open_invitation(ev.body["sealed"], header=ev.header(),
                                             forum=ev.forum, key=key)  # fmt: skip
        elif ev.type == "member.remove" and "sealed" in ev.body:
            body["sealed"] = _open(profile, entry, ev.body["sealed"])
    return Item(seq=entry.seq, type=ev.type, author=ev.author, ts=entry.ts,
                event=b64u(ev.event_id), epoch=ev.epoch, body=body,
                expires=expires if isinstance(expires, int) else None)  # fmt: skip


def entry_items(profile: Profile, entries: Iterable[Entry], key: AgreementKey) -> list[Item]:
    return [entry_item(profile, e, key) for e in entries]


def attested_profiles(
    entries: Iterable[Entry], node_keys: KeyLookup, extra: Iterable[dict[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """``{member: {org, industry?, title?}}`` from every attestation that verifies: those
    in node-enforced bodies, and ``extra`` ones (a nomination carries the candidate's)."""
    out: dict[str, dict[str, Any]] = {}

    def take(att_map: Any, member: Any) -> None:
        att = _verified(att_map, member, node_keys)
        if att is not None:
            out[att.member] = {"org": att.org,
                               **({"industry": att.industry} if att.industry else {}),
                               **({"title": att.title} if att.title else {})}  # fmt: skip

    for entry in entries:
        ev = entry.signed_event
        who = ATTESTED_IN.get(ev.type)
        if who is not None:
            take(ev.body.get("attestation"), ev.author if who == "author"
                 else ev.body.get("candidate"))  # fmt: skip
    for att_map in extra:
        take(att_map, att_map.get("member") if isinstance(att_map, dict) else None)
    return out
