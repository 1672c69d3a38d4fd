"""Checks of the files in a data dir: config.toml and the secrets' permissions.

``parse_config`` stops at the first error, which is right for starting a node; an
operator fixing a file wants every problem at once, each naming its key and the fix.
So this module walks the same dataclass tree and collects findings, then adds what a
parse cannot see: TLS files that are missing or unreadable, a ``public_url`` peers would
refuse or that disagrees with ``name``, a node that listens where no peer can reach it.
Nothing here needs the node running or the database.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import ssl
import stat
import tomllib
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .config import ConfigError, NodeConfig, is_loopback_host, parse_config
from .datadir import DataDir

Status = Literal["ok", "warn", "fail"]
_CERT_WARN_DAYS = 14


@dataclass(frozen=True)
class Finding:
    check: str  # what was checked, e.g. "config.limits.peer_rps", "peer.b.example"
    status: Status
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": self.status,
            "message": self.message,
            "fix": self.fix,
        }


def ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def warn(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "warn", message, fix)


def fail(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "fail", message, fix)


def has_failure(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)


# ---------------------------------------------------------------------------- config.toml


def _describe_type(typ: Any) -> str:
    return {int: "an integer", str: "a quoted string", bool: "true or false"}.get(typ, str(typ))


def _walk(cls: type[Any], table: Any, prefix: str, out: list[Finding]) -> None:
    """Collect every unknown key, missing key, wrong type and failed check under cls."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(table, dict):
        out.append(
            fail(f"config.{where}", f"{where} must be a table", f"write it as a [{where}] section")
        )
        return
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            out.append(
                fail(
                    f"config.{prefix}{key}",
                    f"unknown key {prefix}{key}",
                    f"{hint}remove it or correct the spelling "
                    f"(known here: {', '.join(sorted(fields))})",
                )
            )
    for name, f in fields.items():
        dotted, typ = prefix + name, hints[name]
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            _walk(typ, table.get(name, {}), dotted + ".", out)
            continue
        if name not in table:
            if f.default is dataclasses.MISSING:
                out.append(
                    fail(
                        f"config.{dotted}",
                        f"{dotted} is required",
                        f"add a line {name} = ... (see `peerforum init`)",
                    )
                )
            continue
        value = table[name]
        allowed = typing.get_args(typ) if isinstance(typ, types.UnionType) else (typ,)
        wanted = [t for t in allowed if t is not type(None)]
        if not any(
            isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in wanted
        ):
            example = (
                "" if f.default in (dataclasses.MISSING, None) else f" (default {f.default!r})"
            )
            out.append(
                fail(
                    f"config.{dotted}",
                    f"{dotted} must be {_describe_type(wanted[0])}",
                    f"set {dotted} to {_describe_type(wanted[0])}{example}",
                )
            )
            continue
        check = f.metadata.get("check")
        complaint = check(value) if check else None
        if complaint:
            out.append(
                fail(
                    f"config.{dotted}", f"{dotted} {complaint}", f"correct {dotted} in config.toml"
                )
            )


def check_config(data: DataDir, now_ms: int) -> tuple[list[Finding], NodeConfig | None]:
    """Every finding about config.toml, and the parsed config when it is usable."""
    try:
        text = data.config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [
            fail(
                "config",
                f"{data.config} does not exist",
                f"run `peerforum init --data {data.root} --name HOST` or restore a backup",
            )
        ], None
    except (OSError, UnicodeDecodeError) as exc:
        return [
            fail(
                "config",
                f"{data.config} cannot be read ({exc})",
                "check the file's owner and permissions",
            )
        ], None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [
            fail(
                "config",
                f"config.toml is not valid TOML: {exc}",
                "fix the syntax at the line and column shown",
            )
        ], None
    findings: list[Finding] = []
    _walk(NodeConfig, table, "", findings)
    try:
        config = parse_config(text)
    except ConfigError as exc:
        if not findings:  # a rule across keys (tls pair) the walk does not see
            findings.append(fail("config", str(exc), "edit config.toml as the message says"))
        return findings, None
    findings += _check_tls(data, config, now_ms)
    findings += _check_reachability(config)
    if not any(f.status != "ok" for f in findings):
        findings.insert(0, ok("config", f"{data.config} is valid (node {config.name})"))
    return findings, config


