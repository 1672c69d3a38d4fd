"""The inbox and backfill endpoints against hostile and broken input: every refusal has
its code, none is a 500, and the node keeps serving. Senders are keys pinned in the
receiver's storage (no second server needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol.codec import decode, encode
from protocol.descriptor import KeySet, OldKey, build_rotation
from protocol.keys import SigningKey

from .conftest import NOW_MS
from .test_federation_helpers import (
    MSGPACK,
    Clock,
    Node,
    batch,
    descriptor_for,
    forge,
    pin,
    start_node,
)

ALICE = "alice.example"
MALLORY = "mallory.example"
KEY = SigningKey(b"a" * 32)
MKEY = SigningKey(b"m" * 32)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    node = await start_node(tmp_path / "bob", Clock(), limits="peer_rps = 1\npeer_burst = 40\n")
    for name, key in ((ALICE, KEY), (MALLORY, MKEY)):
        await pin(node.storage, name, f"https://{name}", descriptor_for(name, key, NOW_MS), NOW_MS)
    yield node
    await node.stop()


def env(node: Node, key: SigningKey = KEY, sender: str = ALICE, **over: Any) -> bytes:
    fields: dict[str, Any] = {
        "id": over.pop("id", None) or bytes(range(16)), "from": sender, "to": node.name,
        "ts": NOW_MS, "kind": "node.ping", "body": {},
    }  # fmt: skip
    fields.update(over)
    return forge(key, **fields)


async def post(node: Node, data: bytes, path: str = "/_pf/v1/inbox") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
        node.url + path, data=data, headers={"Content-Type": MSGPACK}
    ) as resp:
        assert resp.status != 500
        assert resp.content_type == MSGPACK
        return resp.status, decode(await resp.read())


async def one(node: Node, data: bytes) -> dict[str, Any]:
    status, body = await post(node, batch(data))
    assert status == 200, body
    (result,) = body["results"]
    return dict(result)


async def still_serving(node: Node) -> None:
    result = await one(node, env(node, id=b"\xee" * 16))
    assert result.get("ok") is True, result


async def test_ping_is_accepted_then_a_replay_is_refused(node: Node) -> None:
    data = env(node)
    assert await one(node, data) == {"id": bytes(range(16)), "ok": True}
    refused = await one(node, data)
    assert refused["error"] == "envelope.replay" and refused["id"] == bytes(range(16))
    assert node.fed.metrics.replays.get() == 1


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda n: _forged_sig(n), "sig.invalid"),
        (lambda n: env(n, to="carol.example"), "envelope.wrong_recipient"),
        (lambda n: env(n, sender="stranger.example"), "envelope.unknown_peer"),
        (lambda n: env(n, ts=NOW_MS + 301_000), "envelope.skew"),
        (lambda n: env(n, kind="forum.gossip"), "envelope.unknown_kind"),
        (
            lambda n: env(
                n, kind="forum.submit",
                body={"forum": "!f:a", "events": [encode({"author": "@x:evil.example"})]},
            ),  # fmt: skip
            "envelope.origin_mismatch",
        ),
        (lambda n: {"v": 1}, "schema.wrong_type"),  # an item that is a map, not bin
        (lambda n: encode({"v": 1}) + b"\x00", "codec.trailing_bytes"),
    ],
)
async def test_each_refusal_has_its_code(node: Node, make: Any, code: str) -> None:
    status, body = await post(node, encode({"v": 1, "envelopes": [make(node)]}))
    assert status == 200, body
    assert body["results"][0]["error"].split(".")[0] == code.split(".")[0]
    if code != "codec.trailing_bytes":
        assert body["results"][0]["error"] == code
    assert node.fed.metrics.envelopes.get(result="refused", code=body["results"][0]["error"]) >= 1
    await still_serving(node)


def _forged_sig(node: Node) -> bytes:
    wire = decode(env(node))
    wire["sig"] = bytes(64)
    return encode(wire)


async def test_blocked_peer_and_expired_key(node: Node) -> None:
    await node.storage.set_peer_status(MALLORY, "blocked", NOW_MS)
    assert (await one(node, env(node, MKEY, MALLORY)))["error"] == "envelope.blocked_peer"
    # Alice's first key retired an hour ago: it signs nothing newer than that.
    old = SigningKey(b"o" * 32)
    retired = [(old.key_id, old.verify_key.raw, NOW_MS - 3_600_000)]
    await node.storage.pin_rotated_keys(ALICE, retired, NOW_MS)
    assert (await one(node, env(node, old, id=b"\x01" * 16)))["error"] == "sig.key_expired"
    await still_serving(node)


async def test_whole_batch_refusals_are_coded(node: Node) -> None:
    status, body = await post(node, b"\xc1")
    assert status == 400 and body["error"].startswith("codec.")
    status, body = await post(node, encode({"v": 1, "envelopes": [env(node)] * 51}))
    assert (status, body["error"]) == (413, "envelope.too_many")
    status, body = await post(node, b"\x00" * (1024 * 1024 + 1))  # over the protocol limit
    assert (status, body["error"]) == (413, "envelope.too_large")
    status, body = await post(node, b"\x00" * (2 * 1024 * 1024))  # over the body limit
    assert (status, body["error"]) == (413, "api.too_large")
    await still_serving(node)


async def test_forum_kinds_reach_the_engine_and_entries_are_acked(node: Node) -> None:
    forum = "!f:alice.example"
    entries = [encode({"hub": ALICE, "seq": i}) for i in (1, 2, 3)]
    result = await post(node, batch(
        env(node, id=b"\x10" * 16, kind="forum.entries", body={"forum": forum, "entries": entries}),
        env(node, id=b"\x11" * 16, kind="forum.head", body={"forum": forum}),
    ))  # fmt: skip
    assert result[1]["acks"] == {forum: 3}
    assert [r.get("ok") for r in result[1]["results"]] == [True, True]
    node.fed.forums_provider = lambda: None  # no engine: answer "later", do not record
    data = env(node, id=b"\x12" * 16, kind="forum.head", body={"forum": forum})
    assert (await one(node, data))["error"] == "api.unavailable"
    assert not node.fed.seen(b"\x12" * 16)  # a retry will be handled


async def test_rotation_is_applied_and_the_new_key_works_in_the_same_batch(node: Node) -> None:
    new = SigningKey(b"n" * 32)
    rotation = build_rotation(node=ALICE, old=KEY, new=new, ts=NOW_MS)
    announce = env(node, id=b"\x20" * 16, ts=NOW_MS - 1, kind="node.rotation",
                   body={"rotation": encode(rotation.to_wire())})  # fmt: skip
    after = env(node, new, id=b"\x21" * 16)
    status, body = await post(node, batch(after, announce, env(node, new, id=b"\x22" * 16)))
    results = [r.get("error", "ok") for r in body["results"]]
    assert results == ["sig.unknown_key", "ok", "ok"]  # before the rotation: unknown
    peer = await node.storage.get_peer(ALICE)
    assert peer is not None and peer.status == "approved"
    assert {k.kid: k.expired_ms for k in peer.pinned_keys} == {
        KEY.key_id: NOW_MS, new.key_id: None
    }
    assert KeySet((new.verify_key,), (OldKey(KEY.verify_key, NOW_MS),))  # well-formed
    assert (await one(node, env(node, new, id=b"\x23" * 16))).get("ok") is True


async def test_a_flooding_peer_is_limited_alone(node: Node) -> None:
    codes = []
    for i in range(45):
        status, body = await post(node, batch(env(node, id=bytes([i]) * 16)))
        codes.append(body.get("error", "ok") if status != 200 else "ok")
    assert "api.rate_limited" in codes
    assert (await one(node, env(node, MKEY, MALLORY, id=b"\x99" * 16))).get("ok") is True


async def test_backfill_endpoint(node: Node) -> None:
    forum = "!f:127.0.0.1"
    node.forums.append(forum, 5)
    body = {"forum": forum, "from": 2, "limit": 2}
    path = f"/_pf/v1/forums/{forum}/backfill"
    status, answer = await post(node, env(node, kind="forum.backfill", body=body), path)
    assert status == 200 and answer["head"] == 5 and len(answer["entries"]) == 2
    other = env(node, id=b"\x30" * 16, kind="forum.backfill", body={**body, "forum": "!g:x"})
    status, answer = await post(node, other, path)
    assert (status, answer["error"]) == (403, "envelope.origin_mismatch")
    status, answer = await post(node, env(node, kind="forum.backfill", body=body), path)
    assert (status, answer["error"]) == (409, "envelope.replay")
    bad = env(node, id=b"\x31" * 16, kind="forum.backfill", body={**body, "limit": 501})
    status, answer = await post(node, bad, path)
    assert (status, answer["error"]) == (400, "schema.bad_value")
