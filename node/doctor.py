"""``peerforum doctor``: the checks that need the database or the network.

The file checks (config.toml, permissions) are node/config_check.py. The checks here
run inside a running node (``GET /admin/doctor``, so they see the descriptor it serves
and can use its federation client) or in the CLI when the node is stopped; the database
is always read through a separate read-only connection, so a diagnosis never migrates,
creates or locks anything a serving node needs.

Every finding is {check, status, message, fix}; ``fail`` means something is broken
now, ``warn`` something an operator should look at.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from protocol.descriptor import verify_descriptor
from protocol.errors import ProtocolError

from .config import NodeConfig
from .config_check import Finding, fail, ok, warn
from .identity import NodeIdentity
from .keystore import KeyFileError, load_keys
from .peering import WELL_KNOWN
from .storage import StorageError
from .storage.maintenance import (
    PeerTarget,
    db_status,
    delivery_health,
    federating_peers,
    open_readonly,
)

# A signed, synchronous node.ping to a peer; raises when the peer does not answer.
Pinger = Callable[[str], Awaitable[None]]

PEER_TIMEOUT_S = 5.0
SKEW_OK_MS = 30_000
SKEW_WINDOW_MS = 300_000  # protocol Limits.skew_seconds: envelopes outside it are refused
DESCRIPTOR_MIN_LEFT_MS = 24 * 3600 * 1000
OUTBOX_DEEP = 1000
_NTP_FIX = "synchronize both clocks with NTP (e.g. `timedatectl set-ntp true` or chrony)"


def check_database(path: Path) -> list[Finding]:
    try:
        st = db_status(path)
    except StorageError as exc:
        return [fail("database", str(exc), "restore the data dir from a backup")]
    if not st.exists:
        return [
            warn(
                "database",
                f"{path} does not exist yet",
                "it is created when the node first serves (or `peerforum db migrate`)",
            )
        ]
    findings: list[Finding] = []
    if st.integrity_ok:
        findings.append(
            ok(
                "database.integrity",
                f"integrity ok ({st.size_bytes} bytes, WAL {st.wal_bytes} bytes)",
            )
        )
    else:
        findings.append(
            fail(
                "database.integrity",
                f"integrity check failed: {'; '.join(st.integrity[:3])}",
                "stop the node and restore the latest backup "
                "(`peerforum restore FILE --data NEW_DIR`)",
            )
        )
    if st.newer:
        findings.append(
            fail(
                "database.schema",
                f"schema {st.schema_version} is newer than this PeerForum "
                f"knows ({st.latest_version})",
                "upgrade PeerForum, or restore a backup made by this version",
            )
        )
    elif st.pending:
        names = ", ".join(f"{p['version']:04d}_{p['name']}" for p in st.pending)
        findings.append(
            warn(
                "database.schema",
                f"schema {st.schema_version}; pending migrations: {names}",
                "run `peerforum db migrate` (or start the node: it migrates)",
            )
        )
    else:
        findings.append(ok("database.schema", f"schema {st.schema_version} is current"))
    return findings


def check_descriptor(
    config: NodeConfig, descriptor: bytes | None, key_path: Path, now_ms: int
) -> Finding:
    """The descriptor the node serves (or, stopped, the one it would sign) verifies."""
    if descriptor is None:
        try:
            keys = load_keys(key_path)
        except KeyFileError as exc:
            return fail("descriptor", str(exc), "restore node.key from a backup")
        descriptor = NodeIdentity(config.name, config.base_url, keys).descriptor(now_ms)[1]
    try:
        desc = verify_descriptor(descriptor, expected_name=config.name, now_ms=now_ms)
    except ProtocolError as exc:
        return fail(
            "descriptor",
            f"this node's descriptor does not verify: {exc.code} ({exc.message})",
            "check the system clock and node.key, then restart",
        )
    left = desc.valid_until - now_ms
    if left < DESCRIPTOR_MIN_LEFT_MS:
        return warn(
            "descriptor",
            f"descriptor expires in {left // 60_000} minutes",
            "restart the node: it re-signs its descriptor daily",
        )
    inbox = desc.endpoints.get("inbox", "")
    if not inbox.startswith(config.base_url + "/"):
        return fail(
            "descriptor",
            f"descriptor publishes inbox {inbox}, not under {config.base_url}",
            "restart the node after changing public_url",
        )
    return ok("descriptor", f"signed by {desc.kid}, valid for {left // 3_600_000} more hours")


async def check_public_descriptor(
    http: aiohttp.ClientSession, config: NodeConfig, now_ms: int
) -> Finding:
    """Can the node's own published URL be fetched from here (what peers will do)?"""
    url = config.base_url + WELL_KNOWN
    try:
        data, _ = await _fetch(http, url)
        verify_descriptor(data, expected_name=config.name, now_ms=now_ms)
    except (ProtocolError, _Unreachable) as exc:
        return warn(
            "descriptor.public",
            f"{url} cannot be fetched from this host ({exc})",
            "peers fetch it there: check DNS, the reverse proxy and public_url",
        )
    return ok("descriptor.public", f"{url} serves a valid descriptor")


class _Unreachable(Exception):
    pass


async def _fetch(http: aiohttp.ClientSession, url: str) -> tuple[bytes, int | None]:
    """GET url; returns the body and the server's clock (Date header, ms) corrected for
    half the round trip, since the Date was stamped somewhere in between."""
    sent = time.time()
    try:
        async with http.get(
            url, timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S), allow_redirects=False
        ) as resp:
            body = await resp.content.read(64 * 1024 + 1)
            received = time.time()
            if resp.status != 200:
                raise _Unreachable(f"HTTP {resp.status}")
            date = resp.headers.get("Date")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    skew: int | None = None
    if date:
        try:
            # Date has one-second resolution: +0.5 s centres it in its second.
            remote = email.utils.parsedate_to_datetime(date).timestamp() + 0.5
            skew = int((remote - (sent + received) / 2) * 1000)
        except (TypeError, ValueError):
            skew = None
    return body, skew


