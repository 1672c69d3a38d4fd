"""``peerforum outbox``: what waits for which peer, what was refused, and retrying it.

Through the running node's admin API when it serves (it owns delivery and must see a
retry at once); read straight from the database when it is stopped.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from node.config import NodeConfig
from node.datadir import DataDir, is_serving
from node.storage import Storage

from .admin_client import AdminClient
from .output import EXIT_FAILURE, Output, data_option, fail, json_option, run_command


async def _offline(data: DataDir, config: NodeConfig) -> dict[str, Any]:
    storage = await Storage.open(data.db, config.storage, lambda: time.time_ns() // 1_000_000)
    try:
        peers = [
            {"peer": s.peer, "queued": s.queued, "dead": s.dead, "breaker": s.delivery.breaker,
             "failures": s.delivery.failures, "backoff_ms": s.delivery.backoff_ms,
             "next_attempt_ms": s.delivery.next_attempt_ms, "last_error": s.delivery.last_error}
            for s in await storage.outbox_summary()
        ]  # fmt: skip
        dead = [
            {"id": r.id, "peer": r.destination, "attempts": r.attempts,
             "last_error": r.last_error, "created_ms": r.created_ms}
            for r in await storage.dead_letters()
        ]  # fmt: skip
        return {"peers": peers, "dead": dead}
    finally:
        await storage.close()


def _human(info: dict[str, Any]) -> str:
    if not info["peers"]:
        return "outbox empty: nothing waits for any peer"
    lines = [f"{'peer':<32} {'queued':>6} {'dead':>5}  breaker    failures  last error"]
    for p in info["peers"]:
        lines.append(
            f"{p['peer']:<32} {p['queued']:>6} {p['dead']:>5}  {p['breaker']:<10} "
            f"{p['failures']:>8}  {p['last_error'] or '-'}"
        )
    for d in info["dead"]:
        lines.append(f"dead letter #{d['id']} to {d['peer']}: {d['last_error']}")
    return "\n".join(lines)


@click.group(invoke_without_command=True)
@data_option
@json_option
@click.pass_context
@run_command
def outbox(ctx: click.Context, data_dir: str, out: Output) -> None:
    """Show the outbox: depth per peer, breaker state, dead letters."""
    if ctx.invoked_subcommand is not None:
        return
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if is_serving(data):
        info = AdminClient(data, config).call("GET", "/admin/outbox")
    else:
        info = asyncio.run(_offline(data, config))
    out.result(info, _human(info))


@outbox.command()
@click.argument("peer", required=False)
@data_option
@json_option
@run_command
def retry(peer: str | None, data_dir: str, out: Output) -> None:
    """Requeue dead letters (of PEER, or all) and retry delivery now."""
    data = DataDir(Path(data_dir))
    config = data.load_config()
    if not is_serving(data):
        fail("the node is not running: start it, then retry", EXIT_FAILURE, "cli.node_down")
    body = {} if peer is None else {"peer": peer}
    info = AdminClient(data, config).call("POST", "/admin/outbox/retry", body)
    out.result(info, f"requeued {info['requeued']} dead letter(s); delivery retries now")
