"""Members of several organizations on several real nodes, driven by the member library.

The forum tests of issue 4 need executives enrolled on different nodes, their clients
talking each to its own home node, and a way to wait until a step has reached every
node before the next member acts on it (federation is asynchronous: a member on a
follower node sees an entry only once the hub pushed it there). ``settle`` is that wait;
the library itself never assumes its node is up to date.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.member import MemberApiError, MemberClient, actions

from .conftest import Nodes
from .federation_kit import Org, new_org, peer_all, wait_until
from .harness import run_cli


@dataclass(frozen=True)
class Person:
    handle: str
    org: str
    industry: str
    node: int  # index into the organizations' nodes


def start_orgs(nodes: Nodes, n: int) -> list[Org]:
    """``n`` nodes with test rate limits, started together and peered both ways: the
    first two through ``peerforum peer add URL --yes`` (what an operator runs), the other
    pairs through the same admin API calls, without a process per call."""
    orgs = [new_org(nodes) for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(Org.start, orgs))
    peer_all(orgs[:2])
    pairs = [(a, b) for i, a in enumerate(orgs) for j, b in enumerate(orgs)
             if i != j and max(i, j) >= 2]  # fmt: skip

    def add(pair: tuple[Org, Org]) -> None:
        me, other = pair
        me.admin("POST", "/admin/peers", {"url": other.url})
        peer = me.admin("POST", f"/admin/peers/{urllib.parse.quote(other.name)}/approve", {})
        assert peer["peer"]["status"] == "approved"

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, pairs))
    return orgs


def enroll(orgs: list[Org], people: Iterable[Person], root: Path) -> dict[str, MemberClient]:
    """The operator adds each person (attested org and industry); their device enrolls."""

    def one(p: Person) -> tuple[str, MemberClient]:
        org = orgs[p.node]
        code = org.admin("POST", "/admin/members", {"handle": p.handle, "org": p.org,
                                                    "industry": p.industry})  # fmt: skip
        return p.handle, MemberClient.enroll(root / p.handle, org.url, code["enrollment_code"])

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, people))


def cli_ok(*args: str) -> Any:
    cut = args.index("--") if "--" in args else len(args)  # options go before "--"
    result = run_cli(*args[:cut], "--json", *args[cut:], timeout=60)
    assert result.returncode == 0, f"peerforum {' '.join(args)}: {result.stderr}{result.stdout}"
    return result.json()


def _q(forum: str) -> str:
    return urllib.parse.quote(forum, safe="")


def head_of(c: MemberClient, forum: str) -> int:
    page = c.session.call("GET", f"/forums/{_q(forum)}/entries?from={1 << 40}&limit=1&wait=0")
    return int(page["head"])


def settle(forum: str, clients: Iterable[MemberClient], timeout: float = 30.0) -> int:
    """Wait until every client's node holds the hub's head; return that head.

    The hub is the node named in the forum id (these tests never move it); one client
    per node is enough to ask."""
    by_node: dict[str, MemberClient] = {}
    for c in clients:  # a candidate not yet invited may not read: ask a member there
        if c.node not in by_node and _may_read(c, forum):
            by_node[c.node] = c
    at_hub = by_node.get(forum.split(":", 1)[1])
    target = head_of(at_hub, forum) if at_hub else max(head_of(c, forum) for c in by_node.values())
    for c in by_node.values():
        wait_until(f"{c.node} at seq {target}", lambda c=c: head_of(c, forum) >= target, timeout)
    return target


def _may_read(c: MemberClient, forum: str) -> bool:
    try:
        head_of(c, forum)
    except MemberApiError as exc:
        if exc.code != "api.forbidden":
            raise
        return False
    return True


def admit(forum: str, members: list[MemberClient], cand: MemberClient, note: str,
          reason: str) -> None:  # fmt: skip
    """Nominate → every member votes yes → a member's sync invites → the candidate sees
    the charter and pledge and accepts → another member's sync commits the admission
    epoch → the candidate's sync records the pledge. Each step settles on every node."""
    everyone = [*members, cand]
    motion = actions.nominate(members[0], forum, cand.member, note=note)
    settle(forum, everyone)
    for m in members:
        actions.vote(m, forum, motion, True, reason)
    settle(forum, everyone)
    synced = members[-1].sync(forum)
    assert synced["invited"] == [cand.member], synced
    settle(forum, everyone)
    wait_until(f"{cand.member}'s invitation", cand.invites)
    assert cand.accept(forum)["pledge"]
    settle(forum, everyone)
    assert members[len(members) // 2].sync(forum)["admitted"] == [cand.member]
    settle(forum, everyone)
    assert cand.sync(forum)["pledged"] is True
    settle(forum, everyone)


def node_files(org: Org) -> list[Path]:
    """Every file a node wrote: its data dir (database, -wal, -shm, keys, config) and log."""
    files = [p for p in org.data.rglob("*") if p.is_file()]
    return files + sorted(org.data.parent.glob(f"{org.data.name}.*.log"))
