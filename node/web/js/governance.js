// The forum's member-enforced governance in the browser (port of the governance half of
// cli/member/view.py): charters and amendments, motions, votes, intakes, pledges, and
// what is due — nominations to invite, removals to carry out, amendments to post — plus
// `admissible`, the check that keeps an epoch from being sealed to a candidate without
// a passing nomination and the charter's pledge. Same bodies, same verdicts as the CLI.

import { equalBytes } from "./codec.js";
import { pledgeHash } from "./charter.js";
import { KINDS, THRESHOLD_OF, conflictCheck, eligibleVoters, tally, unwaived } from "./motions.js";

const str = (v) => (v === undefined || v === null ? "" : String(v));
export const active = (v) => Object.keys(v.status).filter((m) => v.status[m] === "active").sort();
export const isModerator = (v, m) => v.status[m] === "active" && (v.roles[m] ?? []).includes("moderator");

/** Attested org/industry/title, with the latest intake's declarations. */
export function person(v, member) {
  return { competitors: [], suppliers: [], reporting_lines: [], ...(v.intakes[member] ?? {}), ...(v.profiles[member] ?? {}) };
}

export function tallyOf(v, motion) {
  const rule = v.charter.thresholds[THRESHOLD_OF[motion.kind]];
  const votes = Object.fromEntries(Object.entries(motion.votes).map(([m, x]) => [m, x.yes]));
  return tally(rule, eligibleVoters(motion, active(v)), votes);
}

const passedOrCarried = (v, m) => m.status === "carried" || tallyOf(v, m).passed;

/** Conflict keys waived for a nomination by a waiver motion that passed. */
export function waived(v, nomination) {
  const out = new Set();
  for (const m of Object.values(v.motions)) {
    if (m.kind === "waiver" && m.body.motion === nomination && passedOrCarried(v, m)) for (const k of m.body.conflicts ?? []) out.add(String(k));
  }
  return out;
}

/** The nomination's conflicts against the forum as it is now (waived ones too). */
export function conflicts(v, motion) {
  const members = Object.fromEntries(active(v).filter((m) => m !== motion.subject).map((m) => [m, person(v, m)]));
  return conflictCheck(motion.subject, person(v, motion.subject), members, v.charter);
}

export const blocking = (v, motion) => unwaived(conflicts(v, motion), waived(v, motion.id));

/** Nominations that passed, are clear of conflicts, and have no invitation yet. */
export const readyInvites = (v) => Object.values(v.motions).filter((m) => m.kind === "nominate" && m.status === "passed" && m.subject &&
  v.status[m.subject] !== "active" && !v.invitations[m.subject] && !blocking(v, m).length);
export const readyRemovals = (v) => Object.values(v.motions).filter((m) => m.kind === "remove" && m.status === "passed" && v.status[m.subject ?? ""] === "active");
export const readyAmendments = (v) => Object.values(v.motions).filter((m) => m.kind === "amend" && m.status === "passed");

/** Why an accepted invitation must not be sealed to (null: it may). The candidate's
 *  member.accept signed the invitation's id, which commits to the nomination and the
 *  pledge it carries: so no admission without a passing vote and the pledge. */
export async function admissible(v, candidate) {
  const inv = v.invitations[candidate];
  if (!inv || !inv.accepted) return "no accepted invitation";
  const env = inv.envelope;
  if (!env || typeof env !== "object") return "the invitation does not open for this device";
  const motion = v.motions[str(env.motion)];
  if (!motion || motion.kind !== "nominate" || motion.subject !== candidate) return "the invitation names no nomination of this candidate";
  if (motion.status !== "carried" && !tallyOf(v, motion).passed) return "the nomination has not passed";
  if (!(env.pledge_hash instanceof Uint8Array) || !equalBytes(env.pledge_hash, await pledgeHash(v.charter))) return "the invitation does not carry the charter's pledge";
  return null;
}

// ---------------------------------------------------------------------------- the fold

export const GOVERNANCE = {
  charter: (v, it, b) => {
    if ("name" in b && it.author === v.creator && !v.name) v.name = str(b.name);
    if (!("charter" in b)) return null;
    if (v.charterSeq === 0 && it.author === v.creator) {
      [v.charter, v.charterSeq] = [b.charter, it.seq];
      return null;
    }
    const m = v.motions[str(b.motion)];
    if (!m || m.kind !== "amend" || !tallyOf(v, m).passed) return "a charter change needs an amendment motion that passed";
    if (JSON.stringify(canonical(m.body.charter)) !== JSON.stringify(canonical(b.charter))) return "the charter differs from the amendment voted";
    [v.charter, v.charterSeq] = [b.charter, it.seq];
    [m.status, m.carriedSeq] = ["carried", it.seq];
    v.notices.push({ kind: "charter", seq: it.seq, ts: it.ts, text: `The charter was amended (motion by ${m.author})` });
    return null;
  },
  motion: (v, it, b) => {
    const kind = str(b.kind);
    if (!KINDS.includes(kind)) return `unknown motion kind ${kind}`;
    const subject = b.subject ? str(b.subject) : null;
    v.motions[it.event] = { id: it.event, kind, author: it.author, seq: it.seq, ts: it.ts, subject, body: b, votes: {}, tally: null, status: "open", carriedSeq: null };
    if (kind === "nominate" && b.intake && typeof b.intake === "object" && subject) v.intakes[subject] = { ...b.intake };
    return null;
  },
  vote: (v, it, b) => {
    const m = v.motions[str(b.motion)];
    if (!m) return "vote on an unknown motion";
    if (m.status === "carried") return "the motion was already carried out";
    if (b.vote !== "yes" && b.vote !== "no") return "a vote is yes or no";
    m.votes[it.author] = { yes: b.vote === "yes", reason: str(b.reason), seq: it.seq, event: it.event };
    return null;
  },
  intake: (v, it, b) => {
    v.intakes[str(b.subject ?? it.author)] = { ...b };
    return null;
  },
  pledge: async (v, it, b) => {
    if (!(b.pledge_hash instanceof Uint8Array) || !equalBytes(b.pledge_hash, await pledgeHash(v.charter))) return "a pledge of another text than the charter's";
    v.pledges[it.author] = { seq: it.seq, ts: it.ts, event: it.event };
    return null;
  },
};

/** Keys sorted at every depth, so two charters compare by content, not key order. */
function canonical(x) {
  if (Array.isArray(x)) return x.map(canonical);
  if (x && typeof x === "object" && !(x instanceof Uint8Array)) return Object.fromEntries(Object.keys(x).sort().map((k) => [k, canonical(x[k])]));
  return x;
}

/** After the fold: every motion's tally, open ones that passed marked so. */
export function closeMotions(v) {
  for (const m of Object.values(v.motions)) {
    m.tally = tallyOf(v, m);
    if (m.status === "open" && m.tally.passed) m.status = "passed";
  }
}