def _check_tls(data: DataDir, config: NodeConfig, now_ms: int) -> list[Finding]:
    if not config.tls_enabled:
        return []
    assert config.tls.cert is not None and config.tls.key is not None
    findings: list[Finding] = []
    paths = {"tls.cert": data.resolve(config.tls.cert), "tls.key": data.resolve(config.tls.key)}
    for key, path in paths.items():
        if not path.is_file():
            findings.append(
                fail(
                    f"config.{key}",
                    f"{key}: {path} does not exist",
                    f"put the file there or correct {key} (relative paths start at the data dir)",
                )
            )
        elif not os.access(path, os.R_OK):
            findings.append(
                fail(
                    f"config.{key}",
                    f"{key}: {path} is not readable by this user",
                    f"chown/chmod {path} so the node's user can read it",
                )
            )
    if findings:
        return findings
    key_mode = stat.S_IMODE(paths["tls.key"].stat().st_mode)
    if key_mode & 0o077:
        findings.append(
            warn(
                "config.tls.key",
                f"{paths['tls.key']} is mode {key_mode:o}",
                f"chmod 600 {paths['tls.key']}",
            )
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            paths["tls.cert"], paths["tls.key"]
        )
    except (OSError, ssl.SSLError) as exc:
        return [
            *findings,
            fail(
                "config.tls",
                f"tls.cert / tls.key cannot be loaded ({exc})",
                "use a PEM certificate chain and its matching PEM key",
            ),
        ]
    findings.append(_cert_expiry(paths["tls.cert"], now_ms))
    return findings


def _cert_expiry(path: Path, now_ms: int) -> Finding:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return warn(
            "config.tls.cert",
            "cannot read the certificate's expiry",
            "check that tls.cert starts with the server's own certificate",
        )
    expires = cert.not_valid_after_utc
    days = (expires - datetime.fromtimestamp(now_ms / 1000, UTC)).days
    if days < 0:
        return fail(
            "config.tls.cert",
            f"the certificate expired on {expires:%Y-%m-%d}",
            "renew it and restart the node",
        )
    if days < _CERT_WARN_DAYS:
        return warn(
            "config.tls.cert",
            f"the certificate expires in {days} days",
            "renew it soon and restart the node",
        )
    return ok("config.tls", f"certificate and key load; valid until {expires:%Y-%m-%d}")


def _check_reachability(config: NodeConfig) -> list[Finding]:
    findings: list[Finding] = []
    name_is_loopback = is_loopback_host(urlsplit(f"//{config.name}").hostname or "")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        netloc = parts.netloc.lower()
        if parts.path or parts.query or parts.fragment or "@" in netloc:
            findings.append(
                fail(
                    "config.public_url",
                    "public_url must be the node's root URL",
                    "remove any path, query, #fragment or user@ from it",
                )
            )
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            findings.append(
                fail(
                    "config.public_url",
                    "public_url is plain http: peers refuse it outside loopback",
                    'serve https (a reverse proxy, or [tls]) and set public_url = "https://..."',
                )
            )
        default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
        host = netloc.removesuffix(default) if default else netloc
        if host != config.name:
            findings.append(
                fail(
                    "config.public_url",
                    f"public_url names host {host!r} but name is {config.name!r}: "
                    "peers derive the node name from the URL",
                    f'set name = "{host}" or public_url = "{parts.scheme}://{config.name}"',
                )
            )
    elif not config.tls_enabled and not name_is_loopback:
        findings.append(
            warn(
                "config.public_url",
                f"peers will be told to reach this node at http://{config.name}, "
                "and they refuse plain http outside loopback",
                "configure [tls], or set public_url to the https URL of "
                "the reverse proxy in front of the node",
            )
        )
    if is_loopback_host(config.listen_host) and not name_is_loopback and not config.public_url:
        findings.append(
            warn(
                "config.listen",
                f"listen = {config.listen!r} accepts only local connections",
                "listen on a reachable address, or set public_url to the "
                "reverse proxy that forwards to it",
            )
        )
    return findings


# ---------------------------------------------------------------------------- permissions


def check_permissions(data: DataDir) -> list[Finding]:
    """node.key and admin.token must be 0600: reading either is acting as this node."""
    findings: list[Finding] = []
    for label, path, what in (
        ("permissions.node_key", data.key, "anyone who reads it can sign as this node"),
        ("permissions.admin_token", data.admin_token, "anyone who reads it can run the node"),
    ):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            findings.append(
                fail(label, f"{path} does not exist", "restore the data dir from a backup")
            )
            continue
        if mode & 0o077:
            findings.append(fail(label, f"{path} is mode {mode:o}: {what}", f"chmod 600 {path}"))
        else:
            findings.append(ok(label, f"{path.name} is mode {mode:o}"))
    try:
        dir_mode = stat.S_IMODE(data.root.stat().st_mode)
    except OSError:
        return findings
    if dir_mode & 0o077:
        findings.append(
            warn(
                "permissions.data_dir",
                f"{data.root} is mode {dir_mode:o}: others can list it",
                f"chmod 700 {data.root}",
            )
        )
    return findings
