"""Playing a hostile peer against real nodes: envelopes signed with a node's own key (read
from its data dir, as a compromised operator could), posted raw to another node's inbox.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from typing import Any

import msgpack

from node.keystore import load_keys
from protocol.codec import decode, encode
from protocol.envelope import build_batch
from protocol.keys import SigningKey, sign_object
from tests.integration.federation_kit import Org

MSGPACK = "application/vnd.peerforum+msgpack"
INBOX = "/_pf/v1/inbox"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def node_key(org: Org) -> SigningKey:
    return load_keys(org.data / "node.key").current


def post(org: Org, path: str, data: bytes, timeout: float = 20) -> tuple[int, Any]:
    req = urllib.request.Request(org.url + path, data=data, method="POST",
                                 headers={"Content-Type": MSGPACK, "Accept": MSGPACK})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, decode(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, decode(exc.read())


def envelope(frm: str, to: Org, key: SigningKey, kind: str = "node.ping", body: Any = None,
             ts: int | None = None, env_id: bytes | None = None) -> bytes:  # fmt: skip
    """Signed as a misbehaving node would: no local check of the body or origin."""
    unsigned = {"v": 1, "id": env_id or os.urandom(16), "from": frm, "to": to.name,
                "ts": now_ms() if ts is None else ts, "kind": kind, "body": body or {},
                "kid": key.key_id}  # fmt: skip
    return encode(sign_object("envelope", unsigned, key))


def deliver(to: Org, *envelopes: bytes) -> list[dict[str, Any]]:
    status, answer = post(to, INBOX, build_batch(list(envelopes)))
    assert status == 200, answer
    return list(answer["results"])


def code(to: Org, env: bytes) -> str | None:
    """The receiver's verdict on one envelope: None if accepted, else its error code."""
    return deliver(to, env)[0].get("error")


def no_tracebacks(*orgs: Org) -> None:
    for org in orgs:
        assert org.proc is not None
        assert "Traceback" not in org.proc.log(), org.proc.log()[-3000:]
        assert org.healthy()


def envelope_unchecked(frm: str, to: Org, key: SigningKey, body: Any) -> bytes:
    """An envelope whose body the canonical encoder would refuse (too deep): msgpack packs
    it as-is and the signature covers those bytes, as a hostile peer's would."""
    unsigned = {"body": body, "from": frm, "id": os.urandom(16), "kid": key.key_id,
                "kind": "node.ping", "to": to.name, "ts": now_ms(), "v": 1}  # fmt: skip
    sig = key.sign(b"PFP/1\x00envelope\x00" + msgpack.packb(unsigned, use_bin_type=True))
    return msgpack.packb({**{k: unsigned[k] for k in ("body", "from", "id", "kid", "kind")},
                          "sig": sig, "to": to.name, "ts": unsigned["ts"], "v": 1},
                         use_bin_type=True)  # fmt: skip
