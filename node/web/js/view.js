// The forum as its members see it, in the browser: a pure fold of the opened items
// (port of cli/member/view.py, areas.py and parts of reports.py). Same bodies, same
// member-enforced rules: an attendance mark from a non-moderator or a rating by someone
// other than the presenter is set aside in `ignored`, never applied.
//
// Governance (charters, motions, votes, intakes, pledges, admissibility) lives in
// governance.js; the reports of cli/member/reports.py in reports.js. Admissions and
// removals the node applied without a passing motion are raised in `alerts` for all.

import { defaultCharter } from "./charter.js";
import { GOVERNANCE, active, admissible, closeMotions, isModerator, tallyOf } from "./governance.js";
import { attendanceAlerts } from "./reports.js";

export { active, isModerator };

export const SURVEY_MIN = 5; // aggregates only, from at least this many answers
export const STATUSES = ["present", "late", "excused", "absent"];
export const RSVP = ["yes", "no", "maybe"];
const CHECKINS = ["done", "missed", "renegotiated"];
const CONTRIBUTIONS = new Set(["post", "reply", "update", "dilemma", "response", "rsvp", "commitment", "checkin", "parking", "resource"]);
const str = (v) => (v === undefined || v === null ? "" : String(v));

export function emptyView(forum, me, now, profiles = {}) {
  return {
    forum, me, now, name: "", charter: defaultCharter(), charterSeq: 0, creator: "", profiles, motions: {}, intakes: {},
    status: {}, roles: {}, admittedSeq: {}, invitations: {}, pledges: {}, meetings: {}, rsvps: {},
    attendance: {}, agendas: {}, updates: [], dilemmas: {}, parking: {}, commitments: {}, resources: [],
    surveys: {}, posts: [], contributions: {}, unreadable: 0, ignored: [], alerts: [], notices: [],
  };
}


// ---------------------------------------------------------------------------- node-enforced

const NODE = {
  "forum.create": (v, it) => {
    v.creator = it.author;
    [v.status[it.author], v.roles[it.author], v.admittedSeq[it.author]] = ["active", ["moderator"], 0];
  },
  "member.invite": (v, it, b) => {
    const cand = str(b.candidate);
    const env = b.sealed ?? null;
    v.invitations[cand] = { invite: it.event, by: it.author, seq: it.seq, accepted: false, envelope: env };
    if (!env || typeof env !== "object") return;
    // The charter entry was sealed before we were admitted: the one we accepted with is
    // our charter; later changes still need a passing amendment (charterSeq is set).
    if (cand === v.me && env.charter && typeof env.charter === "object" && (v.charterSeq === 0 || v.status[v.me] !== "active")) {
      [v.charter, v.charterSeq, v.name] = [env.charter, it.seq, str(env.forum_name ?? v.name)];
    }
    const m = v.motions[str(env.motion)];
    if (m && m.subject === cand && m.status !== "carried") [m.status, m.carriedSeq] = ["carried", it.seq];
  },
  "member.accept": (v, it, b) => {
    const inv = v.invitations[it.author];
    if (inv && inv.invite === b.invite) inv.accepted = true;
  },
  "epoch.commit": async (v, it, b) => {
    for (const c of b.admit ?? []) {
      const why = await admissible(v, c);
      if (why) v.alerts.push({ to: "all", kind: "unauthorized_admission", member: c, seq: it.seq, text: `${c} was admitted by ${it.author}: ${why}` });
      [v.status[c], v.roles[c], v.admittedSeq[c]] = ["active", [], it.seq];
      delete v.invitations[c];
    }
    v.notices.push({ kind: "epoch", seq: it.seq, ts: it.ts, text: `New key epoch ${b.epoch} committed by ${it.author}${(b.admit ?? []).length ? `, admitting ${b.admit.join(", ")}` : ""}` });
  },
  "member.remove": (v, it, b) => {
    const subject = str(b.subject);
    if (v.invitations[subject] && v.status[subject] !== "active") {
      delete v.invitations[subject]; // a withdrawn invitation
      return;
    }
    const sealed = b.sealed && typeof b.sealed === "object" ? b.sealed : {};
    const m = v.motions[str(sealed.motion)];
    if (!m || m.kind !== "remove" || m.subject !== subject || !tallyOf(v, m).passed) {
      v.alerts.push({ to: "all", kind: "unauthorized_removal", member: subject, seq: it.seq, text: `${it.author} removed ${subject} without a passing motion` });
    } else if (m.status !== "carried") [m.status, m.carriedSeq] = ["carried", it.seq];
    [v.status[subject], v.roles[subject]] = ["removed", []];
    const reason = b.sealed?.reason ? `: ${b.sealed.reason}` : "";
    v.notices.push({ kind: "removal", seq: it.seq, ts: it.ts, member: subject, text: `${it.author} removed ${subject}${reason}` });
  },
  "member.leave": (v, it) => {
    [v.status[it.author], v.roles[it.author]] = ["left", []];
    v.notices.push({ kind: "removal", seq: it.seq, ts: it.ts, member: it.author, text: `${it.author} left the forum` });
  },
  "role.assign": (v, it, b) => {
    v.roles[str(b.member)] = (b.roles ?? []).map(String);
  },
};

