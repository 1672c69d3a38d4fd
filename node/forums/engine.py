"""``ForumEngine``: the forum log engine's public face (specs/CONTRACT.md, "Node internals").

The client API calls ``submit_local`` / ``read`` / ``wait_for`` / ``state`` /
``forums_of`` / ``invites_for``; the inbox calls the ``on_*`` methods after
``accept_envelope`` succeeded; delivery is reached through ``FederationPort``. Each role
lives in its own module (hub, replica, accountability); this one routes between them and
does what follows every commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from aiohttp import web

from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.group import check_attachment
from protocol.identity import node_of
from protocol.keys import sha256
from protocol.log import Entry, Event, forum_origin
from protocol.rules import ACTIVE, ForumState, certificate_of

from ..logs import log_event
from ..storage import Storage
from ..storage.forums import EvidenceRecord, SubmissionRecord
from .accountability import Accountability
from .attachments import AttachmentRole, attachment_of, by_ref
from .core import PAGE, FederationPort, ForumRuntime, federation_of, log
from .hub import HubRole, Outcome, refused
from .replica import ReplicaRole
from .snapshot import load_state

SNAPSHOT_CLOSE_S = 2.0  # per forum, at stop: a sequencer holding the lock may not let go

MAX_SUBMIT_EVENTS = 50  # events per forum.submit envelope we send


@dataclass(frozen=True)
class SubmitResult:
    event_id: bytes
    status: Literal["sequenced", "forwarded"]
    seq: int | None


class ForumEngine(HubRole, ReplicaRole, Accountability, AttachmentRole):
    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load every forum's state from its snapshot and fold the entries stored after
        it (all of them if it is unreadable or ahead of the stored head)."""
        await self.keys.reload()
        for rec in await self.storage.list_forum_records():
            rt = self._rt(rec.id)
            state = load_state(rec.state) if rec.state is not None else None
            if state is not None and state.seq > rec.head_seq:
                state = None
            rt.snapshot_seq = state.seq if state is not None else 0
            if state is None or state.seq != rec.head_seq:
                state = await self._refold(rec.id, rec.head_seq, base=state)
                if state is not None and rec.frozen:
                    state = replace(state, frozen=True)
            rt.state, rt.proof = state, rec.proof
            rt.known_head = rt.seq
        for inv in await self.storage.list_invites():
            rt = self._rt(inv.forum)
            if rt.state is None:
                rt.hub_hint = inv.hub
            rt.known_head = max(rt.known_head, inv.seq)
            if self._has_gap(rt):
                self._start_backfill(rt)
        self.metrics.frozen.set(sum(1 for r in self._forums.values() if r.state and r.state.frozen))

    async def close(self) -> None:
        for rt in self._forums.values():
            for timer in (rt.head_timer, rt.push_wait, rt.snapshot_timer):
                if timer is not None:
                    timer.cancel()
            rt.snapshot_timer = None
        for rt in list(self._forums.values()):  # a restart then folds nothing
            if rt.state is not None and rt.state.seq > rt.snapshot_seq:
                try:
                    await asyncio.wait_for(self._snapshot(rt), SNAPSHOT_CLOSE_S)
                except Exception as exc:  # the stop goes on: a restart folds the rest
                    log_event(log, logging.WARNING, "forum.snapshot_failed", forum=rt.forum,
                              error=type(exc).__name__)  # fmt: skip
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._verifier is not None:
            self._verifier.shutdown(wait=False)

    # ------------------------------------------------------------------ submitting

    async def submit_local(
        self, event_bytes: bytes, event: Event | None = None, *, attachment: bytes | None = None
    ) -> SubmitResult:
        """A local member's signed event: sequence it (we are the hub) or forward it.
        ``event``: ``Event.from_bytes(event_bytes)`` if the caller (the client route)
        already decoded it, so the hot path decodes once. ``attachment``: a detached
        event's (§6.9), checked here and kept until it expires."""
        ev = event if event is not None else Event.from_bytes(event_bytes)
        queued = self.queue_local(event_bytes, ev, attachment=attachment)
        if queued is not None:
            return await queued
        forum, eid = ev.forum, ev.event_id
        if ev.type == "forum.create":
            return _result(eid, await self._sequence(forum, event_bytes, self.name, ev))
        rt = self._forums[forum]  # queue_local checked that it is known
        move_to = _move_target(ev)
        if move_to == self.name:
            return _result(eid, await self._sequence_move(rt, ev))
        if self._federation() is None:
            raise RemoteProtocolError("api.unavailable", "delivery to other nodes is not running")
        carried = {eid: attachment} if attachment is not None else None
        await self._forward(rt, move_to or self._hub_of(rt), [event_bytes], carried)
        return SubmitResult(eid, "forwarded", None)

    def queue_local(
        self, event_bytes: bytes, ev: Event, *, attachment: bytes | None = None
    ) -> Awaitable[SubmitResult] | None:
        """``submit_local``'s checks, and for the common case — an event of a forum this
        node sequences — its place in the sequencer's queue, without awaiting anything:
        what to await for its result (refusals raise there). None when the event
        takes another path (a new forum, a hub move, a forum hosted elsewhere): call
        ``submit_local``. Refusals raise. A batch route queues its events in order this
        way, with no task per event."""
        if node_of(ev.author) != self.name:
            raise RemoteProtocolError("api.forbidden", "the author is not a member of this node")
        forum = ev.forum
        check_attachment(ev.body, attachment)  # §6.9: refused here, before it travels
        if ev.type == "forum.create":
            if forum_origin(forum) != self.name:
                raise RemoteProtocolError("rules.not_permitted", "a forum id must name this node")
            return None
        rt = self._forums.get(forum)
        if rt is None or (rt.state is None and rt.hub_hint is None):
            raise RemoteProtocolError("forum.unknown", "no such forum on this node")
        move_to = _move_target(ev)
        if move_to == self.name:
            return None
        if rt.state is not None and rt.state.frozen and move_to is None:
            raise RemoteProtocolError("forum.frozen", forum)
        if move_to is None and self._is_hub(rt):
            return _settled(ev.event_id, self._sequence(forum, event_bytes, self.name, ev,
                                                        attachment))  # fmt: skip
        return None

    async def on_submit(
        self, origin: str, forum: str, events: list[bytes], attachments: list[bytes] | None = None
    ) -> list[Outcome]:
        """Events from ``origin``'s members: sequence them (hub) and answer ``forum.result``.
        ``attachments``: those of detached events among them, matched by hash (§6.9)."""
        rt = self._forums.get(forum)
        carried = by_ref(attachments or ())
        pending: list[asyncio.Future[Outcome] | Outcome] = []
        for raw in events:
            try:
                ev = Event.from_bytes(raw)
                if ev.forum != forum:
                    raise RemoteProtocolError("event.wrong_forum", f"event is for {ev.forum}")
                if node_of(ev.author) != origin:
                    raise RemoteProtocolError("envelope.origin_mismatch", "author of another node")
                if rt is None or rt.state is None:
                    raise RemoteProtocolError("forum.unknown", "no such forum on this node")
                if _move_target(ev) == self.name:
                    pending.append(await self._sequence_move(rt, ev))
                elif not self._is_hub(rt):
                    raise RemoteProtocolError("entry.wrong_hub", f"the hub is {rt.state.hub}")
                else:
                    found = attachment_of(ev, carried)
                    data = found.data if found is not None else None
                    pending.append(self._sequence(forum, raw, origin, ev, data))
            except ProtocolError as exc:
                pending.append(refused(sha256(raw), exc))
        results = [await p if isinstance(p, asyncio.Future) else p for p in pending]
        await self._send(origin, "forum.result", {"forum": forum, "results": results})
        return results

    async def on_result(self, origin: str, body: dict[str, Any]) -> None:
        """The hub's answer to events we forwarded: mark them sequenced or refused."""
        forum = body.get("forum")
        rt = self._forums.get(forum) if isinstance(forum, str) else None
        if rt is not None and origin != self._hub_of(rt) and rt.state is not None:
            # A former hub, answering what reached it after the move: entry.wrong_hub.
            # Those events go to the hub we know now (event ids dedupe there).
            moved = {r.get("event_id") for r in body.get("results", [])
                     if isinstance(r, dict) and r.get("error") == "entry.wrong_hub"}  # fmt: skip
            pending = await self.storage.list_submissions(rt.forum, state="pending")
            await self._resend(rt, [s.event for s in pending if s.event_id in moved])
            return
        if rt is None or origin != self._hub_of(rt):
            raise RemoteProtocolError("api.forbidden", "only the forum's hub answers submissions")
        outcomes: list[tuple[bytes, str, str | None]] = []
        for r in body.get("results", []):
            if not isinstance(r, dict) or not isinstance(r.get("event_id"), bytes):
                continue
            if "seq" in r:
                outcomes.append((r["event_id"], "sequenced", None))
            elif r.get("error") != "entry.wrong_hub":  # a moved hub: re-sent after the move
                outcomes.append((r["event_id"], "refused", str(r.get("error"))))
        await self.storage.resolve_submissions(rt.forum, outcomes)

    async def submission(self, forum: str, event_id: bytes) -> SubmissionRecord | None:
        """What became of an event this node forwarded to the hub."""
        found = await self.storage.list_submissions(forum, event_id=event_id)
        return found[0] if found else None

    # ------------------------------------------------------------------ after every commit

    async def _after_commit(
        self, rt: ForumRuntime, entries: list[Entry], dropped: list[Entry]
    ) -> None:
        hub = self._is_hub(rt)
        moved = any(e.signed_event.type == "hub.move" for e in entries)
        if moved:
            rt.pending_head, rt.last_head_seq = None, 0
        for e in entries:
            ev = e.signed_event
            if ev.type != "member.invite":
                continue
            candidate_node = node_of(str(ev.body["candidate"]))
            if candidate_node == self.name:
                await self._store_invite(rt, e)
            elif hub:
                await self._send(
                    candidate_node, "forum.invite", {"forum": rt.forum, "entry": e.raw}
                )
        if hub:
            self._notify(rt.forum)
            self._schedule_head(rt)
        else:
            await self._check_pending_head(rt)
        if moved:
            await self._resubmit(rt, dropped)

    async def _resubmit(self, rt: ForumRuntime, dropped: list[Entry]) -> None:
        """After a hub move: our members' dropped events, and what the old hub never answered."""
        raws = [e.signed_event.raw for e in dropped if node_of(e.signed_event.author) == self.name]
        raws += [s.event for s in await self.storage.list_submissions(rt.forum, state="pending")]
        raws = list(dict.fromkeys(raws))
        if raws:
            log_event(log, logging.INFO, "forum.resubmit", forum=rt.forum, events=len(raws))
            await self._resend(rt, raws)

    async def _resend(self, rt: ForumRuntime, raws: list[bytes]) -> None:
        """Our members' events to the forum's current hub: our own sequencer if we are it.
        Detached ones go with the attachments we kept for them (§6.9)."""
        kept = await self._resend_attachments(rt.forum, raws)
        if self._is_hub(rt):
            for raw in raws:  # dedupes by event id
                self._sequence(rt.forum, raw, self.name, None, kept.get(sha256(raw)))
            return
        for i in range(0, len(raws), MAX_SUBMIT_EVENTS):
            body = _submit_body(rt.forum, raws[i : i + MAX_SUBMIT_EVENTS], kept)
            await self._send(self._hub_of(rt), "forum.submit", body)

    async def _forward(
        self,
        rt: ForumRuntime,
        hub: str,
        raws: list[bytes],
        attachments: Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Local members' events for a forum hosted elsewhere: recorded as pending
        submissions (re-sent after a hub move until answered), then queued for the hub.
        ``attachments`` (by event id) are kept here as well, and travel beside the events."""
        fed = self._federation()
        if fed is None:
            raise RemoteProtocolError("api.unavailable", "delivery to other nodes is not running")
        events = [(sha256(raw), raw) for raw in raws]
        await self.storage.add_submissions(rt.forum, events, self.name, self.clock())
        attachments = attachments or {}
        if attachments:
            found = by_ref(attachments.values())
            stored = [attachment_of(Event.from_bytes(raw), found) for raw in raws]
            await self._keep_forwarded(rt.forum, [a for a in stored if a is not None])
        for i in range(0, len(raws), MAX_SUBMIT_EVENTS):
            body = _submit_body(rt.forum, raws[i : i + MAX_SUBMIT_EVENTS], attachments)
            await fed.enqueue(hub, "forum.submit", body)  # a failure reaches the caller

    # ------------------------------------------------------------------ reading

    def state(self, forum: str) -> ForumState | None:
        rt = self._forums.get(forum)
        return rt.state if rt is not None else None

    def head_of(self, forum: str) -> int:
        """Our contiguous verified head of ``forum`` (0 if we hold none): the ack."""
        rt = self._forums.get(forum)
        return rt.seq if rt is not None else 0

    def hub_forums_with(self, node: str) -> list[str]:
        """Forums we sequence in which ``node`` takes part (where our pushes to it go)."""
        return sorted(f for f, rt in self._forums.items()
                      if self._is_hub(rt) and node in self._participants(rt.state))  # fmt: skip

    def replica_forums(self) -> list[str]:
        """Forums we hold and another node sequences."""
        return sorted(f for f, rt in self._forums.items()
                      if rt.state is not None and not self._is_hub(rt))  # fmt: skip

    def participants(self, forum: str) -> set[str]:
        """Nodes other than this one with an active member or open invitation."""
        return self._participants(self.state(forum))

    def forums_of(self, member: str) -> list[str]:
        """Forums where ``member`` is active or holds an open invitation, by id."""
        out = []
        for forum, rt in self._forums.items():
            s = rt.state
            if s is None:
                continue
            m = s.members.get(member)
            if (m is not None and m.status == ACTIVE) or member in s.invitations:
                out.append(forum)
        return sorted(out)

    async def read(self, forum: str, from_seq: int, limit: int) -> tuple[int, list[bytes]]:
        """``(head, entries)``: up to ``limit`` (<= 500) stored entries from ``from_seq``."""
        rt = self._forums.get(forum)
        head = rt.seq if rt is not None else 0
        from_seq, limit = max(1, from_seq), max(0, min(limit, PAGE))
        recent = rt.from_tail(from_seq, limit) if rt is not None else None
        if recent is not None:  # what was just committed: no database read
            return head, recent
        stored = await self.storage.read_entries(forum, from_seq, limit)
        return head, [s.entry for s in stored]

    async def wait_for(self, forum: str, seq: int, timeout_s: float) -> int:
        """Wait (push-driven, no polling) until the forum's head reaches ``seq``; the head."""
        rt = self._rt(forum)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while rt.seq < seq and loop.time() < deadline:
            waiter: asyncio.Future[None] = loop.create_future()
            rt.waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if not waiter.done():  # cancelled (the client went away): forget it
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        rt.waiters.remove(waiter)
        return rt.seq

    async def evidence(self, forum: str | None = None, limit: int = 100) -> list[EvidenceRecord]:
        return await self.storage.list_evidence(forum, limit)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _move_target(ev: Event) -> str | None:
    """The new hub a ``hub.move`` event names (None for other events or a bad certificate)."""
    if ev.type != "hub.move":
        return None
    try:
        return certificate_of(ev).statement.new_hub
    except ProtocolError:
        return None


def _submit_body(
    forum: str, raws: list[bytes], attachments: Mapping[bytes, bytes]
) -> dict[str, Any]:
    """A ``forum.submit`` body; ``attachments`` only when some event of it is detached."""
    body: dict[str, Any] = {"forum": forum, "events": raws}
    carried = [attachments[eid] for eid in map(sha256, raws) if eid in attachments]
    if carried:
        body["attachments"] = carried
    return body


async def _settled(event_id: bytes, future: asyncio.Future[Outcome]) -> SubmitResult:
    return _result(event_id, await future)


def _result(event_id: bytes, outcome: Outcome) -> SubmitResult:
    if "error" in outcome:
        raise RemoteProtocolError(outcome["error"], outcome["message"])
    if outcome.get("forwarded"):  # the hub moved away while it waited: sent to the new one
        return SubmitResult(event_id, "forwarded", None)
    return SubmitResult(event_id, "sequenced", outcome["seq"])


def engine_for(app: web.Application, storage: Storage) -> ForumEngine:
    from ..context import CTX

    ctx = app[CTX]
    return ForumEngine(
        storage, name=ctx.identity.name, node_keys=lambda: ctx.identity.keys, clock=ctx.clock,
        registry=ctx.metrics.registry, federation=federation_of(app),
    )  # fmt: skip


async def forums_ctx(app: web.Application) -> AsyncIterator[None]:
    """The service: after storage, before delivery (which calls into it)."""
    from ..context import FORUMS, STORAGE

    engine = engine_for(app, app[STORAGE])
    await engine.start()
    app[FORUMS] = engine
    yield
    await engine.close()


__all__ = ["FederationPort", "ForumEngine", "SubmitResult", "forums_ctx"]
