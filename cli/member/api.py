"""The wire side of the member client: JSON calls to the home node, node descriptors.

Synchronous (urllib), so the CLI, tests and scripts need no event loop. A call that
answers ``api.unauthorized`` opens a new session with the device key and is retried
once: a session ending (expiry, node restart with a cleared table) is not an error for
the member.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from node.directory import session_message
from protocol.codec import decode
from protocol.descriptor import Descriptor, verify_descriptor
from protocol.errors import ProtocolError
from protocol.keys import b64u

from .profile import Profile

PREFIX = "/_pf/client/v1"
TIMEOUT_S = 30.0
RATE_RETRIES = 8
RATE_WAIT_MAX_S = 5.0


class MemberApiError(Exception):
    """The node refused a call: ``code`` is a protocol error code (specs/api.md)."""

    def __init__(self, code: str, message: str, status: int = 0,
                 retry_after_s: float = 0.0) -> None:  # fmt: skip
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def quote(segment: str) -> str:
    """One path segment (forum and member ids hold ``!``, ``@`` and ``:``)."""
    return urllib.parse.quote(segment, safe="")


def http_json(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            retry = float(exc.headers.get("Retry-After") or 0)
        except ValueError:
            retry = 0.0
        try:
            err = json.loads(exc.read())
            raise MemberApiError(str(err["error"]), str(err["message"]), exc.code,
                                 retry) from None  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise MemberApiError("api.internal", f"HTTP {exc.code}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        raise MemberApiError("api.unavailable", f"cannot reach {url}: {exc}") from None


def fetch_descriptor(node_url: str, expected_name: str, now: int) -> tuple[Descriptor, bytes]:
    """GET and verify ``/.well-known/peerforum`` (the name must be the host we asked)."""
    req = urllib.request.Request(node_url.rstrip("/") + "/.well-known/peerforum")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            data = resp.read(65536)
    except (urllib.error.URLError, OSError) as exc:
        raise MemberApiError("api.unavailable", f"cannot reach {node_url}: {exc}") from None
    try:
        return verify_descriptor(data, expected_name=expected_name, now_ms=now), data
    except ProtocolError as exc:
        raise MemberApiError(exc.code, f"{expected_name}: {exc.message}") from None


def node_name_of(url: str) -> str:
    """A node's name is its URL's host, with the port when there is one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MemberApiError("api.bad_request", f"not a node URL: {url}")
    return parts.netloc.lower()


class Session:
    """Authenticated calls to the member's home node, re-opening the session on 401."""

    def __init__(self, profile: Profile, clock: Callable[[], int] = now_ms,
                 rng: Callable[[int], bytes] | None = None) -> None:  # fmt: skip
        import os

        self.profile = profile
        self.clock = clock
        self.rng = rng or os.urandom
        settings = profile.settings()
        self.base = str(settings["node_url"]).rstrip("/")
        self.node = str(settings["node"])
        self.member = str(settings["member"])
        self.token: str | None = settings.get("token")

    def login(self) -> str:
        sign, _ = self.profile.device()
        ts, nonce = self.clock(), self.rng(16)
        msg = session_message(member=self.member, node=self.node, kid=sign.key_id, ts=ts,
                              nonce=nonce)  # fmt: skip
        answer = http_json("POST", self.base + PREFIX + "/session", {
            "member": self.member, "kid": sign.key_id, "ts": ts, "nonce": b64u(nonce),
            "sig": b64u(sign.sign(msg)),
        })  # fmt: skip
        self.token = str(answer["token"])
        self.profile.save_settings(token=self.token, token_expires_ms=answer["expires_ms"])
        return self.token

    def logout(self) -> None:
        if self.token is not None:
            try:
                http_json("DELETE", self.base + PREFIX + "/session", token=self.token)
            except MemberApiError as exc:
                if exc.code != "api.unauthorized":
                    raise
        self.token = None
        self.profile.save_settings(token=None, token_expires_ms=None)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> dict[str, Any]:  # fmt: skip
        for attempt in range(RATE_RETRIES + 1):
            try:
                return self._call(method, path, body, timeout_s)
            except MemberApiError as exc:
                # The node's per-member rate limit: wait as told and try again, since a
                # member's command (a vote, a sync) is worth finishing, not failing.
                if exc.code != "api.rate_limited" or attempt == RATE_RETRIES:
                    raise
                time.sleep(min(max(exc.retry_after_s, 0.2), RATE_WAIT_MAX_S))
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, body: dict[str, Any] | None,
              timeout_s: float) -> dict[str, Any]:  # fmt: skip
        token = self.token or self.login()
        try:
            return http_json(method, self.base + PREFIX + path, body, token, timeout_s)
        except MemberApiError as exc:
            if exc.code != "api.unauthorized":
                raise
        return http_json(method, self.base + PREFIX + path, body, self.login(), timeout_s)


def descriptor_keys(data: bytes) -> Descriptor:
    return Descriptor.from_wire(decode(data))
