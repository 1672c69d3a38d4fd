"""Typed node configuration, read from ``config.toml`` in the data directory.

The file maps one-to-one onto a tree of frozen dataclasses: every table is a dataclass,
every key a field. Parsing is generic over that tree so adding a setting is adding a
field (with a default and, if needed, a check); unknown keys are refused so a typo never
silently falls back to a default. Every error names the dotted key at fault.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ProtocolError
from protocol.identity import check_node_name

Check = Callable[[Any], str | None]  # returns a complaint, or None when the value is fine


class ConfigError(Exception):
    """The configuration is wrong; the message names the key and says what is expected."""


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be a positive integer"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be zero or a positive integer"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _node_name(value: Any) -> str | None:
    try:
        check_node_name(value)
    except ProtocolError:
        return "must be a lower-case host name, optionally with :port (e.g. acme.example)"
    return None


def _listen(value: Any) -> str | None:
    try:
        parse_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


def _url(value: Any) -> str | None:
    if value is None:
        return None
    if not (value.startswith("https://") or value.startswith("http://")) or value.endswith("/"):
        return "must be an http(s) URL without a trailing slash (e.g. https://acme.example)"
    return None


def _check(fn: Check) -> dict[str, Check]:
    return {"check": fn}


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8700`` for IPv6) into host and port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError("must be HOST:PORT (e.g. 127.0.0.1:8700)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TlsConfig:
    """Both set: ``serve`` terminates TLS itself. Paths are relative to the data dir."""

    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class LimitsConfig:
    # A federation batch is at most 1 MiB of envelopes (protocol Limits); the framing
    # around them is small, so 1.125 MiB lets every legal batch in and nothing much bigger.
    max_body_bytes: int = field(default=1152 * 1024, metadata=_check(_positive))
    peer_rps: int = field(default=50, metadata=_check(_positive))
    peer_burst: int = field(default=200, metadata=_check(_positive))
    member_rps: int = field(default=10, metadata=_check(_positive))
    member_burst: int = field(default=50, metadata=_check(_positive))
    # Before anyone is authenticated only the address is known; generous, because in
    # development every peer shares 127.0.0.1.
    ip_rps: int = field(default=200, metadata=_check(_positive))
    ip_burst: int = field(default=1000, metadata=_check(_positive))
    # Seconds ``serve`` waits for in-flight requests after SIGTERM before closing.
    shutdown_grace_seconds: int = field(default=10, metadata=_check(_non_negative))


@dataclass(frozen=True)
class StorageConfig:
    busy_timeout_ms: int = field(default=5000, metadata=_check(_positive))
    # Upper bound on write jobs committed in one transaction (group commit).
    max_batch: int = field(default=1000, metadata=_check(_positive))
    read_connections: int = field(default=2, metadata=_check(_positive))


@dataclass(frozen=True)
class LogConfig:
    level: str = field(
        default="info", metadata=_check(_one_of("debug", "info", "warning", "error"))
    )


@dataclass(frozen=True)
class NodeConfig:
    name: str = field(metadata=_check(_node_name))
    listen: str = field(metadata=_check(_listen))
    public_url: str | None = field(default=None, metadata=_check(_url))
    tls: TlsConfig = TlsConfig()
    limits: LimitsConfig = LimitsConfig()
    storage: StorageConfig = StorageConfig()
    log: LogConfig = LogConfig()

    @property
    def tls_enabled(self) -> bool:
        return self.tls.cert is not None and self.tls.key is not None

    @property
    def base_url(self) -> str:
        """The URL peers reach us at: ``public_url``, else derived from the node name."""
        if self.public_url:
            return self.public_url
        return f"{'https' if self.tls_enabled else 'http'}://{self.name}"

    @property
    def listen_host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_listen(self.listen)[1]


# ---------------------------------------------------------------------------- parsing


def _type_name(typ: Any) -> str:
    return {int: "an integer", str: "a string", bool: "true or false"}.get(typ, str(typ))


def _build(cls: type[Any], table: Any, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, f in known.items():
        dotted = prefix + name
        typ = hints[name]
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            values[name] = _build(typ, table.get(name, {}), dotted + ".")
            continue
        if name not in table:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{dotted}: required")
            continue
        value = table[name]
        allowed = typing.get_args(typ) if isinstance(typ, types.UnionType) else (typ,)
        wanted = [t for t in allowed if t is not type(None)]
        ok = any(
            isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in wanted
        )
        if not ok:
            raise ConfigError(f"{dotted}: must be {_type_name(wanted[0])}")
        check = f.metadata.get("check")
        complaint = check(value) if check else None
        if complaint:
            raise ConfigError(f"{dotted}: {complaint}")
        values[name] = value
    return cls(**values)


def parse_config(text: str) -> NodeConfig:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config.toml is not valid TOML: {exc}") from exc
    config: NodeConfig = _build(NodeConfig, table, "")
    if (config.tls.cert is None) != (config.tls.key is None):
        raise ConfigError("tls: set both tls.cert and tls.key, or neither")
    return config


def load_config(path: Path) -> NodeConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file (run `peerforum init` first)") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_config(text)


_DEFAULT_TEMPLATE = """\
# PeerForum node configuration. Unknown keys are refused; see specs/api.md.

# This node's name: its host as peers reach it (e.g. "acme.example"), with :port
# only when it is not the default port of the URL scheme.
name = "{name}"

# Address and port the HTTP server binds to.
listen = "{listen}"

# URL peers and members use to reach this node, when it differs from
# http(s)://NAME (e.g. behind a reverse proxy). No trailing slash.
# public_url = "https://acme.example"

[tls]
# Set both to terminate TLS in the node itself (paths relative to the data dir).
# cert = "tls/fullchain.pem"
# key = "tls/privkey.pem"

[limits]
# max_body_bytes = {max_body_bytes}
# peer_rps = {peer_rps}          # requests per second per peer node
# peer_burst = {peer_burst}
# member_rps = {member_rps}          # requests per second per member session
# member_burst = {member_burst}
# ip_rps = {ip_rps}           # before authentication, per client address
# ip_burst = {ip_burst}
# shutdown_grace_seconds = {shutdown_grace_seconds}

[storage]
# busy_timeout_ms = {busy_timeout_ms}
# max_batch = {max_batch}        # write jobs committed together in one transaction
# read_connections = {read_connections}

[log]
level = "info"                 # debug, info, warning or error
"""


def render_default_config(name: str, listen: str) -> str:
    limits = dataclasses.asdict(LimitsConfig())
    storage = dataclasses.asdict(StorageConfig())
    text = _DEFAULT_TEMPLATE.format(name=name, listen=listen, **limits, **storage)
    parse_config(text)  # the template must always be a valid config
    return text


def write_default_config(path: Path, name: str, listen: str) -> NodeConfig:
    """Write a commented config.toml for a new node; refuses to overwrite one."""
    text = render_default_config(name, listen)
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)
    return parse_config(text)
