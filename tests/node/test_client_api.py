"""Client API: enrollment, sessions, device binding, forum events and long-poll reads.

The forum routes run against a small in-test hub (``FakeHub``: the real protocol rules,
sequencing in memory), so these tests do not depend on the forum engine's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import pytest

from node.app import make_app
from node.context import NodeContext
from node.directory import device_message, enroll_message, session_message
from node.routes import client_forums
from protocol.codec import encode
from protocol.descriptor import Attestation
from protocol.group import seal_content_map
from protocol.keys import AgreementKey, SigningKey, VerifyKey, b64u, unb64u
from protocol.log import ZERO_HASH, Entry, Event, append_entry, build_event
from protocol.rules import ForumState, apply_entry

from .conftest import NAME, NOW_MS

MARKER = "confidential-marker-9931"
API = "/_pf/client/v1"


@dataclass
class Result:
    event_id: bytes
    status: str
    seq: int | None


class FakeHub:
    """Sequences with the real rules; wakes long-polls with a Condition, as the engine does."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.logs: dict[str, list[Entry]] = {}
        self.states: dict[str, ForumState] = {}
        self.cond = asyncio.Condition()

    def _key(self, node: str, kid: str, ts: int) -> VerifyKey | None:
        own = self.ctx.identity.keys.verify_key
        return own if node == NAME and kid == own.key_id else None

    async def submit_local(
        self, raw: bytes, event: Event | None = None, *, attachment: bytes | None = None
    ) -> Result:
        ev = event or Event.from_bytes(raw)
        log = self.logs.setdefault(ev.forum, [])
        prev = log[-1].hash if log else ZERO_HASH
        entry = append_entry(prev, len(log) + 1, raw, self.ctx.identity.keys.current, NAME, NOW_MS)
        state = apply_entry(self.states.get(ev.forum), entry, hub_key_at=self._key,
                            node_keys=self._key)  # fmt: skip
        async with self.cond:
            log.append(entry)
            self.states[ev.forum] = state
            self.cond.notify_all()
        return Result(ev.event_id, "sequenced", entry.seq)

    async def attachments_by_event(self, forum: str, first: int, last: int) -> dict[bytes, bytes]:
        return {}  # no detached content here: tests/node/test_attachments.py has it

    def state(self, forum: str) -> ForumState | None:
        return self.states.get(forum)

    def forums_of(self, member: str) -> list[str]:
        return [f for f, s in self.states.items() if member in s.members]

    async def read(self, forum: str, from_seq: int, limit: int) -> tuple[int, list[bytes]]:
        log = self.logs.get(forum, [])
        return len(log), [e.raw for e in log[from_seq - 1 : from_seq - 1 + limit]]

    async def wait_for(self, forum: str, seq: int, timeout_s: float) -> int:
        async with self.cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.cond.wait_for(lambda: len(self.logs.get(forum, [])) >= seq), timeout_s
                )
        return len(self.logs.get(forum, []))


@dataclass
class Device:
    member: str
    sign: SigningKey
    agree: AgreementKey
    token: str = ""


async def _app(aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch) -> Any:
    hub = FakeHub(ctx)
    monkeypatch.setattr(client_forums, "_engine", lambda request: hub)
    client = await aiohttp_client(make_app(ctx))
    client.hub = hub
    return client


async def _admit(client: Any, ctx: NodeContext, handle: str, org: str = "Acme") -> tuple[str, str]:
    resp = await client.post("/admin/members", json={"handle": handle, "org": org},
                             headers={"Authorization": f"Bearer {ctx.admin_token}"})  # fmt: skip
    body = await resp.json()
    return body["member"], body["enrollment_code"]


def _enroll_body(code: str, member: str, sign: SigningKey, agree: AgreementKey) -> dict[str, Any]:
    s, a = sign.verify_key.raw, agree.public.raw
    proof = sign.sign(enroll_message(code=code, member=member, node=NAME, sign=s, agree=a))
    return {"code": code, "device": {"sign": b64u(s), "agree": b64u(a)}, "proof": b64u(proof)}


def _login_body(dev: Device, ts: int = NOW_MS, nonce: bytes | None = None) -> dict[str, Any]:
    nonce = nonce or os.urandom(16)
    msg = session_message(member=dev.member, node=NAME, kid=dev.sign.key_id, ts=ts, nonce=nonce)
    return {"member": dev.member, "kid": dev.sign.key_id, "ts": ts, "nonce": b64u(nonce),
            "sig": b64u(dev.sign.sign(msg))}  # fmt: skip


