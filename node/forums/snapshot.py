"""The stored form of a folded ``ForumState``: ``ForumState.to_wire()`` in canonical msgpack.

A snapshot is written in the transaction of a commit every ``SNAPSHOT_EVERY`` entries
(and of any commit that truncates or freezes), and by itself once a forum has been quiet
for ``SNAPSHOT_IDLE_S`` and when the node stops — not with every commit: encoding the
whole state was ~55 us on each node's path of every entry, more than the rules. A
restart reads it and folds the stored entries after it (every check applies, as when
they arrived). It is a cache: anything unreadable (an older format) or ahead of the
stored head makes the engine fold the whole log instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from protocol.codec import decode, encode
from protocol.descriptor import Device
from protocol.rules import ForumState, Invitation, Member

FORMAT: Final = 1
SNAPSHOT_EVERY: Final = 256  # entries a restart may have to fold, at most (a crash)
SNAPSHOT_IDLE_S: Final = 1.0  # a forum quiet this long gets its snapshot written


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
