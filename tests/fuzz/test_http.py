"""Hypothesis fuzzing of the node's HTTP endpoints, in-process (aiohttp app on a loopback
port, served from a background thread so Hypothesis drives plain synchronous requests).

Every answer must be a spec code: never a 500, never a body without ``error`` when the
status is an error, and the node must keep answering afterwards.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.app import make_app
from protocol.codec import decode
from protocol.errors import CODES
from tests.node.conftest import make_ctx
from tests.report import record

from .test_decoders import EXAMPLES

MSGPACK = "application/vnd.peerforum+msgpack"
FORUM = "!AAAAAAAAAAAAAAAAAAAAAA:127.0.0.1:8700"
ROUTES = [
    ("POST", "/_pf/v1/inbox"), ("POST", "/_pf/v1/forums/{forum}/backfill"),
    ("POST", "/_pf/v1/members/attestation"), ("GET", "/_pf/v1/rotations"),
    ("POST", "/_pf/client/v1/enroll"), ("POST", "/_pf/client/v1/session"),
    ("GET", "/_pf/client/v1/me"), ("POST", "/_pf/client/v1/devices"),
    ("POST", "/_pf/client/v1/forums/{forum}/events"),
    ("GET", "/_pf/client/v1/forums/{forum}/entries?from={n}&limit={n}&wait=0"),
    ("GET", "/_pf/client/v1/forums/{forum}/state"),
    ("GET", "/_pf/client/v1/members/{member}/attestation"),
    ("GET", "/_pf/client/v1/nodes/{name}/descriptor"),
    ("POST", "/admin/members"), ("POST", "/admin/peers"), ("GET", "/admin/peers"),
    ("POST", "/admin/peers/{name}/approve"), ("GET", "/.well-known/peerforum"),
    ("GET", "/healthz"), ("GET", "/{junk}"),
]  # fmt: skip
HTTP = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip


class Served:
    def __init__(self, root: Path) -> None:
        # Rate limits high: the fuzzer is one address sending hundreds of requests.
        limits = "ip_rps = 100000\nip_burst = 100000\nmember_rps = 100000\nmember_burst = 100000\n"
        self.ctx = make_ctx(root, limits)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "in-process node did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(make_app(self.ctx))
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()

    def request(self, method: str, path: str, body: bytes,
                headers: dict[str, str]) -> tuple[int, bytes, str]:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body if method != "GET" else None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type") or ""
        finally:
            conn.close()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(Path(tmp_path_factory.mktemp("http")) / "data")
    try:
        yield s
    finally:
        s.close()


def _check_answer(status: int, body: bytes, ctype: str, what: Any) -> str | None:
    assert status != 500 and status < 500 or status == 503, (status, body[:300], what)
    if status < 400:
        return None
    err: Any = decode(body) if ctype.startswith(MSGPACK) else json.loads(body)
    assert err["error"] in CODES and CODES[err["error"]][0] == status, (err, status, what)
    return str(err["error"])


text = st.text(max_size=40)
segment = st.one_of(text, st.sampled_from([FORUM, "@a:b", "..", "%00", "!x:y", "a" * 300]))
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | text,
                          lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4),
                          max_leaves=20)  # fmt: skip
field_names = st.sampled_from(["event", "code", "proof", "device", "member", "handle", "org",
                               "kid", "ts", "nonce", "sig", "url", "sign", "agree"])  # fmt: skip
json_body = st.one_of(
    st.dictionaries(field_names, json_value, max_size=6).map(lambda d: json.dumps(d).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=512),
)


@given(route=st.sampled_from(ROUTES), fill=segment, n=st.integers(-5, 2**64), data=st.data(),
       ctype=st.sampled_from(["application/json", MSGPACK, "text/plain", ""]),
       auth=st.sampled_from(["", "Bearer x", "Bearer ", "Basic a", "admin"]))  # fmt: skip
@HTTP
def test_endpoints_answer_every_input_with_a_spec_code(
    served: Served, route: tuple[str, str], fill: str, n: int, data: st.DataObject,
    ctype: str, auth: str,
) -> None:  # fmt: skip
    method, template = route
    from urllib.parse import quote

    q = quote(fill, safe="")
    path = template.format(forum=q, member=q, name=q, junk=q, n=n)
    body = data.draw(json_body if ctype != MSGPACK else st.binary(max_size=1024))
    headers = {"Content-Type": ctype} if ctype else {}
    if auth == "admin":
        headers["Authorization"] = f"Bearer {served.ctx.admin_token}"
    elif auth:
        headers["Authorization"] = auth
    status, answer, got_type = served.request(method, path, body, headers)
    _check_answer(status, answer, got_type, (method, path, body[:100]))
    record("fuzz_inputs", 1, target="http")


def test_node_still_healthy_after_the_fuzzing(served: Served) -> None:
    status, _, _ = served.request("GET", "/healthz", b"", {})
    assert status == 200
    log = served.ctx.data.root
    assert log.exists()
