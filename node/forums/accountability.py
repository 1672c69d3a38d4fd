"""The accountable hub: signed heads, cosignatures, equivocation proofs, freezing.

How heads travel (see specs/api.md, "Forum log engine"):
- The hub signs a head for its latest entry at most once per ``head_interval_s`` per
  forum (after a burst, the last entry always gets one) and sends ``forum.head`` with
  ``{forum, head: bin, cosigs: []}`` to every participant.
- A replica that holds the entry at ``head.seq`` with the same hash cosigns it and sends
  ``{forum, head, cosigs: [its cosignature]}`` to the hub and every other participant.
  Heads relayed by others are checked the same way but not cosigned again, so one hub
  head costs one round of messages, never a storm.
- A hub-signed head or entry naming another hash for a seq we hold, under the same hub
  key, is packed with our entry into an equivocation proof: the forum freezes here, the
  proof is stored (visible to the operator) and sent as ``forum.proof`` ``{forum, proof:
  bin}`` to every participant, who verify it offline against the pinned hub key and
  freeze too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from protocol.codec import decode, encode
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import VerifyKey
from protocol.log import (
    Cosignature,
    Entry,
    EquivocationProof,
    Head,
    build_head,
    cosign_head,
    make_equivocation_proof,
    verify_cosignature,
    verify_head,
)
from protocol.rules import freeze

from ..logs import log_event
from ..storage.forums import ForumRecord
from .core import ForumCore, ForumRuntime, log
from .snapshot import dump_state


def _map(value: Any, what: str) -> dict[str, Any]:
    """Heads, cosignatures and proofs travel as bin (encoded); a map is accepted too."""
    if isinstance(value, bytes):
        value = decode(value)
    if not isinstance(value, dict):
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be bin or a map")
    return value


class Accountability(ForumCore):
    head_interval_s: float = 1.0

    # ------------------------------------------------------------------ hub: signing heads

    def _schedule_head(self, rt: ForumRuntime) -> None:
        if rt.head_timer is not None:
            return
        loop = asyncio.get_running_loop()
        rt.head_timer = loop.call_later(
            self.head_interval_s, lambda: self._spawn(self.issue_head(rt.forum), "pf-head")
        )

    async def issue_head(self, forum: str) -> Head | None:
        """Sign a head for our latest entry (hub only) and send it to the participants."""
        rt = self._rt(forum)
        if rt.head_timer is not None:
            rt.head_timer.cancel()
            rt.head_timer = None
        state = rt.state
        if state is None or state.hub != self.name or state.seq <= rt.last_head_seq:
            return None
        head = build_head(forum, state.seq, state.head, self._node_keys().current, self.name,
                          self.clock())  # fmt: skip
        rt.last_head_seq = head.seq
        data = encode(head.to_wire())
        await self.storage.save_head(forum, head.seq, head.hash, data, [], self.clock())
        self.metrics.heads.inc(role="hub")
        for node in sorted(self._participants(state)):
            await self._send(node, "forum.head", {"forum": forum, "head": data, "cosigs": []})
        return head

    # ------------------------------------------------------------------ receiving heads

    async def on_head(self, origin: str, body: dict[str, Any]) -> None:
        forum = body.get("forum")
        rt = self._forums.get(forum) if isinstance(forum, str) else None
        if rt is None or rt.state is None:
            raise RemoteProtocolError("forum.unknown", "no such forum on this node")
        head = Head.from_wire(_map(body.get("head"), "head"))
        if head.forum != forum:
            raise RemoteProtocolError("head.invalid", "head is for another forum")
        try:
            key = await self._key_of(head.hub, head.kid, head.ts)
            verify_head(head, key)
        except ProtocolError as exc:
            await self._evidence(origin, forum, "head", exc.code, encode(head.to_wire()))
            raise
        cosigs = await self._cosignatures(origin, head, body.get("cosigs", []))
        await self._judge_head(rt, origin, head, key, cosigs)

    async def _cosignatures(self, origin: str, head: Head, items: Any) -> list[tuple[str, bytes]]:
        """The valid cosignatures of ``head`` in ``items``; bad ones become evidence."""
        out = []
        for item in items if isinstance(items, list) else []:
            try:
                c = Cosignature.from_wire(_map(item, "cosignature"))
                verify_cosignature(c, await self._key_of(c.node, c.kid, c.ts), head)
            except ProtocolError as exc:
                obj = item if isinstance(item, bytes) else encode(item)
                await self._evidence(origin, head.forum, "cosignature", exc.code, obj)
                continue
            out.append((c.node, encode(c.to_wire())))
        return out

    async def _judge_head(
        self, rt: ForumRuntime, origin: str, head: Head, key: VerifyKey,
        cosigs: list[tuple[str, bytes]],
    ) -> None:  # fmt: skip
        cosign = False
        async with rt.lock:
            await self._ensure_index(rt)
            assert rt.state is not None and rt.hashes is not None
            if head.seq > rt.state.seq:
                if head.hub == rt.state.hub:  # we are behind: catch up, judge it then
                    if rt.pending_head is None or rt.pending_head[1].seq < head.seq:
                        rt.pending_head = (origin, head)
                    rt.known_head = max(rt.known_head, head.seq)
                    self._await_push(rt)
                return
            if rt.hashes[head.seq - 1] == head.hash:
                data = encode(head.to_wire())
                await self.storage.save_head(
                    rt.forum, head.seq, head.hash, data, cosigs, self.clock()
                )
                cosign = (origin == head.hub == rt.state.hub != self.name
                          and head.seq > rt.last_head_seq)  # fmt: skip
            else:
                raw = await self.storage.get_entry(rt.forum, head.seq)
                ours = Entry.from_bytes(raw) if raw is not None else None
                if ours is None or ours.hub != head.hub or ours.kid != head.kid:
                    await self._evidence(
                        origin, rt.forum, "head", "head.invalid", encode(head.to_wire())
                    )
                    return
                await self._freeze_locked(rt, make_equivocation_proof(ours, head, key))
                return
            if cosign:
                rt.last_head_seq = head.seq
        if cosign:
            await self._cosign(rt, head)

    async def _cosign(self, rt: ForumRuntime, head: Head) -> None:
        cosig = cosign_head(head, self._node_keys().current, self.name, self.clock())
        data = encode(cosig.to_wire())
        await self.storage.save_head(rt.forum, head.seq, head.hash, encode(head.to_wire()),
                                     [(self.name, data)], self.clock())  # fmt: skip
        self.metrics.heads.inc(role="cosign")
        body = {"forum": rt.forum, "head": encode(head.to_wire()), "cosigs": [data]}
        for node in sorted(self._participants(rt.state) | {head.hub}):
            await self._send(node, "forum.head", body)

    async def _check_pending_head(self, rt: ForumRuntime) -> None:
        """A head that ran ahead of us is judged once we have caught up to it."""
        pending = rt.pending_head
        if pending is None or rt.state is None or pending[1].seq > rt.state.seq:
            return
        rt.pending_head = None
        origin, head = pending
        key = self.keys.lookup(head.hub, head.kid, head.ts)
        if key is not None:
            await self._judge_head(rt, origin, head, key, [])

    # ------------------------------------------------------------------ proofs and freezing

    async def on_proof(self, origin: str, body: dict[str, Any]) -> None:
        proof = EquivocationProof.from_wire(_map(body.get("proof"), "proof"))
        rt = self._forums.get(proof.forum)
        if rt is None or rt.state is None:
            raise RemoteProtocolError("forum.unknown", "no such forum on this node")
        if proof.hub != rt.state.hub:
            raise RemoteProtocolError("equivocation.invalid", "the proof is not against the hub")
        if not self.keys.holds(proof.hub, proof.key):
            await self.keys.reload()
            if not self.keys.holds(proof.hub, proof.key):
                raise RemoteProtocolError("equivocation.invalid", "not a pinned key of the hub")
        async with rt.lock:
            if not rt.state.frozen:
                await self._freeze_locked(rt, proof)

    async def _freeze_locked(self, rt: ForumRuntime, proof: EquivocationProof) -> None:
        """Freeze ``rt`` on a proof (verified here, offline) and tell every participant."""
        assert rt.state is not None
        if proof.hub != rt.state.hub:  # a former hub lied about old entries: no freeze
            await self._evidence(proof.hub, rt.forum, "proof", "equivocation.invalid",
                                 encode(proof.to_wire()))  # fmt: skip
            return
        state = freeze(rt.state, proof, VerifyKey(proof.key))
        data = encode(proof.to_wire())
        await self.storage.freeze_forum(rt.forum, dump_state(state), data, self.clock())
        rt.state, rt.proof = state, data
        self.metrics.proofs.inc()
        self.metrics.frozen.set(sum(1 for r in self._forums.values() if r.state and r.state.frozen))
        log_event(log, logging.ERROR, "forum.frozen", forum=rt.forum, hub=proof.hub, seq=proof.seq)
        self._wake(rt)
        for node in sorted(self._participants(state) | {proof.hub}):
            await self._send(node, "forum.proof", {"forum": rt.forum, "proof": data})

    async def frozen_forums(self) -> list[ForumRecord]:
        """Frozen forums with the proof that froze each (for the admin API and CLI)."""
        return await self.storage.frozen_forums()
