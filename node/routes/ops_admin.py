"""Admin API for operations: database status and migration, backup snapshots, doctor.

Behind the same guard as every ``/admin/`` route (loopback + bearer token, see
admin.py). Slow work (integrity checks, page copies) runs in a worker thread on a
connection of its own, so the event loop and the group-commit writer keep going while
an operator backs up or diagnoses a busy node.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from aiohttp import web

from ..backup import new_workdir, take_snapshot
from ..context import CTX, HTTP
from ..doctor import Pinger, check_node
from ..storage.maintenance import apply_migrations, db_status

routes = web.RouteTableDef()


@routes.get("/admin/db")
async def db(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    status = await asyncio.to_thread(db_status, ctx.data.db)
    return web.json_response({**status.to_json(), "serving": True})


@routes.post("/admin/db/migrate")
async def db_migrate(request: web.Request) -> web.Response:
    """Apply migrations the running code knows but the database lacks (an upgrade
    installed under a running node). Each runs in its own IMMEDIATE transaction, so the
    node's writer waits for it rather than interleaving."""
    ctx = request.app[CTX]
    applied = await asyncio.to_thread(
        apply_migrations, ctx.data.db, ctx.clock(), ctx.config.storage.busy_timeout_ms
    )
    status = await asyncio.to_thread(db_status, ctx.data.db, None, False)
    return web.json_response({"applied": applied, "schema_version": status.schema_version})


@routes.post("/admin/backup/snapshot")
async def backup_snapshot(request: web.Request) -> web.Response:
    """A consistent copy of node.db and node.key in DATA/backup-snapshots/<random>/,
    which the CLI packs into the backup file and then removes."""
    ctx = request.app[CTX]
    workdir = await asyncio.to_thread(new_workdir, ctx.data)
    # Under the rotation lock: the db and the key file must be from the same side of
    # a key rotation (see take_snapshot).
    async with ctx.identity.rotation_lock:
        snap = await asyncio.to_thread(take_snapshot, ctx.data, workdir)
    return web.json_response(snap.to_json())


def _pinger(app: web.Application) -> Pinger | None:
    """The federation layer's signed ping, when that layer is installed and offers one.

    Looked up at run time: operations must work on a node built without federation,
    and a ping is only meaningful through the real delivery path."""
    try:
        key = importlib.import_module("node.federation").FEDERATION
    except (ImportError, AttributeError):
        return None
    fed: Any = app.get(key)
    ping = getattr(fed, "ping", None)
    return ping if callable(ping) else None


@routes.get("/admin/doctor")
async def doctor(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    now = ctx.clock()
    findings = await check_node(
        ctx.data.db,
        ctx.data.key,
        ctx.config,
        request.app[HTTP],
        now,
        descriptor=ctx.identity.descriptor(now)[1],
        serving=True,
        ping=_pinger(request.app),
    )
    return web.json_response({"findings": [f.to_json() for f in findings]})