async def _device(client: Any, ctx: NodeContext, handle: str) -> Device:
    member, code = await _admit(client, ctx, handle)
    dev = Device(member, SigningKey(os.urandom(32)), AgreementKey(os.urandom(32)))
    resp = await client.post(API + "/enroll", json=_enroll_body(code, member, dev.sign, dev.agree))
    assert resp.status == 200, await resp.text()
    resp = await client.post(API + "/session", json=_login_body(dev))
    assert resp.status == 200, await resp.text()
    dev.token = (await resp.json())["token"]
    return dev


def _auth(dev: Device) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev.token}"}


async def test_enrollment_code_works_once_and_needs_proof(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _app(aiohttp_client, ctx, monkeypatch)
    member, code = await _admit(client, ctx, "alice")
    sign, agree = SigningKey(os.urandom(32)), AgreementKey(os.urandom(32))
    body = _enroll_body(code, member, sign, agree)

    forged = dict(body, proof=b64u(SigningKey(os.urandom(32)).sign(b"x")))
    resp = await client.post(API + "/enroll", json=forged)
    assert resp.status == 403 and (await resp.json())["error"] == "sig.invalid"

    resp = await client.post(API + "/enroll", json=body)  # the failed try did not spend it
    assert resp.status == 200
    answer = await resp.json()
    att = Attestation.from_wire(__import__("protocol.codec").codec.decode(
        unb64u(answer["attestation"])))  # fmt: skip
    assert att.member == member and att.org == "Acme"
    assert [d.sign.raw for d in att.devices] == [sign.verify_key.raw]

    other = SigningKey(os.urandom(32)), AgreementKey(os.urandom(32))
    resp = await client.post(API + "/enroll", json=_enroll_body(code, member, *other))
    assert resp.status == 403 and (await resp.json())["error"] == "api.forbidden"

    bogus = _enroll_body("bob.AAAA", "@bob:" + NAME, *other)
    wrong = await client.post(API + "/enroll", json=bogus)
    assert wrong.status == 403


async def test_session_needs_a_registered_device_signature(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _app(aiohttp_client, ctx, monkeypatch)
    dev = await _device(client, ctx, "alice")
    stranger = Device(dev.member, SigningKey(os.urandom(32)), dev.agree)
    resp = await client.post(API + "/session", json=_login_body(stranger))
    assert resp.status == 401

    body = _login_body(dev)
    body["sig"] = b64u(stranger.sign.sign(b"whatever"))
    resp = await client.post(API + "/session", json=body)
    assert resp.status == 403 and (await resp.json())["error"] == "sig.invalid"

    stale = await client.post(API + "/session", json=_login_body(dev, ts=NOW_MS - 10 * 60_000))
    assert stale.status == 401

    nonce = os.urandom(16)
    assert (await client.post(API + "/session", json=_login_body(dev, nonce=nonce))).status == 200
    replay = await client.post(API + "/session", json=_login_body(dev, nonce=nonce))
    assert replay.status == 401

    me = await (await client.get(API + "/me", headers=_auth(dev))).json()
    assert me["member"] == dev.member and me["device"] == dev.sign.key_id
    assert (await client.get(API + "/me")).status == 401
    assert (await client.delete(API + "/session", headers=_auth(dev))).status == 200
    assert (await client.get(API + "/me", headers=_auth(dev))).status == 401


async def test_token_is_bound_to_its_device(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _app(aiohttp_client, ctx, monkeypatch)
    dev = await _device(client, ctx, "alice")
    second = Device(dev.member, SigningKey(os.urandom(32)), AgreementKey(os.urandom(32)))
    s, a = second.sign.verify_key.raw, second.agree.public.raw
    proof = second.sign.sign(device_message(member=dev.member, node=NAME, sign=s, agree=a))
    resp = await client.post(API + "/devices", headers=_auth(dev),
                             json={"device": {"sign": b64u(s), "agree": b64u(a)},
                                   "proof": b64u(proof)})  # fmt: skip
    assert resp.status == 200, await resp.text()
    second.token = (await (await client.post(API + "/session", json=_login_body(second))).json())[
        "token"
    ]
    # Used once, so the node holds the session in memory: revoking must still end it.
    assert (await client.get(API + "/me", headers=_auth(second))).status == 200
    resp = await client.delete(API + f"/devices/{second.sign.key_id}", headers=_auth(dev))
    assert resp.status == 200
    assert (await client.get(API + "/me", headers=_auth(second))).status == 401
    assert (await client.get(API + "/me", headers=_auth(dev))).status == 200

    # The operator removing the member ends every session.
    admin = {"Authorization": f"Bearer {ctx.admin_token}"}
    assert (await client.post("/admin/members/alice/remove", headers=admin)).status == 200
    assert (await client.get(API + "/me", headers=_auth(dev))).status == 401


def _forum() -> str:
    return f"!{b64u(os.urandom(16))}:{NAME}"


async def _attestation(client: Any, dev: Device, member: str | None = None) -> dict[str, Any]:
    from protocol.codec import decode

    path = API + f"/members/{member or dev.member}/attestation"
    data = (await (await client.get(path, headers=_auth(dev))).json())["attestation"]
    value = decode(unb64u(data))
    assert isinstance(value, dict)
    return value


def _event(dev: Device, forum: str, type: str, body: dict[str, Any], epoch: int = 0) -> Event:
    return build_event(forum=forum, type=type, author=dev.member, device_key=dev.sign,
                       ts=NOW_MS, nonce=os.urandom(16), epoch=epoch, body=body)  # fmt: skip


async def _submit(client: Any, dev: Device, ev: Event) -> Any:
    return await client.post(API + f"/forums/{ev.forum}/events", headers=_auth(dev),
                             json={"event": b64u(ev.raw)})  # fmt: skip


async def test_author_must_be_the_session(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _app(aiohttp_client, ctx, monkeypatch)
    alice, bob = await _device(client, ctx, "alice"), await _device(client, ctx, "bob")
    forum = _forum()
    create = _event(alice, forum, "forum.create",
                    {"hub": NAME, "attestation": await _attestation(client, alice)})  # fmt: skip
    resp = await _submit(client, bob, create)  # alice's event through bob's session
    assert resp.status == 403 and (await resp.json())["error"] == "api.forbidden"
    resp = await _submit(client, alice, create)
    assert resp.status == 200 and (await resp.json())["seq"] == 1

    state = await client.get(API + f"/forums/{forum}/state", headers=_auth(alice))
    view = await state.json()
    assert view["members"][0]["member"] == alice.member and view["epoch_required"] is True
    hidden = await client.get(API + f"/forums/{forum}/entries", headers=_auth(bob))
    assert hidden.status == 403
    listed = await (await client.get(API + "/forums", headers=_auth(alice))).json()
    assert [f["forum"] for f in listed["forums"]] == [forum]


async def test_long_poll_wakes_on_new_entry_and_logs_no_content(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    client = await _app(aiohttp_client, ctx, monkeypatch)
    alice = await _device(client, ctx, "alice")
    forum = _forum()
    att = await _attestation(client, alice)
    create = _event(alice, forum, "forum.create", {"hub": NAME, "attestation": att})
    await _submit(client, alice, create)
    from protocol.group import seal_epoch

    secret = os.urandom(32)
    sealed = seal_epoch(secret, forum=forum, epoch=1, recipients=[alice.agree.public])
    body = {"epoch": 1, "admit": [], "secrets": [s.to_wire() for s in sealed]}
    commit = _event(alice, forum, "epoch.commit", body)
    assert (await _submit(client, alice, commit)).status == 200

    started = time.monotonic()
    poll = asyncio.ensure_future(
        client.get(API + f"/forums/{forum}/entries?from=3&wait=10", headers=_auth(alice))
    )
    await asyncio.sleep(0.2)
    assert not poll.done()
    header = {
        "v": 1, "forum": forum, "type": "post", "author": alice.member,
        "kid": alice.sign.key_id, "ts": NOW_MS, "nonce": os.urandom(16), "epoch": 1,
    }  # fmt: skip
    ct = seal_content_map(secret, header=header, body={"text": MARKER}, nonce=os.urandom(12))
    post = build_event(
        forum=forum, type="post", author=alice.member, device_key=alice.sign,
        ts=NOW_MS, nonce=header["nonce"], epoch=1, body={"ct": ct.to_wire()},
    )  # fmt: skip
    assert (await _submit(client, alice, post)).status == 200
    resp = await asyncio.wait_for(poll, 5)
    page = await resp.json()
    assert time.monotonic() - started < 5
    assert page["head"] == 3 and len(page["entries"]) == 1 and page["gaps"] == []
    assert Entry.from_bytes(unb64u(page["entries"][0])).signed_event.raw == post.raw
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert MARKER not in logged and b64u(post.raw)[:40] not in logged
    assert MARKER.encode() not in encode(post.to_wire())
