"""Node keys for verifying entries, heads, proofs and attestations.

``protocol.rules`` looks keys up synchronously (``KeyLookup``), while pinned peer keys live
in the database. So the key book caches them in memory and, when a lookup misses, notes
it: the caller reloads the book and retries once (``ForumCore._retrying``). A peer that
rotates its key thus costs one reload, and a node we never pinned stays unknown.

Our own keys come from the live ``NodeIdentity`` (current and retired), so a local key
rotation needs no reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from protocol.errors import RemoteProtocolError
from protocol.keys import VerifyKey

from ..keystore import NodeKeys
from ..storage import PeerKey, Storage

# A rotated peer key gets its expiry through the database; re-read now and then so an
# expired key stops verifying newer signatures even if no lookup ever misses.
RELOAD_EVERY_S = 60.0

_Key = tuple[str, bytes, int | None]  # kid, public key, expired_ms (None: current)


class KeyBook:
    def __init__(
        self, storage: Storage | None, own_name: str, own_keys: Callable[[], NodeKeys]
    ) -> None:
        self._storage = storage
        self._own_name = own_name
        self._own_keys = own_keys
        self._peers: dict[str, list[_Key]] = {}
        self._loaded_at = float("-inf")
        self.missed = False

    def add(self, node: str, kid: str, key: bytes, expired_ms: int | None = None) -> None:
        """Pin a key in memory only (tests, and nodes the storage does not know)."""
        self._peers.setdefault(node, []).append((kid, key, expired_ms))

    async def reload(self) -> None:
        if self._storage is None:
            return
        peers = await self._storage.list_peers()
        fresh: dict[str, list[_Key]] = {}
        for peer in peers:
            fresh[peer.name] = [_key(k) for k in peer.pinned_keys]
        # Keep in-memory additions for nodes the database does not list.
        for node, keys in self._peers.items():
            fresh.setdefault(node, keys)
        self._peers = fresh
        self._loaded_at = time.monotonic()
        self.missed = False

    async def refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at > RELOAD_EVERY_S:
            await self.reload()

    def _keys_of(self, node: str) -> list[_Key]:
        if node == self._own_name:
            own = self._own_keys()
            return [(own.kid, own.verify_key.raw, None)] + [
                (r.kid, r.public, r.expired_ms) for r in own.retired
            ]
        return self._peers.get(node, [])

    def lookup(self, node: str, kid: str, ts: int) -> VerifyKey | None:
        """``protocol.rules.KeyLookup``: the key ``kid`` of ``node`` valid at ``ts``."""
        for k, raw, expired in self._keys_of(node):
            if k != kid:
                continue
            if expired is not None and ts >= expired:
                raise RemoteProtocolError(
                    "sig.key_expired", f"{node} key {kid} expired at {expired}"
                )
            return VerifyKey(raw)
        self.missed = True
        return None

    def require(self, node: str, kid: str, ts: int) -> VerifyKey:
        """``lookup``, with ``sig.unknown_key`` for a key we do not hold."""
        key = self.lookup(node, kid, ts)
        if key is None:
            raise RemoteProtocolError("sig.unknown_key", f"no pinned key {kid} of {node}")
        return key

    def holds(self, node: str, key: bytes) -> bool:
        """Whether ``key`` is (or was) a pinned key of ``node``: checks offline proofs."""
        return any(raw == key for _, raw, _ in self._keys_of(node))


def _key(k: PeerKey) -> _Key:
    return (k.kid, k.key, k.expired_ms)
