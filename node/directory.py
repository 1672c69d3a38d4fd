"""Who this node's members are, as the node vouches for them (PFP/1 §4.5).

The node signs an attestation binding a member id, organisation and every active device;
it re-signs on each device change so the latest attestation always lists exactly the
devices that may receive epoch secrets. Another node's members are looked up from that
node over federation (``member.lookup``) and checked against the keys pinned for it.

Also here: the messages a device signs to enroll and to open a session. They are pure
(no aiohttp), so the member client library builds the very same bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from protocol.codec import decode, encode
from protocol.descriptor import Device, KeySet, OldKey, build_attestation, verify_attestation
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.identity import node_of, parse_member_id
from protocol.keys import AgreementPublicKey, VerifyKey, b64u, sha256, signing_input

if TYPE_CHECKING:
    from .identity import NodeIdentity
    from .storage import Storage
    from .storage.members import MemberRecord

ENROLL_DOMAIN: Final = "enroll"
SESSION_DOMAIN: Final = "session"
DEVICE_DOMAIN: Final = "device"
CODE_TTL_MS: Final = 7 * 24 * 3600 * 1000
CODE_RANDOM_BYTES: Final = 18  # 144 bits: not guessable within any rate limit
LOOKUP_PATH: Final = "/_pf/v1/members/attestation"
LOOKUP_KIND: Final = "member.lookup"

# ``(node, path, kind, body) -> answer``: Federation.request, injected so this module
# does not depend on the delivery layer (and tests can script the other node).
FederationRequest = Callable[[str, str, str, dict[str, Any]], Awaitable[Any]]


# ---------------------------------------------------------------------------- codes


def secret_hash(secret: str) -> bytes:
    """How codes and tokens are stored: their SHA-256, never the text."""
    return sha256(secret.encode("utf-8"))


def new_enrollment_code(handle: str, random_bytes: bytes) -> str:
    """``HANDLE.RANDOM``: the handle lets the device name the member it binds its proof to.

    A handle may hold dots but b64u never does, so the last ``.`` splits the two.
    """
    return f"{handle}.{b64u(random_bytes)}"


def handle_of_code(code: str) -> str:
    handle, dot, rest = code.rpartition(".")
    if not dot or not handle or not rest:
        raise RemoteProtocolError("api.bad_request", "not an enrollment code")
    return handle


# ---------------------------------------------------------------------------- device proofs


def enroll_message(*, code: str, member: str, node: str, sign: bytes, agree: bytes) -> bytes:
    """What a new device signs: possession of ``sign``, bound to this code, member and node.

    The code enters as its hash, so the signed bytes never carry the secret itself.
    """
    unsigned = {
        "v": 1, "code": sha256(code.encode("utf-8")), "member": member, "node": node,
        "sign": sign, "agree": agree,
    }  # fmt: skip
    return signing_input(ENROLL_DOMAIN, unsigned)


def session_message(*, member: str, node: str, kid: str, ts: int, nonce: bytes) -> bytes:
    """What a registered device signs to open a session on ``node``."""
    unsigned = {"v": 1, "member": member, "node": node, "kid": kid, "ts": ts, "nonce": nonce}
    return signing_input(SESSION_DOMAIN, unsigned)


def device_message(*, member: str, node: str, sign: bytes, agree: bytes) -> bytes:
    """What a device being added signs: possession of ``sign``, bound to member and node."""
    unsigned = {"v": 1, "member": member, "node": node, "sign": sign, "agree": agree}
    return signing_input(DEVICE_DOMAIN, unsigned)


def device_of(sign: bytes, agree: bytes) -> Device:
    """A device from raw public keys (``identity.bad_key`` if malformed)."""
    return Device(VerifyKey(sign), AgreementPublicKey(agree))


# ---------------------------------------------------------------------------- attestations


async def attest_member(
    storage: Storage, identity: NodeIdentity, member: MemberRecord, now_ms: int
) -> bytes:
    """Sign and store an attestation listing every active device of ``member``."""
    devices = [device_of(d.sign_key, d.agree_key) for d in await storage.list_devices(member.id)]
    if not devices:
        raise RemoteProtocolError("api.conflict", f"{member.id} has no active device")
    att = build_attestation(
        node=identity.name, member=member.id, org=member.org, devices=devices, ts=now_ms,
        key=identity.keys.current, title=member.title, industry=member.industry,
    )  # fmt: skip
    data = encode(att.to_wire())
    await storage.set_attestation(member.id, data)
    return data


async def local_attestation(storage: Storage, member: str) -> bytes:
    """The stored attestation of one of our active members, or ``api.not_found``."""
    record = await storage.get_member(member)
    data = await storage.get_attestation(member) if record and record.status == "active" else None
    if data is None:
        raise RemoteProtocolError("api.not_found", f"no attested member {member}")
    return data


def pinned_keyset(keys: list[tuple[str, bytes, int | None]]) -> KeySet:
    """A KeySet from pinned (kid, key, expired_ms) rows: current keys and retired ones."""
    current = tuple(VerifyKey(k) for _, k, exp in keys if exp is None)
    old = tuple(OldKey(VerifyKey(k), exp) for _, k, exp in keys if exp is not None)
    if not current:
        raise RemoteProtocolError("sig.unknown_key", "no current pinned key")
    return KeySet(current, old)


async def peer_keyset(storage: Storage, node: str) -> KeySet:
    peer = await storage.get_peer(node)
    if peer is None or peer.status != "approved":
        raise RemoteProtocolError("api.not_found", f"{node} is not an approved peer")
    return pinned_keyset([(k.kid, k.key, k.expired_ms) for k in peer.pinned_keys])


async def lookup_attestation(
    storage: Storage, identity: NodeIdentity, member: str, request: FederationRequest | None
) -> bytes:
    """The attestation of ``member``: ours from storage, another node's over federation.

    A remote answer is verified against the keys we pinned for its node before we pass
    it on, so a member's client never receives what a peer could not have signed.
    """
    parse_member_id(member)
    node = node_of(member)
    if node == identity.name:
        return await local_attestation(storage, member)
    keys = await peer_keyset(storage, node)
    if request is None:
        raise RemoteProtocolError("api.unavailable", "federation is not running")
    answer = await request(node, LOOKUP_PATH, LOOKUP_KIND, {"member": member})
    if isinstance(answer, bytes):
        answer = decode(answer)
    data = answer.get("attestation") if isinstance(answer, dict) else None
    if not isinstance(data, bytes):
        raise RemoteProtocolError("api.unavailable", f"{node} sent no attestation")
    try:
        att = verify_attestation(data, expected_node=node, keys=keys)
    except ProtocolError as exc:
        raise RemoteProtocolError("attestation.invalid", f"{node}: {exc.message}") from exc
    if att.member != member:
        raise RemoteProtocolError("attestation.invalid", f"{node} attested another member")
    return data
