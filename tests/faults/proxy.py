"""A fault-injecting reverse proxy in front of one node, on 127.0.0.1.

The node's ``public_url`` points at the proxy, so its descriptor sends every peer's
federation traffic (inbox, backfill) through it, while the node's name stays its own
host:port. Each request is delayed, dropped or passed with a seeded RNG, so a run
replays; ``swallow_next`` answers one forum.entries batch with a fake success without
forwarding it: the sender believes it delivered, and the receiver never saw it.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from protocol.codec import decode, encode
from tests.integration.harness import free_port


@dataclass
class Faults:
    seed: int = 0
    max_delay_s: float = 0.0
    drop_request: float = 0.0  # not forwarded: the sender sees a 503
    drop_response: float = 0.0  # forwarded, then the answer is lost: the sender retries
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class FaultProxy:
    def __init__(self, target_port: int, faults: Faults | None = None) -> None:
        self.target = f"http://127.0.0.1:{target_port}"
        self.port = free_port()
        self.faults = faults or Faults()
        self.counts = {"passed": 0, "dropped": 0, "lost_answers": 0, "swallowed": 0}
        self._swallow = 0
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "proxy did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def swallow_next(self, n: int = 1) -> None:
        with self._lock:
            self._swallow += n

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.session = aiohttp.ClientSession(loop=self.loop)
        ready.set()
        self.loop.run_forever()

    def _entries_batch(self, body: bytes) -> tuple[int, dict[str, int]]:
        """(envelopes, the acks a receiver that applied them would give) if ``body`` is a
        batch holding forum.entries, else (0, {})."""
        try:
            envs = [decode(i) for i in decode(body)["envelopes"]]
        except Exception:  # noqa: BLE001 - not a batch: pass it on
            return 0, {}
        acks: dict[str, int] = {}
        for env in envs:
            if env.get("kind") == "forum.entries":
                forum = env["body"]["forum"]
                seqs = [decode(e)["seq"] for e in env["body"]["entries"]]
                acks[forum] = max([acks.get(forum, 0), *seqs])
        return (len(envs), acks) if acks else (0, {})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            f = self.faults
            delay = f.rng.uniform(0, f.max_delay_s)
            roll_req, roll_resp = f.rng.random(), f.rng.random()
            n, acks = self._entries_batch(body) if self._swallow else (0, {})
            if n:
                self._swallow -= 1
                self.counts["swallowed"] += 1
        if n:  # the sender gets what a receiver that took every envelope answers
            answer = encode({"acks": acks, "results": [{} for _ in range(n)]})
            return web.Response(body=answer, content_type="application/vnd.peerforum+msgpack")
        await asyncio.sleep(delay)
        if roll_req < f.drop_request:
            self.counts["dropped"] += 1
            return web.Response(status=503, text="dropped by the fault proxy")
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "accept", "authorization")}  # fmt: skip
        async with self.session.request(request.method, self.target + request.path_qs,
                                        data=body, headers=headers) as resp:  # fmt: skip
            data = await resp.read()
            out = web.Response(status=resp.status, body=data,
                               content_type=resp.content_type)  # fmt: skip
        if roll_resp < f.drop_response:
            self.counts["lost_answers"] += 1
            return web.Response(status=502, text="answer lost by the fault proxy")
        self.counts["passed"] += 1
        return out

    def close(self) -> None:
        async def stop() -> None:
            await self.session.close()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
