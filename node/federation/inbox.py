"""Receiving: a batch (or one backfill request) through §5.3/§5.4, then each accepted
envelope handed to whoever handles its kind.

Forum kinds go to the ForumEngine; rotations and pings are handled here. Every refusal
is a protocol code in the envelope's result (or, for the whole batch, the exception the
route's error middleware answers with): never a 500. Ids are recorded in the replay cache
only after handling, so a batch whose handling could not happen (no engine yet) is
accepted again when the sender retries; the answer does not wait for that write
(``Federation.remember_behind``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from protocol.codec import decode
from protocol.descriptor import Rotation, apply_rotation, load_map, verify_rotation
from protocol.envelope import Envelope, accept_batch, accept_envelope
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.schema import check_fields, text, uint

from ..logs import log_exception
from .federation import Federation
from .peers import already_applied, keyset_rows, pinned_keyset

log = logging.getLogger("peerforum.federation")

MAX_BACKFILL: Final = 500
Handler = Callable[[Any, Envelope], Awaitable[Any]]

# Kind -> ForumEngine call (the in-process seam of specs/CONTRACT.md). forum.entries
# returns the receiver's contiguous head: the ack the sender resumes from.
FORUM_HANDLERS: Final[dict[str, Handler]] = {
    "forum.submit": lambda e, env: e.on_submit(
        env.sender, env.body["forum"], env.body["events"], env.body.get("attachments")
    ),
    "forum.entries": lambda e, env: e.on_entries(
        env.sender, env.body["forum"], env.body["entries"], env.body.get("attachments")
    ),
    "forum.head": lambda e, env: e.on_head(env.sender, env.body),
    "forum.proof": lambda e, env: e.on_proof(env.sender, env.body),
    "forum.invite": lambda e, env: e.on_invite(env.sender, env.body["forum"], env.body["entry"]),
    "forum.result": lambda e, env: e.on_result(env.sender, env.body),
}


@dataclass
class _Batch:
    results: list[dict[str, Any]] = field(default_factory=list)
    acks: dict[str, int] = field(default_factory=dict)
    handled: list[tuple[bytes, str]] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)


async def handle_rotation(fed: Federation, env: Envelope) -> None:
    """A peer's key rotation: verified against what we pinned for it (§4.4), then pinned."""
    peer = await fed.storage.get_peer(env.sender)
    keys = None if peer is None else pinned_keyset(peer)
    if keys is None:
        raise RemoteProtocolError("rotation.invalid", "no pinned keys for the sender")
    statement = env.body["rotation"]
    if already_applied(keys, Rotation.from_wire(load_map(statement))):
        return
    rotation = verify_rotation(statement, expected_node=env.sender, pinned=keys)
    await fed.storage.pin_rotated_keys(
        env.sender, keyset_rows(apply_rotation(keys, rotation)), fed.clock()
    )


async def dispatch(fed: Federation, env: Envelope) -> int | None:
    """Handle one accepted envelope; the ack seq for forum.entries, else None."""
    if env.kind == "node.ping":
        return None
    if env.kind == "node.rotation":
        await handle_rotation(fed, env)
        return None
    if env.kind == "forum.backfill":
        raise RemoteProtocolError("api.bad_request", "send forum.backfill to the backfill path")
    engine = fed.forums()
    if engine is None:
        raise RemoteProtocolError("api.unavailable", "forums are not running on this node")
    result = await FORUM_HANDLERS[env.kind](engine, env)
    return int(result) if env.kind == "forum.entries" else None


def _items(data: bytes) -> list[Any]:
    return list(decode(data)["envelopes"])  # already passed B1-B3


def _refusal(item: Any, exc: ProtocolError) -> dict[str, Any]:
    """A refused envelope's result, named by its id when its bytes let us read one."""
    result: dict[str, Any] = {"error": exc.code, "message": exc.message[:300]}
    try:
        env_id = decode(item)["id"]
        if isinstance(env_id, bytes):
            result = {"id": env_id, **result}
    except Exception:  # undecodable: its position in the batch names it
        pass
    return result


