"""HTTP between nodes: where a peer is reached, and one POST with its answer.

Other libraries' failures (aiohttp, sockets, timeouts) are translated here, once, into
``PeerUnreachable``; everything above speaks in protocol codes. This is also the one
place that decides which URLs may carry federation traffic: https, or plain http to a
loopback host (development nodes on one machine, where there is no wire to tap).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from protocol.codec import decode
from protocol.descriptor import Descriptor
from protocol.errors import CODES, ProtocolError, RemoteProtocolError

from ..config import is_loopback_host
from ..storage import PeerRecord

# node/errors.py has it too, but importing that module here would cycle through context.
MSGPACK: Final = "application/vnd.peerforum+msgpack"

# Answers are one msgpack object, itself bounded by the codec's 1 MiB object limit.
MAX_ANSWER_BYTES: Final = 1152 * 1024
SEND_TIMEOUT_S: Final = 30.0
REQUEST_TIMEOUT_S: Final = 15.0


class PeerUnreachable(RemoteProtocolError):
    """The peer could not be asked: network failure, timeout, 5xx, or no usable URL.

    A ``api.unavailable`` protocol error, so a client API handler that lets it pass
    answers 503 with that code."""

    def __init__(self, peer: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__("api.unavailable", f"{peer}: {message}")
        self.peer = peer
        self.retry_after_ms = retry_after_ms


def check_transport_url(url: str) -> str:
    """``url`` if federation traffic may use it (https, or http on loopback); else raise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback_host(host):
        return url
    raise RemoteProtocolError(
        "api.forbidden", f"refusing to send to {url[:200]!r}: use https (http only on loopback)"
    )


def inbox_url(peer: PeerRecord) -> str:
    """The inbox from the peer's pinned descriptor (its own signed word), else its URL."""
    if peer.descriptor is not None:
        found = _descriptor_inbox(peer.descriptor)
        if found is not None:
            return found
    return check_transport_url(peer.url + "/_pf/v1/inbox")


@functools.lru_cache(maxsize=256)
def _descriptor_inbox(descriptor: bytes) -> str | None:
    """A descriptor's checked inbox URL, by its bytes (every delivery round asks)."""
    desc = Descriptor.from_wire(decode(descriptor))
    if "inbox" not in desc.endpoints:
        return None
    return check_transport_url(desc.endpoints["inbox"])


