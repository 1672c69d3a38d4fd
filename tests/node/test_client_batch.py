"""Client API batch submit: several signed events in one request, each judged alone.

These run against the real forum engine (not test_client_api's FakeHub): what matters
here is how the hub's sequencer takes a batch — in list order, repeats answered with
their seq — and that a batch costs the member one rate-limit token per event.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from cli.member import MemberClient
from cli.member import client as member_client
from cli.member.api import http_json
from cli.member.sealing import seal_map
from node.app import make_app
from node.config import parse_config
from node.context import FORUMS, NodeContext, wall_clock_ms
from node.datadir import init_data_dir
from node.identity import NodeIdentity
from node.keystore import load_keys
from node.ratelimit import RateLimits, TokenBucket
from node.routes.client_forums import MAX_BATCH_EVENTS
from protocol.group import seal_content_map, seal_epoch
from protocol.keys import b64u, unb64u
from protocol.log import Entry, Event, build_event

from .conftest import NAME, NOW_MS, fixed_rng
from .test_client_api import API, Device, _attestation, _auth, _device, _event, _forum, _submit


async def _app(aiohttp_client: Any, ctx: NodeContext) -> Any:
    return await aiohttp_client(make_app(ctx))


async def _forum_with_epoch(client: Any, dev: Device) -> tuple[str, bytes]:
    """A forum of ``dev`` on this node (its hub), epoch 1 committed: posts may follow."""
    forum = _forum()
    att = await _attestation(client, dev)
    create = _event(dev, forum, "forum.create", {"hub": NAME, "attestation": att})
    assert (await _submit(client, dev, create)).status == 200
    commit, secret = _commit(dev, forum, 1)
    assert (await _submit(client, dev, commit)).status == 200
    return forum, secret


def _commit(dev: Device, forum: str, epoch: int) -> tuple[Event, bytes]:
    secret = os.urandom(32)
    sealed = seal_epoch(secret, forum=forum, epoch=epoch, recipients=[dev.agree.public])
    body = {"epoch": epoch, "admit": [], "secrets": [s.to_wire() for s in sealed]}
    return _event(dev, forum, "epoch.commit", body, epoch=epoch - 1), secret


def _post(dev: Device, forum: str, secret: bytes, text: str, epoch: int = 1) -> Event:
    nonce = os.urandom(16)
    header = {"v": 1, "forum": forum, "type": "post", "author": dev.member,
              "kid": dev.sign.key_id, "ts": NOW_MS, "nonce": nonce, "epoch": epoch}  # fmt: skip
    ct = seal_content_map(secret, header=header, body={"text": text}, nonce=os.urandom(12))
    return build_event(forum=forum, type="post", author=dev.member, device_key=dev.sign,
                       ts=NOW_MS, nonce=nonce, epoch=epoch, body={"ct": ct.to_wire()})  # fmt: skip


async def _batch(client: Any, dev: Device, forum: str, items: list[Any]) -> Any:
    return await client.post(API + f"/forums/{forum}/events/batch", headers=_auth(dev),
                             json={"events": items})  # fmt: skip


def _items(events: list[Event]) -> list[dict[str, str]]:
    return [{"event": b64u(ev.raw)} for ev in events]


def _head(client: Any, forum: str) -> int:
    state = client.server.app[FORUMS].state(forum)
    return state.seq if state is not None else 0


async def test_a_batch_is_sequenced_in_list_order(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _app(aiohttp_client, ctx)
    alice = await _device(client, ctx, "alice")
    forum, secret = await _forum_with_epoch(client, alice)
    posts = [_post(alice, forum, secret, f"post {i}") for i in range(20)]
    resp = await _batch(client, alice, forum, _items(posts))
    assert resp.status == 200, await resp.text()
    results = (await resp.json())["results"]
    assert [r["event_id"] for r in results] == [b64u(p.event_id) for p in posts]
    assert {r["status"] for r in results} == {"sequenced"}
    assert [r["seq"] for r in results] == list(range(3, 23))  # after create and commit

    # The log holds them in that order too.
    page = await (await client.get(API + f"/forums/{forum}/entries?from=3",
                                   headers=_auth(alice))).json()  # fmt: skip
    logged = [Entry.from_bytes(unb64u(e)).signed_event.event_id for e in page["entries"]]
    assert logged == [p.event_id for p in posts]

    # Two batches at once: each keeps its own order (whichever the hub took first).
    first = [_post(alice, forum, secret, f"a{i}") for i in range(10)]
    second = [_post(alice, forum, secret, f"b{i}") for i in range(10)]
    answers = await asyncio.gather(_batch(client, alice, forum, _items(first)),
                                   _batch(client, alice, forum, _items(second)))  # fmt: skip
    for resp in answers:
        seqs = [r["seq"] for r in (await resp.json())["results"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert _head(client, forum) == 42


async def test_one_refused_event_leaves_the_others(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _app(aiohttp_client, ctx)
    alice, bob = await _device(client, ctx, "alice"), await _device(client, ctx, "bob")
    forum, secret = await _forum_with_epoch(client, alice)
    good = _post(alice, forum, secret, "mine")
    bobs = _post(bob, forum, secret, "bob's, through alice's session")
    elsewhere = _post(alice, _forum(), secret, "another forum")
    items = [*_items([good, bobs, elsewhere]), {"event": b64u(b"\xc1 not an event")}]
    resp = await _batch(client, alice, forum, items)
    assert resp.status == 200, await resp.text()
    ok, forbidden, wrong, garbage = (await resp.json())["results"]
    assert ok == {"event_id": b64u(good.event_id), "status": "sequenced", "seq": 3}
    assert forbidden["error"] == "api.forbidden" and forbidden["event_id"] == b64u(bobs.event_id)
    assert wrong["error"] == "event.wrong_forum" and wrong["event_id"] == b64u(elsewhere.event_id)
    assert garbage["error"].startswith("codec.") and "event_id" not in garbage
    assert all(r["message"] for r in (forbidden, wrong, garbage))
    assert _head(client, forum) == 3

    # The hub's rules judge each event on the state the ones before it left: a post
    # under epoch 2 is refused before the commit of epoch 2, and accepted after it.
    commit, secret2 = _commit(alice, forum, 2)
    early, late = (_post(alice, forum, secret2, t, epoch=2) for t in ("early", "late"))
    resp = await _batch(client, alice, forum, _items([early, commit, late]))
    refused, committed, posted = (await resp.json())["results"]
    assert refused["error"].startswith("rules.") and refused["event_id"] == b64u(early.event_id)
    assert (committed["seq"], posted["seq"]) == (4, 5)


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": [{"event": "AA"}] * (MAX_BATCH_EVENTS + 1)},
        {},
        {"events": {"event": "AA"}},
        {"events": ["AA"]},
        {"events": [{"attachment": "AA"}]},
        {"events": [{"event": "not base64!"}]},
        {"events": [{"event": 7}]},
    ],
    ids=[
        "empty",
        "too-many",
        "no-events",
        "not-a-list",
        "item-not-object",
        "no-event",
        "bad-base64",
        "not-a-str",
    ],
)
async def test_a_malformed_request_is_refused_whole(
    aiohttp_client: Any, ctx: NodeContext, body: dict[str, Any]
) -> None:
    client = await _app(aiohttp_client, ctx)
    alice = await _device(client, ctx, "alice")
    forum, _ = await _forum_with_epoch(client, alice)
    resp = await client.post(API + f"/forums/{forum}/events/batch", headers=_auth(alice),
                             json=body)  # fmt: skip
    assert resp.status == 400
    answer = await resp.json()
    assert answer["error"] == "api.bad_request"
    if len(body.get("events", [])) > MAX_BATCH_EVENTS:
        assert str(MAX_BATCH_EVENTS) in answer["message"]
    assert _head(client, forum) == 2  # nothing was submitted


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"events"'])
async def test_a_body_that_is_no_json_object_is_refused(
    aiohttp_client: Any, ctx: NodeContext, raw: bytes
) -> None:
    client = await _app(aiohttp_client, ctx)
    alice = await _device(client, ctx, "alice")
    headers = {**_auth(alice), "Content-Type": "application/json"}
    resp = await client.post(API + f"/forums/{_forum()}/events/batch", headers=headers, data=raw)
    assert resp.status == 400 and (await resp.json())["error"] == "api.bad_request"


async def test_a_repeat_answers_its_existing_seq(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _app(aiohttp_client, ctx)
    alice = await _device(client, ctx, "alice")
    forum, secret = await _forum_with_epoch(client, alice)
    earlier = _post(alice, forum, secret, "sent alone")
    assert (await (await _submit(client, alice, earlier)).json())["seq"] == 3
    new = _post(alice, forum, secret, "new")
    resp = await _batch(client, alice, forum, _items([earlier, new, new]))
    assert [r["seq"] for r in (await resp.json())["results"]] == [3, 4, 4]
    assert _head(client, forum) == 4


async def test_no_session_no_batch(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _app(aiohttp_client, ctx)
    resp = await client.post(API + f"/forums/{_forum()}/events/batch", json={"events": []})
    assert resp.status == 401 and (await resp.json())["error"] == "api.unauthorized"


def _member_limits(rate: float, burst: float) -> RateLimits:
    """Generous ip/peer buckets; the member bucket all but still, so counts are exact."""
    return RateLimits({"ip": TokenBucket(1e6, 1e6), "peer": TokenBucket(1e6, 1e6),
                       "member": TokenBucket(rate, burst)})  # fmt: skip


async def test_a_batch_costs_one_token_per_event(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _app(aiohttp_client, ctx)
    alice = await _device(client, ctx, "alice")
    forum, secret = await _forum_with_epoch(client, alice)

    def posts(n: int) -> list[dict[str, str]]:
        return _items([_post(alice, forum, secret, "p") for _ in range(n)])

    ctx.limits = _member_limits(rate=1e-3, burst=10)  # a full bucket of 10
    assert (await _batch(client, alice, forum, posts(4))).status == 200  # 6 left
    # Needs 7: refused up front (its request token is spent, as for any refused request).
    refused = await _batch(client, alice, forum, posts(7))
    assert refused.status == 429 and (await refused.json())["error"] == "api.rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _head(client, forum) == 2 + 4  # nothing of the refused batch went in
    assert (await _batch(client, alice, forum, posts(5))).status == 200  # 5 left: all spent
    state = await client.get(API + f"/forums/{forum}/state", headers=_auth(alice))
    assert state.status == 429
    assert _head(client, forum) == 2 + 4 + 5

    # A batch larger than the burst passes from a full bucket, leaving it in debt.
    ctx.limits = _member_limits(rate=1e-3, burst=4)
    assert (await _batch(client, alice, forum, posts(6))).status == 200  # -2 left
    state = await client.get(API + f"/forums/{forum}/state", headers=_auth(alice))
    assert state.status == 429 and int(state.headers["Retry-After"]) >= 2900  # 3 tokens


def test_a_charge_above_the_burst_needs_a_full_bucket() -> None:
    bucket = TokenBucket(rate=1, burst=4)
    assert not bucket.take("a", 0.0, cost=6, need=5).allowed  # more than it can hold
    assert bucket.take("a", 0.0, cost=1).allowed
    refused = bucket.take("a", 0.0, cost=6, need=4)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    assert bucket.take("a", 1.0, cost=6, need=4).allowed  # full again: -2 left
    assert not bucket.take("a", 2.0).allowed  # still in debt at -1
    assert not bucket.take("a", 3.0).allowed  # at 0
    assert bucket.take("a", 4.0).allowed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_member_library_submits_in_batches(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MemberClient.submit_many over a real socket: the library is synchronous, so it
    runs in a thread while the node serves in this loop."""
    port = _free_port()
    name = f"127.0.0.1:{port}"
    url = f"http://{name}"
    data = init_data_dir(tmp_path / "node", name, name, fixed_rng(), wall_clock_ms())
    config = parse_config(data.config.read_text())
    node = NodeContext(data=data, config=config, admin_token=data.read_admin_token(),
                       identity=NodeIdentity(name, config.base_url, load_keys(data.key)),
                       limits=_member_limits(1e6, 1e6))  # fmt: skip
    server = await aiohttp_server(make_app(node), port=port)
    calls: list[int] = []
    batch_of = member_client.MemberClient._submit_batch

    def counted(self: MemberClient, forum: str, items: list[dict[str, str]]) -> Any:
        calls.append(len(items))
        return batch_of(self, forum, items)

    monkeypatch.setattr(member_client.MemberClient, "_submit_batch", counted)

    def scenario() -> tuple[list[dict[str, Any]], list[Event], str, MemberClient]:
        admin = {"handle": "alice", "org": "Acme"}
        added = http_json("POST", url + "/admin/members", admin, token=node.admin_token)
        alice = MemberClient.enroll(tmp_path / "alice", url, added["enrollment_code"])
        forum = alice.create_forum("batch")
        epoch = alice.verified(forum)[0].epoch
        secret = alice._secret(forum, epoch)

        def post(i: int) -> Event:
            return alice._event(
                forum,
                "post",
                epoch,
                lambda h: {"ct": seal_map(secret, h, {"text": str(i)}, alice.rng)},
            )

        events = [post(i) for i in range(MAX_BATCH_EVENTS + 6)]
        return alice.submit_many(events), events, forum, alice

    results, events, forum, alice = await asyncio.to_thread(scenario)
    assert calls == [MAX_BATCH_EVENTS, 6]
    assert [r["event_id"] for r in results] == [b64u(e.event_id) for e in events]
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(events)))
    texts = await asyncio.to_thread(lambda: [p["text"] for p in alice.view(forum).posts])
    assert texts == [str(i) for i in range(len(events))]
    assert member_client.BATCH_EVENTS == MAX_BATCH_EVENTS
    await server.close()
