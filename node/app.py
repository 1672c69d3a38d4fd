"""The aiohttp application factory.

``make_app(ctx)`` wires middleware, routes and resources; it opens nothing itself.
Resources (database, outgoing HTTP client, later the delivery workers) are opened in
``cleanup_ctx`` — in list order at startup, in reverse at shutdown — so a test client
and ``serve`` run the exact same lifecycle.

To add an API: write ``node/routes/<api>.py`` exposing ``routes = web.RouteTableDef()``
and append the module to ``ROUTE_MODULES``. To add a long-running service (outbox
delivery, replay-cache pruning, ...): write an async generator ``async def x(app)``
that starts it, yields, then stops it, and append it to ``SERVICES`` — after storage
and the HTTP client it depends on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType

import aiohttp
from aiohttp import web

from .context import CTX, HTTP, INBOX_SOCKETS, STORAGE, NodeContext
from .errors import error_middleware
from .federation.service import federation_ctx
from .forums import forums_ctx
from .forums.retention import retention_ctx
from .middleware import context_middleware, limits_middleware
from .routes import admin, client, client_forums, directory, health, members_admin, wellknown
from .routes import federation as federation_routes
from .routes import ops_admin as ops_admin_routes
from .routes import web as web_client_routes
from .routes.admin import admin_guard
from .storage import Storage

ROUTE_MODULES: list[ModuleType] = [health, wellknown, admin]
ROUTE_MODULES += [members_admin, client, client_forums, directory]
ROUTE_MODULES.append(web_client_routes)  # members' web client: /, /static/
ROUTE_MODULES += [ops_admin_routes]  # operations: db, backup snapshots, doctor
ROUTE_MODULES.append(federation_routes)  # /_pf/v1 inbox, backfill, rotations; /admin/outbox

USER_AGENT = "PeerForum/0.1 (PFP/1)"


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    storage = await Storage.open(ctx.data.db, ctx.config.storage, ctx.clock)
    app[STORAGE] = storage

    async def collect() -> None:
        ctx.metrics.db_batches.set(storage.engine.batches_committed)
        ctx.metrics.db_jobs.set(storage.engine.jobs_committed)
        for status, count in (await storage.count_peers()).items():
            ctx.metrics.peers.set(count, status=status)
        ctx.metrics.forums.set(await storage.count_forums())
        ctx.metrics.outbox_depth.set(await storage.outbox_depth())

    ctx.metrics.registry.add_collector(collect)
    yield
    await storage.close()


async def http_client_ctx(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
    app[HTTP] = session
    yield
    await session.close()


SERVICES: list[Callable[[web.Application], AsyncIterator[None]]] = [storage_ctx, http_client_ctx]
SERVICES.append(federation_ctx)  # after storage and HTTP: delivery needs both
# The forum log engine starts before delivery, which calls into it (both look up lazily).
SERVICES.insert(SERVICES.index(federation_ctx), forums_ctx)
# Attachments leave every node at their expiry (protocol §6.9); needs the forum engine.
SERVICES.insert(SERVICES.index(forums_ctx) + 1, retention_ctx)


def make_app(ctx: NodeContext) -> web.Application:
    app = web.Application(
        middlewares=[context_middleware, error_middleware, limits_middleware, admin_guard],
        # aiohttp refuses larger bodies while reading; limits_middleware refuses an
        # announced Content-Length before reading at all.
        client_max_size=ctx.config.limits.max_body_bytes,
    )
    app[CTX] = ctx
    app[INBOX_SOCKETS] = set()
    app.on_shutdown.append(federation_routes.close_inbox_sockets)
    app.cleanup_ctx.extend(SERVICES)
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    return app
