"""Operator commands for one node: init, serve, up, status, key rotate."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.config import NodeConfig, parse_listen
from node.datadir import DataDir, NodeLock, init_data_dir, is_serving
from node.forums.report import frozen_views
from node.identity import NodeIdentity, rotate_node_key
from node.keystore import load_keys, permission_warning
from node.logs import configure_logging
from node.storage import Storage
from protocol.errors import ProtocolError
from protocol.identity import check_node_name

from .admin_client import AdminClient
from .output import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    Output,
    data_option,
    fail,
    json_option,
    run_command,
)

if TYPE_CHECKING:
    from node.context import NodeContext

DEFAULT_LISTEN = "127.0.0.1:8700"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def name_from_listen(listen: str) -> str:
    """A development node is named by the address it listens on (``127.0.0.1:8700``)."""
    host, port = parse_listen(listen)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        fail(
            f"cannot name a node after {listen}: pass --name with the host peers reach it at",
            EXIT_USAGE,
            "cli.usage",
        )
    shown = f"[{host}]" if ip is not None and ip.version == 6 else host.lower()
    return f"{shown}:{port}"


def _check_listen(listen: str) -> None:
    try:
        parse_listen(listen)
    except ValueError as exc:
        fail(f"--listen {listen}: {exc}", EXIT_USAGE, "cli.usage")


def _init(data: DataDir, name: str, listen: str) -> NodeConfig:
    try:
        check_node_name(name)
    except ProtocolError:
        fail(f"--name {name}: must be a lower-case host name, optionally with :port", EXIT_USAGE)
    init_data_dir(data.root, name, listen, os.urandom, _now_ms())
    return data.load_config()


def _summary(data: DataDir, config: NodeConfig) -> dict[str, Any]:
    keys = load_keys(data.key)
    return {
        "data": str(data.root.resolve()),
        "name": config.name,
        "listen": config.listen,
        "url": config.base_url,
        "kid": keys.kid,
        "fingerprint": keys.fingerprint,
    }


@click.command()
@data_option
@click.option("--name", required=True, help="Node name: its host, e.g. acme.example.")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="HOST:PORT to bind.")
@json_option
@run_command
def init(data_dir: str, name: str, listen: str, out: Output) -> None:
    """Create a new node's data directory (keys, admin token, config)."""
    _check_listen(listen)
    data = DataDir(Path(data_dir))
    config = _init(data, name, listen)
    info = _summary(data, config)
    out.result(info, f"initialized node {config.name} in {info['data']}")
    out.say(f"fingerprint: {info['fingerprint']}")
    out.say(f"next: peerforum serve --data {data_dir}")


def banner_text(name: str, fingerprint: str, config: NodeConfig, root: Path) -> str:
    """What an operator needs once the node is up: who it is, where to look, what next."""
    base, d = config.base_url, root
    return (
        f"PeerForum node {name} is up\n"
        f"  fingerprint  {fingerprint}   (peers compare this before approving you)\n"
        f"  listening    {config.listen}" + ("  (TLS)" if config.tls_enabled else "") + "\n"
        f"  web client   {base}/\n"
        f"  health       {base}/healthz\n"
        f"  data         {root.resolve()}\n"
        f"next steps (in another terminal):\n"
        f"  peerforum member add alice --org Acme --data {d}     # a one-time code for alice\n"
        f"  peerforum peer add https://other-node.example --data {d}\n"
        f"  peerforum doctor --data {d}\n"
        f"stop with Ctrl-C"
    )


def _serve(data: DataDir, out: Output, banner: bool) -> None:
    from node.server import serve  # the server stack (aiohttp) loads only when serving

    config = data.load_config()
    configure_logging(config.log.level)
    warning = permission_warning(data.key)
    if warning:
        out.say(f"warning: {warning}")

    def ready(ctx: NodeContext) -> None:
        if banner:
            out.say(banner_text(ctx.identity.name, ctx.identity.fingerprint, ctx.config,
                                data.root))  # fmt: skip

    asyncio.run(serve(data, on_ready=ready))


@click.command("serve")
@data_option
@run_command
def serve_cmd(data_dir: str, out: Output) -> None:
    """Run the node until SIGTERM or Ctrl-C."""
    _serve(DataDir(Path(data_dir)), out, banner=True)


def _port_free(listen: str) -> bool:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _next_listen(listen: str) -> str:
    host, port = parse_listen(listen)
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port + 1}"


