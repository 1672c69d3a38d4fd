"""Explicit peering: fetch a node's descriptor, verify it, keep it pending until the
operator approves the fingerprint, then pin its keys.

A node is named by the host it is reached at, so the name is derived from the URL and
the descriptor must carry exactly that name. Plain http is refused except on loopback
(development), where there is no network to be attacked on.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from protocol.codec import decode
from protocol.descriptor import Descriptor, verify_descriptor
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.identity import check_node_name
from protocol.keys import fingerprint

from .config import is_loopback_host
from .storage import PeerRecord, Storage

WELL_KNOWN = "/.well-known/peerforum"
MAX_DESCRIPTOR_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 10.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PeerAddress:
    url: str  # scheme://host[:port], no trailing slash
    name: str  # the node name the descriptor must carry


def parse_peer_url(url: str) -> PeerAddress:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RemoteProtocolError("api.bad_request", f"not a URL: {url!r:.200}") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme not in _DEFAULT_PORTS or not host:
        raise RemoteProtocolError(
            "api.bad_request", "peer URL must look like https://node.example"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise RemoteProtocolError("api.bad_request", "peer URL must not carry user, query or #")
    if parts.path not in ("", "/"):
        raise RemoteProtocolError("api.bad_request", "peer URL must be the node's root URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise RemoteProtocolError(
            "api.bad_request", "plain http is allowed only on loopback: use https://"
        )
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{shown_host}:{port}"
    try:
        name = check_node_name(netloc)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", f"{netloc!r} is not a node name") from exc
    return PeerAddress(f"{parts.scheme}://{netloc}", name)


async def fetch_descriptor(
    session: aiohttp.ClientSession, address: PeerAddress, now_ms: int
) -> tuple[Descriptor, bytes]:
    """GET the peer's descriptor and verify it names ``address.name``. Network trouble is
    ``api.unavailable``; a bad descriptor keeps its own protocol code."""
    url = address.url + WELL_KNOWN
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S), allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise RemoteProtocolError(
                    "api.unavailable", f"{url} answered HTTP {resp.status}: is it a PeerForum node?"
                )
            data = b""
            while len(data) <= MAX_DESCRIPTOR_BYTES and not resp.content.at_eof():
                data += await resp.content.read(MAX_DESCRIPTOR_BYTES + 1 - len(data))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise RemoteProtocolError(
            "api.unavailable", f"cannot reach {address.url} ({type(exc).__name__}): is it running?"
        ) from exc
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise RemoteProtocolError("codec.too_large", "descriptor larger than 64 KiB")
    return verify_descriptor(data, expected_name=address.name, now_ms=now_ms), data


def _fingerprints(descriptor: bytes | None) -> list[str]:
    if descriptor is None:
        return []
    desc = Descriptor.from_wire(decode(descriptor))
    return [fingerprint(k.raw) for k in desc.keys.current]


def peer_view(peer: PeerRecord) -> dict[str, Any]:
    """The JSON shape of a peer in the admin API."""
    return {
        "name": peer.name,
        "url": peer.url,
        "status": peer.status,
        "fingerprints": [
            fingerprint(k.key) for k in peer.pinned_keys if k.expired_ms is None
        ],
        "offered_fingerprints": _fingerprints(peer.offered),
        "added_ms": peer.added_ms,
        "last_seen_ms": peer.last_seen_ms,
    }


def _keys_to_pin(desc: Descriptor) -> list[tuple[str, bytes, int | None]]:
    current = [(k.key_id, k.raw, None) for k in desc.keys.current]
    old = [(o.key.key_id, o.key.raw, o.expired) for o in desc.keys.old]
    return [*current, *old]


async def offer_peer(
    storage: Storage, address: PeerAddress, desc: Descriptor, data: bytes, now_ms: int
) -> PeerRecord:
    """Record a verified descriptor. New peers wait as ``pending``; an approved peer whose
    current keys are all pinned is refreshed; one presenting an unpinned key becomes
    ``key_changed`` (only a rotation statement or the operator may accept it)."""
    existing = await storage.get_peer(address.name)
    offered_kids = {k.key_id for k in desc.keys.current}
    if existing is None:
        await storage.offer_peer(address.name, address.url, data, "pending", now_ms)
    elif existing.status == "approved" and offered_kids <= {k.kid for k in existing.pinned_keys}:
        await storage.pin_peer(address.name, data, _keys_to_pin(desc), now_ms)
    elif existing.status == "approved":
        await storage.offer_peer(address.name, address.url, data, "key_changed", now_ms)
    else:  # pending, key_changed and blocked stay as they are, with the newest offer
        await storage.offer_peer(address.name, address.url, data, existing.status, now_ms)
    peer = await storage.get_peer(address.name)
    assert peer is not None
    return peer


async def approve_peer(
    storage: Storage, name: str, now_ms: int, expected_fingerprint: str | None = None
) -> PeerRecord:
    """Pin the keys of the descriptor the operator saw. ``expected_fingerprint`` guards
    against approving a descriptor that changed after it was shown."""
    peer = await storage.get_peer(name)
    if peer is None:
        raise RemoteProtocolError("api.not_found", f"no peer named {name!r}: add it first")
    data = peer.offered or peer.descriptor
    if data is None:
        raise RemoteProtocolError("api.conflict", f"{name} has no descriptor to approve")
    desc = Descriptor.from_wire(decode(data))
    shown = [fingerprint(k.raw) for k in desc.keys.current]
    if expected_fingerprint is not None and _norm(expected_fingerprint) not in map(_norm, shown):
        raise RemoteProtocolError(
            "api.conflict", f"{name} now presents another key: run `peer add` again and check it"
        )
    await storage.pin_peer(name, data, _keys_to_pin(desc), now_ms)
    approved = await storage.get_peer(name)
    assert approved is not None
    return approved


async def block_peer(storage: Storage, name: str, now_ms: int) -> PeerRecord:
    if not await storage.set_peer_status(name, "blocked", now_ms):
        raise RemoteProtocolError("api.not_found", f"no peer named {name!r}")
    peer = await storage.get_peer(name)
    assert peer is not None
    return peer


def _norm(fp: str) -> str:
    return fp.replace(" ", "").upper()


async def forums_needing(storage: Storage, engine: Any, name: str) -> list[str]:
    """Forums this node holds that ``name`` sequences or has a member or invitee in:
    without its pinned keys they would stop replicating to and from it."""
    needing = []
    participants = getattr(engine, "participants", None)
    for rec in await storage.list_forum_records():
        if rec.hub == name or (callable(participants) and name in participants(rec.id)):
            needing.append(rec.id)
    return needing


async def remove_peer(storage: Storage, name: str) -> int:
    """Forget ``name``: its pinned keys, its descriptor, and what waits in the outbox for
    it (returns how many outbox rows were dropped). Evidence it left stays: that is the
    record of what it did. Adding it again starts from a fresh fingerprint check."""

    if await storage.get_peer(name) is None:
        raise RemoteProtocolError("api.not_found", f"no peer named {name!r}")

    def job(conn: sqlite3.Connection) -> int:
        dropped = conn.execute(
            "DELETE FROM outbox WHERE destination = ? AND state != 'delivered'", (name,)
        ).rowcount
        for table, column in (("peer_keys", "peer"), ("peer_delivery", "peer"),
                              ("peer_acks", "peer"), ("peers", "name")):  # fmt: skip
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
        return int(dropped)

    # Peer records may be cached by the store; its own peer writer keeps that cache true.
    write = getattr(storage, "_peer_write", None) or storage.engine.write
    try:
        return int(await write(job))
    finally:
        storage.forget_delivery(name)  # its delivery state, acks and outbox are gone
