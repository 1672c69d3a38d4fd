"""The app's federation service: open ``Federation`` after storage and the HTTP client,
stop its sender tasks before they close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .. import context
from ..context import CTX, HTTP, STORAGE
from .federation import Federation


def _forums(app: web.Application) -> Any | None:
    # FORUMS belongs to the forum engine, which may be absent or start after us.
    key = getattr(context, "FORUMS", None)
    return None if key is None else app.get(key)


async def federation_ctx(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    fed = Federation(
        identity=ctx.identity,
        config=ctx.config,
        storage=app[STORAGE],
        session=app[HTTP],
        clock=ctx.clock,
        rng=ctx.rng,
        metrics=ctx.metrics,
        forums=lambda: _forums(app),
    )
    app[context.FEDERATION] = fed

    async def collect() -> None:
        m = fed.metrics
        for row in await fed.storage.outbox_summary():
            m.queued.set(row.queued, peer=row.peer)
            m.dead.set(row.dead, peer=row.peer)

    ctx.metrics.registry.add_collector(collect)
    await fed.start()
    yield
    await fed.stop()