// ---------------------------------------------------------------------------- content areas

const score = (b) => {
  const [imp, urg] = [b.importance, b.urgency];
  return Number.isInteger(imp) && Number.isInteger(urg) && imp >= 1 && imp <= 5 && urg >= 1 && urg <= 5 ? [imp, urg] : null;
};

const AREAS = {
  meeting: (v, it, b) => {
    if (!isModerator(v, it.author)) return "only a moderator schedules meetings";
    for (const m of b.meetings ?? []) v.meetings[str(m.id)] = { id: str(m.id), start: str(m.start), hours: Number(m.hours), title: str(m.title), timezone: str(m.timezone) };
    for (const id of b.cancel ?? []) delete v.meetings[str(id)];
  },
  agenda: (v, it, b) => {
    if (!isModerator(v, it.author)) return "only a moderator publishes the agenda";
    v.agendas[str(b.meeting)] = (b.items ?? []).map(String);
  },
  rsvp: (v, it, b) => {
    const mid = str(b.meeting);
    if (!v.meetings[mid] || !RSVP.includes(b.answer)) return "an RSVP names a scheduled meeting and yes, no or maybe";
    (v.rsvps[mid] ??= {})[it.author] = b.answer;
  },
  attendance: (v, it, b) => {
    if (!isModerator(v, it.author)) return "only a moderator records attendance";
    const mid = str(b.meeting);
    if (!v.meetings[mid] || !STATUSES.includes(b.status)) return "attendance names a scheduled meeting and a status";
    (v.attendance[mid] ??= {})[str(b.member)] = b.status;
  },
  update: (v, it, b) => {
    // `expired`: its ciphertext was deleted by every node (§6.9); author and time remain.
    v.updates.push({ event: it.event, author: it.author, ts: it.ts, text: str(b.text), expires: it.expires, expired: b.expired === true });
  },
  dilemma: (v, it, b) => {
    v.dilemmas[it.event] = { dilemma: it.event, author: it.author, ts: it.ts, seq: it.seq, issue: str(b.issue), why: str(b.why), decision: str(b.decision), ask: str(b.ask), responses: [], helpful: null };
  },
  response: (v, it, b) => {
    const d = v.dilemmas[str(b.dilemma)];
    if (!d) return "a response to an unknown dilemma";
    d.responses.push({ author: it.author, text: str(b.text), ts: it.ts });
  },
  rating: (v, it, b) => {
    const d = v.dilemmas[str(b.dilemma)];
    if (!d || d.author !== it.author) return "only the presenter rates a dilemma's responses";
    d.helpful = !!b.helpful;
  },
  parking: (v, it, b) => {
    if (b.action === "add") {
      const s = score(b);
      if (!s) return "importance and urgency are 1-5";
      v.parking[it.event] = { item: it.event, title: str(b.title), author: it.author, seq: it.seq, open: true, scores: { [it.author]: s } };
      return null;
    }
    const item = v.parking[str(b.item)];
    if (!item) return "no such parking-lot item";
    if (b.action === "vote") {
      const s = score(b);
      if (!s) return "importance and urgency are 1-5";
      item.scores[it.author] = s;
    } else if (b.action === "close") item.open = false;
    else return `unknown parking action ${str(b.action)}`;
  },
  commitment: (v, it, b) => {
    v.commitments[it.event] = { commitment: it.event, author: it.author, ts: it.ts, text: str(b.text), due: str(b.due), status: "open", checkins: [] };
  },
  checkin: (v, it, b) => {
    const c = v.commitments[str(b.commitment)];
    if (!c) return "a check-in on an unknown commitment";
    if (it.author !== c.author && !isModerator(v, it.author)) return "only its author or a moderator checks in on a commitment";
    if (!CHECKINS.includes(b.status)) return "a check-in is done, missed or renegotiated";
    c.status = b.status;
    if (b.status === "renegotiated" && b.due) c.due = str(b.due);
    c.checkins.push({ by: it.author, status: b.status, ts: it.ts, ...(b.note ? { note: str(b.note) } : {}) });
  },
  resource: (v, it, b) => {
    v.resources.push({ resource: it.event, author: it.author, ts: it.ts, title: str(b.title), url: str(b.url), note: str(b.note) });
  },
  survey: (v, it, b) => {
    if (!Number.isInteger(b.score) || b.score < 1 || b.score > 10) return "a survey score is 1-10";
    // Kept per author only so a later answer replaces an earlier one; never shown alone.
    (v.surveys[str(b.round)] ??= {})[it.author] = { score: b.score, text: str(b.text) };
  },
  post: (v, it, b) => {
    v.posts.push({ event: it.event, seq: it.seq, author: it.author, ts: it.ts, type: it.type, text: str(b.text), ...(b.to ? { to: str(b.to) } : {}) });
  },
};
AREAS.reply = AREAS.post;

