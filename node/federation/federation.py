"""``Federation``: this node's side of talking to other nodes (app key ``FEDERATION``).

Outgoing traffic is push-driven: ``notify_forum`` and ``enqueue`` wake the one sender
task of each destination (sender.py), which works from the database — the outbox and the
peer's acknowledged seqs — so a restart loses nothing and an outage costs no rows.
Incoming traffic is checked by the inbox (inbox.py) against ``peer_views`` and the
replay cache kept here.

The replay cache is mirrored in memory because ``accept_batch`` asks "seen?" without
awaiting; the database copy makes it outlive a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import aiohttp

from protocol.codec import decode, encode
from protocol.descriptor import Descriptor, Rotation
from protocol.envelope import Envelope, PeerView, build_batch, build_envelope
from protocol.errors import CODES, ProtocolError, RemoteProtocolError
from protocol.keys import SigningKey

from ..config import NodeConfig
from ..identity import NodeIdentity
from ..logs import log_event, log_exception
from ..metrics import NodeMetrics
from ..storage import PeerRecord, Storage
from ..storage.delivery import PeerDelivery
from .backoff import DEFAULT_POLICY, BackoffPolicy, due
from .peers import peer_views, refresh_peer
from .sender import Sender
from .transport import REQUEST_TIMEOUT_S, PeerUnreachable, inbox_url, post_msgpack, request_url

log = logging.getLogger("peerforum.federation")

REPLAY_WINDOW_MS: Final = 900_000  # protocol Limits.replay_window_seconds
PRUNE_EVERY_MS: Final = 60_000
REFRESH_EVERY_MS: Final = 60_000  # a peer's descriptor is refetched at most this often


class FederationMetrics:
    def __init__(self, metrics: NodeMetrics) -> None:
        r = metrics.registry
        self.batches = r.counter(
            "peerforum_federation_batches_total", "Batches posted to peers.", ("result",)
        )
        self.envelopes = r.counter(
            "peerforum_federation_envelopes_total",
            "Envelopes received, accepted or refused by code.",
            ("result", "code"),
        )
        self.received = r.counter(
            "peerforum_federation_batches_received_total",
            "Batches received from peers, by transport (post, socket).", ("transport",),
        )  # fmt: skip
        self.replays = r.counter("peerforum_federation_replay_hits_total", "Replayed envelopes.")
        self.queued = r.gauge(
            "peerforum_federation_outbox_queued", "Outbox envelopes waiting.", ("peer",)
        )
        self.dead = r.gauge(
            "peerforum_federation_outbox_dead", "Outbox envelopes dead-lettered.", ("peer",)
        )
        self.backoff = r.gauge(
            "peerforum_federation_backoff_seconds", "Current retry delay.", ("peer",)
        )
        self.breaker = r.gauge(
            "peerforum_federation_breaker",
            "Circuit breaker per peer: 0 closed, 1 half-open, 2 open.",
            ("peer",),
        )


class Federation:
    def __init__(
        self,
        *,
        identity: NodeIdentity,
        config: NodeConfig,
        storage: Storage,
        session: aiohttp.ClientSession,
        clock: Callable[[], int],
        rng: Callable[[int], bytes],
        metrics: NodeMetrics,
        forums: Callable[[], Any | None] = lambda: None,
        policy: BackoffPolicy = DEFAULT_POLICY,
    ) -> None:
        self.identity = identity
        self.config = config
        self.storage = storage
        self.session = session
        self.clock = clock
        self.rng = rng
        self.metrics = FederationMetrics(metrics)
        self.policy = policy
        # Where the ForumEngine is found (a test may point it at a fake).
        self.forums_provider = forums
        self._senders: dict[str, Sender] = {}
        # Who took part in each forum at the last notify, and nodes that stopped taking
        # part: forum -> node -> the head when they left. A node whose last member was
        # removed (or left) must still get the entries up to that point, so it learns
        # that the membership ended (issue 4), and nothing sequenced after it (§2).
        self._last_participants: dict[str, set[str]] = {}
        self._departed: dict[str, dict[str, int]] = {}
        self._seen: dict[bytes, int] = {}  # envelope id -> expiry (ms)
        self._inflight: set[bytes] = set()  # accepted, being handled
        self._pruned_ms = 0
        self._refreshed: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writes: set[asyncio.Task[None]] = set()  # replay-cache rows being written
        # Signing keys seen while running: the only way to sign a rotation announcement
        # with the old key, whose seed the key file drops (keystore.py).
        self._keys: dict[str, SigningKey] = {identity.keys.kid: identity.keys.current}
        self._stopped = False
        self._views: tuple[list[PeerRecord], dict[str, PeerView]] | None = None

    @property
    def me(self) -> str:
        return self.identity.name

    def forums(self) -> Any | None:
        """The ForumEngine, looked up when needed (it may start after us, or not at all)."""
        return self.forums_provider()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._seen = await self.storage.replay_ids(self.clock())
        for destination in await self.storage.outbox_destinations():
            self.wake(destination)
        self.spawn(self._catch_up_after_start())

    async def stop(self) -> None:
        self._stopped = True
        writes = [*self._writes, *(w for s in self._senders.values() for w in s.pending_writes())]
        await asyncio.gather(*writes, return_exceptions=True)  # finished, not cut
        tasks = [s.task for s in self._senders.values() if s.task] + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.socket.close() for s in self._senders.values()),
                             return_exceptions=True)  # fmt: skip
        self._senders.clear()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _catch_up_after_start(self) -> None:
        """Every forum we sequence gets its participants checked against their acks:
        what a peer missed while either side was down goes out now, in pages."""
        for _ in range(600):  # the forum engine may start after us; wait up to a minute
            if self.forums() is not None or self._stopped:
                break
            await asyncio.sleep(0.1)
        engine = self.forums()
        if engine is None:
            return
        for forum in await self.storage.hub_forums(self.me):
            self.notify_forum(forum)
        # And the other way: forums another node sequences are asked for what we missed,
        # rather than waiting for that hub's sender to come out of its backoff.
        for forum in getattr(engine, "replica_forums", list)():
            await engine.catch_up(forum)

    # ------------------------------------------------------------------ outgoing

    def sender(self, destination: str) -> Sender:
        sender = self._senders.get(destination)
        if sender is None:
            sender = self._senders[destination] = Sender(self, destination)
        return sender

    def wake(self, destination: str) -> None:
        if destination == self.me or self._stopped:
            return
        self.sender(destination).wake()

    def notify_forum(self, forum: str) -> None:
        """New entries exist in ``forum``: push them to every participant now."""
        engine = self.forums()
        if engine is None:
            return
        now = set(engine.participants(forum))
        before = self._last_participants.get(forum)
        self._last_participants[forum] = now
        departed = self._departed.setdefault(forum, {})
        if before is not None:
            for node in before - now:
                departed[node] = engine.head_of(forum)
        for node in now:
            departed.pop(node, None)  # back in (re-admitted): no cap
        for node in now | set(departed):
            if node != self.me:
                self.sender(node).mark(forum)
                self.wake(node)

    def push_cap(self, destination: str, forum: str) -> int | None:
        """The last seq ``destination`` may be pushed in ``forum`` (None: no cap)."""
        return self._departed.get(forum, {}).get(destination)

    def departed_caught_up(self, destination: str, forum: str) -> None:
        """``destination`` holds every entry up to its departure: it gets nothing more."""
        self._departed.get(forum, {}).pop(destination, None)

    def draft(self, kind: str, body: dict[str, Any]) -> bytes:
        return encode({"id": self.rng(16), "kind": kind, "body": body})

    def sign(self, destination: str, draft: dict[str, Any]) -> Envelope:
        """Sign a draft now, with the current key (so a retried draft is always fresh)."""
        key = self.identity.keys.current
        self._keys.setdefault(key.key_id, key)
        return build_envelope(
            id=draft["id"], sender=self.me, to=destination, ts=self.clock(),
            kind=draft["kind"], body=draft["body"], key=key,
        )  # fmt: skip

    async def enqueue(self, destination: str, kind: str, body: dict[str, Any]) -> None:
        """One durable envelope for ``destination``, sent batched with its other traffic.
        An envelope the receiver would refuse (E8) is refused here, before it is stored."""
        draft = self.draft(kind, body)
        self.sign(destination, decode(draft))  # raises LocalProtocolError on a bad body
        await self.storage.enqueue_drafts([(destination, draft)], self.clock())
        self.wake(destination)

    async def announce_rotation(self, rotation: Rotation) -> int:
        """Queue a ``node.rotation`` to every approved peer, signed by the old key with a
        ``ts`` just before the rotation's (§4.4), so peers that pinned only the old key
        accept it. The old key is then forgotten. Returns the number of peers told."""
        old = self._keys.pop(rotation.old_key.key_id, None)
        self._keys.setdefault(self.identity.keys.kid, self.identity.keys.current)
        if old is None:  # not ours while running: peers learn it from GET rotations
            return 0
        body = {"rotation": encode(rotation.to_wire())}
        rows = []
        for peer in await self.storage.list_peers():
            if peer.status != "approved":
                continue
            env_id = self.rng(16)
            env = build_envelope(
                id=env_id, sender=self.me, to=peer.name, ts=rotation.ts - 1,
                kind="node.rotation", body=body, key=old,
            )  # fmt: skip
            draft = {"id": env_id, "kind": "node.rotation", "body": body, "signed": env.encode()}
            rows.append((peer.name, encode(draft)))
        await self.storage.enqueue_drafts(rows, self.clock())
        for name, _ in rows:
            self.wake(name)
        return len(rows)

    def heard_from(self, peer: str) -> None:
        """An authenticated envelope from ``peer`` proves it is up: a sender backing off
        from it retries now (one probe if its breaker is open) instead of waiting out a
        delay that may have grown to an hour during the outage."""
        sender = self._senders.get(peer)
        if sender is not None and sender.backing_off is not False and not self._stopped:
            self.spawn(self._resume(peer, sender))

    async def _resume(self, peer: str, sender: Sender) -> None:
        state = await self.storage.get_delivery(peer)
        now = self.clock()
        if state.failures and state.next_attempt_ms > now:
            await self.storage.put_delivery(replace(state, next_attempt_ms=now), now)
            sender.kick()
        sender.backing_off = bool(state.failures)

    async def peer_trusted(self, peer: str) -> None:
        """The operator approved ``peer`` (again): what waited for it goes out now —
        entries of forums we sequence from its ack, and its queued envelopes."""
        engine = self.forums()
        sender = self.sender(peer)
        for forum in getattr(engine, "hub_forums_with", lambda _: [])(peer):
            sender.mark(forum)
        state = await self.storage.get_delivery(peer)
        if state.failures:
            await self.storage.put_delivery(PeerDelivery(peer), self.clock())
        sender.kick()

    async def ping(self, name: str) -> None:
        """A signed ``node.ping`` through the peer's inbox, as any batch travels (for
        ``doctor``). Raises PeerUnreachable, or the peer's refusal as a protocol error."""
        peer = await self.storage.get_peer(name)
        if peer is None or peer.status != "approved":
            raise PeerUnreachable(name, "not an approved peer")
        env = self.sign(name, decode(self.draft("node.ping", {})))
        answer = await post_msgpack(self.session, name, inbox_url(peer),
                                    build_batch([env.encode()]), REQUEST_TIMEOUT_S)  # fmt: skip
        if answer.status != 200:
            raise answer.error()
        results = answer.body.get("results") if isinstance(answer.body, dict) else None
        first = results[0] if isinstance(results, list) and results else None
        if not isinstance(first, dict) or first.get("ok") is not True:
            code = first.get("error") if isinstance(first, dict) else None
            raise RemoteProtocolError(code if code in CODES else "api.bad_request",
                                      f"{name} refused the ping")  # fmt: skip

    async def refresh_if_expired(self, peer: PeerRecord) -> PeerRecord:
        """The peer's record, with its descriptor refetched first if the pinned one has
        expired (its inbox URL comes from there). At most once a minute per peer."""
        if peer.descriptor is None:
            return peer
        valid_until = _valid_until(peer.descriptor)
        now = self.clock()
        if valid_until >= now or now - self._refreshed.get(peer.name, -REFRESH_EVERY_MS) < (
            REFRESH_EVERY_MS
        ):
            return peer
        self._refreshed[peer.name] = now
        await self.refresh(peer.name)
        return await self.storage.get_peer(peer.name) or peer

    async def request(self, destination: str, path: str, kind: str, body: dict[str, Any]) -> Any:
        """A signed synchronous request (backfill, ping): the peer's decoded answer.
        Raises PeerUnreachable (network, timeout, open breaker) or the peer's refusal."""
        state = await self.storage.get_delivery(destination)
        if state.breaker == "open" and due(state, self.clock()) is None:
            raise PeerUnreachable(destination, "circuit open after repeated failures")
        peer = await self.storage.get_peer(destination)
        if peer is None or peer.status != "approved":
            raise PeerUnreachable(destination, "not an approved peer")
        env = self.sign(destination, decode(self.draft(kind, body)))
        answer = await post_msgpack(
            self.session, destination, request_url(peer, path), env.encode(), REQUEST_TIMEOUT_S
        )
        if answer.status != 200:
            raise answer.error()
        return answer.body

    async def retry(self, peer: str | None) -> int:
        """The operator's ``outbox retry``: dead letters requeued, backoff cleared."""
        count = await self.storage.retry_outbox(peer, self.clock())
        names = [peer] if peer else await self.storage.outbox_destinations()
        for name in {*names, *(self._senders if peer is None else ())}:
            self.sender(name).kick()
        return count

    # ------------------------------------------------------------------ incoming

    async def peer_views(self) -> dict[str, PeerView]:
        """What the envelope checks know of each peer. Every inbound batch asks, so the
        views are rebuilt only when the peer records changed (storage caches those and
        drops them on any peer write: approval, block, pin, rotation)."""
        peers = await self.storage.list_peers()
        cached = self._views
        if cached is not None and len(cached[0]) == len(peers) and all(
            a is b for a, b in zip(cached[0], peers, strict=True)
        ):
            return cached[1]
        views = peer_views(peers)
        self._views = (peers, views)
        return views

    def seen(self, envelope_id: bytes) -> bool:
        if envelope_id in self._inflight:
            return True
        expires = self._seen.get(envelope_id)
        return expires is not None and expires >= self.clock()

    def hold(self, ids: list[bytes]) -> None:
        """Accepted ids are 'seen' while handled, so a concurrent duplicate is a replay."""
        self._inflight.update(ids)

    async def remember(self, handled: list[tuple[bytes, str]], held: list[bytes]) -> None:
        """Record handled ``(id, sender)`` pairs (one storage job); release held ids.

        Only handled ids are recorded: one whose handling failed for want of a resource
        (api.unavailable) must be accepted when the sender retries it."""
        now = self.clock()
        try:
            if handled:
                await self.storage.remember_envelopes(handled, now + REPLAY_WINDOW_MS)
                for i, _ in handled:
                    self._seen[i] = now + REPLAY_WINDOW_MS
        finally:
            self._inflight.difference_update(held)
        await self._prune(now)

    def remember_behind(self, handled: list[tuple[bytes, str]], held: list[bytes]) -> None:
        """``remember`` for the inbox's batches, without making the answer wait for the
        write (one more hop to the writer thread per push). The ids are refused as
        replays at once from memory; the row follows in the next group commit. A crash
        in between forgets only those ids, and handling them again changes nothing
        (protocol §5.3: handling is idempotent)."""
        now = self.clock()
        for i, _ in handled:
            self._seen[i] = now + REPLAY_WINDOW_MS
        self._inflight.difference_update(held)
        if handled or now - self._pruned_ms > PRUNE_EVERY_MS:
            task = asyncio.get_running_loop().create_task(self._write_replays(handled, now))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write_replays(self, handled: list[tuple[bytes, str]], now: int) -> None:
        try:
            if handled:
                await self.storage.remember_envelopes(handled, now + REPLAY_WINDOW_MS)
            await self._prune(now)
        except Exception as exc:  # kept in memory meanwhile; logged, never raised
            log_exception(log, "federation.replay_write_failed", exc)

    async def _prune(self, now: int) -> None:
        if now - self._pruned_ms > PRUNE_EVERY_MS:
            self._pruned_ms = now
            self._seen = {i: t for i, t in self._seen.items() if t >= now}
            await self.storage.prune_replay_cache(now)

    def schedule_refresh(self, peer: str) -> None:
        """Refetch ``peer``'s descriptor soon (at most once a minute per peer)."""
        now = self.clock()
        if now - self._refreshed.get(peer, -REFRESH_EVERY_MS) < REFRESH_EVERY_MS:
            return
        self._refreshed[peer] = now
        self.spawn(self.refresh(peer))

    async def refresh(self, peer: str) -> str | None:
        """Refetch a descriptor; the peer's status afterwards (None if unknown/unreachable)."""
        try:
            record = await refresh_peer(self.storage, self.session, peer, self.clock())
        except Exception as exc:  # unreachable or a bad descriptor: nothing changes
            log_event(log, logging.WARNING, "federation.refresh_failed", peer=peer,
                      error=getattr(exc, "code", type(exc).__name__))  # fmt: skip
            return None
        if record is not None and record.status == "key_changed":
            log_event(log, logging.WARNING, "federation.key_changed", peer=peer)
        return None if record is None else record.status


@functools.lru_cache(maxsize=256)
def _valid_until(descriptor: bytes) -> int:
    """A pinned descriptor's ``valid_until``, by its bytes (every delivery round asks;
    decoding and checking it was ~3% of a hub pushing entries one by one). 0 if it does
    not decode: refetch it."""
    try:
        return Descriptor.from_wire(decode(descriptor)).valid_until
    except ProtocolError:
        return 0
