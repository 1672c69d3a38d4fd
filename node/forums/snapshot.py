"""The stored form of a folded ``ForumState``: ``ForumState.to_wire()`` in canonical msgpack.

A snapshot is written with every batch of entries (same transaction), so a restart reads
it instead of folding the whole log. It is a cache: anything unreadable (an older format)
makes the engine refold the stored entries instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from protocol.codec import decode, encode
from protocol.descriptor import Device
from protocol.rules import ForumState, Invitation, Member

FORMAT: Final = 1


def dump_state(state: ForumState) -> bytes:
    return encode({"format": FORMAT, "state": state.to_wire()})


def load_state(data: bytes) -> ForumState | None:
    """The state in ``data``, or None if it is not a snapshot this version reads."""
    try:
        doc = decode(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return None
        return state_from_wire(doc["state"])
    except Exception:  # a cache: any failure means "refold"
        return None


def _devices(m: Mapping[str, Any]) -> Mapping[str, Device]:
    return MappingProxyType({k: Device.from_wire(d) for k, d in m.items()})


def state_from_wire(w: Mapping[str, Any]) -> ForumState:
    members = {
        mid: Member(mid, m["status"], frozenset(m["roles"]), m["org"], _devices(m["devices"]))
        for mid, m in w["members"].items()
    }
    invitations = {
        cid: Invitation(cid, i["invite"], i["org"], _devices(i["devices"]), i["accepted"])
        for cid, i in w["invitations"].items()
    }
    return ForumState(
        forum=w["forum"], hub=w["hub"], seq=w["seq"], head=w["head"], epoch=w["epoch"],
        epoch_required=w["epoch_required"], frozen=w["frozen"],
        members=MappingProxyType(members), invitations=MappingProxyType(invitations),
    )  # fmt: skip
