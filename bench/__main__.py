"""``python -m bench [--quick]``: PeerForum's figures beside the machine's raw limits.

Starts real node processes on 127.0.0.1 (temporary data dirs), peers them through the
admin API, enrolls members through the client API and drives load from a separate
process. Prints a table, then as its LAST line one JSON object (bench/README.md says
what each figure means). A phase that cannot run reports null with a reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from . import corpus, floor, load, raw
from .cluster import (
    BenchError,
    Node,
    cpu_seconds,
    init_nodes,
    kick_outbox,
    peer,
    rss_mib,
    start_all,
)
from .report import json_line, table
from .scene import Forum, enroll, form_forum, head_of

FANOUT = (2, 5, 10)


@dataclass(frozen=True)
class Params:
    raw_seconds: float
    hub_members: int
    sequencing: int  # entries submitted as fast as the hub answers
    concurrency: int  # requests in flight
    batch: int  # events per request in the throughput phases (1 in the latency phase)
    replication: int  # entries for the hub + 2 followers run
    latency_s: float  # seconds at 100 entries/s
    fanout: int  # entries per fanout run
    catchup: int  # entries a stopped follower misses
    forums: int  # forums of 10 members x 20 entries for rss_forums_mib

    @classmethod
    def default(cls) -> Params:
        return cls(1.5, 8, 10_000, 16, 16, 5_000, 10.0, 2_000, 20_000, 1_000)

    @classmethod
    def quick(cls) -> Params:
        return cls(0.3, 4, 600, 8, 8, 300, 2.0, 200, 600, 40)


class Bench:
    def __init__(self, root: Path, params: Params, pool: ProcessPoolExecutor) -> None:
        self.root, self.p, self.pool = root, params, pool
        self.results: dict[str, Any] = {"reasons": {}, "details": {}, "params": vars(params)}
        self.nodes: list[Node] = []

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def phase(self, keys: Sequence[str], fn: Callable[[], None]) -> None:
        """Run one phase; on failure its figures are null with the reason, and we go on."""
        name = fn.__name__
        self.log(f"{name} ...")
        start = time.monotonic()
        try:
            fn()
        except Exception as exc:  # any failure is reported, never turned into a number
            why = f"{type(exc).__name__}: {exc}"[:400]
            self.log(f"{name} failed: {why}\n{traceback.format_exc(limit=4)}")
            for k in keys:
                if self.results.get(k) is None:
                    self.results[k] = None
                    self.results["reasons"][k] = why
        self.results["details"].setdefault("phase_s", {})[name] = time.monotonic() - start

    def load(self, spec: load.Submit | load.CatchUp) -> dict[str, Any]:
        out = self.pool.submit(load.run, spec).result()
        if out.get("errors"):
            raise BenchError(f"{out['errors']} submissions refused, first: {out['first_error']}")
        return out

    # ------------------------------------------------------------------ phases

    def raw_limits(self) -> None:
        self.results.update(raw.measure(self.p.raw_seconds))
        self.results["details"]["entry_bytes"] = self.results.pop("entry_bytes")

    def cluster(self) -> None:
        self.nodes = init_nodes(self.root, 1 + max(FANOUT))
        hub, followers = self.nodes[0], self.nodes[1:]
        start_all([hub])
        time.sleep(1.0)  # settle: what an idle node holds, not its start-up peak
        self.results["rss_idle_mib"] = rss_mib(hub.pid)
        start_all(followers)
        self.log(f"{len(self.nodes)} nodes up")
        for i, a in enumerate(self.nodes):  # members' attestations are checked by every node
            for b in self.nodes[i + 1 :]:
                peer(a, b)
        self.log("peered (full mesh)")
        self.hub_members = [enroll(hub, f"h{i}", self.root) for i in range(self.p.hub_members)]
        self.remote = [enroll(n, f"f{i}", self.root) for i, n in enumerate(followers, 1)]
        self.log("members enrolled")
        h0, locals_ = self.hub_members[0], self.hub_members[1:]
        self.solo = form_forum(h0, locals_)
        self.forums = {n: form_forum(h0, locals_ + self.remote[:n]) for n in FANOUT}
        # Catch-up has a forum of its own whose one follower (node 2) will be stopped, so
        # the 20,000 entries it misses are not also pushed to other followers meanwhile.
        self.lagging = form_forum(h0, [*locals_, self.remote[1]])
        self.log("forums formed")

    def _submit(self, f: Forum, count: int, **kw: Any) -> dict[str, Any]:
        head = head_of(self.hub_members[0], f.id, 1, 0)
        return self.load(load.Submit(f.id, f.epoch, f.secret, self.hub_members, count,
                                     kw.pop("concurrency", self.p.concurrency),
                                     start_head=head, batch=kw.pop("batch", self.p.batch),
                                     **kw))  # fmt: skip

    def _cpu_per_entry(
        self, name: str, nodes: Sequence[Node], count: int, before: list[float]
    ) -> None:
        """CPU microseconds each node spent per entry: steadier than rates on a busy machine."""
        used = [cpu_seconds(n.pid) - b for n, b in zip(nodes, before, strict=True)]
        self.results["details"][f"{name}_cpu_us_per_entry"] = [u / count * 1e6 for u in used]

    def sequencing(self) -> None:
        hub = self.nodes[:1]
        before = [cpu_seconds(n.pid) for n in hub]
        out = self._submit(self.solo, self.p.sequencing)
        self._cpu_per_entry("sequencing", hub, self.p.sequencing, before)
        self.results["sequencing_eps"] = out["submit_eps"]
        # The same with one event per request (/events): what a member posting one
        # message at a time costs, HTTP request included.
        before = [cpu_seconds(n.pid) for n in hub]
        out = self._submit(self.solo, self.p.sequencing, batch=1,
                           concurrency=self.p.concurrency * 4)  # fmt: skip
        self._cpu_per_entry("sequencing_single", hub, self.p.sequencing, before)
        self.results["sequencing_single_eps"] = out["submit_eps"]

    def replication(self) -> None:
        f, nodes = self.forums[2], self.nodes[:3]
        before = [cpu_seconds(n.pid) for n in nodes]
        out = self._submit(f, self.p.replication, watchers=self.remote[:2])
        self._cpu_per_entry("replication", nodes, self.p.replication, before)
        self.results["replication_eps"] = out["replicated_eps"]
        self.results["details"]["replication_hub_eps"] = out["submit_eps"]

    def latency(self) -> None:
        f = self.forums[2]
        n = int(100 * self.p.latency_s)
        out = self._submit(f, n, rate=100.0, concurrency=16, watchers=self.remote[:2],
                           latency_from=self.remote[1], batch=1)  # fmt: skip
        self.results["latency_p50_ms"] = out["latency_ms"]["p50"]
        self.results["latency_p99_ms"] = out["latency_ms"]["p99"]
        # The same path with no work at any step (bench/floor.py): the machine's share.
        self.results.update(floor.measure(count=min(300, n), rate=100.0))

    def fanout(self) -> None:
        rates: dict[str, float | None] = {}
        for n in FANOUT:
            out = self._submit(self.forums[n], self.p.fanout, watchers=self.remote[:n])
            rates[str(n)] = out["replicated_eps"]
        self.results["fanout_eps"] = rates

    def catchup(self) -> None:
        """Stop follower 2, sequence what it misses, restart it and time the catch-up."""
        f, hub = self.lagging, self.nodes[0]
        node, member = self.nodes[2], self.remote[1]
        base = head_of(member, f.id, 1, 0)
        node.stop()
        out = self._submit(f, self.p.catchup)
        target = base + self.p.catchup
        self.results["details"]["catchup_hub_eps"] = out["submit_eps"]
        node.start()
        node.wait_healthy()
        kick_outbox(hub, node.name)  # what the operator does after an outage: no backoff wait
        done = self.load(load.CatchUp(f.id, member, base, target, 300.0))
        self.results["catchup_eps"] = done["eps"]

    def rss_forums(self) -> None:
        (node,) = init_nodes(self.root, 1, prefix="corpus")
        workers = 1 if self.p.forums < 200 else 2
        self.results["details"]["corpus"] = corpus.build(
            node.data, node.name, self.p.forums, workers
        )
        start_all([node])
        try:
            time.sleep(1.0)
            self.results["rss_forums_mib"] = rss_mib(node.pid)
        finally:
            node.stop()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run (CI)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and node logs")
    args = parser.parse_args(argv)
    params = Params.quick() if args.quick else Params.default()
    root = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    started = time.monotonic()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        b = Bench(root, params, pool)
        b.phase(["verify_per_core", "sign_per_core", "insert_batch_per_core",
                 "sequencing_limit_eps"], b.raw_limits)  # fmt: skip
        try:
            b.phase(["rss_idle_mib"], b.cluster)
            ready = hasattr(b, "forums")  # the cluster phase got that far
            for keys, fn in (
                (["sequencing_eps", "sequencing_single_eps"], b.sequencing),
                (["replication_eps"], b.replication),
                (["latency_p50_ms", "latency_p99_ms", "latency_floor_p50_ms",
                  "latency_floor_p99_ms"], b.latency),
                (["fanout_eps"], b.fanout),
                (["catchup_eps"], b.catchup),
            ):
                if ready:
                    b.phase(keys, fn)
                else:
                    for k in keys:
                        b.results[k] = None
                        b.results["reasons"].setdefault(k, "the cluster could not be set up")
        finally:
            b.stop()
        b.phase(["rss_forums_mib"], b.rss_forums)
    b.results["details"]["total_s"] = time.monotonic() - started
    # Other processes on the machine skew every rate: say how busy it was.
    b.results["details"]["loadavg_1m_end"] = os.getloadavg()[0]
    if args.keep:
        b.log(f"data dirs and logs kept in {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(table(b.results))
    print(json_line(b.results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