def request_url(peer: PeerRecord, path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    return check_transport_url(peer.url + path)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded msgpack answer; None when it was not canonical msgpack

    def error(self) -> ProtocolError:
        """The refusal this answer carries as a protocol error (an unknown code is
        kept as api.bad_request: the peer refused, we cannot say more)."""
        code = self.body.get("error") if isinstance(self.body, dict) else None
        message = self.body.get("message") if isinstance(self.body, dict) else None
        if not isinstance(code, str) or code not in CODES:
            code = "api.bad_request"
        return RemoteProtocolError(code, str(message or f"HTTP {self.status}")[:500])


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the answer (one more tells the caller it was too big)."""
    data = b""
    while len(data) <= limit and not resp.content.at_eof():
        chunk = await resp.content.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _retry_after_ms(resp: aiohttp.ClientResponse) -> int:
    try:
        return max(0, int(float(resp.headers.get("Retry-After", "0")) * 1000))
    except ValueError:
        return 0


async def post_msgpack(
    session: aiohttp.ClientSession, peer: str, url: str, data: bytes, timeout_s: float
) -> Answer:
    """POST ``data``; an HTTP answer below 500 (other than 429/503) is returned, anything
    that says "not now" raises PeerUnreachable."""
    try:
        async with session.post(
            url,
            data=data,
            headers={"Content-Type": MSGPACK, "Accept": MSGPACK},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as resp:
            raw = await read_bounded(resp, MAX_ANSWER_BYTES)
            if resp.status >= 500 or resp.status == 429:
                raise PeerUnreachable(peer, f"HTTP {resp.status}", _retry_after_ms(resp))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise PeerUnreachable(peer, f"cannot reach {url} ({type(exc).__name__})") from exc
    if len(raw) > MAX_ANSWER_BYTES:
        raise PeerUnreachable(peer, "answer larger than allowed")
    try:
        body = decode(raw)
    except ProtocolError:
        body = None
    return Answer(resp.status, body)


# ---------------------------------------------------------------------------- the socket

SOCKET_REFUSED_S: Final = 600.0  # after a refused upgrade, POST for this long
SOCKET_CLOSE_S: Final = 5.0


class _SocketLost(Exception):
    """The socket failed before the batch was answered: send it again by POST."""


class InboxSocket:
    """A peer's inbox kept open as a WebSocket (specs/api.md ``GET /_pf/v1/inbox``).

    ``send`` answers like ``post_msgpack`` and falls back to it: for this batch when the
    socket cannot be opened or fails before the answer (the batch is sent again: the
    replay cache makes that harmless), and for ``SOCKET_REFUSED_S`` when the peer (or a
    proxy) refused the upgrade. One batch at a time, as the sender sends them.
    """

    def __init__(self, peer: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.peer = peer
        self._clock = clock
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._url: str | None = None
        self._post_until = -1.0
        self.answered = 0  # batches answered over the socket (tests look)

    async def send(
        self, session: aiohttp.ClientSession, url: str, data: bytes, timeout_s: float
    ) -> Answer:
        ws = None
        if self._clock() >= self._post_until:
            ws = await self._open(session, url, timeout_s)
        if ws is not None:
            try:
                answer = await self._exchange(ws, data, timeout_s)
                self.answered += 1
                return answer
            except _SocketLost:
                await self.close()
        return await post_msgpack(session, self.peer, url, data, timeout_s)

    async def _open(
        self, session: aiohttp.ClientSession, url: str, timeout_s: float
    ) -> aiohttp.ClientWebSocketResponse | None:
        if self._ws is not None and not self._ws.closed and self._url == url:
            return self._ws
        await self.close()
        try:
            self._ws = await asyncio.wait_for(session.ws_connect(
                url, timeout=aiohttp.ClientWSTimeout(ws_close=SOCKET_CLOSE_S),
                max_msg_size=MAX_ANSWER_BYTES, compress=0, autoping=True, autoclose=True,
            ), timeout_s)  # fmt: skip
        except aiohttp.WSServerHandshakeError:
            # Not a WebSocket there (an older node, a proxy without Upgrade): POST.
            self._post_until = self._clock() + SOCKET_REFUSED_S
            return None
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None  # unreachable: the POST says so, with the usual codes
        self._url = url
        return self._ws

    async def _exchange(
        self, ws: aiohttp.ClientWebSocketResponse, data: bytes, timeout_s: float
    ) -> Answer:
        try:
            await ws.send_bytes(data)
            msg = await asyncio.wait_for(ws.receive(), timeout_s)
        except TimeoutError as exc:  # no answer in time: the same as a POST timing out
            await self.close()
            raise PeerUnreachable(self.peer, "no answer on the inbox socket") from exc
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise _SocketLost from exc
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise _SocketLost  # closed (1001 when the peer stops), or not ours
        try:
            body = decode(msg.data)
        except ProtocolError:
            return Answer(400, None)
        if isinstance(body, dict) and "error" in body and "results" not in body:
            code = body.get("error")
            status = CODES[code][0] if isinstance(code, str) and code in CODES else 400
            if status >= 500 or status == 429:
                wait = body.get("retry_after_ms")
                retry = wait if isinstance(wait, int) and not isinstance(wait, bool) else 0
                raise PeerUnreachable(self.peer, f"{code} (inbox socket)", max(0, retry))
            return Answer(status, body)
        return Answer(200, body)

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):  # closing a broken socket: nothing to do
                await ws.close()
