"""What the operator sees of forums: ids, hubs, heads, freezes with their proofs, and
refused objects kept as evidence (the admin API, ``peerforum status`` and
``peerforum forums``). Only routing metadata and signed protocol objects: a proof or an
evidence item carries hub-signed entries whose content is sealed, never plaintext.
"""

from __future__ import annotations

from typing import Any

from protocol.keys import b64u

from ..storage import Storage
from ..storage.forums import EvidenceRecord, ForumRecord


def forum_view(rec: ForumRecord, gaps: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "forum": rec.id, "hub": rec.hub, "seq": rec.head_seq, "frozen": rec.frozen,
        "updated_ms": rec.updated_ms,
    }  # fmt: skip
    if rec.proof is not None:
        view["proof"] = b64u(rec.proof)  # verify offline: protocol.log.verify_equivocation
    if gaps is not None:
        view["gaps"] = [list(g) for g in gaps]
    return view


async def frozen_views(storage: Storage) -> list[dict[str, Any]]:
    """Frozen forums with the equivocation proof that froze each (for ``status``)."""
    return [forum_view(rec) for rec in await storage.frozen_forums()]


def evidence_view(rec: EvidenceRecord) -> dict[str, Any]:
    return {
        "id": rec.id, "peer": rec.peer, "forum": rec.forum, "kind": rec.kind,
        "code": rec.code, "object": b64u(rec.object), "received_ms": rec.received_ms,
    }  # fmt: skip
