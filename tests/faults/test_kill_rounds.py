"""Faults (issue 7): SIGKILL of the hub and of followers at seeded random points during a
5,000-entry load. Every event a node accepted (a seq from the hub, or "forwarded" by the
member's node) ends in every replica's log exactly once, and all heads are identical.

``FAULT_ENTRIES`` (default 5,000) and ``FAULT_SEED`` (default 7) set the load and the
points; the seed is printed on failure so a run replays.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.integration.conftest import Nodes
from tests.integration.federation_kit import (
    ApiError,
    Member,
    form_forum,
    same_log,
    three_orgs,
    wait_until,
)
from tests.report import record

ENTRIES = int(os.environ.get("FAULT_ENTRIES", "5000"))
SEED = int(os.environ.get("FAULT_SEED", "7"))
ROUNDS = 3


def test_sigkill_hub_and_followers_during_load_loses_nothing(nodes: Nodes) -> None:
    rng = random.Random(SEED)
    orgs, members = three_orgs(nodes)
    alice, bob, carol = members
    forum = form_forum(alice, [bob, carol])
    start = same_log(members, forum.id, 7)[-1].seq
    accepted: dict[bytes, int | None] = {}
    lock = threading.Lock()
    done = 0
    # Round 1 kills the hub, then followers or the hub as the seed says.
    victims = [orgs[0], *rng.sample(orgs, 2)]
    per_round = ENTRIES // ROUNDS

    def one(args: tuple[Member, int]) -> None:
        nonlocal done
        member, i = args
        ev = forum.post(member, f"{member.handle} {i}")
        try:
            answer = member.submit(ev)
        except (ApiError, OSError):
            return  # refused or its node is down: not accepted (it may still exist)
        with lock:
            accepted[ev.event_id] = answer["seq"]
            done += 1

    for rnd, victim in enumerate(victims):
        kill_at = done + rng.randint(per_round // 5, per_round * 3 // 5)
        down_s = rng.uniform(0.2, 1.5)
        jobs = [(members[i % 3], rnd * per_round + i) for i in range(per_round)]
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, j) for j in jobs]
            wait_until(f"round {rnd}: {kill_at} accepted", lambda k=kill_at: done >= k, 120)
            victim.stop(signal.SIGKILL)
            time.sleep(down_s)
            victim.start()
            for f in futures:
                f.result()
        record("fault_round", 1, victim=victim.name, seed=SEED)
    # Forwarded events reach the hub from the followers' durable queues.
    waiting = {eid for eid, seq in accepted.items() if seq is None}
    wait_until("every forwarded event sequenced", lambda: waiting <= {
        e.signed_event.event_id for e in alice.log(forum.id)}, timeout=120)  # fmt: skip
    head = alice.head(forum.id)
    log = same_log(members, forum.id, head, timeout=120)
    ids = [e.signed_event.event_id for e in log]
    lost = [eid for eid in accepted if eid not in set(ids)]
    moved = [eid for eid, seq in accepted.items() if seq is not None and ids[seq - 1] != eid]
    duplicated = len(ids) - len(set(ids))
    record("entries_accepted", len(accepted))
    record("entries_lost", len(lost) + len(moved))
    record("entries_duplicated", duplicated)
    assert len(accepted) >= ENTRIES // 2, f"too few accepted to mean anything (seed {SEED})"
    assert not lost and not moved and not duplicated, (len(lost), len(moved), duplicated, SEED)
    assert head >= start + len(accepted)
    for org in orgs:
        assert org.healthy()
