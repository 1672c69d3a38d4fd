"""Running a node: load its data dir, serve until SIGTERM/SIGINT, stop cleanly.

Clean stop means: stop accepting connections, let in-flight requests finish (up to
``limits.shutdown_grace_seconds``), then close services in reverse order — the
database last, after its queued writes are committed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from .app import make_app
from .config import ConfigError, NodeConfig
from .context import NodeContext, clock_from_env
from .datadir import DataDir, NodeLock
from .identity import NodeIdentity
from .keystore import load_keys, permission_warning
from .logs import log_event

log = logging.getLogger("peerforum.node")


class StartupError(Exception):
    """The node cannot start; the message says why and what to do."""


def load_context(data: DataDir) -> NodeContext:
    """Everything a node needs from its data dir (raises ConfigError / KeyFileError)."""
    config = data.load_config()
    warning = permission_warning(data.key)
    if warning:
        log_event(log, logging.WARNING, "node.key_permissions", detail=warning)
    keys = load_keys(data.key)
    identity = NodeIdentity(config.name, config.base_url, keys)
    return NodeContext(
        data=data, config=config, identity=identity, admin_token=data.read_admin_token(),
        clock=clock_from_env(),
    )


def tls_context(data: DataDir, config: NodeConfig) -> ssl.SSLContext | None:
    if not config.tls_enabled:
        return None
    assert config.tls.cert is not None and config.tls.key is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(data.resolve(config.tls.cert), data.resolve(config.tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls.cert / tls.key: cannot load ({exc})") from exc
    return ctx


async def serve(
    data: DataDir,
    on_ready: Callable[[NodeContext], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives."""
    lock = NodeLock(data)
    lock.acquire()
    runner: web.AppRunner | None = None
    try:
        ctx = load_context(data)
        config = ctx.config
        runner = web.AppRunner(
            make_app(ctx),
            handle_signals=False,
            access_log=None,  # context_middleware writes one structured line per request
            shutdown_timeout=float(config.limits.shutdown_grace_seconds),
        )
        await runner.setup()
        site = web.TCPSite(
            runner, config.listen_host, config.listen_port, ssl_context=tls_context(data, config)
        )
        try:
            await site.start()
        except OSError as exc:
            raise _bind_error(config, exc) from exc
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log_event(
            log, logging.INFO, "node.started", name=config.name, listen=config.listen,
            kid=ctx.identity.keys.kid,
        )  # fmt: skip
        if on_ready is not None:
            on_ready(ctx)
        await stop.wait()
        log_event(log, logging.INFO, "node.stopping")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    finally:
        if runner is not None:
            await runner.cleanup()
        lock.release()
    log_event(log, logging.INFO, "node.stopped")


def _bind_error(config: NodeConfig, exc: OSError) -> StartupError:
    host, port = config.listen_host, config.listen_port
    shown = f"[{host}]" if ":" in host else host
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"port {port} is in use: pass --listen {shown}:{port + 1} "
            f"(or set listen in config.toml)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(f"not allowed to listen on {config.listen}: use a port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"{host} is not an address of this machine: fix listen")
    return StartupError(f"cannot listen on {config.listen}: {exc.strerror}")
