"""``peerforum forums``: the operator's view of the forums this node holds.

Routing metadata only (ids, hubs, heads, gaps) and the signed objects a misbehaving hub
left behind: the equivocation proof that froze a forum, and entries or heads refused as
evidence. Content stays sealed; nothing here can read it. Through the admin API when the
node serves, straight from the database when it is stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from node.datadir import DataDir, is_serving
from node.forums.report import evidence_view, forum_view
from node.storage import Storage

from .admin_client import AdminClient
from .output import Output, data_option, json_option, run_command


def _read(data_dir: str, path: str, offline: Callable[[Storage], Awaitable[Any]]) -> Any:
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if is_serving(data):
        return AdminClient(data, config).call("GET", path)

    async def run() -> Any:
        storage = await Storage.open(data.db, config.storage, lambda: time.time_ns() // 10**6)
        try:
            return await offline(storage)
        finally:
            await storage.close()

    return asyncio.run(run())


@click.group()
def forums() -> None:
    """Forums this node holds: hubs, heads, frozen forums with their proofs, evidence."""


@forums.command("list")
@data_option
@json_option
@run_command
def list_(data_dir: str, out: Output) -> None:
    """Every forum: hub, head seq, gaps, and for a frozen one the equivocation proof."""

    async def offline(storage: Storage) -> Any:
        return {"forums": [forum_view(r) for r in await storage.list_forum_records()]}

    info = _read(data_dir, "/admin/forums", offline)
    lines = [
        f"{f['forum']}  hub {f['hub']}  seq {f['seq']}"
        + ("  FROZEN: the hub signed two entries for one seq (proof below)" if f["frozen"] else "")
        + (f"\n  proof {f['proof']}" if f.get("proof") else "")
        + (f"\n  missing {f['gaps']}" if f.get("gaps") else "")
        for f in info["forums"]
    ]
    out.result(info, "\n".join(lines) or "no forums on this node")


@forums.command()
@click.option("--forum", default=None, help="Only this forum's evidence.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@data_option
@json_option
@run_command
def evidence(forum: str | None, limit: int, data_dir: str, out: Output) -> None:
    """Objects refused as breaking a rule (newest first), with the code each broke."""

    async def offline(storage: Storage) -> Any:
        return {"evidence": [evidence_view(r) for r in await storage.list_evidence(forum, limit)]}

    query = f"?limit={limit}" + (f"&forum={forum}" if forum else "")
    info = _read(data_dir, "/admin/evidence" + query, offline)
    lines = [
        f"#{e['id']} {e['code']}: {e['kind']} from {e['peer'] or '-'} in {e['forum'] or '-'}"
        for e in info["evidence"]
    ]
    out.result(info, "\n".join(lines) or "no evidence: every peer kept the rules")
