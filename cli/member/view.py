"""The forum as its members see it: a pure fold of the decrypted log.

``fold_view(forum, me, items, profiles, now_ms)`` takes the entries this device could
open (``items.py`` builds them) and returns a ``ForumView``: the charter, who is in the
forum and with which roles, motions with their signed votes and tallies, invitations,
meetings and attendance, updates, dilemmas, the parking lot, commitments, resources and
survey answers. No I/O, no clock: every client holding the same entries sees the same
forum, and the tests feed it hand-made items.

Member-enforced rules live here: an attendance mark from a non-moderator, a rating from
someone other than the presenter, a charter not carried by a passing amendment — each is
set aside in ``ignored`` with the reason, never applied. Admissions and removals the node
applied without a passing motion are raised in ``alerts`` for every member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.keys import b64u

from .charter import default_charter, pledge_hash
from .meetings import STATUSES, Meeting
from .motions import (
    KINDS,
    THRESHOLD_OF,
    Conflict,
    Motion,
    Tally,
    Vote,
    conflict_check,
    eligible_voters,
    tally,
    unwaived,
)

ACTIVE, REMOVED, LEFT = "active", "removed", "left"
# What counts as taking part, for the "newsletter effect" (reading leaves no trace).
CONTRIBUTIONS = frozenset({"post", "reply", "update", "dilemma", "response", "rsvp",
                           "commitment", "checkin", "parking", "resource"})  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One entry as this device reads it. ``body`` is the opened content (None when the
    device holds no key for it) or, for node-enforced types, the cleartext body with any
    sealed part opened under ``sealed``."""

    seq: int
    type: str
    author: str
    ts: int  # the hub's time: the order and clock everyone agrees on
    event: str  # b64u event id
    epoch: int = 0
    body: Mapping[str, Any] | None = None
    expires: int | None = None


