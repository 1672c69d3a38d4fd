"""The latency floor: the latency phase's path with nothing done at any step.

Three processes on 127.0.0.1, shaped like ``latency_p50_ms``'s path: the load posts a
small body to A; A answers and POSTs the body on to C; a long-poll the load holds on C
returns when C got it. aiohttp on every side, as in the node; no parsing, signatures,
rules or storage anywhere. What the node's latency adds to this is its own work; this
much is the machine's (sockets, wake-ups of idle processes, the event loops).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import aiohttp
from aiohttp import web

from .cluster import free_port

BODY = b"x" * 900  # about one submitted event as JSON


def _serve(app: web.Application, port: int) -> None:
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=False)


async def _ready(request: web.Request) -> web.Response:
    return web.Response(body=b"ok")


def _node_c(port: int) -> None:
    waiters: list[asyncio.Future[None]] = []

    async def push(request: web.Request) -> web.Response:
        await request.read()
        for w in waiters:
            if not w.done():
                w.set_result(None)
        waiters.clear()
        return web.Response(body=b"ok")

    async def poll(request: web.Request) -> web.Response:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        await waiter
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_post("/push", push)
    app.router.add_get("/poll", poll)
    app.router.add_get("/ready", _ready)
    _serve(app, port)


def _node_a(port: int, c_port: int) -> None:
    async def start(app: web.Application) -> Any:
        app["http"] = aiohttp.ClientSession()
        yield
        await app["http"].close()

    async def submit(request: web.Request) -> web.Response:
        data = await request.read()
        http: aiohttp.ClientSession = request.app["http"]

        async def forward() -> None:
            async with http.post(f"http://127.0.0.1:{c_port}/push", data=data) as resp:
                await resp.read()

        request.app.setdefault("tasks", set()).add(asyncio.create_task(forward()))
        return web.Response(body=b"ok")

    app = web.Application()
    app.cleanup_ctx.append(start)
    app.router.add_post("/submit", submit)
    app.router.add_get("/ready", _ready)
    _serve(app, port)


async def _measure(a: int, c: int, count: int, rate: float) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession() as http:
        for port in (c, a):  # both servers up (each process starts on its own)
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/ready") as resp:
                        await resp.read()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        for _ in range(count):
            poll = asyncio.ensure_future(http.get(f"http://127.0.0.1:{c}/poll"))
            await asyncio.sleep(0.5 / rate)  # the long-poll is waiting on C
            start = time.perf_counter()
            async with http.post(f"http://127.0.0.1:{a}/submit", data=BODY) as resp:
                await resp.read()
            answer = await poll
            await answer.read()
            out.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.5 / rate)
    return sorted(out)


def measure(count: int = 300, rate: float = 100.0) -> dict[str, float]:
    """``latency_floor_p50_ms`` / ``latency_floor_p99_ms`` at ``rate`` round trips/s."""
    ctx = multiprocessing.get_context("spawn")
    a, c = free_port(), free_port()
    procs = [ctx.Process(target=_node_c, args=(c,), daemon=True),
             ctx.Process(target=_node_a, args=(a, c), daemon=True)]  # fmt: skip
    for p in procs:
        p.start()
    try:
        lat = asyncio.run(_measure(a, c, count, rate))
    finally:
        for p in procs:
            p.terminate()
            p.join(5)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"latency_floor_p50_ms": pick(0.50), "latency_floor_p99_ms": pick(0.99)}


if __name__ == "__main__":
    print(measure())
