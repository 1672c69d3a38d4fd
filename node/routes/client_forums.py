"""Client API, forum part: submit signed events, read entries (long-poll), see state.

The node only routes: an event arrives already signed and sealed by the member's device,
and entries leave as the hub-signed bytes. What the node checks here is who may do what
through *this* session — the event's author must be the session's member and its key the
session's device, and a member sees only forums they are in or invited to. The forum
rules themselves are the engine's (``node/forums``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any, Final

from aiohttp import web

from protocol.codec import decode
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import b64u
from protocol.log import Event, check_forum_id
from protocol.rules import ACTIVE, ForumState

from ..bodies import json_field, read_json
from ..context import CTX
from ..middleware import enforce_rate
from .client import PREFIX, Session, b64_field, session_of

routes = web.RouteTableDef()
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500
MAX_WAIT_S: Final = 30.0  # long-poll bound: proxies and clients give up around a minute
# Events per batch submit: a device's offline queue goes in a few requests, and a batch
# stays well under what the hub's sequencer takes per group commit (hub.py MAX_BATCH).
MAX_BATCH_EVENTS: Final = 64


def _engine(request: web.Request) -> Any:
    """The ForumEngine (``api.unavailable`` while the forum layer is not running)."""
    try:
        from ..forums import FORUMS  # type: ignore[attr-defined]
    except ImportError:
        FORUMS = None  # noqa: N806
    engine = request.app.get(FORUMS) if FORUMS is not None else None
    if engine is None:
        raise RemoteProtocolError("api.unavailable", "the forum engine is not running")
    return engine


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _state(engine: Any, forum: str) -> ForumState | None:
    state: ForumState | None = await _maybe(engine.state(forum))
    return state


async def _invites(engine: Any, member: str) -> list[dict[str, Any]]:
    """Open invitations of ``member``: ones received from other hubs, and ours as hub."""
    out: dict[str, dict[str, Any]] = {}
    finder = getattr(engine, "invites_for", None) or getattr(engine, "invites_of", None)
    for inv in await _maybe(finder(member)) if finder is not None else []:
        out[inv.forum] = {
            "forum": inv.forum, "hub": inv.hub, "seq": inv.seq, "invite": b64u(inv.event_id),
            "entry": b64u(inv.entry),
        }  # fmt: skip
    for item in await _maybe(engine.forums_of(member)):
        forum = item if isinstance(item, str) else getattr(item, "forum", "")
        state = await _state(engine, forum)
        inv = state.invitations.get(member) if state is not None else None
        if state is not None and inv is not None and forum not in out:
            out[forum] = {"forum": forum, "hub": state.hub, "seq": state.seq,
                          "invite": b64u(inv.invite), "accepted": inv.accepted}  # fmt: skip
    return sorted(out.values(), key=lambda i: str(i["forum"]))


def _forum_param(request: web.Request) -> str:
    forum = request.match_info["forum"]
    try:
        return check_forum_id(forum)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", exc.message) from exc


async def _visible_state(request: web.Request, session: Session, forum: str) -> ForumState:
    """The forum's state if the session's member is active in it or invited; else forbidden.

    Forums a member may not see and forums this node does not hold answer alike, so the
    answer does not reveal which forums exist.
    """
    state = await _state(_engine(request), forum)
    if state is not None:
        m = state.members.get(session.member)
        if (m is not None and m.status == ACTIVE) or session.member in state.invitations:
            return state
    raise RemoteProtocolError("api.forbidden", "not a member of that forum")


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise RemoteProtocolError("api.bad_request", f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise RemoteProtocolError("api.bad_request", f"{name} must be in {low}..{high}")
    return value


def _devices(devices: Any) -> list[dict[str, Any]]:
    return [
        {"kid": kid, "sign": b64u(d.sign.raw), "agree": b64u(d.agree.raw)}
        for kid, d in sorted(devices.items())
    ]


def state_view(state: ForumState) -> dict[str, Any]:
    """The node-enforced state as JSON: cleartext by design (specs §6.7, §7.1)."""
    return {
        "forum": state.forum, "hub": state.hub, "seq": state.seq, "head": b64u(state.head),
        "epoch": state.epoch, "epoch_required": state.epoch_required, "frozen": state.frozen,
        "members": [
            {"member": m.id, "status": m.status, "roles": sorted(m.roles), "org": m.org,
             "devices": _devices(m.devices)}
            for m in sorted(state.members.values(), key=lambda m: m.id)
        ],
        "invitations": [
            {"member": i.candidate, "invite": b64u(i.invite), "org": i.org,
             "accepted": i.accepted, "devices": _devices(i.devices)}
            for i in sorted(state.invitations.values(), key=lambda i: i.candidate)
        ],
    }  # fmt: skip


@routes.get(PREFIX + "/forums")
async def list_forums(request: web.Request) -> web.Response:
    session = await session_of(request)
    engine = _engine(request)
    out = []
    for item in await _maybe(engine.forums_of(session.member)):
        forum = item if isinstance(item, str) else getattr(item, "forum", None)
        state = await _state(engine, forum) if isinstance(forum, str) else None
        if state is None:
            continue
        m = state.members.get(session.member)
        role = "member" if m is not None and m.status == ACTIVE else None
        if role is None and session.member in state.invitations:
            role = "invited"
        if role is not None:
            out.append({"forum": state.forum, "hub": state.hub, "seq": state.seq,
                        "epoch": state.epoch, "as": role})  # fmt: skip
    return web.json_response({"forums": out})


@routes.get(PREFIX + "/invites")
async def list_invites(request: web.Request) -> web.Response:
    session = await session_of(request)
    return web.json_response({"invites": await _invites(_engine(request), session.member)})


def _submission(body: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """The event bytes of a submit body, and a detached event's attachment (§6.9), which
    rides beside it and which the engine checks."""
    data = b64_field(body, "event")
    return data, b64_field(body, "attachment") if "attachment" in body else None


def _check_own(session: Session, forum: str, event: Event) -> None:
    if event.author != session.member or event.kid != session.device:
        raise RemoteProtocolError(
            "api.forbidden", "an event must be signed by this session's member and device"
        )
    if event.forum != forum:
        raise RemoteProtocolError("event.wrong_forum", "the event names another forum")


def _accepted(result: Any) -> dict[str, Any]:
    return {"event_id": b64u(result.event_id), "status": result.status, "seq": result.seq}


@routes.post(PREFIX + "/forums/{forum}/events")
async def submit_event(request: web.Request) -> web.Response:
    session = await session_of(request)
    forum = _forum_param(request)
    data, attachment = _submission(await read_json(request))
    event = Event.from_bytes(data)  # codec/schema codes: a malformed event is the client's
    _check_own(session, forum, event)
    result = await _engine(request).submit_local(data, event, attachment=attachment)
    return web.json_response(_accepted(result))


def _batch(body: dict[str, Any]) -> list[tuple[bytes, bytes | None]]:
    """The submissions of a batch body; anything malformed refuses the whole request."""
    items = json_field(body, "events", list)
    if not 1 <= len(items) <= MAX_BATCH_EVENTS:
        raise RemoteProtocolError(
            "api.bad_request", f"events must hold 1 to {MAX_BATCH_EVENTS} items"
        )
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RemoteProtocolError("api.bad_request", f"events[{i}] must be an object")
        try:
            out.append(_submission(item))
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(exc.code, f"events[{i}]: {exc.message}") from exc
    return out


def _charge_events(request: web.Request, member: str, count: int) -> None:
    """Charge the member one token per event, all or none, before anything is submitted.

    ``session_of`` spent one already. A batch needs ``min(count, burst)`` tokens in the
    bucket, so a batch larger than the burst passes from a full bucket and leaves it in
    debt: either way the member's events cost what they would one request each.
    """
    if count <= 1:
        return
    need = min(count, request.app[CTX].rate_limits.burst("member")) - 1
    enforce_rate(request, "member", member, count - 1, need)


def _start_one(
    engine: Any, session: Session, forum: str, data: bytes, attachment: bytes | None
) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """One event of a batch, started now, in list order: its refusal as a result, or
    what to await for its answer. On the hub path (``queue_local``) the event is in the
    sequencer's queue when this returns; other paths run as a task of their own."""
    try:
        event = Event.from_bytes(data)
    except ProtocolError as exc:
        return {"error": exc.code, "message": exc.message}
    try:
        _check_own(session, forum, event)
        queued = engine.queue_local(data, event, attachment=attachment)
    except ProtocolError as exc:
        return _refusal(event, exc)
    if queued is not None:
        return _answer(event, queued)
    return asyncio.ensure_future(_answer(event, engine.submit_local(data, event,
                                                                    attachment=attachment)))


