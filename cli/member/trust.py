"""Node keys as this device knows them: fetched from each node itself and pinned.

A member's client checks hub signatures and attestations with keys it fetched from the
node in question (``/.well-known/peerforum``), not with keys its home node hands it —
otherwise the home node could vouch for a ghost on any other node's behalf. Keys are
pinned on first use in the profile; an unknown key id makes one fresh fetch, and the
descriptor (itself signed, with old keys kept until their expiry) is pinned again.
"""

from __future__ import annotations

import urllib.parse

from protocol.descriptor import Descriptor
from protocol.errors import RemoteProtocolError
from protocol.keys import VerifyKey

from .api import MemberApiError, descriptor_keys, fetch_descriptor, now_ms
from .profile import Profile


class NodeKeys:
    """A ``protocol.rules.KeyLookup``: ``(node, kid, ts) -> key | None``."""

    def __init__(self, profile: Profile, home_url: str) -> None:
        self.profile = profile
        self.scheme = urllib.parse.urlsplit(home_url).scheme or "https"
        self._known: dict[str, Descriptor] = {
            name: descriptor_keys(data) for name, data in profile.pinned_descriptors().items()
        }
        self._fetched: set[str] = set()

    def refresh(self, node: str) -> Descriptor | None:
        if node in self._fetched:
            return self._known.get(node)
        self._fetched.add(node)
        try:
            desc, data = fetch_descriptor(f"{self.scheme}://{node}", node, now_ms())
        except MemberApiError:
            return self._known.get(node)
        self._known[node] = desc
        self.profile.pin_descriptor(node, data)
        return desc

    def __call__(self, node: str, kid: str, ts: int) -> VerifyKey | None:
        desc = self._known.get(node) or self.refresh(node)
        for attempt in (0, 1):
            if desc is None:
                return None
            try:
                return desc.keys.key_valid_at(kid, ts)
            except RemoteProtocolError as exc:
                if exc.code != "sig.unknown_key" or attempt:
                    raise
            desc = self.refresh(node)
        return None
