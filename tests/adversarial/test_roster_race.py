"""Issue 7, adversarial federation case 7: concurrent admissions and removals while the
network delays, drops and loses answers (a seeded fault proxy in front of every node).
Every node ends with the same roster; the removed member never reappears.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.faults.proxy import FaultProxy, Faults
from tests.faults.test_gap import proxied_orgs
from tests.integration.conftest import Nodes
from tests.integration.federation_kit import ApiError, Forum, Member, form_forum, wait_until
from tests.report import record

SEED = int(os.environ.get("FAULT_SEED", "7"))
NETWORK = {"max_delay_s": 0.15, "drop_request": 0.15, "drop_response": 0.1}


def _try(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (ApiError, OSError):
        return None  # refused or lost: the loops below retry from fresh state


def _roster(state: dict[str, Any]) -> dict[str, str]:
    return {m["member"]: m["status"] for m in state["members"]}


def _committer(forum: Forum, me: Member, everyone: dict[str, Member], hub: Member,
               stop: threading.Event) -> None:  # fmt: skip
    """Commit an epoch whenever the hub's state needs one, from my own reading of it."""
    rng = random.Random(f"{SEED}/{me.handle}")
    while not stop.is_set():
        state = _try(hub.state, forum.id)
        if state is None:
            continue
        pending = [i["member"] for i in state["invitations"] if i["accepted"]]
        if state["epoch_required"] or pending:
            active = [m for m, s in _roster(state).items() if s == "active"]
            roster = [everyone[m] for m in active + pending]
            with forum._lock:
                forum.epoch = state["epoch"]
                ev = forum.commit(me, [everyone[m] for m in pending], roster)
            _try(me.submit, ev)
        stop.wait(rng.uniform(0.2, 0.6))


def test_case07_concurrent_admissions_and_removals_converge(nodes: Nodes) -> None:
    proxies: list[FaultProxy] = []
    try:
        orgs = proxied_orgs(nodes, 4, proxies)
        a, b, c, d = orgs
        alice, bob, carol = Member(a, "alice").enroll(), Member(b, "bob").enroll(), Member(
            c, "carol").enroll()  # fmt: skip
        dave, erin = Member(d, "dave").enroll(), Member(b, "erin").enroll()
        everyone = {m.id: m for m in (alice, bob, carol, dave, erin)}
        forum = form_forum(alice, [bob, carol])
        for i, p in enumerate(proxies):  # from here on the network misbehaves
            p.set_faults(Faults(seed=SEED * 10 + i, **NETWORK))
        stop = threading.Event()

        def remove_carol() -> None:
            while carol.id not in {m for m, s in _roster(alice.state(forum.id)).items()
                                   if s == "removed"}:  # fmt: skip
                with forum._lock:
                    forum.epoch = alice.state(forum.id)["epoch"]
                    ev = forum.event(bob, "member.remove", {"subject": carol.id})
                _try(bob.submit, ev)
                time.sleep(0.5)

        def admit(candidate: Member) -> None:
            invite = forum.invite(alice, candidate)
            _try(alice.submit, invite)
            wait_until(f"{candidate.id}'s invitation", lambda: _try(
                candidate.call, "GET", "/invites") and candidate.call(
                "GET", "/invites")["invites"], timeout=60)  # fmt: skip
            while not any(i["member"] == candidate.id and i["accepted"]
                          for i in alice.state(forum.id)["invitations"]) and (
                    _roster(alice.state(forum.id)).get(candidate.id) != "active"):  # fmt: skip
                _try(candidate.submit, forum.accept(candidate, invite))
                time.sleep(0.5)

        def carol_keeps_trying() -> None:
            while not stop.is_set():
                _try(carol.submit, forum.post(carol, "am I still here?"))
                stop.wait(0.3)

        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(remove_carol), pool.submit(admit, dave), pool.submit(admit, erin),
                    pool.submit(carol_keeps_trying),
                    pool.submit(_committer, forum, alice, everyone, alice, stop),
                    pool.submit(_committer, forum, bob, everyone, alice, stop)]  # fmt: skip
            for job in jobs[:3]:
                job.result(timeout=120)
            wait_until("a settled roster at the hub", lambda: (s := alice.state(forum.id)) and (
                not s["epoch_required"] and not s["invitations"]), timeout=90)  # fmt: skip
            stop.set()
            for job in jobs[3:]:
                job.result(timeout=30)
        for p in proxies:  # the network heals; replicas converge
            p.set_faults(Faults())
        final = alice.state(forum.id)
        expected = {alice.id: "active", bob.id: "active", carol.id: "removed",
                    dave.id: "active", erin.id: "active"}  # fmt: skip
        assert _roster(final) == expected
        for m in (bob, dave):  # B (bob, erin) and D (dave) replicate; C was removed
            wait_until(
                f"{m.org.name} converges",
                lambda m=m: (
                    (s := m.state(forum.id))
                    and (s["seq"], s["head"]) == (final["seq"], final["head"])
                ),
                timeout=60,
            )
            assert _roster(m.state(forum.id)) == expected
        # The removed member never came back: no entry of hers after her removal.
        log = alice.log(forum.id)
        removed_at = next(e.seq for e in log if e.signed_event.type == "member.remove")
        assert all(e.signed_event.author != carol.id for e in log[removed_at:])
        # No epoch after the removal was sealed to her device.
        later = [e.signed_event for e in log[removed_at:] if e.signed_event.type == "epoch.commit"]
        assert later and all(carol.agree_kid not in {s["to"] for s in ev.body["secrets"]}
                             for ev in later)  # fmt: skip
        dropped = sum(p.counts["dropped"] + p.counts["lost_answers"] for p in proxies)
        assert dropped > 0, "the proxies injected no fault"
        record("fault_round", 1, fault="roster race", injected=dropped)
    finally:
        for p in proxies:
            p.close()