async def _answer(event: Event, pending: Awaitable[Any]) -> dict[str, Any]:
    try:
        return _accepted(await pending)
    except ProtocolError as exc:
        return _refusal(event, exc)


def _refusal(event: Event, exc: ProtocolError) -> dict[str, Any]:
    return {"event_id": b64u(event.event_id), "error": exc.code, "message": exc.message}


@routes.post(PREFIX + "/forums/{forum}/events/batch")
async def submit_events(request: web.Request) -> web.Response:
    """Several events in one request, each with the single route's checks and answer.

    Order is kept where this node is the hub: each event is checked and queued with the
    forum's sequencer (``ForumEngine.queue_local``) in list order before anything is
    awaited, so the sequencer takes them in list order, in one group commit when it is
    idle. tests/node/test_client_batch.py holds the engine to that. A node's own trouble
    (not a refusal) fails the request.
    """
    session = await session_of(request)
    forum = _forum_param(request)
    batch = _batch(await read_json(request))
    engine = _engine(request)
    _charge_events(request, session.member, len(batch))
    started = [_start_one(engine, session, forum, data, att) for data, att in batch]
    outcomes: list[dict[str, Any]] = []
    try:
        for item in started:
            outcomes.append(item if isinstance(item, dict) else await item)
    finally:
        for item in started[len(outcomes) + 1 :]:  # an error above: nothing left behind
            if isinstance(item, asyncio.Future):
                item.cancel()
            elif inspect.iscoroutine(item):
                item.close()
    return web.json_response({"results": outcomes})