/** Fold items (forum.js ForumClient.items) into the view; no I/O, no clock but `now`.
 *  `profiles` are the attested {org, industry?, title?} of everyone the log names. */
export async function foldView(forum, me, items, now, profiles = {}) {
  const v = emptyView(forum, me, now, profiles);
  for (const it of [...items].sort((a, b) => a.seq - b.seq)) {
    if (it.body === null) {
      v.unreadable += 1;
      v.posts.push({ event: it.event, seq: it.seq, author: it.author, ts: it.ts, type: it.type, unreadable: true });
      continue;
    }
    const apply = NODE[it.type] ?? GOVERNANCE[it.type] ?? AREAS[it.type];
    const why = apply ? await apply(v, it, it.body) : null;
    if (why) v.ignored.push({ seq: it.seq, type: it.type, author: it.author, why });
    if (CONTRIBUTIONS.has(it.type)) (v.contributions[it.author] ??= []).push(it.ts);
  }
  closeMotions(v);
  v.alerts.push(...attendanceAlerts(v));
  const since = v.admittedSeq[me] ?? 0;
  for (const m of active(v)) { // only those admitted while we could read the forum
    if (!v.pledges[m] && (v.admittedSeq[m] ?? 0) >= since) v.alerts.push({ to: "all", kind: "pledge_pending", member: m, text: `${m} has not signed the pledge in the forum yet` });
  }
  return v;
}

// ---------------------------------------------------------------------------- reports

/** Open topics by mean importance × mean urgency (ties: oldest first). */
export function parkingRanked(v) {
  const rows = Object.values(v.parking).filter((i) => i.open).map((i) => {
    const s = Object.values(i.scores);
    const imp = s.reduce((a, x) => a + x[0], 0) / s.length;
    const urg = s.reduce((a, x) => a + x[1], 0) / s.length;
    return { ...i, importance: imp, urgency: urg, score: imp * urg, votes: s.length };
  });
  return rows.sort((a, b) => b.score - a.score || a.seq - b.seq);
}

/** Aggregates only, and only from SURVEY_MIN answers: never one member's answer. */
export function surveyResults(v, round) {
  const answers = Object.values(v.surveys[round] ?? {});
  const out = { round, answers: answers.length, minimum: SURVEY_MIN, shown: answers.length >= SURVEY_MIN };
  if (!out.shown) return out;
  const scores = answers.map((a) => a.score).sort((a, b) => a - b);
  const mid = scores.length >> 1;
  out.mean = scores.reduce((a, x) => a + x, 0) / scores.length;
  out.median = scores.length % 2 ? scores[mid] : (scores[mid - 1] + scores[mid]) / 2;
  out.comments = answers.map((a) => a.text).filter(Boolean).sort();
  return out;
}

/** Alerts this member should see: moderators see those addressed to moderators too. */
export const alertsFor = (v, member) => v.alerts.filter((a) => a.to === "all" || isModerator(v, member));

/** Organizations of the active members (from attestations verified in forum.js). */
export function composition(v, orgs) {
  const counts = {};
  for (const m of active(v)) counts[orgs[m] ?? "?"] = (counts[orgs[m] ?? "?"] ?? 0) + 1;
  const max = v.charter.composition?.max_per_org ?? 1;
  return { members: active(v).length, organizations: counts, maxPerOrg: max, overLimit: Object.keys(counts).filter((o) => counts[o] > max).sort() };
}

