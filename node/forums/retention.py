"""The retention job: attachments of detached content leave the node at ``expires``.

Protocol §6.9. Every node — hub, replica, the author's own — deletes each attachment
when its clock passes the attachment's ``expires``: the entry, the chain and every
signature stay; only the ciphertext goes. The job sleeps until the earliest expiry it
knows of (woken early when an attachment with an earlier one arrives), deletes what has
expired with SQLite's ``secure_delete`` on, then truncates the write-ahead log so no old
page image of the ciphertext is left in ``node.db-wal`` either. Reads filter on
``expires`` as well, so nothing is served between expiry and deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from ..logs import log_event, log_exception
from ..metrics import Counter
from .engine import ForumEngine

log = logging.getLogger("peerforum.retention")

MAX_SLEEP_S: Final = 3600.0  # re-read the next expiry at least hourly (a clock jump)
RETRY_S: Final = 5.0  # after a failure, or a WAL a reader kept busy
LATE_S: Final = 0.05  # wake just after the expiry, never just before it


async def run_retention(engine: ForumEngine, deleted_total: Counter) -> None:
    """Delete expired attachments forever (until cancelled)."""
    unflushed = False  # deleted rows whose old images may still sit in the WAL
    while True:
        delay = MAX_SLEEP_S
        changed = engine.attachments_changed
        changed.clear()  # before reading the next expiry: an arrival after it wakes us
        try:
            deleted = await engine.storage.delete_expired_attachments(engine.clock())
            if deleted:
                deleted_total.inc(deleted)
                log_event(log, logging.INFO, "retention.deleted", attachments=deleted)
            if deleted or unflushed:
                unflushed = not await engine.storage.engine.truncate_wal()
            nxt = await engine.storage.next_attachment_expiry()
            if nxt is not None:
                delay = min(MAX_SLEEP_S, max(0.0, (nxt - engine.clock()) / 1000) + LATE_S)
            if unflushed:
                delay = min(delay, RETRY_S)
        except Exception as exc:  # a busy or failing database: try again soon
            log_exception(log, "retention.failed", exc)
            delay = RETRY_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), delay)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """The service: after the forum engine, whose storage and wake-up event it uses."""
    from ..context import CTX, FORUMS

    registry = app[CTX].metrics.registry
    deleted_total = registry.counter(
        "peerforum_attachments_deleted_total",
        "Attachments of detached content deleted at their expiry (protocol §6.9).",
    )
    kept = registry.gauge("peerforum_attachments_kept", "Attachments kept until they expire.")
    engine = app[FORUMS]

    async def collect() -> None:
        kept.set(await engine.storage.count_attachments())

    registry.add_collector(collect)
    task = asyncio.get_running_loop().create_task(
        run_retention(engine, deleted_total), name="pf-retention"
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
