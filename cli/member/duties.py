"""Client duties: what any member's client carries out when it syncs (issue 4).

Each duty follows from the forum's own record, so any member's client may do it and the
hub takes the first valid one (a second gets ``rules.stale_epoch`` or finds the work
done on its next look):

0. a member admitted without a passing nomination and the pledge (``ForumView.ghosts``,
   raised as an ``unauthorized_admission`` alert) → ``member.remove`` sealed with
   ``{unauthorized: seq}``: the node requires every epoch to be sealed to the whole
   roster, so removing the ghost is the only way to seal the next epoch without it;
1. a removal motion that passed → ``member.remove`` (motion and reason sealed);
2. a new epoch when one is due — after a removal or leave, or to admit candidates who
   accepted an invitation that carries a passing nomination and the charter's pledge
   (``ForumView.admissible``); anyone else is refused here, never sealed to;
3. a nomination that passed and is clear of conflicts (or whose conflicts a waiver
   vote lifted) → ``member.invite`` with the charter and pledge sealed to the candidate;
4. an amendment that passed → the new ``charter`` entry;
5. this member's own ``pledge`` entry once admitted — only for a pledge the member
   already signed (the creator's founding charter, or the invitation they accepted).
   A pledge changed by an amendment is never re-signed here: sync reports it as
   ``pledge_due`` and ``forum accept-pledge`` signs it (``accept_pledge``).

Removal comes first and invitations after the epoch: content and invitations must not be
sealed while a removed member's devices could still hold the current epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.codec import Value
from protocol.keys import b64u

from .api import MemberApiError
from .charter import pledge_hash
from .view import ACTIVE

if TYPE_CHECKING:
    from .client import MemberClient

ROUNDS = 4


def run_duties(client: MemberClient, forum: str) -> dict[str, Any]:
    report: dict[str, Any] = {"forum": forum, "committed": False, "admitted": [], "removed": [],
                              "invited": [], "refused": [], "blocked": [], "amended": [],
                              "pledged": False, "ghosts": [], "pledge_due": None}  # fmt: skip
    for _ in range(ROUNDS):
        state, entries = client.verified(forum)
        view = client._view(forum, entries)
        report["epoch"] = state.epoch
        if view.status.get(client.member) != ACTIVE or state.members.get(
            client.member
        ) is None or state.members[client.member].status != ACTIVE:
            return report
        ghost = next(iter(view.ghosts()), None)
        if ghost is not None:  # DESIGN §4: never seal to anyone not properly admitted
            try:
                client.remove(forum, ghost, {"unauthorized": view.unauthorized[ghost],
                                             "reason": "admitted without a passing nomination "
                                                       "and the pledge"})  # fmt: skip
            except MemberApiError as exc:  # another member's client was first
                if exc.code != "rules.not_member":
                    raise
                continue
            report["removed"].append(ghost)
            report["ghosts"].append(ghost)
            continue
        removal = next((m for m in view.ready_removals()), None)
        if removal is not None and removal.subject:
            sealed: dict[str, Value] = {"motion": removal.id,
                                        "reason": str(removal.body.get("reason", ""))}
            client.remove(forum, removal.subject, sealed)
            report["removed"].append(removal.subject)
            continue
        accepted = sorted(c for c, inv in state.invitations.items() if inv.accepted)
        admit, refused = [], []
        for cand in accepted:
            why = view.admissible(cand)
            (refused.append({"candidate": cand, "why": why}) if why else admit.append(cand))
        report["refused"] = refused
        if state.epoch_required or admit:
            if client._commit_epoch(forum, admit):
                report["committed"] = True
                report["admitted"] += admit
            continue
        report["blocked"] = [
            {"motion": m.id, "subject": m.subject,
             "conflicts": [c.to_json() for c in view.blocking(m)]}
            for m in view.motions.values()
            if m.kind == "nominate" and m.status == "passed" and view.blocking(m)
        ]  # fmt: skip
        did = False
        for motion in view.ready_invites():
            assert motion.subject is not None
            envelope: dict[str, Value] = {
                "forum_name": view.name, "charter": view.charter,
                "pledge": view.charter["pledge"], "pledge_hash": pledge_hash(view.charter),
                "motion": motion.id, "nominated_by": motion.author,
                "note": str(motion.body.get("note", "")),
            }  # fmt: skip
            client.issue_invite(forum, motion.subject, envelope)
            report["invited"].append(motion.subject)
            did = True
        for motion in view.ready_amendments():
            client.content(forum, "charter", {"charter": motion.body["charter"],
                                              "motion": motion.id}, duties=False)  # fmt: skip
            report["amended"].append(motion.id)
            did = True
        if client.member not in view.pledges and view.signed_pledge(client.member):
            client.content(forum, "pledge", {"pledge_hash": pledge_hash(view.charter)},
                           duties=False)
            report["pledged"] = did = True
        elif client.member not in view.pledges:  # an amended pledge: the member's own act
            report["pledge_due"] = {"pledge": view.charter["pledge"],
                                    "pledge_hash": b64u(pledge_hash(view.charter))}
        if not did:
            return report
    raise MemberApiError("client.busy", "the forum kept changing; run forum sync again")


def accept_pledge(client: MemberClient, forum: str) -> dict[str, Any]:
    """This member signs the forum's current pledge (after an amendment changed it)."""
    view = client.view(forum)
    if view.status.get(client.member) != ACTIVE:
        raise MemberApiError("rules.not_member", f"{client.member} is not an active member")
    digest = pledge_hash(view.charter)
    event = None
    if client.member not in view.pledges:
        event = client.content(forum, "pledge", {"pledge_hash": digest})
    return {"event": event, "pledge": view.charter["pledge"], "pledge_hash": b64u(digest)}