@dataclass
class ForumView:
    forum: str
    me: str
    now: int
    name: str = ""
    charter: dict[str, Any] = field(default_factory=default_charter)
    charter_seq: int = 0
    founding_charter: bool = False  # the creator's first charter, never amended
    creator: str = ""
    status: dict[str, str] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)
    admitted_seq: dict[str, int] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitations: dict[str, dict[str, Any]] = field(default_factory=dict)
    motions: dict[str, Motion] = field(default_factory=dict)
    intakes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pledges: dict[str, dict[str, Any]] = field(default_factory=dict)
    meetings: dict[str, Meeting] = field(default_factory=dict)
    rsvps: dict[str, dict[str, str]] = field(default_factory=dict)
    attendance: dict[str, dict[str, str]] = field(default_factory=dict)
    agendas: dict[str, list[str]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    dilemmas: dict[str, dict[str, Any]] = field(default_factory=dict)
    parking: dict[str, dict[str, Any]] = field(default_factory=dict)
    commitments: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)
    surveys: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    contributions: dict[str, list[int]] = field(default_factory=dict)
    unreadable: int = 0
    ignored: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unauthorized: dict[str, int] = field(default_factory=dict)  # member → seq admitted
    accepted_envelopes: dict[str, Any] = field(default_factory=dict)  # member → envelope

    # ------------------------------------------------------------------ who

    def active(self) -> list[str]:
        return sorted(m for m, s in self.status.items() if s == ACTIVE)

    def is_moderator(self, member: str) -> bool:
        return self.status.get(member) == ACTIVE and "moderator" in self.roles.get(member, ())

    def person(self, member: str) -> dict[str, Any]:
        """Attested org/industry/title, with the latest intake's declarations."""
        intake = self.intakes.get(member, {})
        out = {"competitors": [], "suppliers": [], "reporting_lines": [], **intake}
        out.update(self.profiles.get(member, {}))
        return out

    # ------------------------------------------------------------------ motions

    def tally_of(self, motion: Motion) -> Tally:
        rule = self.charter["thresholds"][THRESHOLD_OF[motion.kind]]
        votes = {m: v.yes for m, v in motion.votes.items()}
        return tally(rule, eligible_voters(motion, self.active()), votes)

    def find_motion(self, ref: str) -> Motion | None:
        if ref in self.motions:
            return self.motions[ref]
        found = [m for i, m in self.motions.items() if i.startswith(ref)]
        return found[0] if len(found) == 1 and len(ref) >= 4 else None

    def waived(self, nomination: str) -> set[str]:
        """Conflict keys waived for a nomination by a waiver motion that passed."""
        out: set[str] = set()
        for m in self.motions.values():
            if m.kind == "waiver" and m.body.get("motion") == nomination and (
                m.status == "carried" or self.tally_of(m).passed
            ):
                out.update(str(k) for k in m.body.get("conflicts", []))
        return out

    def conflicts(self, motion: Motion) -> list[Conflict]:
        """The nomination's conflicts against the forum as it is now (waived ones too)."""
        assert motion.subject is not None
        members = {m: self.person(m) for m in self.active() if m != motion.subject}
        return conflict_check(motion.subject, self.person(motion.subject), members, self.charter)

    def blocking(self, motion: Motion) -> list[Conflict]:
        return unwaived(self.conflicts(motion), self.waived(motion.id))

    # ------------------------------------------------------------------ what is due

    def ready_invites(self) -> list[Motion]:
        """Nominations that passed, are clear of conflicts, and have no invitation yet."""
        out = []
        for m in self.motions.values():
            if m.kind != "nominate" or m.status != "passed" or not m.subject:
                continue
            if self.status.get(m.subject) == ACTIVE or m.subject in self.invitations:
                continue
            if not self.blocking(m):
                out.append(m)
        return out

    def ghosts(self) -> list[str]:
        """Active members admitted without a passing nomination and the pledge, as this
        member judged when it happened: no epoch may be sealed to them again."""
        return sorted(m for m in self.unauthorized if self.status.get(m) == ACTIVE)

    def ready_removals(self) -> list[Motion]:
        return [m for m in self.motions.values() if m.kind == "remove" and m.status == "passed"
                and self.status.get(m.subject or "") == ACTIVE]  # fmt: skip

    def signed_pledge(self, member: str) -> bool:
        """Whether ``member`` already signed the current pledge outside a ``pledge``
        entry: as the creator, with the charter they sealed, or as a candidate, by the
        acceptance of an invitation carrying it (``member.accept`` signs the envelope)."""
        current = pledge_hash(self.charter)
        if member == self.creator and self.founding_charter:
            return True
        env = self.accepted_envelopes.get(member)
        return isinstance(env, Mapping) and env.get("pledge_hash") == current

    def ready_amendments(self) -> list[Motion]:
        return [m for m in self.motions.values() if m.kind == "amend" and m.status == "passed"]

    def admissible(self, candidate: str) -> str | None:
        """Why an accepted invitation must not be sealed to (None: it may).

        The invitation must carry a nomination that passed and the charter's pledge: the
        candidate's ``member.accept`` signs the invitation's id, which commits to both, so
        this is the check that makes an admission without the pledge impossible.
        """
        inv = self.invitations.get(candidate)
        if inv is None or not inv.get("accepted"):
            return "no accepted invitation"
        env = inv.get("envelope")
        if not isinstance(env, Mapping):
            return "the invitation does not open for this device"
        motion = self.motions.get(str(env.get("motion", "")))
        if motion is None or motion.kind != "nominate" or motion.subject != candidate:
            return "the invitation names no nomination of this candidate"
        if motion.status != "carried" and not self.tally_of(motion).passed:
            return "the nomination has not passed"
        if env.get("pledge_hash") != pledge_hash(self.charter):
            return "the invitation does not carry the charter's pledge"
        return None


