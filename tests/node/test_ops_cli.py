"""The operations commands through click's CliRunner: exit codes and JSON shapes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import root
from node.datadir import DataDir, init_data_dir

from .conftest import NAME, NOW_MS, fixed_rng

FINDING_KEYS = {"check", "status", "message", "fix"}


def run(*args: str) -> Result:
    return CliRunner().invoke(root, list(args), catch_exceptions=False)


def out(result: Result) -> Any:
    return json.loads(result.stdout)  # exactly one JSON object, or this raises


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return init_data_dir(tmp_path / "node", NAME, NAME, fixed_rng(), NOW_MS)


def break_config(data: DataDir) -> None:
    data.config.write_text("bogus = 1\n" + data.config.read_text())


@pytest.mark.parametrize(
    "args",
    [
        ["backup"],  # FILE missing
        ["restore"],
        ["restore", "/nonexistent/backup.pfbak"],
        ["db", "status", "--bogus"],
        ["db", "vacuum"],
        ["doctor", "extra"],
        ["config", "check", "--json", "--json=x"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


def test_config_check(data: DataDir) -> None:
    ok = run("config", "check", "--data", str(data.root), "--json")
    assert ok.exit_code == 0
    body = out(ok)
    assert body["ok"] is True and {k for f in body["findings"] for k in f} == FINDING_KEYS
    break_config(data)
    bad = run("config", "check", "--data", str(data.root), "--json")
    assert bad.exit_code == 3
    assert [f["check"] for f in out(bad)["findings"]] == ["config.bogus"]
    plain = run("config", "check", "--data", str(data.root))
    assert plain.exit_code == 3 and "FAIL  config.bogus" in plain.stdout
    assert "fix: " in plain.stdout


@pytest.mark.parametrize("command", [["db", "status"], ["db", "migrate"], ["backup", "b.pfbak"]])
def test_bad_config_or_no_node_exits_3(data: DataDir, tmp_path: Path, command: list[str]) -> None:
    missing = run(*command, "--data", str(tmp_path / "none"), "--json")
    assert missing.exit_code == 3
    assert out(missing)["error"] == "cli.data_dir" and "peerforum init" in out(missing)["message"]
    break_config(data)
    bad = run(*command, "--data", str(data.root), "--json")
    assert bad.exit_code == 3
    assert out(bad) == {"error": "cli.config", "message": out(bad)["message"]}
    assert "bogus" in out(bad)["message"]


def test_db_status_and_migrate(data: DataDir) -> None:
    before = run("db", "status", "--data", str(data.root), "--json")
    assert before.exit_code == 0
    info = out(before)
    assert info["exists"] is False and info["pending"] and info["serving"] is False
    migrated = run("db", "migrate", "--data", str(data.root), "--json")
    assert migrated.exit_code == 0
    applied = out(migrated)
    assert applied["applied"] == [p["version"] for p in info["pending"]]
    after = out(run("db", "status", "--data", str(data.root), "--json"))
    assert after["integrity"] == "ok" and after["pending"] == []
    assert after["schema_version"] == after["latest_version"] == applied["schema_version"]
    assert set(after) >= {"size_bytes", "wal_bytes", "applied", "newer", "page_count"}
    again = run("db", "migrate", "--data", str(data.root))
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_db_status_refuses_a_newer_schema(data: DataDir) -> None:
    import sqlite3

    run("db", "migrate", "--data", str(data.root))
    conn = sqlite3.connect(data.db)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    status = run("db", "status", "--data", str(data.root), "--json")
    assert status.exit_code == 1 and out(status)["newer"] is True
    assert "upgrade PeerForum" in status.stderr
    migrate = run("db", "migrate", "--data", str(data.root), "--json")
    assert migrate.exit_code == 1 and "upgrade PeerForum" in out(migrate)["message"]


def test_backup_and_restore(data: DataDir, tmp_path: Path) -> None:
    run("db", "migrate", "--data", str(data.root))
    dest = tmp_path / "node.pfbak"
    made = run("backup", str(dest), "--data", str(data.root), "--json")
    assert made.exit_code == 0, made.stderr
    body = out(made)
    assert body["online"] is False and body["path"] == str(dest)
    assert set(body["manifest"]["parts"]) == {"node.db", "config.toml", "node.key", "admin.token"}
    assert "signing key" in made.stderr
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    again = run("backup", str(dest), "--data", str(data.root), "--json")
    assert again.exit_code == 1 and "--force" in out(again)["message"]
    assert run("backup", str(dest), "--data", str(data.root), "--force").exit_code == 0

    refused = run("restore", str(dest), "--data", str(data.root), "--json")
    assert refused.exit_code == 3 and "not empty" in out(refused)["message"]
    target = tmp_path / "restored"
    restored = run("restore", str(dest), "--data", str(target), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert out(restored)["manifest"]["node"]["name"] == NAME
    assert (target / "node.key").read_bytes() == data.key.read_bytes()

    (tmp_path / "junk").write_text("junk")
    junk = run("restore", str(tmp_path / "junk"), "--data", str(tmp_path / "r2"), "--json")
    assert junk.exit_code == 1 and out(junk)["error"] == "cli.backup"


def test_doctor(data: DataDir) -> None:
    run("db", "migrate", "--data", str(data.root))
    healthy = run("doctor", "--data", str(data.root), "--json")
    assert healthy.exit_code == 0, healthy.stdout
    body = out(healthy)
    assert set(body) == {"ok", "data", "serving", "counts", "findings"}
    assert body["ok"] is True and body["serving"] is False and body["counts"]["fail"] == 0
    assert all(set(f) == FINDING_KEYS for f in body["findings"])
    data.key.chmod(0o644)
    sick = run("doctor", "--data", str(data.root), "--json")
    assert sick.exit_code == 1
    failed = [f for f in out(sick)["findings"] if f["status"] == "fail"]
    assert [f["check"] for f in failed] == ["permissions.node_key"]
    assert failed[0]["fix"] == f"chmod 600 {data.key}"
    break_config(data)
    broken = run("doctor", "--data", str(data.root))
    assert broken.exit_code == 1 and "config.bogus" in broken.stdout
