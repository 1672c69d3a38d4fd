"""Motions, signed votes and their tallies; the admission conflict check (member-enforced).

A vote is a ``vote`` content entry: the author's device signed the event that carries
it, so the event signature is the vote's signature, and the hub's chain fixes its order.
Only the latest vote of each member who is active *now* counts: a member who left or was
removed no longer weighs on the forum's decisions, and a member may change their mind
until the motion is carried out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .charter import parse_fraction

KINDS = ("nominate", "remove", "waiver", "amend")
THRESHOLD_OF = {"nominate": "admission", "remove": "removal", "waiver": "waiver",
                "amend": "amendment"}  # fmt: skip


@dataclass(frozen=True)
class Tally:
    yes: int
    no: int
    eligible: int
    needed: str  # the rule in words, for people
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {"yes": self.yes, "no": self.no, "eligible": self.eligible,
                "needed": self.needed, "passed": self.passed}  # fmt: skip


def tally(rule: Mapping[str, Any], eligible: Iterable[str], votes: Mapping[str, bool]) -> Tally:
    """Count ``votes`` (member → yes) of ``eligible`` members under a charter rule.

    ``unanimous``: every vote cast is yes (at least one); ``majority``: more than half of
    the eligible; ``"a/b"``: at least that share of the eligible say yes. ``quorum``
    (optional): at least that share of the eligible cast a vote.
    """
    voters = set(eligible)
    cast = {m: v for m, v in votes.items() if m in voters}
    yes = sum(1 for v in cast.values() if v)
    no = len(cast) - yes
    n = len(voters)
    kind = str(rule["rule"])
    if kind == "unanimous":
        ok, words = yes > 0 and no == 0, "unanimous among votes cast"
    elif kind == "majority":
        ok, words = 2 * yes > n, "a majority of members"
    else:
        share = parse_fraction(kind, "rule")
        need = max(1, math.ceil(share * n))
        ok, words = yes >= need, f"{kind} of {n} eligible ({need} yes)"
    if "quorum" in rule:
        q = parse_fraction(rule["quorum"], "quorum")
        need_cast = math.ceil(q * n)
        ok = ok and len(cast) >= need_cast
        words += f", quorum {rule['quorum']} ({need_cast} votes)"
    return Tally(yes=yes, no=no, eligible=n, needed=words, passed=ok and n > 0)


@dataclass
class Vote:
    yes: bool
    reason: str
    seq: int
    event: str


@dataclass
class Motion:
    id: str  # event id (b64u) of the motion entry
    kind: str
    author: str
    seq: int
    ts: int
    subject: str | None
    body: dict[str, Any]
    votes: dict[str, Vote] = field(default_factory=dict)
    tally: Tally | None = None
    status: str = "open"  # open | passed | carried
    carried_seq: int | None = None

    def to_json(self, with_reasons: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "motion": self.id, "kind": self.kind, "author": self.author, "seq": self.seq,
            "subject": self.subject, "status": self.status,
            "tally": self.tally.to_json() if self.tally else None,
            "votes": {m: {"vote": "yes" if v.yes else "no",
                          **({"reason": v.reason} if with_reasons and v.reason else {})}
                      for m, v in sorted(self.votes.items())},
        }  # fmt: skip
        for k in ("note", "reason", "motion", "conflicts"):
            if k in self.body:
                out[k] = self.body[k]
        return out


def eligible_voters(motion: Motion, active: Iterable[str]) -> set[str]:
    """Who votes: every active member, except the subject of a removal."""
    voters = set(active)
    if motion.kind == "remove" and motion.subject:
        voters.discard(motion.subject)
    return voters


# ---------------------------------------------------------------------------- conflicts


@dataclass(frozen=True)
class Conflict:
    kind: str  # same_org | industry_limit | forum_full | competitor | supplier | reporting_line
    with_: str  # the member (or limit) it conflicts with
    detail: str

    def key(self) -> str:
        return f"{self.kind}:{self.with_}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "with": self.with_, "detail": self.detail}


def _norm(names: Iterable[Any]) -> set[str]:
    return {str(n).strip().casefold() for n in names if str(n).strip()}


def conflict_check(
    candidate: str,
    cand: Mapping[str, Any],
    members: Mapping[str, Mapping[str, Any]],
    charter: Mapping[str, Any],
) -> list[Conflict]:
    """Why ``candidate`` may not join as things stand (empty: clear).

    ``cand`` and each of ``members`` hold ``org`` and ``industry`` (attested by home
    nodes) and the intake's declared ``competitors``, ``suppliers`` and
    ``reporting_lines`` (member ids). Declarations count in both directions: a member
    who named the candidate's organization a competitor conflicts just as much.
    """
    out: list[Conflict] = []
    comp = charter["composition"]
    org = str(cand.get("org", "")).casefold()
    same = sorted(m for m, p in members.items() if str(p.get("org", "")).casefold() == org)
    if len(same) >= int(comp["max_per_org"]):
        for m in same:
            out.append(Conflict("same_org", m, f"{m} is already in the forum from "
                                               f"{cand.get('org')}"))  # fmt: skip
    industry = cand.get("industry")
    limit = comp["max_per_industry"].get(industry) if industry else None
    if limit is not None:
        n = sum(1 for p in members.values() if p.get("industry") == industry)
        if n >= int(limit):
            out.append(Conflict("industry_limit", str(industry),
                                f"{n} member(s) already from {industry} (limit {limit})"))
    if len(members) >= int(charter["size"]["max"]):
        out.append(Conflict("forum_full", "size.max", f"the forum has {len(members)} "
                                                       f"members (max {charter['size']['max']})"))
    for kind, key in (("competitor", "competitors"), ("supplier", "suppliers")):
        theirs = _norm(cand.get(key, []))
        for m, p in sorted(members.items()):
            m_org = str(p.get("org", "")).casefold()
            if m_org in theirs or org in _norm(p.get(key, [])):
                out.append(Conflict(kind, m, f"{cand.get('org')} and {p.get('org')} "
                                             f"declared as {kind}s"))  # fmt: skip
    lines = set(cand.get("reporting_lines", []))
    for m, p in sorted(members.items()):
        if m in lines or candidate in set(p.get("reporting_lines", [])):
            out.append(Conflict("reporting_line", m, f"a reporting line with {m}"))
    return out


def unwaived(conflicts: list[Conflict], waived: set[str]) -> list[Conflict]:
    return [c for c in conflicts if c.key() not in waived]


def short(ids: Iterable[str], prefix: str) -> str | None:
    """The one id starting with ``prefix`` (people type the first few characters)."""
    found = [i for i in ids if i.startswith(prefix)]
    return found[0] if len(found) == 1 else None
