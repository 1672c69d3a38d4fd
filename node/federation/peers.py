"""What this node trusts about its peers: the envelope checker's view of them, rotation
statements, and refreshing a descriptor when a peer's key seems to have moved.

Trust only grows two ways: the operator approves (node/peering.py), or a rotation
statement signed by a pinned key vouches for a new one. A descriptor alone never adds a
key: one whose current keys are not all pinned turns the peer ``key_changed``, which
stops its traffic until the operator looks (protocol §4.6).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import aiohttp

from protocol.codec import decode
from protocol.descriptor import KeySet, OldKey, Rotation, apply_rotation, verify_rotation
from protocol.envelope import PeerView
from protocol.errors import ProtocolError
from protocol.keys import VerifyKey

from ..peering import PeerAddress, fetch_descriptor, offer_peer
from ..storage import PeerRecord, Storage
from .transport import MAX_ANSWER_BYTES, check_transport_url, read_bounded

ROTATIONS_PATH: Final = "/_pf/v1/rotations"
MAX_KEYS: Final = 16  # KeySet bounds; older retired keys beyond it are forgotten
# Never used to verify: a peer without usable pinned keys is never ``approved`` here,
# and only an approved peer's keys are consulted (E3 precedes E7).
_UNUSED_KEYS: Final = KeySet((VerifyKey(bytes(32)),))


def pinned_keyset(peer: PeerRecord) -> KeySet | None:
    """The pinned key set (current keys, then the most recently retired), or None."""
    current = [VerifyKey(k.key) for k in peer.pinned_keys if k.expired_ms is None]
    old = [
        OldKey(VerifyKey(k.key), k.expired_ms)
        for k in peer.pinned_keys
        if k.expired_ms is not None
    ]
    old.sort(key=lambda o: -o.expired)
    if not current:
        return None
    return KeySet(tuple(current[:MAX_KEYS]), tuple(old[:MAX_KEYS]))


def peer_views(peers: Iterable[PeerRecord]) -> dict[str, PeerView]:
    views: dict[str, PeerView] = {}
    for peer in peers:
        keys = pinned_keyset(peer)
        status = peer.status
        if keys is None and status == "approved":
            status = "key_changed"  # approved yet nothing to verify with: refuse, loudly
        views[peer.name] = PeerView(status, keys or _UNUSED_KEYS)
    return views


def keyset_rows(keys: KeySet) -> list[tuple[str, bytes, int | None]]:
    """(kid, key, expired_ms) rows to pin, as storage takes them."""
    return [(k.key_id, k.raw, None) for k in keys.current] + [
        (o.key.key_id, o.key.raw, o.expired) for o in keys.old
    ]


def already_applied(keys: KeySet, rotation: Rotation) -> bool:
    """Applying a statement twice changes nothing (§4.4); a repeat is not an error."""
    return rotation.new_key in keys.current and rotation.old_key not in keys.current


async def apply_statements(
    storage: Storage, peer: PeerRecord, statements: Iterable[bytes], now_ms: int
) -> Rotation | None:
    """Verify statements in order against the pinned keys, pin what they prove, and
    return the last one applied (None if none was new). Invalid ones are skipped: they
    prove nothing, and a peer may list statements we applied long ago."""
    keys = pinned_keyset(peer)
    if keys is None:
        return None
    applied: Rotation | None = None
    for data in statements:
        try:
            rotation = verify_rotation(data, expected_node=peer.name, pinned=keys)
        except ProtocolError:
            continue
        keys = apply_rotation(keys, rotation)
        applied = rotation
    if applied is not None:
        await storage.pin_rotated_keys(peer.name, keyset_rows(keys), now_ms)
    return applied


async def fetch_rotations(session: aiohttp.ClientSession, peer: PeerRecord) -> list[bytes]:
    """The peer's published rotation statements (empty if it has none or cannot say)."""
    url = check_transport_url(peer.url + ROTATIONS_PATH)
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
        ) as resp:
            if resp.status != 200:
                return []
            raw = await read_bounded(resp, MAX_ANSWER_BYTES)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return []
    try:
        body = decode(raw)
    except ProtocolError:
        return []
    items = body.get("rotations") if isinstance(body, dict) else None
    return [i for i in items if isinstance(i, bytes)] if isinstance(items, list) else []


async def refresh_peer(
    storage: Storage, session: aiohttp.ClientSession, name: str, now_ms: int
) -> PeerRecord | None:
    """Refetch ``name``'s descriptor. Keys we pinned, or reached from them through the
    peer's rotation statements, keep it approved; any other key makes it key_changed."""
    peer = await storage.get_peer(name)
    if peer is None:
        return None
    address = PeerAddress(peer.url, peer.name)
    desc, data = await fetch_descriptor(session, address, now_ms)
    pinned = {k.kid for k in peer.pinned_keys}
    if peer.status == "approved" and not {k.key_id for k in desc.keys.current} <= pinned:
        await apply_statements(storage, peer, await fetch_rotations(session, peer), now_ms)
    return await offer_peer(storage, address, desc, data, now_ms)