@click.command()
@data_option
@click.option("--listen", default=None, help=f"HOST:PORT to bind (new nodes: {DEFAULT_LISTEN}).")
@click.option("--name", default=None, help="Node name for a new node (default: from --listen).")
@run_command
def up(data_dir: str, listen: str | None, name: str | None, out: Output) -> None:
    """Initialize the data directory if needed, then serve. Safe to run again.

    A new node is named after its listen address (127.0.0.1:8700 unless --listen), which
    is right for trying PeerForum on one machine; a node other organizations reach needs
    --name (its DNS name) or `peerforum init`. A second run reuses the keys, config and
    database; if the node is already running, says so and exits 0."""
    data = DataDir(Path(data_dir))
    if data.exists():
        config = data.load_config()
        if listen is not None and listen != config.listen:
            fail(
                f"{data.config} says listen = {config.listen!r}, not {listen!r}: "
                f"edit config.toml or omit --listen",
                EXIT_CONFIG,
                "cli.config",
            )
        if name is not None and name != config.name:
            fail(f"{data.root} holds node {config.name}, not {name}", EXIT_CONFIG, "cli.config")
        if is_serving(data):
            info = AdminClient(data, config).call("GET", "/admin/status")
            out.say(f"node {config.name} is already running from {data.root}")
            out.say(banner_text(info["name"], info["fingerprint"], config, data.root)
                    .replace(" is up", " is up (already)").replace(" (in another terminal)", "")
                    .rsplit("\nstop with", 1)[0])
            return
        out.say(f"using existing node {config.name} in {data.root}")
    else:
        listen = listen or DEFAULT_LISTEN
        _check_listen(listen)
        if not _port_free(listen):  # before anything is written: the next try is clean
            fail(f"port {parse_listen(listen)[1]} is in use: pass --listen {_next_listen(listen)}",
                 EXIT_FAILURE, "cli.port_in_use")  # fmt: skip
        config = _init(data, name or name_from_listen(listen), listen)
        out.say(f"initialized node {config.name} in {data.root}")
    _serve(data, out, banner=True)


async def _offline_status(data: DataDir, config: NodeConfig) -> dict[str, Any]:
    storage = await Storage.open(data.db, config.storage, _now_ms)
    try:
        return {
            "peers": await storage.count_peers(),
            "key_changed": [p.name for p in await storage.list_peers()
                            if p.status == "key_changed"],  # fmt: skip
            "forums": await storage.count_forums(),
            "outbox_depth": await storage.outbox_depth(),
            "schema": await storage.schema_version(),
            "frozen": await frozen_views(storage),
        }
    finally:
        await storage.close()


def _status_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    peers = info["peers"]
    rows = [
        ("node", f"{info['name']} ({'running' if info['running'] else 'stopped'})"),
        ("fingerprint", info["fingerprint"]),
        ("listen", info["listen"]),
        ("web client", info["web"]),
        ("health", info["health"]),
        ("peers", ", ".join(f"{n} {s}" for s, n in peers.items() if n) or "none yet"),
        ("forums", str(info["forums"])),
        ("outbox", f"{info['outbox_depth']} waiting"),
        ("schema", str(info["schema"])),
    ]
    for name in info["key_changed"]:  # traffic from it is refused until someone decides
        rows.append(("KEY CHANGED", f"{name} presents a new key without a rotation statement: "
                                    f"check it, then `peerforum peer approve {name}`"))  # fmt: skip
    for f in info["frozen"]:  # a hub was caught signing two histories
        rows.append(("FROZEN", f"{f['forum']}: hub {f['hub']} equivocated "
                               "(peerforum forums list)"))  # fmt: skip
    return rows


@click.command()
@data_option
@json_option
@run_command
def status(data_dir: str, out: Output) -> None:
    """Show the node's identity, URLs, peers, forums, outbox, and what needs attention.

    \b
    --json fields (stable): name, fingerprint, kid, listen, url, web, health, running,
    peers {pending, approved, blocked, key_changed: counts}, key_changed [peer names],
    forums (count), outbox_depth, frozen [{forum, hub, ...}], schema."""
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if is_serving(data):
        admin = AdminClient(data, config)
        info = admin.call("GET", "/admin/status")
        info["key_changed"] = [p["name"] for p in admin.call("GET", "/admin/peers")["peers"]
                               if p["status"] == "key_changed"]  # fmt: skip
    else:
        keys = load_keys(data.key)
        info = {
            "name": config.name,
            "fingerprint": keys.fingerprint,
            "kid": keys.kid,
            "listen": config.listen,
            "url": config.base_url,
            "running": False,
            **asyncio.run(_offline_status(data, config)),
        }
    info["web"], info["health"] = info["url"] + "/", info["url"] + "/healthz"
    out.result(info)
    if not out.json_mode:
        from .ops_render import show_report  # rich: not loaded by serve, which never shows one

        show_report(out, _status_rows(info))
        if not info["running"]:
            out.say(f"not running: peerforum serve --data {data_dir}")


async def _offline_rotate(data: DataDir, config: NodeConfig) -> dict[str, Any]:
    identity = NodeIdentity(config.name, config.base_url, load_keys(data.key))
    storage = await Storage.open(data.db, config.storage, _now_ms)
    try:
        statement = await rotate_node_key(data, storage, identity, os.urandom, _now_ms())
    finally:
        await storage.close()
    return {
        "kid": statement.new_key.key_id,
        "fingerprint": identity.fingerprint,
        "old_kid": statement.old_key.key_id,
        "ts": statement.ts,
    }


@click.group()
def key() -> None:
    """The node's signing key."""


@key.command()
@data_option
@json_option
@run_command
def rotate(data_dir: str, out: Output) -> None:
    """Replace the node key; the old one is kept (expired now) and a rotation
    statement signed by it is recorded for peers."""
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if is_serving(data):
        info = AdminClient(data, config).call("POST", "/admin/key/rotate")
    else:
        lock = NodeLock(data)
        lock.acquire()  # keep a node from starting with the key half-rotated
        try:
            info = asyncio.run(_offline_rotate(data, config))
        finally:
            lock.release()
    out.result(info, f"new key {info['kid']}\nfingerprint {info['fingerprint']}")
    out.say(f"old key {info['old_kid']} expired; peers will be sent the rotation statement")

