"""This node's identity at run time: its keys and the descriptor it publishes.

The descriptor is signed lazily and cached; it is re-signed once a day (and after a key
rotation) so the published copy is always valid for about a week without signing on
every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from protocol.codec import encode
from protocol.descriptor import (
    Descriptor,
    KeySet,
    OldKey,
    Rotation,
    build_descriptor,
    build_rotation,
)
from protocol.keys import VerifyKey

from .datadir import DataDir
from .keystore import NodeKeys, rotate_keys, save_keys
from .storage import Storage

DAY_MS = 24 * 3600 * 1000
DESCRIPTOR_VALIDITY_MS = 7 * DAY_MS
REISSUE_AFTER_MS = DAY_MS

# Paths of the federation API, published in the descriptor's endpoints. The routes
# themselves live in node/routes/federation.py (written with the federation layer).
FEDERATION_PREFIX = "/_pf/v1"
ENDPOINTS = {
    "inbox": FEDERATION_PREFIX + "/inbox",
    "backfill": FEDERATION_PREFIX + "/forums/{forum}/backfill",
}


def keyset_of(keys: NodeKeys) -> KeySet:
    old = tuple(OldKey(VerifyKey(r.public), r.expired_ms) for r in keys.retired)
    return KeySet((keys.verify_key,), old)


@dataclass
class _Signed:
    descriptor: Descriptor
    data: bytes


class NodeIdentity:
    def __init__(self, name: str, base_url: str, keys: NodeKeys) -> None:
        self.name = name
        self.base_url = base_url
        self._keys = keys
        self._signed: _Signed | None = None
        # Two rotations at once would both retire the same key; one at a time.
        self.rotation_lock = asyncio.Lock()

    @property
    def keys(self) -> NodeKeys:
        return self._keys

    @property
    def fingerprint(self) -> str:
        return self._keys.fingerprint

    def endpoints(self) -> dict[str, str]:
        return {k: self.base_url + path for k, path in ENDPOINTS.items()}

    def descriptor(self, now_ms: int) -> tuple[Descriptor, bytes]:
        """The current signed descriptor and its canonical bytes."""
        signed = self._signed
        if signed is None or now_ms >= signed.descriptor.issued + REISSUE_AFTER_MS:
            desc = build_descriptor(
                name=self.name,
                key=self._keys.current,
                issued=now_ms,
                valid_until=now_ms + DESCRIPTOR_VALIDITY_MS,
                endpoints=self.endpoints(),
                keys=keyset_of(self._keys),
            )
            signed = self._signed = _Signed(desc, encode(desc.to_wire()))
        return signed.descriptor, signed.data

    def replace_keys(self, keys: NodeKeys) -> None:
        self._keys = keys
        self._signed = None


async def rotate_node_key(
    data: DataDir,
    storage: Storage,
    identity: NodeIdentity,
    rng: Callable[[int], bytes],
    now_ms: int,
) -> Rotation:
    """Retire the current key for a new one; record the rotation statement for peers.

    The statement is stored before the key file is replaced: if we crash in between, the
    old key is still current and the stray statement names a key we never used, which
    the delivery layer skips (it sends only statements whose new key we hold or held).
    The reverse order could lose the only proof that the new key is ours.
    """
    async with identity.rotation_lock:
        old = identity.keys
        new = rotate_keys(old, rng, now_ms)
        statement = build_rotation(node=identity.name, old=old.current, new=new.current, ts=now_ms)
        await storage.record_rotation(old.kid, new.kid, encode(statement.to_wire()), now_ms)
        save_keys(data.key, new)
        identity.replace_keys(new)
        return statement
