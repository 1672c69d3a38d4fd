"""Operator commands for one node: init, serve, up, status, key rotate."""

from __future__ import annotations

import asyncio
import ipaddress
import os
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
from .output import EXIT_CONFIG, EXIT_USAGE, Output, data_option, fail, json_option, run_command

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


def _serve(data: DataDir, out: Output, banner: bool) -> None:
    from node.server import serve  # the server stack (aiohttp) loads only when serving

    config = data.load_config()
    configure_logging(config.log.level)
    warning = permission_warning(data.key)
    if warning:
        out.say(f"warning: {warning}")

    def ready(ctx: NodeContext) -> None:
        if not banner:
            return
        out.say(
            f"PeerForum node {ctx.identity.name} is up\n"
            f"  fingerprint  {ctx.identity.fingerprint}\n"
            f"  listening    {ctx.config.listen}\n"
            f"  descriptor   {ctx.config.base_url}/.well-known/peerforum\n"
            f"  health       {ctx.config.base_url}/healthz\n"
            f"  data         {data.root.resolve()}\n"
            f"next steps (in another terminal):\n"
            f"  peerforum status --data {data.root}\n"
            f"  peerforum peer add https://other-node.example --data {data.root}\n"
            f"stop with Ctrl-C"
        )

    asyncio.run(serve(data, on_ready=ready))


@click.command("serve")
@data_option
@run_command
def serve_cmd(data_dir: str, out: Output) -> None:
    """Run the node until SIGTERM or Ctrl-C."""
    _serve(DataDir(Path(data_dir)), out, banner=True)


@click.command()
@data_option
@click.option("--listen", default=None, help=f"HOST:PORT to bind (new nodes: {DEFAULT_LISTEN}).")
@click.option("--name", default=None, help="Node name for a new node (default: from --listen).")
@run_command
def up(data_dir: str, listen: str | None, name: str | None, out: Output) -> None:
    """Initialize the data directory if needed, then serve. Safe to run again."""
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
        out.say(f"using existing node {config.name} in {data.root}")
    else:
        listen = listen or DEFAULT_LISTEN
        _check_listen(listen)
        config = _init(data, name or name_from_listen(listen), listen)
        out.say(f"initialized node {config.name} in {data.root}")
    _serve(data, out, banner=True)


async def _offline_status(data: DataDir, config: NodeConfig) -> dict[str, Any]:
    storage = await Storage.open(data.db, config.storage, _now_ms)
    try:
        return {
            "peers": await storage.count_peers(),
            "forums": await storage.count_forums(),
            "outbox_depth": await storage.outbox_depth(),
            "schema": await storage.schema_version(),
            "frozen": await frozen_views(storage),
        }
    finally:
        await storage.close()


@click.command()
@data_option
@json_option
@run_command
def status(data_dir: str, out: Output) -> None:
    """Show the node's identity, peers, forums and outbox depth."""
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if is_serving(data):
        info = AdminClient(data, config).call("GET", "/admin/status")
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
    peers = info["peers"]
    human = (
        f"node         {info['name']} ({'running' if info['running'] else 'stopped'})\n"
        f"fingerprint  {info['fingerprint']}\n"
        f"listen       {info['listen']}   url {info['url']}\n"
        f"peers        " + ", ".join(f"{n} {s}" for s, n in peers.items()) + "\n"
        f"forums       {info['forums']}\n"
        f"outbox       {info['outbox_depth']} waiting"
    )
    for f in info.get("frozen", []):  # a hub was caught signing two histories
        human += f"\nFROZEN       {f['forum']}: hub {f['hub']} equivocated (peerforum forums list)"
    out.result(info, human)


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