@routes.get(PREFIX + "/forums/{forum}/entries")
async def read_entries(request: web.Request) -> web.Response:
    session = await session_of(request)
    forum = _forum_param(request)
    from_seq = _int_query(request, "from", 1, 1, 2**53)
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    wait_s = min(float(_int_query(request, "wait", 0, 0, 3600)), MAX_WAIT_S)
    await _visible_state(request, session, forum)
    engine = _engine(request)
    head, entries = await engine.read(forum, from_seq, limit)
    if not entries and wait_s > 0 and head < from_seq:
        # Push-driven in the engine (an event per forum), so waiting costs no polling.
        await engine.wait_for(forum, from_seq, wait_s)
        head, entries = await engine.read(forum, from_seq, limit)
    gaps: list[list[int]] = []
    attachments: dict[bytes, bytes] = {}
    if entries:
        first = _seq_of(entries[0])
        if first > from_seq:
            gaps.append([from_seq, first - 1])
        # §6.9: the kept, unexpired attachments of this page's detached entries.
        attachments = await engine.attachments_by_event(forum, first, first + len(entries) - 1)
    elif head >= from_seq:  # the log goes that far but this node lacks the entries yet
        gaps.append([from_seq, head])
    return web.json_response(
        {"forum": forum, "head": head, "entries": [b64u(e) for e in entries], "gaps": gaps,
         "attachments": {b64u(eid): b64u(a) for eid, a in attachments.items()}}
    )  # fmt: skip


def _seq_of(entry: bytes) -> int:
    value = decode(entry)
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) else 0


@routes.get(PREFIX + "/forums/{forum}/state")
async def forum_state(request: web.Request) -> web.Response:
    session = await session_of(request)
    state = await _visible_state(request, session, _forum_param(request))
    return web.json_response(state_view(state))
