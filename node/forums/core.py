"""What every part of the forum engine shares: per-forum runtime, storage writes, seams.

The engine is split by role — ``hub.py`` sequences, ``replica.py`` verifies and
backfills, ``accountability.py`` signs and checks heads and proofs — as mixins over
``ForumCore`` (the same shape as the storage mixins). Every change to a forum's state
happens under that forum's lock and reaches the database through ``_commit``: one write
job holding a batch of entries and the state they lead to.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from aiohttp import web

from protocol.errors import ProtocolError
from protocol.identity import node_of
from protocol.keys import VerifyKey
from protocol.log import Entry, EquivocationProof, Event, Head, forum_origin, preverify
from protocol.rules import ACTIVE, ForumState, apply_entry, check_event

from ..keystore import NodeKeys
from ..logs import log_event
from ..metrics import Registry
from ..storage import Storage
from ..storage.forums import StoredAttachment, StoredEntry
from .keys import KeyBook
from .snapshot import SNAPSHOT_EVERY, SNAPSHOT_IDLE_S, dump_state

log = logging.getLogger("peerforum.forums")
T = TypeVar("T")
PAGE = 500  # entries per backfill page and per refold read (the API's limit too)
# The newest entries of each forum stay in memory after their commit: the sender pushing
# them and the members' long-polls read them from there, not through a reader thread (a
# hop to it costs more than the rest of a push). Bounded per forum and in total.
TAIL_ENTRIES = 512
TAIL_BYTES = 16 * 1024 * 1024


class FederationPort(Protocol):
    """What the engine needs from delivery (``node.federation.Federation``)."""

    def notify_forum(self, forum: str) -> Any: ...

    async def enqueue(self, destination: str, kind: str, body: dict[str, Any]) -> Any: ...

    async def request(
        self, destination: str, path: str, kind: str, body: dict[str, Any]
    ) -> Any: ...


def federation_of(app: web.Application) -> Callable[[], FederationPort | None]:
    """Resolve the delivery layer lazily: it starts after us, and unit tests run without it."""

    def get() -> FederationPort | None:
        key = getattr(importlib.import_module("node.context"), "FEDERATION", None)
        fed: FederationPort | None = app.get(key) if key is not None else None
        return fed

    return get


class ForumMetrics:
    def __init__(self, r: Registry) -> None:
        self.sequenced = r.counter(
            "peerforum_forum_entries_sequenced_total", "Entries this node sequenced as hub."
        )
        self.replicated = r.counter(
            "peerforum_forum_entries_replicated_total", "Hub entries verified and applied."
        )
        self.refused = r.counter(
            "peerforum_forum_entries_refused_total",
            "Entries refused (kept as evidence against their hub), by code.", ("code",),
        )  # fmt: skip
        self.submissions_refused = r.counter(
            "peerforum_forum_submissions_refused_total",
            "Events the hub refused to sequence, by code.", ("code",),
        )  # fmt: skip
        self.frozen = r.gauge("peerforum_forum_frozen", "Forums frozen after hub equivocation.")
        self.proofs = r.counter(
            "peerforum_forum_equivocation_proofs_total", "Equivocation proofs built or accepted."
        )
        self.backfill = r.counter(
            "peerforum_forum_backfill_requests_total", "Backfill requests by role.", ("role",)
        )
        self.heads = r.counter(
            "peerforum_forum_heads_total", "Heads signed (hub) or cosigned (replica).", ("role",)
        )


@dataclass
class ForumRuntime:
    """One forum as this node holds it in memory."""

    forum: str
    state: ForumState | None  # committed state (None: known only through an invitation)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Long-polls waiting for the next commit (``ForumEngine.wait_for``): plain futures,
    # resolved by ``_wake`` — one turn of the loop to the reader, where an Event under
    # ``asyncio.wait_for`` took three (a task inside a task).
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    hashes: list[bytes] | None = None  # entry hash by seq - 1 (loaded on first use)
    event_seq: dict[bytes, int] | None = None  # event id -> seq, for dedupe
    ahead: dict[int, Entry] = field(default_factory=dict)  # entries beyond a gap
    known_head: int = 0  # highest seq the hub told us exists
    hub_hint: str | None = None  # the hub named by an invitation, before we hold state
    source: str | None = None  # who pushed entries we hold past a gap (asked first)
    backfilling: asyncio.Task[None] | None = None
    pending_head: tuple[str, Head] | None = None  # a hub head beyond our seq: (origin, head)
    last_head_seq: int = 0  # hub: last head signed; replica: last head cosigned
    head_timer: asyncio.TimerHandle | None = None
    push_wait: asyncio.TimerHandle | None = None  # replica: grace before backfilling
    pushed_at: float = -1e9  # replica: loop time the hub's push last moved our head
    proof: bytes | None = None
    tail: list[bytes] = field(default_factory=list)  # committed entries tail_first..seq
    tail_first: int = 0
    snapshot_seq: int = 0  # seq of the stored snapshot (node/forums/snapshot.py)
    snapshot_timer: asyncio.TimerHandle | None = None

    @property
    def seq(self) -> int:
        return self.state.seq if self.state else 0

    def from_tail(self, from_seq: int, limit: int) -> list[bytes] | None:
        """Entries ``from_seq``.. from memory, or None if the tail does not reach back."""
        if not self.tail or from_seq < self.tail_first:
            return None
        start = from_seq - self.tail_first
        return self.tail[start : start + limit]


class ForumCore:
    def __init__(
        self,
        storage: Storage,
        *,
        name: str,
        node_keys: Callable[[], NodeKeys],
        clock: Callable[[], int],
        registry: Registry,
        federation: Callable[[], FederationPort | None] = lambda: None,
        keybook: KeyBook | None = None,
    ) -> None:
        self.storage = storage
        self.name = name
        self._node_keys = node_keys
        self.clock = clock
        self.metrics = ForumMetrics(registry)
        self._federation = federation
        self.keys = keybook or KeyBook(storage, name, node_keys)
        self._forums: dict[str, ForumRuntime] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tails: dict[str, int] = {}  # forum -> bytes in its tail, oldest append first
        self._tail_bytes = 0
        self._verifier: ThreadPoolExecutor | None = None  # see _verify_beside

    # ------------------------------------------------------------------ runtime

    def _rt(self, forum: str) -> ForumRuntime:
        rt = self._forums.get(forum)
        if rt is None:
            rt = self._forums[forum] = ForumRuntime(forum, None)
        return rt

    def _hub_of(self, rt: ForumRuntime) -> str:
        if rt.state is not None:
            return rt.state.hub
        return rt.hub_hint or forum_origin(rt.forum)

    def _is_hub(self, rt: ForumRuntime) -> bool:
        return rt.state is not None and rt.state.hub == self.name

    def _participants(self, state: ForumState | None) -> set[str]:
        if state is None:
            return set()
        nodes = {node_of(m.id) for m in state.members.values() if m.status == ACTIVE}
        nodes |= {node_of(c) for c in state.invitations}
        nodes.discard(self.name)
        return nodes

    async def _ensure_index(self, rt: ForumRuntime) -> None:
        """Load the hash chain and event ids of ``rt`` (under its lock)."""
        if rt.hashes is not None:
            return
        rows = await self.storage.entry_index(rt.forum)
        rt.hashes = [h for _, h, _ in rows]
        rt.event_seq = {eid: seq for seq, _, eid in rows}

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ across roles
    # Each is implemented by one role module; declared here so the others can call it.

    async def _after_commit(
        self, rt: ForumRuntime, entries: list[Entry], dropped: list[Entry]
    ) -> None:
        raise NotImplementedError  # engine.py: wake, push, invitations, heads, re-submissions

    async def _freeze_locked(self, rt: ForumRuntime, proof: EquivocationProof) -> None:
        raise NotImplementedError  # accountability.py

    async def _check_pending_head(self, rt: ForumRuntime) -> None:
        raise NotImplementedError  # accountability.py

    def _start_backfill(self, rt: ForumRuntime, probe: bool = False) -> None:
        raise NotImplementedError  # replica.py

    async def _backfill(self, rt: ForumRuntime, probe: bool = False) -> None:
        raise NotImplementedError  # replica.py

    def _await_push(self, rt: ForumRuntime) -> None:
        raise NotImplementedError  # replica.py

    async def _forward(
        self,
        rt: ForumRuntime,
        hub: str,
        raws: list[bytes],
        attachments: Mapping[bytes, bytes] | None = None,
    ) -> None:
        raise NotImplementedError  # engine.py: pending submissions, sent to the hub

    async def _store_invite(self, rt: ForumRuntime, e: Entry) -> None:
        raise NotImplementedError  # replica.py

    def _noted(self, forum: str, attachments: Sequence[StoredAttachment]) -> None:
        raise NotImplementedError  # attachments.py: reads and the retention job learn of them

    async def attachments_for(self, forum: str, first: int, last: int) -> dict[int, bytes]:
        raise NotImplementedError  # attachments.py: kept attachments of entries, by seq

    # ------------------------------------------------------------------ keys

    async def _preverify_split(
        self, checks: Sequence[tuple[Entry | Event, VerifyKey | None]]
    ) -> None:
        """``protocol.log.preverify`` over a batch, half on a worker thread and half here:
        pynacl lets go of the GIL while it verifies, so both halves' Ed25519 work runs at
        once on two cores. (Handing it all to the worker while the event loop runs Python
        made both fight over the GIL: slower than not at all, measured.) Fills the cache
        the ordered checks consult; decides nothing."""
        if self._verifier is None:
            self._verifier = ThreadPoolExecutor(1, thread_name_prefix="pf-verify")
        half = len(checks) // 2
        loop = asyncio.get_running_loop()
        beside = loop.run_in_executor(self._verifier, preverify, checks[:half])
        preverify(checks[half:])
        await beside

    @staticmethod
    def _device_key(state: ForumState | None, ev: Event) -> VerifyKey | None:
        """The signing key of ``ev``'s device if ``state`` lists that device for its
        author (what most events are); None otherwise (the rules find the key themselves,
        and decide whether the author may act)."""
        member = state.members.get(ev.author) if state is not None else None
        device = member.devices.get(ev.kid) if member is not None else None
        return device.sign if device is not None else None

    async def _retrying(self, fn: Callable[[], T]) -> T:
        """Run a pure check; if it missed a key, reload pinned keys and run it once more."""
        self.keys.missed = False
        try:
            return fn()
        except ProtocolError as exc:
            if exc.code != "sig.unknown_key" or not self.keys.missed:
                raise
        await self.keys.reload()
        return fn()

    async def _applied(self, state: ForumState | None, entry: Entry) -> ForumState:
        """``apply_entry`` (§6.3 E1-E7) with our key book."""
        lookup = self.keys.lookup
        return await self._retrying(
            partial(apply_entry, state, entry, hub_key_at=lookup, node_keys=lookup)
        )

    async def _checked_event(self, state: ForumState | None, ev: Event) -> ForumState:
        """``check_event`` (§7 R0-R8) with our key book."""
        return await self._retrying(partial(check_event, state, ev, node_keys=self.keys.lookup))

    async def _key_of(self, node: str, kid: str, ts: int) -> VerifyKey:
        """The pinned key ``kid`` of ``node`` valid at ``ts`` (``sig.unknown_key``)."""
        return await self._retrying(partial(self.keys.require, node, kid, ts))

    async def _refold(
        self, forum: str, upto: int, base: ForumState | None = None
    ) -> ForumState | None:
        """Fold stored entries up to ``upto`` again: from 1 (no snapshot, or a hub move
        going back), or after ``base`` (a snapshot older than the stored head)."""
        state = base
        while (done := state.seq if state else 0) < upto:
            page = await self.storage.read_entries(forum, done + 1, min(PAGE, upto - done))
            if not page:
                break
            for stored in page:
                state = await self._applied(state, Entry.from_bytes(stored.entry))
        return state

    # ------------------------------------------------------------------ writes

    async def _commit(
        self,
        rt: ForumRuntime,
        entries: Sequence[Entry],
        state: ForumState,
        truncate_after: int | None = None,
        attachments: Sequence[StoredAttachment] = (),
    ) -> None:
        """Store ``entries`` and ``state`` in one job, then make them the forum's truth.
        ``attachments``: of detached entries among them (§6.9), stored in the same job."""
        await self._ensure_index(rt)  # before the write, or it would already list these
        stored = [StoredEntry(e.seq, e.hash, e.signed_event.event_id, e.raw) for e in entries]
        snapshot = (
            truncate_after is not None or state.frozen or rt.state is None
            or state.hub != rt.state.hub or state.seq - rt.snapshot_seq >= SNAPSHOT_EVERY
        )  # fmt: skip
        await self.storage.append_entries(
            rt.forum, state.hub, stored, dump_state(state) if snapshot else None, state.seq,
            state.head, state.frozen, self.clock(), truncate_after, attachments,
        )  # fmt: skip
        if snapshot:
            rt.snapshot_seq = state.seq
        elif rt.snapshot_timer is None:
            rt.snapshot_timer = asyncio.get_running_loop().call_later(
                SNAPSHOT_IDLE_S, lambda: self._spawn(self._snapshot(rt), "pf-snapshot")
            )
        self._noted(rt.forum, attachments)
        assert rt.hashes is not None and rt.event_seq is not None
        if truncate_after is not None:
            rt.event_seq = {k: v for k, v in rt.event_seq.items() if v <= truncate_after}
            del rt.hashes[truncate_after:]
            rt.known_head = min(rt.known_head, truncate_after)
        for s in stored:
            rt.hashes.append(s.hash)
            rt.event_seq[s.event_id] = s.seq
        self._keep_tail(rt, entries, truncate_after)
        rt.state = state
        rt.known_head = max(rt.known_head, state.seq)
        self._wake(rt)

    async def _snapshot(self, rt: ForumRuntime) -> None:
        """Write ``rt``'s snapshot if the stored one is older (quiet forum, or a stop)."""
        if rt.snapshot_timer is not None:
            rt.snapshot_timer.cancel()
            rt.snapshot_timer = None
        async with rt.lock:
            state = rt.state
            if state is None or state.seq <= rt.snapshot_seq:
                return
            if await self.storage.save_snapshot(rt.forum, dump_state(state), state.seq):
                rt.snapshot_seq = state.seq

    def _keep_tail(
        self, rt: ForumRuntime, entries: Sequence[Entry], truncate_after: int | None
    ) -> None:
        """Extend ``rt``'s in-memory tail with what was just committed (see TAIL_ENTRIES)."""
        tail = rt.tail
        size = before = self._tails.pop(rt.forum, 0)
        if truncate_after is not None and tail:
            keep = max(0, truncate_after - rt.tail_first + 1)
            size -= sum(len(raw) for raw in tail[keep:])
            del tail[keep:]
        if not entries:
            pass  # a truncation alone
        elif tail and rt.tail_first + len(tail) == entries[0].seq:
            tail.extend(e.raw for e in entries)
            size += sum(len(e.raw) for e in entries)
        else:  # the first commit we see, or not contiguous with what we kept: start over
            tail[:] = [e.raw for e in entries]
            rt.tail_first = entries[0].seq
            size = sum(len(raw) for raw in tail)
        if len(tail) > 2 * TAIL_ENTRIES:  # trimmed in steps: amortized, not per commit
            cut = len(tail) - TAIL_ENTRIES
            size -= sum(len(raw) for raw in tail[:cut])
            del tail[:cut]
            rt.tail_first += cut
        self._tails[rt.forum] = size  # re-inserted: now the most recently appended
        self._tail_bytes += size - before
        while self._tail_bytes > TAIL_BYTES and len(self._tails) > 1:
            forum = next(iter(self._tails))  # the tail appended to longest ago goes
            self._tail_bytes -= self._tails.pop(forum)
            if (other := self._forums.get(forum)) is not None:
                other.tail.clear()

    def _wake(self, rt: ForumRuntime) -> None:
        waiters, rt.waiters = rt.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _evidence(
        self, peer: str | None, forum: str | None, kind: str, code: str, obj: bytes
    ) -> None:
        self.metrics.refused.inc(code=code)
        log_event(
            log, logging.WARNING, "forum.refused", peer=peer, forum=forum, kind=kind, code=code
        )
        await self.storage.add_evidence(peer, forum, kind, code, obj, self.clock())

    # ------------------------------------------------------------------ delivery seams

    def _notify(self, forum: str) -> None:
        fed = self._federation()
        if fed is None:
            return
        result = fed.notify_forum(forum)
        if inspect.isawaitable(result):
            self._spawn(_quietly(result), f"pf-notify-{forum}")

    async def _send(self, destination: str, kind: str, body: dict[str, Any]) -> None:
        """Queue one envelope; a delivery failure is logged, never raised into the log path."""
        fed = self._federation()
        if fed is None or destination == self.name:
            return
        try:
            await fed.enqueue(destination, kind, body)
        except Exception as exc:  # the outbox is durable; a failure here is a local fault
            log_event(log, logging.ERROR, "forum.enqueue_failed", to=destination, kind=kind,
                      error=type(exc).__name__)  # fmt: skip


async def _quietly(aw: Awaitable[Any]) -> None:
    try:
        await aw
    except Exception as exc:
        log_event(log, logging.ERROR, "forum.notify_failed", error=type(exc).__name__)
