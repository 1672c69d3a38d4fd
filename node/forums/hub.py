"""The hub: one sequencer task per forum, group commit, and taking over a forum on a move.

Submissions (local or from peers) queue for the forum's sequencer. It takes everything
waiting (up to ``MAX_BATCH``), checks each event against the in-memory state (§7 R1-R8),
drops repeats by event id, signs entries, and writes the whole batch with the new state
in one storage job. Nothing awaits the database per entry, and the storage engine folds
batches of several forums into one transaction: that is what lets one hub sequence
thousands of entries per second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Final

from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.group import check_attachment
from protocol.keys import sha256
from protocol.log import ZERO_HASH, Entry, Event, append_entry
from protocol.rules import ForumState, certificate_of

from ..logs import log_event
from ..storage.forums import StoredAttachment
from .attachments import attachment_of
from .core import ForumCore, ForumRuntime, log

MAX_BATCH: Final = 256
PREVERIFY_MIN: Final = 16  # events in a batch worth verifying on two threads first
Outcome = dict[str, Any]  # {event_id, seq} | {event_id, error, message}


def ok(event_id: bytes, seq: int) -> Outcome:
    return {"event_id": event_id, "seq": seq}


def refused(event_id: bytes, exc: ProtocolError) -> Outcome:
    return {"event_id": event_id, "error": exc.code, "message": exc.message}


@dataclass
class _Pending:
    raw: bytes
    origin: str
    future: asyncio.Future[Outcome]
    event: Event | None  # already decoded by the caller: decoding is a hot-path cost
    attachment: bytes | None = None  # of a detached event (§6.9), checked with the rules


class HubRole(ForumCore):
    _queues: dict[str, asyncio.Queue[_Pending]]

    def _sequence(
        self,
        forum: str,
        raw: bytes,
        origin: str,
        event: Event | None = None,
        attachment: bytes | None = None,
    ) -> asyncio.Future[Outcome]:
        """Queue ``raw`` for the forum's sequencer; the future resolves after commit."""
        if not hasattr(self, "_queues"):
            self._queues = {}
        queue = self._queues.get(forum)
        if queue is None:
            queue = self._queues[forum] = asyncio.Queue()
            self._spawn(self._run_sequencer(forum, queue), f"pf-sequencer-{forum}")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Pending(raw, origin, future, event, attachment))
        return future

    async def _run_sequencer(self, forum: str, queue: asyncio.Queue[_Pending]) -> None:
        rt = self._rt(forum)
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._sequence_batch(rt, batch)
            except Exception as exc:  # a bug or a dead database: fail the callers, keep going
                log_event(log, logging.ERROR, "forum.sequencer_failed", forum=forum,
                          error=type(exc).__name__)  # fmt: skip
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)

    async def _sequence_batch(self, rt: ForumRuntime, batch: list[_Pending]) -> None:
        if len(batch) >= PREVERIFY_MIN:  # a burst: its signatures on two cores first
            state = rt.state
            await self._preverify_split(
                [(p.event, self._device_key(state, p.event)) for p in batch if p.event]
            )
        outcomes: list[tuple[_Pending, Outcome]] = []
        staged: list[Entry] = []
        kept: list[StoredAttachment] = []
        forward: list[bytes] = []
        carried: dict[bytes, bytes] = {}  # attachments of what we forward, by event id
        async with rt.lock:
            await self._ensure_index(rt)
            assert rt.event_seq is not None
            state = rt.state
            if state is not None and state.hub != self.name:
                # The forum moved away while these waited. Our members' events follow it
                # to the new hub; a peer's are refused, and its node re-sends them there.
                moved = RemoteProtocolError(
                    "entry.wrong_hub", f"the hub of {rt.forum} is {state.hub}"
                )
                outcomes = [
                    (p, {"event_id": sha256(p.raw), "forwarded": True} if p.origin == self.name
                     else refused(sha256(p.raw), moved))
                    for p in batch
                ]  # fmt: skip
                forward = [p.raw for p in batch if p.origin == self.name]
                carried = {sha256(p.raw): p.attachment for p in batch if p.attachment is not None}
            key, ts = self._node_keys().current, self.clock()
            in_batch: dict[bytes, int] = {}
            for p in batch if not outcomes else ():
                try:
                    ev = p.event or Event.from_bytes(p.raw)
                except ProtocolError as exc:
                    outcomes.append((p, refused(sha256(p.raw), exc)))
                    continue
                eid = ev.event_id
                seen = rt.event_seq.get(eid) or in_batch.get(eid)
                if seen:  # entry.duplicate_event: idempotent, the author learns its seq
                    outcomes.append((p, ok(eid, seen)))
                    continue
                try:
                    after = await self._checked(state, ev)
                    check_attachment(ev.body, p.attachment)  # §6.9 A1-A3
                    prev, seq = (state.head, state.seq + 1) if state else (ZERO_HASH, 1)
                    entry = append_entry(prev, seq, p.raw, key, self.name, ts)
                except ProtocolError as exc:
                    self.metrics.submissions_refused.inc(code=exc.code)
                    outcomes.append((p, refused(eid, exc)))
                    continue
                state = replace(after, seq=entry.seq, head=entry.hash)
                staged.append(entry)
                if p.attachment is not None:
                    found = attachment_of(ev, {ev.body["ct_ref"]: p.attachment})
                    kept += [found] if found is not None else []
                in_batch[eid] = entry.seq
                outcomes.append((p, ok(eid, entry.seq)))
            if staged:
                assert state is not None
                await self._commit(rt, staged, state, attachments=kept)
                self.metrics.sequenced.inc(len(staged))
        if forward and rt.state is not None:
            await self._forward(rt, rt.state.hub, forward, carried)
        for p, outcome in outcomes:
            if not p.future.done():
                p.future.set_result(outcome)
        if staged:
            await self._after_commit(rt, staged, [])

    async def _checked(self, state: ForumState | None, ev: Event) -> ForumState:
        if ev.type == "hub.move":  # only the new hub signs a move: see _sequence_move
            raise RemoteProtocolError("hubmove.invalid", "submit a hub move to its new hub")
        return await self._checked_event(state, ev)

    async def _sequence_move(self, rt: ForumRuntime, ev: Event) -> Outcome:
        """Take the forum over: append the certified ``hub.move`` at ``last_seq + 1``.

        Runs on the NEW hub while it is still a replica (the old hub may be dead). Entries
        the old hub sequenced after ``last_seq`` are dropped here and re-submitted by their
        authors' nodes; ours go straight back into our own sequencer.
        """
        st = certificate_of(ev).statement
        if st.new_hub != self.name:
            raise RemoteProtocolError("hubmove.invalid", f"the move names {st.new_hub} as new hub")
        if rt.state is not None and rt.state.seq < st.last_seq:
            # Behind the certified point (the old hub may be dead): fetch the missing
            # entries from any participant that holds them, verified as always.
            rt.known_head = max(rt.known_head, st.last_seq)
            await self._backfill(rt)
        async with rt.lock:
            await self._ensure_index(rt)
            assert rt.event_seq is not None
            if rt.state is None:
                raise RemoteProtocolError("forum.unknown", rt.forum)
            if (seen := rt.event_seq.get(ev.event_id)) is not None:
                return ok(ev.event_id, seen)
            if rt.state.seq < st.last_seq:
                raise RemoteProtocolError(
                    "forum.gap", f"this node holds seq {rt.state.seq}, the move certifies "
                    f"{st.last_seq}: let it catch up first",
                )  # fmt: skip
            base = rt.state
            if base.seq > st.last_seq:
                refolded = await self._refold(rt.forum, st.last_seq)
                assert refolded is not None
                base = refolded
            after = await self._checked_event(base, ev)
            entry = append_entry(base.head, base.seq + 1, ev.raw, self._node_keys().current,
                                 self.name, self.clock())  # fmt: skip
            dropped = await self._entries_after(rt, st.last_seq)
            truncate = st.last_seq if rt.state.seq > st.last_seq else None
            await self._commit(
                rt, [entry], replace(after, seq=entry.seq, head=entry.hash), truncate
            )
            self.metrics.sequenced.inc()
        log_event(log, logging.WARNING, "forum.hub_moved", forum=rt.forum, seq=entry.seq,
                  old_hub=st.old_hub, new_hub=self.name, dropped=len(dropped))  # fmt: skip
        await self._after_commit(rt, [entry], dropped)
        return ok(ev.event_id, entry.seq)

    async def _entries_after(self, rt: ForumRuntime, seq: int) -> list[Entry]:
        """Stored entries past ``seq`` (what a hub move is about to discard)."""
        if rt.seq <= seq:
            return []
        stored = await self.storage.read_entries(rt.forum, seq + 1, rt.seq - seq)
        return [Entry.from_bytes(s.entry) for s in stored]