def _sender_of(item: Any) -> str | None:
    try:
        sender = decode(item)["from"]
    except Exception:
        return None
    return sender if isinstance(sender, str) else None


async def receive_batch(
    fed: Federation, data: bytes, charge: Callable[[str], None]
) -> dict[str, Any]:
    """The inbox: ``{results, acks}`` with one result per envelope, in batch order.
    ``charge(sender)`` spends each authenticated sender's rate limit before anything is
    handled (only authenticated senders: a forged ``from`` must not drain a peer)."""
    now = fed.clock()
    outcomes = accept_batch(data, me=fed.me, now_ms=now, peers=await fed.peer_views(),
                            seen=fed.seen)  # fmt: skip
    accepted = [o for o in outcomes if isinstance(o, Envelope)]
    for sender in sorted({e.sender for e in accepted}):
        charge(sender)
        fed.heard_from(sender)  # it is up: our sender to it may stop waiting
    batch = _Batch(held=[e.id for e in accepted])
    fed.hold(batch.held)
    items: list[Any] | None = None
    rotated: set[str] = set()
    try:
        index = 0
        while index < len(outcomes):
            outcome = outcomes[index]
            index += 1
            if isinstance(outcome, ProtocolError) and outcome.code == "sig.unknown_key":
                items = items if items is not None else _items(data)
                sender = _sender_of(items[index - 1])
                if sender in rotated:  # signed by the key a rotation just above introduced
                    outcome = await _recheck(fed, items[index - 1], batch)
                elif sender is not None:
                    fed.schedule_refresh(sender)  # a key we do not know: did it rotate?
            if isinstance(outcome, ProtocolError):
                items = items if items is not None else _items(data)
                fed.metrics.envelopes.inc(result="refused", code=outcome.code)
                if outcome.code == "envelope.replay":
                    fed.metrics.replays.inc()
                batch.results.append(_refusal(items[index - 1], outcome))
                continue
            # A sender's consecutive pushes of one forum are applied as one: one commit
            # and one state snapshot for the run instead of one per envelope (a batch
            # after an outage carries dozens). Each envelope still gets its own result.
            run = [outcome]
            while index < len(outcomes):
                nxt = outcomes[index]
                if not isinstance(nxt, Envelope) or not _same_push(outcome, nxt):
                    break
                run.append(nxt)
                index += 1
            await _handle(fed, run, batch)
            if outcome.kind == "node.rotation" and batch.results[-1].get("ok"):
                rotated.add(outcome.sender)
    finally:
        fed.remember_behind(batch.handled, batch.held)
    return {"results": batch.results, "acks": batch.acks}


async def _recheck(fed: Federation, item: bytes, batch: _Batch) -> Envelope | ProtocolError:
    try:
        env = accept_envelope(item, me=fed.me, now_ms=fed.clock(),
                              peers=await fed.peer_views(), seen=fed.seen)  # fmt: skip
    except ProtocolError as exc:
        return exc
    batch.held.append(env.id)
    fed.hold([env.id])
    return env


def _same_push(first: Envelope, other: Envelope) -> bool:
    """Whether ``other`` continues ``first``'s push: forum.entries, same sender and forum."""
    return (
        first.kind == other.kind == "forum.entries" and other.sender == first.sender
        and other.body["forum"] == first.body["forum"]
    )  # fmt: skip


async def _dispatch_run(fed: Federation, run: list[Envelope]) -> int | None:
    """``dispatch`` for one envelope, or for a run of one sender's pushes of one forum
    (their entries and attachments concatenated, in order: the same checks apply)."""
    if len(run) == 1:
        return await dispatch(fed, run[0])
    engine = fed.forums()
    if engine is None:
        raise RemoteProtocolError("api.unavailable", "forums are not running on this node")
    first = run[0]
    entries = [e for env in run for e in env.body["entries"]]
    carried = [a for env in run for a in env.body.get("attachments") or ()]
    ack = await engine.on_entries(first.sender, first.body["forum"], entries, carried or None)
    return int(ack)


