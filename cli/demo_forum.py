"""The forum ``peerforum demo`` builds: three members on three nodes, formed the real way.

Nothing here is a shortcut the protocol would not take in production: the founder's
client creates the forum, each newcomer is nominated, voted in by the charter's rule,
invited with the charter and pledge sealed to their device, accepts (signing the pledge)
and is admitted by a member's ``sync`` with a new epoch. Then a meeting is scheduled and
a few posts are sealed, so every node holds ciphertext it cannot read and every member's
profile can open it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .admin_client import AdminClient
from .member import MemberClient, actions
from .member.charter import pledge_hash, validate

Step = Callable[[str], None]  # reports progress to the person watching

FORUM_NAME = "Demo Circle"
CHARTER = {
    "purpose": "Three leaders from three companies help each other decide well.",
    "pledge": "What is said in the Demo Circle stays in the Demo Circle.",
    "size": {"min": 3, "max": 12},  # a demo circle of three is complete, not undersized
}
POSTS = [
    (0, "Welcome, both of you. Ground rule one: nothing leaves this forum."),
    (1, "Thanks. My dilemma for next month: do we open a second plant or automate?"),
    (2, "We automated in 2021; happy to share what we would do differently."),
]


@dataclass(frozen=True)
class DemoMember:
    handle: str
    org: str
    industry: str
    profile: Path
    client: MemberClient

    @property
    def id(self) -> str:
        return self.client.member


PEOPLE = [("alice", "Acme", "Manufacturing"), ("bob", "Beta", "Banking"),
          ("carol", "Coda", "Retail")]  # fmt: skip


def enroll_members(
    admins: list[AdminClient], urls: list[str], root: Path, step: Step
) -> list[DemoMember]:
    """One member per node: the operator's code, then the device's own keys."""
    members = []
    for admin, url, (handle, org, industry) in zip(admins, urls, PEOPLE, strict=True):
        step(f"enrolling @{handle} on {url}")
        answer = admin.call(
            "POST", "/admin/members",
            {"handle": handle, "org": org, "industry": industry, "new_code": False},
        )  # fmt: skip
        profile = root / f"profile-{handle}"
        client = MemberClient.enroll(profile, url, answer["enrollment_code"])
        members.append(DemoMember(handle, org, industry, profile, client))
    return members


def _wait(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Federation is asynchronous: what one node sequenced reaches the others shortly."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


def _has_motion(member: DemoMember, forum: str, motion: str) -> bool:
    return motion in member.client.view(forum).motions


def _has_meeting(member: DemoMember, forum: str, meeting: str) -> bool:
    return meeting in member.client.view(forum).meetings


def _accepted_at_hub(hub_member: DemoMember, forum: str, candidate: str) -> bool:
    invitations = hub_member.client.reported_state(forum).get("invitations", [])
    return any(i.get("member") == candidate and i.get("accepted") for i in invitations)


def admit(forum: str, voters: list[DemoMember], candidate: DemoMember, step: Step) -> None:
    """Nominate, vote, invite, accept with the pledge, admit with a new epoch."""
    step(f"admitting {candidate.id}: nomination and votes")
    motion = actions.nominate(voters[0].client, forum, candidate.id,
                              note=f"{candidate.org} runs a tight ship")  # fmt: skip
    for v in voters:  # each voter's node must first hold the nomination the hub sequenced
        _wait(f"the nomination at {v.client.node}", partial(_has_motion, v, forum, motion))
        actions.vote(v.client, forum, motion, True, "a good fit for the circle")
    step(f"admitting {candidate.id}: invitation, pledge, new epoch")
    hub = voters[0]  # it sees every vote as soon as it is sequenced
    _wait(
        f"the vote on {candidate.id} to pass",
        lambda: hub.client.view(forum).motions[motion].status == "passed",
    )
    invited = hub.client.sync(forum)["invited"]
    if candidate.id not in invited:
        raise RuntimeError(f"{candidate.id} was not invited: {invited}")
    # The candidate's node learns of the forum by the invitation the hub forwards to it,
    # and the hub of the acceptance the candidate's node forwards back.
    _wait(
        f"{candidate.id}'s invitation",
        lambda: any(i["forum"] == forum for i in candidate.client.invites()),
    )
    candidate.client.accept(forum)
    _wait(
        f"{candidate.id}'s acceptance at the hub",
        lambda: _accepted_at_hub(voters[0], forum, candidate.id),
    )
    admitted = hub.client.sync(forum)["admitted"]
    if candidate.id not in admitted:
        raise RuntimeError(f"{candidate.id} was not admitted: {admitted}")
    _wait(
        f"{candidate.id}'s admission at {candidate.client.node}",
        lambda: candidate.client.view(forum).status.get(candidate.id) == "active",
    )
    _pledge(candidate, forum)


def _pledge(member: DemoMember, forum: str) -> None:
    """The new member records the pledge they signed (duty 5 of ``forum sync``), and the
    demo waits until it is back sequenced: on a node other than the hub the pledge is
    forwarded, and every later step (RSVPs, posts) must see it in place."""
    view = member.client.view(forum)
    member.client.content(forum, "pledge", {"pledge_hash": pledge_hash(view.charter)},
                          duties=False)  # fmt: skip
    _wait(f"{member.id}'s pledge", lambda: member.id in member.client.view(forum).pledges)


def form_forum(members: list[DemoMember], step: Step) -> dict[str, object]:
    """The forum spanning all three nodes, with a meeting and a few posts."""
    founder = members[0]
    step(f"{founder.id} creates the forum (hub: {founder.client.node})")
    forum = founder.client.create_forum(FORUM_NAME, validate(CHARTER))
    for i in range(1, len(members)):
        admit(forum, members[:i], members[i], step)
    step("scheduling the year's meetings and posting")
    start = dt.date.today() + dt.timedelta(days=14)
    meetings = actions.schedule(founder.client, forum, start)
    first = str(meetings[0]["id"])
    for m in members:
        _wait(f"the meetings at {m.client.node}", partial(_has_meeting, m, forum, first))
        actions.rsvp(m.client, forum, first, "yes")
    posted = [members[i].client.post(forum, text) for i, text in POSTS]

    def sequenced() -> bool:  # posts from other nodes reach the hub by forwarding
        return set(posted) <= {e["event"] for e in founder.client.read(forum)["entries"]}

    _wait("every post at the hub", sequenced)
    head = founder.client.read(forum)["head"]
    for m in members[1:]:  # every replica holds the whole log before we say "ready"
        m.client.read(forum, wait_seq=head, timeout_s=30)
    return {"forum": forum, "meeting": first, "posts": posted, "head": head}