async def check_peer(
    http: aiohttp.ClientSession, peer: PeerTarget, now_ms: int, ping: Pinger | None
) -> list[Finding]:
    label = f"peer.{peer.name}"
    if peer.status == "key_changed":
        return [
            warn(
                label,
                f"{peer.name} presents a new key not pinned here",
                f"confirm its fingerprint with its operator, then `peerforum peer "
                f"approve {peer.name} --fingerprint FP`",
            )
        ]
    url = peer.url + WELL_KNOWN
    try:
        data, skew_ms = await _fetch(http, url)
        desc = verify_descriptor(data, expected_name=peer.name, now_ms=now_ms)
    except _Unreachable as exc:
        return [
            fail(
                label,
                f"cannot reach {url} ({exc})",
                "check the peer's node is running and reachable from this host "
                "(firewall, DNS, TLS); ask its operator",
            )
        ]
    except ProtocolError as exc:
        return [
            fail(
                label,
                f"{url} serves a descriptor that does not verify: {exc.code} ({exc.message})",
                "ask the peer's operator to check their node",
            )
        ]
    if skew_ms is None and desc.issued > now_ms:
        skew_ms = desc.issued - now_ms  # at least this far ahead
    findings = [_clock_finding(peer.name, skew_ms)]
    unpinned = {k.key_id for k in desc.keys.current} - peer.pinned_kids
    if unpinned:
        findings.append(
            warn(
                label,
                f"{peer.name} now presents key(s) {', '.join(sorted(unpinned))} not pinned here",
                f"peerforum peer add {peer.url} and compare the fingerprint with its operator",
            )
        )
        return findings
    if ping is None:
        findings.append(
            ok(
                label,
                "reachable: descriptor fetched and verified (the federation "
                "ping is not available in this node, so this fetch is the check)",
            )
        )
        return findings
    try:
        await ping(peer.name)
    except Exception as exc:
        code = getattr(exc, "code", type(exc).__name__)
        findings.append(
            fail(
                label,
                f"descriptor fetched, but a signed node.ping failed ({code})",
                "check that the peer approved this node and its inbox is reachable",
            )
        )
    else:
        findings.append(ok(label, "reachable: descriptor verified and a signed node.ping answered"))
    return findings


def _clock_finding(name: str, skew_ms: int | None) -> Finding:
    label = f"clock.{name}"
    if skew_ms is None:
        return ok(label, "skew not measurable (no Date header); descriptor not from the future")
    shown = f"{abs(skew_ms) / 1000:.1f} s {'ahead of' if skew_ms > 0 else 'behind'} this node"
    if abs(skew_ms) > SKEW_WINDOW_MS:
        return fail(label, f"{name}'s clock is {shown}: its envelopes are refused", _NTP_FIX)
    if abs(skew_ms) > SKEW_OK_MS:
        return warn(label, f"{name}'s clock is {shown} (refused beyond 300 s)", _NTP_FIX)
    return ok(label, f"{name}'s clock is within {SKEW_OK_MS // 1000} s ({shown})")


def check_outbox(path: Path) -> list[Finding]:
    try:
        conn = open_readonly(path)
    except StorageError:
        return []  # check_database already said what is wrong with the file
    try:
        health = delivery_health(conn)
    finally:
        conn.close()
    findings: list[Finding] = []
    for d in health:
        label = f"outbox.{d.peer}"
        if d.breaker != "closed":
            findings.append(
                warn(
                    label,
                    f"delivery to {d.peer} paused: breaker {d.breaker} "
                    f"after {d.failures} failures ({d.last_error or 'no error'}), "
                    f"{d.queued} waiting",
                    f"make {d.peer} reachable; delivery resumes by itself and catches up",
                )
            )
        if d.dead:
            findings.append(
                warn(
                    label,
                    f"{d.dead} dead letter(s) for {d.peer}",
                    "they were refused for good; see the node log for the "
                    "codes and tell the peer's operator",
                )
            )
        if d.queued > OUTBOX_DEEP and d.breaker == "closed":
            findings.append(
                warn(
                    label,
                    f"{d.queued} envelopes waiting for {d.peer}",
                    f"check {d.peer} accepts deliveries (node log)",
                )
            )
    depth = sum(d.queued for d in health)
    dead = sum(d.dead for d in health)
    if not findings:
        findings.append(ok("outbox", f"{depth} waiting, {dead} dead, all breakers closed"))
    return findings


async def check_node(
    data_db: Path,
    key_path: Path,
    config: NodeConfig,
    http: aiohttp.ClientSession,
    now_ms: int,
    *,
    descriptor: bytes | None = None,
    serving: bool = False,
    ping: Pinger | None = None,
) -> list[Finding]:
    """Database, descriptor, every federating peer (reachability and clock), outbox."""
    findings = await asyncio.to_thread(check_database, data_db)
    findings.append(check_descriptor(config, descriptor, key_path, now_ms))
    if serving:
        findings.append(await check_public_descriptor(http, config, now_ms))
    try:
        conn = open_readonly(data_db)
        try:
            peers = federating_peers(conn)
        finally:
            conn.close()
    except StorageError:
        peers = []
    if not peers:
        findings.append(ok("peers", "no approved peers yet"))
    results = await asyncio.gather(*(check_peer(http, p, now_ms, ping) for p in peers))
    for r in results:
        findings += r
    findings += await asyncio.to_thread(check_outbox, data_db)
    return findings
