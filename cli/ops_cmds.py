"""Operator health commands: ``config check``, ``db status``, ``db migrate``, ``doctor``.

Each works whether the node runs or not. Running, the database is the node's: status
and migration go through its admin API (the node stays the only process that changes
it); stopped, the CLI holds the data dir's serve lock while it changes anything, so a
node cannot start half-way through.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from node.config import NodeConfig
from node.config_check import Finding, check_config, check_permissions, fail, has_failure, warn
from node.datadir import DataDir, NodeLock, is_serving
from node.storage.maintenance import apply_migrations, db_status

from .admin_client import AdminClient
from .ops_render import counts, findings_json, show_findings, show_report
from .output import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    CliFailure,
    Output,
    data_option,
    json_option,
    run_command,
)
from .output import (
    fail as cli_fail,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def node_dir(data_dir: str) -> tuple[DataDir, NodeConfig]:
    """The data dir and its config; exit 3 when there is no node there."""
    data = DataDir(Path(data_dir))
    if not data.exists():
        cli_fail(
            f"no node in {data.root} (no config.toml): pass --data DIR or set "
            "$PEERFORUM_DATA, or create one with `peerforum init`",
            EXIT_CONFIG,
            "cli.data_dir",
        )
    return data, data.load_config()


# ---------------------------------------------------------------------------- config


@click.group("config")
def config_group() -> None:
    """The node's config.toml."""


@config_group.command("check")
@data_option
@json_option
@run_command
def config_check(data_dir: str, out: Output) -> None:
    """Validate config.toml: every problem, each with its key and the fix (exit 3 if any)."""
    data = DataDir(Path(data_dir))
    findings, _ = check_config(data, now_ms())
    bad = has_failure(findings)
    out.result({"ok": not bad, "path": str(data.config), "findings": findings_json(findings)})
    show_findings(out, findings)
    if bad:
        sys.exit(EXIT_CONFIG)


# ---------------------------------------------------------------------------- db


@click.group("db")
def db_group() -> None:
    """The node's SQLite database."""


@db_group.command("status")
@data_option
@json_option
@run_command
def db_status_cmd(data_dir: str, out: Output) -> None:
    """Schema version, migrations applied and pending, integrity, size (exit 1 if broken)."""
    data, config = node_dir(data_dir)
    if is_serving(data):
        info = AdminClient(data, config).call("GET", "/admin/db")
    else:
        info = {**db_status(data.db).to_json(), "serving": False}
    out.result(info)
    pending = ", ".join(f"{p['version']:04d}_{p['name']}" for p in info["pending"]) or "none"
    integrity = info["integrity"]
    integrity = integrity if isinstance(integrity, str) else "; ".join(integrity)
    show_report(
        out,
        [
            ("database", info["path"] + ("" if info["exists"] else " (not created yet)")),
            ("node", "serving" if info["serving"] else "stopped"),
            ("schema", f"{info['schema_version']} (this PeerForum knows {info['latest_version']})"),
            ("applied", len(info["applied"])),
            ("pending", pending),
            ("integrity", integrity),
            (
                "size",
                f"{info['size_bytes']} bytes ({info['page_count']} pages, "
                f"{info['freelist_count']} free)",
            ),
            ("wal", f"{info['wal_bytes']} bytes"),
        ],
    )
    # The result object is already out: failures here are told on stderr and in the
    # exit code, so --json still prints exactly one object.
    if info["newer"]:
        out.say(
            f"error: the database has schema {info['schema_version']}, newer than this "
            f"PeerForum ({info['latest_version']}): upgrade PeerForum"
        )
        sys.exit(EXIT_FAILURE)
    if info["exists"] and info["integrity"] != "ok":
        out.say("error: integrity check failed: stop the node and restore the latest backup")
        sys.exit(EXIT_FAILURE)
    if info["pending"]:
        out.say(f"run `peerforum db migrate --data {data_dir}` to apply pending migrations")


@db_group.command("migrate")
@data_option
@json_option
@run_command
def db_migrate_cmd(data_dir: str, out: Output) -> None:
    """Apply pending migrations (through the node when it is serving)."""
    data, config = node_dir(data_dir)
    if is_serving(data):
        info = AdminClient(data, config).call("POST", "/admin/db/migrate")
        info["serving"] = True
    else:
        lock = NodeLock(data)
        lock.acquire()  # no node may start on a half-migrated database
        try:
            applied = apply_migrations(data.db, now_ms(), config.storage.busy_timeout_ms)
        finally:
            lock.release()
        version = db_status(data.db, check_integrity=False).schema_version
        info = {"applied": applied, "schema_version": version, "serving": False}
    done = ", ".join(f"{v:04d}" for v in info["applied"])
    human = (
        f"applied migrations {done}; schema is now {info['schema_version']}"
        if info["applied"]
        else f"nothing to do: schema {info['schema_version']} is current"
    )
    out.result(info, human)


# ---------------------------------------------------------------------------- doctor


def _from_json(items: list[dict[str, Any]]) -> list[Finding]:
    return [Finding(i["check"], i["status"], i["message"], i.get("fix", "")) for i in items]


async def _offline_node_checks(data: DataDir, config: NodeConfig) -> list[Finding]:
    import aiohttp

    from node.app import USER_AGENT
    from node.doctor import check_node

    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
        return await check_node(data.db, data.key, config, http, now_ms())


def diagnose(data: DataDir) -> tuple[list[Finding], bool]:
    """All findings for the data dir, and whether a node is serving it."""
    from node.doctor import check_database

    findings, config = check_config(data, now_ms())
    findings += check_permissions(data)
    serving = is_serving(data)
    if config is None:
        findings += check_database(data.db)
        findings.append(
            warn(
                "peers",
                "descriptor, peer and outbox checks skipped: config.toml unusable",
                "fix config.toml, then run doctor again",
            )
        )
        return findings, serving
    if serving:
        try:
            node = AdminClient(data, config).call("GET", "/admin/doctor")
            findings.append(Finding("node", "ok", f"serving on {config.listen}"))
            return findings + _from_json(node["findings"]), serving
        except CliFailure as exc:
            findings.append(
                fail(
                    "node",
                    f"a node holds {data.lock} but its admin API does not answer ({exc.message})",
                    "check the node's log; restart it if it is hung",
                )
            )
    else:
        findings.append(
            warn(
                "node", "not running: peers cannot reach it", f"peerforum serve --data {data.root}"
            )
        )
    return findings + asyncio.run(_offline_node_checks(data, config)), serving


@click.command()
@data_option
@json_option
@run_command
def doctor(data_dir: str, out: Output) -> None:
    """Check config, database, key permissions, descriptor, peers, clocks and outbox.

    Exit 0 when nothing fails (warnings allowed), 1 otherwise."""
    data = DataDir(Path(data_dir))
    findings, serving = diagnose(data)
    bad = has_failure(findings)
    out.result(
        {
            "ok": not bad,
            "data": str(data.root),
            "serving": serving,
            "counts": counts(findings),
            "findings": findings_json(findings),
        }
    )
    show_findings(out, findings)
    if bad:
        sys.exit(EXIT_FAILURE)
