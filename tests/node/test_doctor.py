"""Doctor checks one by one: config findings, permissions, database, peers, clock, outbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import pytest

from node.config import parse_config
from node.config_check import Finding, check_config, check_permissions, has_failure
from node.datadir import DataDir, init_data_dir
from node.doctor import (
    _clock_finding,
    check_database,
    check_descriptor,
    check_node,
    check_outbox,
    check_peer,
)
from node.identity import NodeIdentity
from node.keystore import load_keys
from node.storage.maintenance import PeerTarget, apply_migrations

from ..integration.harness import free_port
from .conftest import NAME, NOW_MS, fixed_rng


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    d = init_data_dir(tmp_path / "node", NAME, NAME, fixed_rng(), NOW_MS)
    apply_migrations(d.db, NOW_MS)
    return d


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def set_config(data: DataDir, text: str) -> None:
    data.config.write_text(text)


def test_valid_config_is_ok(data: DataDir) -> None:
    findings, config = check_config(data, NOW_MS)
    assert config is not None and config.name == NAME
    assert [f.status for f in findings] == ["ok"]


def test_config_lists_every_problem_with_its_key(data: DataDir) -> None:
    set_config(
        data,
        'name = "127.0.0.1:8700"\nlisten = "nowhere"\nlistn = "x"\n'
        '[limits]\npeer_rps = "fast"\nip_rps = -1\n[storage]\nbusy_timeout_ms = true\n',
    )
    findings, config = check_config(data, NOW_MS)
    assert config is None
    found = by_check(findings)
    assert set(found) == {
        "config.listen",
        "config.listn",
        "config.limits.peer_rps",
        "config.limits.ip_rps",
        "config.storage.busy_timeout_ms",
    }
    assert all(f.status == "fail" and f.fix for f in findings)
    assert "did you mean listen" in found["config.listn"].fix
    assert "integer" in found["config.limits.peer_rps"].message


def test_config_missing_and_unparsable(tmp_path: Path, data: DataDir) -> None:
    findings, _ = check_config(DataDir(tmp_path / "nothing"), NOW_MS)
    assert findings[0].status == "fail" and "peerforum init" in findings[0].fix
    set_config(data, "name = [unclosed\n")
    findings, _ = check_config(data, NOW_MS)
    assert findings[0].status == "fail" and "not valid TOML" in findings[0].message


def test_config_tls_files_must_exist(data: DataDir) -> None:
    set_config(data, f'name = "{NAME}"\nlisten = "{NAME}"\n[tls]\ncert = "c.pem"\nkey = "k.pem"\n')
    found = by_check(check_config(data, NOW_MS)[0])
    assert found["config.tls.cert"].status == "fail"
    assert "does not exist" in found["config.tls.key"].message
    (data.root / "c.pem").write_text("garbage")
    (data.root / "k.pem").write_text("garbage")
    found = by_check(check_config(data, NOW_MS)[0])
    assert found["config.tls"].status == "fail"


def test_public_url_must_suit_peers(data: DataDir) -> None:
    set_config(
        data,
        'name = "acme.example"\nlisten = "0.0.0.0:8700"\npublic_url = "http://other.example"\n',
    )
    found = [f for f in check_config(data, NOW_MS)[0] if f.check == "config.public_url"]
    messages = " ".join(f.message for f in found)
    assert all(f.status == "fail" for f in found)
    assert "plain http" in messages and "'other.example'" in messages
    set_config(data, 'name = "acme.example"\nlisten = "127.0.0.1:8700"\n')
    found_w = by_check(check_config(data, NOW_MS)[0])
    assert found_w["config.public_url"].status == "warn"
    assert found_w["config.listen"].status == "warn"


def test_key_file_readable_by_others_fails_with_the_fix(data: DataDir) -> None:
    assert not has_failure(check_permissions(data))
    data.key.chmod(0o644)
    found = by_check(check_permissions(data))
    assert found["permissions.node_key"].status == "fail"
    assert found["permissions.node_key"].fix == f"chmod 600 {data.key}"
    assert found["permissions.admin_token"].status == "ok"


def test_database_states(data: DataDir, tmp_path: Path) -> None:
    assert [f.status for f in check_database(data.db)] == ["ok", "ok"]
    assert check_database(tmp_path / "none.db")[0].status == "warn"
    old = tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE t (x)").connection.commit()
    pending = by_check(check_database(old))["database.schema"]
    assert pending.status == "warn" and "peerforum db migrate" in pending.fix
    conn = sqlite3.connect(data.db)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    newer = by_check(check_database(data.db))["database.schema"]
    assert newer.status == "fail" and "upgrade PeerForum" in newer.fix
    (tmp_path / "junk.db").write_bytes(b"garbage" * 1000)
    assert check_database(tmp_path / "junk.db")[0].status == "fail"


def test_descriptor_checked(data: DataDir) -> None:
    config = parse_config(data.config.read_text())
    assert check_descriptor(config, None, data.key, NOW_MS).status == "ok"
    _, signed = NodeIdentity(NAME, config.base_url, load_keys(data.key)).descriptor(NOW_MS)
    later = NOW_MS + 6 * 24 * 3600 * 1000 + 3600 * 1000
    assert check_descriptor(config, signed, data.key, later).status == "warn"
    assert check_descriptor(config, signed, data.key, NOW_MS + 8 * 24 * 3600_000).status == "fail"


def test_outbox_health(data: DataDir) -> None:
    assert [f.status for f in check_outbox(data.db)] == ["ok"]
    conn = sqlite3.connect(data.db)
    conn.executemany(
        "INSERT INTO outbox (destination, kind, envelope, state, next_attempt_ms, created_ms)"
        " VALUES (?, 'envelope', x'00', ?, 0, 0)",
        [("b.example", "queued"), ("b.example", "dead"), ("c.example", "queued")],
    )
    conn.execute(
        "INSERT INTO peer_delivery (peer, breaker, failures, last_error, updated_ms)"
        " VALUES ('b.example', 'open', 7, 'api.unavailable', 0)"
    )
    conn.commit()
    conn.close()
    found = check_outbox(data.db)
    assert [(f.check, f.status) for f in found] == [("outbox.b.example", "warn")] * 2
    assert "breaker open after 7 failures" in found[0].message
    assert "1 dead letter" in found[1].message


def test_clock_thresholds() -> None:
    assert _clock_finding("b", 2_000).status == "ok"
    assert _clock_finding("b", -45_000).status == "warn"
    assert "behind" in _clock_finding("b", -45_000).message
    assert _clock_finding("b", 400_000).status == "fail"
    assert _clock_finding("b", None).status == "ok"


async def test_unreachable_peer_fails(data: DataDir) -> None:
    conn = sqlite3.connect(data.db)
    port = free_port()  # nothing listens there
    conn.execute(
        "INSERT INTO peers (name, url, status, added_ms, updated_ms)"
        " VALUES (?, ?, 'approved', 0, 0)",
        (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"),
    )
    conn.commit()
    conn.close()
    config = parse_config(data.config.read_text())
    async with aiohttp.ClientSession() as http:
        findings = await check_node(data.db, data.key, config, http, NOW_MS)
    peer = by_check(findings)[f"peer.127.0.0.1:{port}"]
    assert peer.status == "fail" and "cannot reach" in peer.message and peer.fix


async def test_key_changed_peer_is_a_warning() -> None:
    target = PeerTarget("b.example", "https://b.example", "key_changed", frozenset())
    found = await check_peer(None, target, NOW_MS, None)  # type: ignore[arg-type]
    assert found[0].status == "warn" and "peerforum peer approve b.example" in found[0].fix
