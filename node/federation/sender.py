"""One sender per destination: a task woken by an event (push), with a timer for retries.

Each round builds batches from what the database says is owed to the peer — queued
outbox rows first (a rotation must precede envelopes signed by the new key), then forum
entries from the peer's acknowledged seq + 1 — posts them one batch at a time, and moves
the acks from the answer. After an outage that *is* the catch-up: pages from the ack,
never a replay of per-entry envelopes. Failures go through the state graph in
backoff.py, whose state is stored per destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgpack

from protocol.codec import decode
from protocol.envelope import build_batch
from protocol.errors import ProtocolError

from ..logs import log_exception
from ..storage.delivery import PeerDelivery
from .backoff import BREAKER_GAUGE, SENDS, chance_from, due, on_failure, on_success
from .transport import SEND_TIMEOUT_S, InboxSocket, PeerUnreachable, inbox_url

if TYPE_CHECKING:
    from .federation import Federation

log = logging.getLogger("peerforum.federation")

MAX_ENVELOPES: Final = 50
MAX_BATCH_BYTES: Final = 1024 * 1024
_BATCH_OVERHEAD: Final = 19  # {v:1, envelopes:[...]} around the items (protocol/envelope.py)
_ITEM_OVERHEAD: Final = 5  # bin32 header of one item
ENTRIES_PER_ENVELOPE: Final = 64
ENTRY_BYTES_PER_ENVELOPE: Final = 256 * 1024
READ_PAGE: Final = 200

# What a refused outbox row becomes, by the receiver's code. Not listed: dead (a
# permanent refusal: the same bytes would be refused again).
DELIVERED: Final = frozenset({"envelope.replay"})  # it already had it: the answer was lost
RETRY: Final = frozenset(
    {"api.unavailable", "api.rate_limited", "api.internal", "envelope.skew",
     "sig.unknown_key", "sig.key_expired"}
)  # fmt: skip
# Refusals of us as a whole: the round failed (backoff, then the breaker opens).
PEER_LEVEL: Final = frozenset(
    {"envelope.unknown_peer", "envelope.blocked_peer", "envelope.peer_not_approved",
     "envelope.key_changed", "envelope.wrong_recipient"}
)  # fmt: skip
REFRESH_ON: Final = frozenset({"envelope.key_changed", "sig.unknown_key"})


def verdict(code: str | None, presigned: bool) -> str:
    """delivered | retry | dead for one outbox row. A presigned row (a rotation signed
    by a key we no longer hold) cannot be re-signed, so a stale one is dead, not retried."""
    if code is None or code in DELIVERED:
        return "delivered"
    if code in RETRY and not (presigned and code in {"envelope.skew", "sig.key_expired"}):
        return "retry"
    if code in PEER_LEVEL:  # a refusal of us, not of this row: it waits for the operator
        return "retry"
    return "dead"


@dataclass
class _Item:
    data: bytes
    id: bytes
    row: int | None = None  # outbox row id
    presigned: bool = False
    forum: str | None = None  # forum.entries: which forum, and its last seq here
    last_seq: int = 0
    gap: bool = False  # pushed past entries we may not send (another hub signed them)


class Sender:
    def __init__(self, fed: Federation, destination: str) -> None:
        self.fed = fed
        self.destination = destination
        self.dirty: dict[str, int] = {}  # forum -> generation of its last notify
        # forum -> last seq pushed beyond the peer's ack across a gap of entries another
        # hub signed (which only backfill may carry, §5.5): not resent until acked.
        self.ahead: dict[str, int] = {}
        # None: not known yet; True after a failed round, False after a good one (lets
        # Federation.heard_from skip the database while all is well).
        self.backing_off: bool | None = None
        self._event = asyncio.Event()
        self._kicked = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # Acks from the peer's last answer while their write is in flight: the next
        # round starts from them instead of waiting for the write (see _settle_acks).
        self._acking: dict[str, int] = {}
        self._ack_write: asyncio.Task[None] | None = None
        self.socket = InboxSocket(destination)  # batches go over it, POST as fallback

    def mark(self, forum: str) -> None:
        self.dirty[forum] = self.dirty.get(forum, 0) + 1

    def wake(self) -> None:
        self._event.set()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"pf-send-{self.destination}"
            )

    def kick(self) -> None:
        """Retry now, even while backing off (the operator asked)."""
        self._kicked.set()
        self.wake()

    async def _run(self) -> None:
        storage, fed = self.fed.storage, self.fed
        while True:
            await self._event.wait()
            state = await storage.get_delivery(self.destination)
            wait_ms = state.next_attempt_ms - fed.clock()
            if wait_ms > 0:
                self._kicked.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kicked.wait(), wait_ms / 1000)
                continue
            self._event.clear()
            try:
                more = await self.round(state)
            except Exception as exc:  # a bug must not kill delivery nor spin: back off
                log_exception(log, "federation.round_failed", exc, peer=self.destination)
                await self._failed(state, "api.internal", 0)
                more = True
            if more:
                self._event.set()

    # ------------------------------------------------------------------ one round

    async def round(self, known: PeerDelivery | None = None) -> bool:
        """Send what is owed, one batch at a time. True when work remains (a retry is
        due later, or a successful probe may now send the rest). ``known``: the delivery
        state the caller just read (spares reading it again on the push path)."""
        fed = self.fed
        state = due(known or await fed.storage.get_delivery(self.destination), fed.clock())
        if state is None:
            return True
        peer = await fed.storage.get_peer(self.destination)
        if peer is None or peer.status != "approved":
            return False  # nothing goes to a peer we do not trust; rows wait for the operator
        peer = await fed.refresh_if_expired(peer)
        if peer.status != "approved":
            return False
        try:
            url = inbox_url(peer)
        except ProtocolError as exc:
            await self._failed(state, exc.code, 0)
            return True
        probe = SENDS[state.breaker] == "probe"
        ready: list[_Item] | None = None
        while True:
            items = ready if ready is not None else await self._fill()
            if not items:
                return False
            sending = asyncio.ensure_future(self._send(url, items))
            # A full batch of plain pushes (catching up): fill the next one while this one
            # is on its way, instead of leaving the peer idle while we read and sign.
            after = _pushed_to(items) if not probe and _full(items) else None
            ready = None
            try:
                if after is not None:
                    ready = await self._fill(after)
                error, retry_after = await sending
            except BaseException:  # a stop, or a bug: the send in flight goes with us
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
                raise
            if error is not None:
                await self._failed(state, error, retry_after)
                return True
            if ready is not None and after is not None and not await self._took(after):
                ready = None  # the peer stopped short of what we sent: fill from its ack
            self.backing_off = False
            if state != on_success(state):
                state = on_success(state)
                await fed.storage.put_delivery(state, fed.clock())
                self._gauges(state)
            if probe:
                return True

    async def _failed(self, state: PeerDelivery, error: str, retry_after_ms: int) -> None:
        fed = self.fed
        new = on_failure(
            state, error, fed.clock(), chance_from(fed.rng(7)), fed.policy, retry_after_ms
        )
        await fed.storage.put_delivery(new, fed.clock())
        self.backing_off = True
        self._gauges(new)

    def _gauges(self, state: PeerDelivery) -> None:
        m = self.fed.metrics
        m.backoff.set(state.backoff_ms / 1000, peer=self.destination)
        m.breaker.set(BREAKER_GAUGE[state.breaker], peer=self.destination)

    # ------------------------------------------------------------------ building a batch

    async def _took(self, pushed: dict[str, int]) -> bool:
        """Whether the peer acknowledged every forum up to what we pushed it."""
        for forum, seq in pushed.items():
            if await self._acked(forum) < seq:
                return False
        return True

    async def _acked(self, forum: str) -> int:
        stored = await self.fed.storage.get_ack(self.destination, forum)
        return max(stored, self._acking.get(forum, 0))

    async def _fill(self, after: dict[str, int] | None = None) -> list[_Item]:
        """The next batch. ``after``: forum -> last seq of a batch still on its way (all
        contiguous pushes): its entries continue from there, as if acknowledged."""
        fed = self.fed
        items: list[_Item] = []
        # Heads go after the entries: a head names the seq it covers, and a peer that gets
        # it before those entries would take the push for a gap and backfill what is
        # already on its way. The entries of a queued head were committed before it was
        # signed, so the read below sees them.
        heads: list[_Item] = []
        size = _BATCH_OVERHEAD
        for row in await fed.storage.queued_outbox(self.destination, MAX_ENVELOPES):
            draft = decode(row.draft)
            signed = draft.get("signed")
            presigned = isinstance(signed, bytes)
            data = signed if presigned else fed.sign(self.destination, draft).encode()
            if not _fits(items, heads, size, data):
                return items + heads
            item = _Item(data, draft["id"], row.id, presigned)
            (heads if draft.get("kind") == "forum.head" else items).append(item)
            size += len(data) + _ITEM_OVERHEAD
        engine = fed.forums()
        if engine is not None and not await self._fill_entries(engine, items, heads, size, after):
            return items  # the batch is full: the heads wait for the entries they name
        return items + heads

    async def _fill_entries(
        self,
        engine: Any,
        items: list[_Item],
        heads: list[_Item],
        size: int,
        after: dict[str, int] | None = None,
    ) -> bool:
        """Append the entries owed to the peer; False when the batch filled up first.
        ``after``: see ``_fill`` (nothing is concluded from it: no forum is marked clean,
        no departed node caught up, until the peer's own ack says so)."""
        fed = self.fed
        for forum, generation in sorted(self.dirty.items()):
            acked = await self._acked(forum)
            ack = max(acked, (after or {}).get(forum, 0))
            # Entries already pushed past the peer's gap wait there for its backfill.
            seq = max(ack, self.ahead.get(forum, 0)) + 1
            contiguous = ack + 1  # the next seq the peer can apply with what we send
            sent_any = after is not None
            cap = fed.push_cap(self.destination, forum)  # a departed node: up to its exit
            if cap is not None and acked >= cap:
                fed.departed_caught_up(self.destination, forum)
            while cap is None or seq <= cap:
                _, entries = await engine.read(forum, seq, READ_PAGE)
                if cap is not None:
                    entries = entries[: cap - seq + 1]
                if not entries:
                    break
                # Kept attachments of detached entries ride in the same envelope (§6.9).
                kept = await engine.attachments_for(forum, seq, seq + len(entries) - 1)
                for first, run in _own_runs(entries, seq, fed.me):
                    for chunk in _chunks(run, first, kept):
                        item = self._entries_item(forum, chunk, first, kept)
                        if not _fits(items, heads, size, item.data):
                            return False
                        item.gap = first != contiguous
                        if not item.gap:
                            contiguous = item.last_seq + 1
                        items.append(item)
                        size += len(item.data) + _ITEM_OVERHEAD
                        first += len(chunk)
                        sent_any = True
                seq += len(entries)
                if len(entries) < READ_PAGE:
                    break
            # Clean only if no notify came in meanwhile (its entries may be past our read).
            if not sent_any and self.dirty.get(forum) == generation:
                del self.dirty[forum]
        return True

    def _entries_item(
        self, forum: str, entries: list[bytes], first_seq: int, kept: dict[int, bytes]
    ) -> _Item:
        fed = self.fed
        last_seq = first_seq + len(entries) - 1
        body: dict[str, Any] = {"forum": forum, "entries": entries}
        attachments = [kept[s] for s in range(first_seq, last_seq + 1) if s in kept]
        if attachments:  # absent when none: such envelopes stay as they always were
            body["attachments"] = attachments
        draft = {"id": fed.rng(16), "kind": "forum.entries", "body": body}
        env = fed.sign(self.destination, draft)
        return _Item(env.encode(), env.id, forum=forum, last_seq=last_seq)

    # ------------------------------------------------------------------ one batch

    async def _send(self, url: str, items: list[_Item]) -> tuple[str | None, int]:
        """Post one batch and settle it: (error that fails the round, Retry-After ms)."""
        fed = self.fed
        try:
            answer = await self.socket.send(
                fed.session, url, build_batch([i.data for i in items]), SEND_TIMEOUT_S
            )
        except PeerUnreachable as exc:
            fed.metrics.batches.inc(result="failed")
            return exc.message, exc.retry_after_ms
        rows = [i for i in items if i.row is not None]
        if answer.status != 200:  # the whole batch was refused: resending cannot help
            code = answer.error().code
            fed.metrics.batches.inc(result="failed")
            await fed.storage.settle_outbox([], [(i.row, code) for i in rows if i.row], [])
            return code, 0
        fed.metrics.batches.inc(result="sent")
        results, acks = _parse_answer(answer.body)
        delivered: list[int] = []
        dead: list[tuple[int, str]] = []
        retry: list[tuple[int, str]] = []
        failure: str | None = None
        for item in items:
            code = results.get(item.id, "api.unavailable")  # no answer: not handled
            if code in PEER_LEVEL or (code is not None and code in RETRY):
                failure = failure or code
            if code in REFRESH_ON:
                fed.schedule_refresh(self.destination)
            if item.row is None:
                continue
            outcome = verdict(code, item.presigned)
            if outcome == "delivered":
                delivered.append(item.row)
            else:
                (dead if outcome == "dead" else retry).append((item.row, code or ""))
        if rows:  # acks and outbox rows in one group commit, not one after the other
            settle = [fed.storage.settle_outbox(delivered, dead, retry)]
            if acks:
                settle.append(fed.storage.raise_acks(self.destination, acks))
            await asyncio.gather(*settle)
        elif acks:
            await self._settle_acks(acks)
        for item in items:
            if item.forum is None:
                continue
            acked = acks.get(item.forum, 0)
            if acked >= self.ahead.get(item.forum, 0):
                self.ahead.pop(item.forum, None)
            if acked >= item.last_seq:
                continue
            if item.gap and results.get(item.id, "api.unavailable") is None:
                # Taken and held past the gap while the peer backfills: not a failure.
                self.ahead[item.forum] = max(self.ahead.get(item.forum, 0), item.last_seq)
                continue
            # The peer did not take these entries: resending at once would loop.
            failure = failure or results.get(item.id) or "ack behind what was sent"
        return failure, 0

    async def _settle_acks(self, acks: dict[str, int]) -> None:
        """Record a push's acks without the next round waiting for the write: entries
        pushed while an ack is being written go out at once. One write is in flight at a
        time. If it fails (logged), or the node stops before it commits, the peer is
        sent entries it already has again, and drops them."""
        if self._ack_write is not None:
            previous, self._ack_write = self._ack_write, None
            await previous
        for forum, seq in acks.items():
            self._acking[forum] = max(self._acking.get(forum, 0), seq)

        async def write() -> None:
            try:
                await self.fed.storage.raise_acks(self.destination, acks)
            except Exception as exc:
                log_exception(log, "federation.ack_write_failed", exc, peer=self.destination)
            finally:
                for forum, seq in acks.items():
                    if self._acking.get(forum) == seq:
                        del self._acking[forum]  # the store holds it now (or re-reads it)

        self._ack_write = asyncio.get_running_loop().create_task(write())

    def pending_writes(self) -> list[asyncio.Task[None]]:
        """The ack write in flight, if any (a graceful stop lets it finish)."""
        return [self._ack_write] if self._ack_write is not None else []


def _pushed_to(items: list[_Item]) -> dict[str, int] | None:
    """{forum: last seq} if ``items`` are all contiguous pushes of entries (no outbox
    rows, nothing past a gap): the only batch worth filling the next one behind."""
    out: dict[str, int] = {}
    for item in items:
        if item.forum is None or item.row is not None or item.gap:
            return None
        out[item.forum] = max(out.get(item.forum, 0), item.last_seq)
    return out


def _full(items: list[_Item]) -> bool:
    """Whether a batch stopped because it was full (so more is likely waiting)."""
    size = _BATCH_OVERHEAD + sum(len(i.data) + _ITEM_OVERHEAD for i in items)
    return len(items) >= MAX_ENVELOPES or size > MAX_BATCH_BYTES - ENTRY_BYTES_PER_ENVELOPE


def _fits(items: list[_Item], heads: list[_Item], size: int, data: bytes) -> bool:
    """Whether ``data`` still fits in a batch of ``items`` and ``heads`` (``size`` bytes)."""
    return len(items) + len(heads) < MAX_ENVELOPES and (
        size + len(data) + _ITEM_OVERHEAD <= MAX_BATCH_BYTES
    )


def _own_runs(entries: list[bytes], first_seq: int, me: str) -> list[tuple[int, list[bytes]]]:
    """Contiguous runs ``(first seq, entries)`` of entries this node signed as hub.

    An envelope's entries must all be signed by its sender (§5.2 origin rule), so after a
    hub move the new hub never relays the old hub's entries: a peer that lacks them
    holds ours past the gap and backfills the rest (backfill has no origin rule)."""
    runs: list[tuple[int, list[bytes]]] = []
    for offset, raw in enumerate(entries):
        if _hub_of(raw) != me:
            continue
        seq = first_seq + offset
        if runs and runs[-1][0] + len(runs[-1][1]) == seq:
            runs[-1][1].append(raw)
        else:
            runs.append((seq, [raw]))
    return runs


def _hub_of(raw: bytes) -> str | None:
    """The ``hub`` field of a stored entry. A plain unpack, not the strict decode: these
    are our own stored bytes, verified when they were written, the field only picks what
    we may push, and the receiver checks every entry in full (the strict decode of each
    entry was most of a hub's work when a peer catches up)."""
    try:
        value = msgpack.unpackb(raw)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    hub = value.get("hub") if isinstance(value, dict) else None
    return hub if isinstance(hub, str) else None


def _chunks(
    entries: list[bytes], first_seq: int = 1, kept: dict[int, bytes] | None = None
) -> list[list[bytes]]:
    """Envelope-sized runs of ``entries``; an entry's attachment (by seq) counts with it."""
    chunks: list[list[bytes]] = [[]]
    size = 0
    for seq, entry in enumerate(entries, first_seq):
        weight = len(entry) + len((kept or {}).get(seq, b""))
        if chunks[-1] and (
            len(chunks[-1]) == ENTRIES_PER_ENVELOPE or size + weight > ENTRY_BYTES_PER_ENVELOPE
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += weight
    return chunks if chunks[0] else []


def _parse_answer(body: Any) -> tuple[dict[bytes, str | None], dict[str, int]]:
    """{id: None (ok) | code} and {forum: acked seq}; anything malformed is left out."""
    results: dict[bytes, str | None] = {}
    acks: dict[str, int] = {}
    if not isinstance(body, dict):
        return results, acks
    for r in body.get("results") or ():
        if isinstance(r, dict) and isinstance(r.get("id"), bytes):
            error = r.get("error")
            results[r["id"]] = None if r.get("ok") is True else str(error or "api.bad_request")
    raw_acks = body.get("acks")
    if isinstance(raw_acks, dict):
        acks = {
            f: s for f, s in raw_acks.items()
            if isinstance(f, str) and isinstance(s, int) and not isinstance(s, bool)
        }  # fmt: skip
    return results, acks