def fold_view(
    forum: str, me: str, items: Iterable[Item], profiles: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> ForumView:  # fmt: skip
    view = ForumView(forum=forum, me=me, now=now_ms,
                     profiles={k: dict(v) for k, v in profiles.items()})  # fmt: skip
    for item in sorted(items, key=lambda i: i.seq):
        if item.body is None:
            view.unreadable += 1
            continue
        apply = APPLY.get(item.type)
        if apply is not None:
            why = apply(view, item, item.body)
            if why:
                view.ignored.append({"seq": item.seq, "type": item.type, "author": item.author,
                                     "why": why})  # fmt: skip
        if item.type in CONTRIBUTIONS:
            view.contributions.setdefault(item.author, []).append(item.ts)
    for motion in view.motions.values():
        motion.tally = view.tally_of(motion)
        if motion.status == "open" and motion.tally.passed:
            motion.status = "passed"
    _final_alerts(view)
    return view


# ---------------------------------------------------------------------------- node-enforced


def _create(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.creator = it.author
    v.status[it.author], v.roles[it.author], v.admitted_seq[it.author] = ACTIVE, {"moderator"}, 0
    return None


def _invite(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    cand = str(b.get("candidate"))
    env = b.get("sealed")
    v.invitations[cand] = {"invite": it.event, "by": it.author, "seq": it.seq,
                           "accepted": False, "envelope": env}  # fmt: skip
    # The charter entry was sealed before we were admitted: the one we accepted with is
    # our charter; later changes still need a passing amendment (charter_seq is set).
    if not isinstance(env, Mapping):
        return None
    ours = cand == v.me and isinstance(env.get("charter"), Mapping)
    if ours and (v.charter_seq == 0 or v.status.get(v.me) != ACTIVE):
        v.charter, v.charter_seq = dict(env["charter"]), it.seq
        v.name = str(env.get("forum_name", v.name))
    m = v.motions.get(str(env.get("motion", "")))
    if m is not None and m.subject == cand and m.status != "carried":
        m.status, m.carried_seq = "carried", it.seq
    return None


def _accept(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    inv = v.invitations.get(it.author)
    if inv is not None and inv["invite"] == b.get("invite"):
        inv["accepted"] = True
    return None


def _commit(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    # Only a member who could read the forum when this was committed can judge it: the
    # votes behind an earlier admission were sealed under epochs we never held.
    # The same holds for the invitation: one issued before we were admitted carries a
    # nomination and votes sealed from us, so we cannot judge that admission either.
    active = v.status.get(v.me) == ACTIVE
    since = v.admitted_seq.get(v.me, 0)
    for cand in b.get("admit", []):
        inv = v.invitations.get(cand) or {}
        judge = active and int(inv.get("seq", 0)) > since
        why = v.admissible(cand) if judge else None
        if why:
            v.alerts.append({"to": "all", "kind": "unauthorized_admission", "member": cand,
                             "seq": it.seq, "text": f"{cand} was admitted by {it.author}: {why}"})
            v.unauthorized[cand] = it.seq
        v.status[cand], v.roles[cand], v.admitted_seq[cand] = ACTIVE, set(), it.seq
        inv = v.invitations.pop(cand, None)
        if inv is not None and inv.get("accepted"):
            v.accepted_envelopes[cand] = inv.get("envelope")
    return None


def _remove(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    subject = str(b.get("subject"))
    if subject in v.invitations and v.status.get(subject) != ACTIVE:
        v.invitations.pop(subject)  # a withdrawn invitation
        return None
    sealed = b.get("sealed") if isinstance(b.get("sealed"), Mapping) else {}
    m = v.motions.get(str(sealed.get("motion", "")))
    if v.status.get(v.me) != ACTIVE:
        pass  # a removal from before our admission: its motion is sealed from us
    elif subject in v.unauthorized and sealed.get("unauthorized") == v.unauthorized[subject]:
        v.unauthorized.pop(subject)  # undoing an admission nobody voted for needs no vote
    elif m is None or m.kind != "remove" or m.subject != subject or not v.tally_of(m).passed:
        v.alerts.append({"to": "all", "kind": "unauthorized_removal", "member": subject,
                         "seq": it.seq, "text": f"{it.author} removed {subject} "
                                                "without a passing motion"})  # fmt: skip
    elif m.status != "carried":
        m.status, m.carried_seq = "carried", it.seq
    v.status[subject], v.roles[subject] = REMOVED, set()
    return None


def _leave(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.status[it.author], v.roles[it.author] = LEFT, set()
    return None


def _roles(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.roles[str(b.get("member"))] = {str(r) for r in b.get("roles", [])}
    return None


# ---------------------------------------------------------------------------- governance


def _charter(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    if "name" in b and it.author == v.creator and not v.name:
        v.name = str(b["name"])
    if "charter" not in b:
        return None
    if v.charter_seq == 0 and it.author == v.creator:
        v.charter, v.charter_seq = dict(b["charter"]), it.seq
        v.founding_charter = True
        return None
    m = v.motions.get(str(b.get("motion", "")))
    if m is None or m.kind != "amend" or not v.tally_of(m).passed:
        return "a charter change needs an amendment motion that passed"
    if m.body.get("charter") != b["charter"]:
        return "the charter differs from the amendment voted"
    v.charter, v.charter_seq, v.founding_charter = dict(b["charter"]), it.seq, False
    m.status, m.carried_seq = "carried", it.seq
    # A new pledge text is pledged anew, by each member's own act (``accept-pledge``).
    current = b64u(pledge_hash(v.charter))
    v.pledges = {k: p for k, p in v.pledges.items() if p.get("pledge_hash") == current}
    return None


def _motion(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    kind = str(b.get("kind"))
    if kind not in KINDS:
        return f"unknown motion kind {kind!r}"
    subject = b.get("subject")
    v.motions[it.event] = Motion(id=it.event, kind=kind, author=it.author, seq=it.seq,
                                 ts=it.ts, subject=str(subject) if subject else None,
                                 body=dict(b))  # fmt: skip
    if kind == "nominate" and isinstance(b.get("intake"), Mapping) and subject:
        v.intakes[str(subject)] = dict(b["intake"])
    return None


def _vote(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    m = v.motions.get(str(b.get("motion")))
    if m is None:
        return "vote on an unknown motion"
    if m.status == "carried":
        return "the motion was already carried out"
    if b.get("vote") not in ("yes", "no"):
        return "a vote is yes or no"
    m.votes[it.author] = Vote(yes=b["vote"] == "yes", reason=str(b.get("reason", "")),
                              seq=it.seq, event=it.event)  # fmt: skip
    return None


def _intake(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.intakes[str(b.get("subject", it.author))] = dict(b)
    return None


def _pledge(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    if b.get("pledge_hash") != pledge_hash(v.charter):
        return "a pledge of another text than the charter's"
    v.pledges[it.author] = {"seq": it.seq, "ts": it.ts, "event": it.event,
                            "pledge_hash": b64u(b["pledge_hash"])}  # fmt: skip
    return None


from .areas import AREA_APPLY  # noqa: E402  (the content areas need the types above)

APPLY = {
    "forum.create": _create, "member.invite": _invite, "member.accept": _accept,
    "epoch.commit": _commit, "member.remove": _remove, "member.leave": _leave,
    "role.assign": _roles, "charter": _charter, "motion": _motion, "vote": _vote,
    "intake": _intake, "pledge": _pledge, **AREA_APPLY,
}  # fmt: skip


def _final_alerts(v: ForumView) -> None:
    from .reports import attendance_alerts

    v.alerts.extend(attendance_alerts(v))
    since = v.admitted_seq.get(v.me, 0)
    for m in v.active():  # only those admitted while we could read the forum
        if m not in v.pledges and v.admitted_seq.get(m, 0) >= since:
            v.alerts.append({"to": "all", "kind": "pledge_pending", "member": m,
                             "text": f"{m} has not signed the pledge in the forum yet"})


__all__ = ["ACTIVE", "STATUSES", "ForumView", "Item", "fold_view"]
