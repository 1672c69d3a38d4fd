"""Sealing and opening on the device: content, sealed parts of events, epoch secrets.

Epoch secrets are taken only from ``epoch.commit`` entries of the verified log, so the
secret a device holds for an epoch is exactly the one its forum committed — never one
it generated and the hub did not sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protocol.codec import Value, decode
from protocol.errors import ProtocolError
from protocol.group import (
    SealedContent,
    SealedSecret,
    attachment_ref,
    detach_content,
    is_detached,
    open_content_map,
    open_epoch,
    seal_content_map,
)
from protocol.keys import AgreementKey, b64u
from protocol.log import Entry
from protocol.rules import CONTENT_TYPES

from .invitation import open_invitation
from .profile import Profile

# Node-enforced types whose body may carry a sealed part (the invitation's note, the
# removal's reason), and the cleartext fields shown beside it.
SEALED_PART = {"member.invite": ("candidate",), "member.remove": ("subject",)}


def seal_map(
    secret: bytes, header: Mapping[str, Any], content: dict[str, Value],
    rng: Callable[[int], bytes],
) -> dict[str, Value]:  # fmt: skip
    return seal_content_map(secret, header=header, body=content, nonce=rng(12)).to_wire()


def seal_detached(
    secret: bytes, header: Mapping[str, Any], content: dict[str, Value],
    rng: Callable[[int], bytes], expires: int,
) -> tuple[dict[str, Value], bytes]:  # fmt: skip
    """Seal as for inline content (same key, same AAD: the event's header), then detach
    (protocol §6.9): the body ``{ct_ref, expires}`` and the attachment nodes will delete."""
    sealed = seal_content_map(secret, header=header, body=content, nonce=rng(12))
    return detach_content(sealed, expires=expires)


def sealed_part(entry: Entry, attachment: bytes | None) -> Any:
    """The SealedContent (wire form) of a content entry: its inline ``ct``, or for a
    detached one the attachment — only if it hashes to the event's ``ct_ref``."""
    body = entry.signed_event.body
    if not is_detached(body):
        return body.get("ct")
    if attachment is None or attachment_ref(attachment) != body.get("ct_ref"):
        return None
    try:
        return decode(attachment)
    except ProtocolError:
        return None


def expired(entry: Entry, attachment: bytes | None, now: int) -> bool:
    """A detached entry whose attachment is gone and whose ``expires`` has passed: every
    node deleted its ciphertext, so it shows as expired (author and time, no text)."""
    body = entry.signed_event.body
    exp = body.get("expires")
    return is_detached(body) and attachment is None and isinstance(exp, int) and exp <= now


def open_epochs(profile: Profile, forum: str, entries: Iterable[Entry], key: AgreementKey) -> int:
    """Store every epoch secret sealed to ``key`` that we do not hold yet; how many."""
    opened = 0
    mine = key.public.key_id
    for entry in entries:
        ev = entry.signed_event
        if ev.type != "epoch.commit":
            continue
        epoch = ev.body.get("epoch")
        if not isinstance(epoch, int) or profile.epoch_secret(forum, epoch) is not None:
            continue
        secrets = [SealedSecret.from_wire(s) for s in ev.body.get("secrets", [])]
        if mine not in {s.to for s in secrets}:
            continue  # an epoch from before we were admitted, or after we left
        secret = open_epoch(secrets, forum=forum, epoch=epoch, key=key)
        profile.save_epoch_secret(forum, epoch, secret)
        opened += 1
    return opened


def _open(profile: Profile, entry: Entry, sealed: Any) -> dict[str, Value] | None:
    ev = entry.signed_event
    secret = profile.epoch_secret(ev.forum, ev.epoch)
    if secret is None:
        return None
    try:
        return open_content_map(secret, header=ev.header(), sealed=SealedContent.from_wire(sealed))
    except ProtocolError:
        return None


def readable(
    profile: Profile, entry: Entry, key: AgreementKey | None = None,
    attachment: bytes | None = None, now: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One entry as the member sees it: cleartext fields, and content opened if we can.

    An invitation's sealed part is an invitation envelope (``invitation.py``), opened
    with this device's ``key`` when given. A detached entry opens from ``attachment``;
    without it, past its ``expires`` (at ``now``), it is ``expired``."""
    ev = entry.signed_event
    out: dict[str, Any] = {
        "seq": entry.seq, "type": ev.type, "author": ev.author, "ts": ev.ts, "epoch": ev.epoch,
        "event": b64u(ev.event_id),
    }  # fmt: skip
    if ev.type in CONTENT_TYPES:
        if is_detached(ev.body):
            out["expires"] = ev.body.get("expires")
        if now is not None and expired(entry, attachment, now):
            out["expired"] = True
            return out
        body = _open(profile, entry, sealed_part(entry, attachment))
        out.update({"body": _plain(body)} if body is not None else {"unreadable": True})
    elif ev.type in SEALED_PART:
        out["body"] = {f: ev.body.get(f) for f in SEALED_PART[ev.type]}
        if "sealed" in ev.body:
            if ev.type == "member.invite":
                opened = None if key is None else open_invitation(
                    ev.body["sealed"], header=ev.header(), forum=ev.forum, key=key)
                opened = _plain(opened)
            else:
                opened = _open(profile, entry, ev.body["sealed"])
            out["body"].update(opened if opened is not None else {"unreadable": True})
    elif ev.type == "epoch.commit":
        out["body"] = {"epoch": ev.body.get("epoch"), "admit": ev.body.get("admit")}
    return out


def _plain(value: Any) -> Any:
    """Bytes as b64u, so a readable entry is JSON (an envelope holds the pledge hash)."""
    if isinstance(value, bytes):
        return b64u(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