async def _handle(fed: Federation, run: list[Envelope], batch: _Batch) -> None:
    try:
        ack = await _dispatch_run(fed, run)
    except ProtocolError as exc:
        for env in run:
            fed.metrics.envelopes.inc(result="refused", code=exc.code)
            batch.results.append({"id": env.id, "error": exc.code, "message": exc.message[:300]})
            if exc.code != "api.unavailable":  # a refusal of the content is final
                batch.handled.append((env.id, env.sender))
        _ack_anyway(fed, run[0], batch)
        return
    except Exception as exc:  # a handler's bug: logged with its traceback, never a 500
        log_exception(log, "federation.handler_failed", exc, kind=run[0].kind)
        for env in run:
            fed.metrics.envelopes.inc(result="refused", code="api.internal")
            batch.results.append({"id": env.id, "error": "api.internal",
                                  "message": "internal error; see the receiving node's log"})
        return
    for env in run:
        fed.metrics.envelopes.inc(result="accepted", code="")
        batch.results.append({"id": env.id, "ok": True})
        batch.handled.append((env.id, env.sender))
    env = run[0]
    if ack is not None:
        forum = env.body["forum"]
        batch.acks[forum] = max(batch.acks.get(forum, 0), ack)


def _ack_anyway(fed: Federation, env: Envelope, batch: _Batch) -> None:
    """A refused forum.entries still tells the sender our real head: it resumes from
    there instead of backing off blind and resending what we refused."""
    if env.kind != "forum.entries":
        return
    engine, forum = fed.forums(), env.body["forum"]
    head_of = getattr(engine, "head_of", None)
    head = head_of(forum) if callable(head_of) else None
    if isinstance(head, int) and head > 0:
        batch.acks[forum] = max(batch.acks.get(forum, 0), head)


def _backfill_body(body: dict[str, Any]) -> tuple[str, int, int]:
    check_fields(body, ("forum", "from", "limit"), what="body")
    forum = text(body["forum"], "body.forum", 255)
    from_seq, limit = uint(body["from"], "body.from"), uint(body["limit"], "body.limit")
    if from_seq < 1 or not 1 <= limit <= MAX_BACKFILL:
        raise RemoteProtocolError("schema.bad_value", f"from >= 1, 1 <= limit <= {MAX_BACKFILL}")
    return forum, from_seq, limit


async def answer_backfill(
    fed: Federation, data: bytes, path_forum: str, charge: Callable[[str], None]
) -> Any:
    """``POST /_pf/v1/forums/{forum}/backfill``: one forum.backfill envelope, answered by
    the ForumEngine (which decides who may read)."""
    env = accept_envelope(data, me=fed.me, now_ms=fed.clock(), peers=await fed.peer_views(),
                          seen=fed.seen)  # fmt: skip
    if env.kind != "forum.backfill":
        raise RemoteProtocolError("api.bad_request", "this path takes one forum.backfill")
    forum, from_seq, limit = _backfill_body(env.body)
    if forum != path_forum:
        raise RemoteProtocolError("envelope.origin_mismatch", "path and body name other forums")
    charge(env.sender)
    fed.heard_from(env.sender)
    engine = fed.forums()
    if engine is None:
        raise RemoteProtocolError("api.unavailable", "forums are not running on this node")
    fed.hold([env.id])
    handled: list[tuple[bytes, str]] = []
    try:
        answer = await engine.on_backfill(env.sender, forum, from_seq, limit)
        handled.append((env.id, env.sender))
    except ProtocolError as exc:
        if exc.code != "api.unavailable":
            handled.append((env.id, env.sender))
        raise
    finally:
        await fed.remember(handled, [env.id])
    fed.metrics.envelopes.inc(result="accepted", code="")
    return answer
