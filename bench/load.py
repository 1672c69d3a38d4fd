"""The load process: members' devices, batched into one asyncio client (aiohttp).

It runs in its own process (``run`` is called through a spawn-context process pool), so
signing, sealing and HTTP client work never share a core's time slice with the node's
event loop by accident — on a 2-core machine the node has one core, the load the other.
Every event is signed and sealed *before* the clock starts: the figures are the node's.

Phases return plain dicts: counts, seconds, and the rate or latencies derived from them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack

from cli.member.api import PREFIX
from cli.member.api import quote as q
from protocol.keys import b64u, unb64u

from .scene import Member, post

LONG_POLL_S = 30


@dataclass(frozen=True)
class Submit:
    """Submit ``count`` content events to ``forum`` through its hub's client API."""

    forum: str
    epoch: int
    secret: bytes
    authors: Sequence[Member]  # members of the hub node
    count: int
    concurrency: int  # requests in flight at once (over all authors)
    watchers: Sequence[Member] = ()  # one member per follower: wait until each holds all
    start_head: int = 0
    rate: float = 0.0  # offered entries/s; 0 = as fast as the hub answers
    latency_from: Member | None = None  # read every entry as it arrives here (latency)
    # Events per request: 1 posts each to /events; more posts that many of one member's
    # events to /events/batch (what a busy client or one back online sends).
    batch: int = 1


def _prepare(spec: Submit) -> list[tuple[str, bytes, int]]:
    """(token, JSON body, events in it) per request, signed and sealed now, before any
    timing. A batch holds the events of one member (one session)."""
    authors = itertools.cycle(spec.authors)
    out = []
    for first in range(0, spec.count, spec.batch):
        m = next(authors)
        texts = [f"bench entry {i:08d} " + "x" * 80
                 for i in range(first, min(spec.count, first + spec.batch))]  # fmt: skip
        events = [b64u(post(m, spec.forum, spec.epoch, spec.secret, t).raw) for t in texts]
        if spec.batch == 1:
            body = {"event": events[0]}
        else:
            body = {"events": [{"event": e} for e in events]}
        out.append((m.token, json.dumps(body).encode(), len(events)))
    return out


def _url(m: Member, path: str) -> str:
    return m.node_url + PREFIX + path


async def _head_reaches(http: aiohttp.ClientSession, m: Member, forum: str, seq: int) -> float:
    """Long-poll ``m``'s node until the forum's head reaches ``seq``; when it did."""
    url = _url(m, f"/forums/{q(forum)}/entries?from={seq}&limit=1&wait={LONG_POLL_S}")
    headers = {"Authorization": f"Bearer {m.token}"}
    while True:
        async with http.get(url, headers=headers) as resp:
            page = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{m.node_name}: {page}")
        if int(page["head"]) >= seq:
            return time.perf_counter()


async def _arrivals(http: aiohttp.ClientSession, m: Member, forum: str, first: int, last: int,
                    seen: dict[int, float]) -> None:  # fmt: skip
    """Read every entry ``first..last`` from ``m``'s node as it arrives; note when."""
    headers = {"Authorization": f"Bearer {m.token}"}
    nxt = first
    while nxt <= last:
        url = _url(m, f"/forums/{q(forum)}/entries?from={nxt}&limit=500&wait={LONG_POLL_S}")
        async with http.get(url, headers=headers) as resp:
            page = await resp.json()
        now = time.perf_counter()
        if resp.status != 200:
            raise RuntimeError(f"{m.node_name}: {page}")
        for raw in page["entries"]:
            seq = int(msgpack.unpackb(unb64u(raw))["seq"])
            seen.setdefault(seq, now)
            nxt = max(nxt, seq + 1)


async def _submit(spec: Submit) -> dict[str, Any]:
    bodies = _prepare(spec)
    sent: dict[int, float] = {}  # seq -> when its submit started
    arrived: dict[int, float] = {}
    errors: list[str] = []
    target = spec.start_head + spec.count
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(120)) as http:
        queue = iter(enumerate(bodies))
        path = "/events" if spec.batch == 1 else "/events/batch"
        url = _url(spec.authors[0], f"/forums/{q(spec.forum)}{path}")
        start = time.perf_counter()

        async def worker() -> None:
            for i, (token, body, _) in queue:
                if spec.rate:
                    delay = start + i * spec.batch / spec.rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                t = time.perf_counter()
                headers = {"Authorization": f"Bearer {token}",
                           "Content-Type": "application/json"}  # fmt: skip
                async with http.post(url, data=body, headers=headers) as resp:
                    answer = await resp.json()
                results = answer.get("results", [answer]) if resp.status == 200 else [answer]
                for result in results:
                    if result.get("status") != "sequenced":
                        errors.append(str(result)[:200])
                        continue
                    sent[int(result["seq"])] = t

        watchers = [asyncio.create_task(_head_reaches(http, m, spec.forum, target))
                    for m in spec.watchers]  # fmt: skip
        reader = None
        if spec.latency_from is not None:
            reader = asyncio.create_task(
                _arrivals(http, spec.latency_from, spec.forum, spec.start_head + 1, target, arrived)
            )
        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        submitted = time.perf_counter()
        if errors:  # the followers would wait for entries that will never exist
            for w in watchers:
                w.cancel()
            if reader is not None:
                reader.cancel()
            return {"errors": len(errors), "first_error": errors[0]}
        reached = await asyncio.gather(*watchers)
        if reader is not None:
            await reader
    out: dict[str, Any] = {
        "count": spec.count, "errors": 0, "submit_s": submitted - start,
        "submit_eps": spec.count / (submitted - start),
    }  # fmt: skip
    if reached:
        out["replicated_s"] = max(reached) - start
        out["replicated_eps"] = spec.count / (max(reached) - start)
    if arrived:
        lat = sorted((arrived[s] - sent[s]) * 1000 for s in sent if s in arrived)
        out["latency_ms"] = {"p50": _pct(lat, 0.50), "p99": _pct(lat, 0.99), "n": len(lat)}
    return out


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


@dataclass(frozen=True)
class CatchUp:
    """Watch ``follower`` catch up from ``base`` to ``target`` (it was just restarted)."""

    forum: str
    follower: Member
    base: int
    target: int
    timeout_s: float


async def _catch_up(spec: CatchUp) -> dict[str, Any]:
    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(spec.timeout_s)) as http:
        done = await asyncio.wait_for(
            _head_reaches(http, spec.follower, spec.forum, spec.target), spec.timeout_s
        )
    missed = spec.target - spec.base
    return {"missed": missed, "seconds": done - start, "eps": missed / (done - start)}


def run(spec: Submit | CatchUp) -> dict[str, Any]:
    """Entry point in the load process."""
    if isinstance(spec, Submit):
        return asyncio.run(_submit(spec))
    return asyncio.run(_catch_up(spec))
