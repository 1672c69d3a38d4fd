// What a member does in a forum beyond posting (port of cli/member/actions.py): motions
// and votes, the member-enforced checks a client can make before signing (a moderator's
// act, the presenter's rating), so the member gets a clear refusal instead of an entry
// every other client would set aside. Bodies are byte for byte those of the CLI.

import { ApiError } from "./api.js";
import { conflicts, isModerator } from "./governance.js";

const refuse = (code, message) => new ApiError(code, message);
const CHECK = { maxAgeMs: 3000 }; // the page folded the log just now: no refetch to check

function mustBeActive(view, me) {
  if (view.status[me] !== "active") throw refuse("rules.not_member", `${me} is not an active member of ${view.forum}`);
}

/** A nomination carrying the candidate's attestation (verified here) and intake. */
export async function nominate(client, forum, candidate, { note = "", competitors = [], suppliers = [], reportingLines = [] } = {}) {
  const { view } = await client.view(forum, CHECK);
  mustBeActive(view, client.member);
  if (view.status[candidate] === "active") throw refuse("rules.already_member", `${candidate} is already a member`);
  const { obj } = await client.attestation(candidate);
  const intake = { subject: candidate, competitors, suppliers, reporting_lines: reportingLines };
  return client.content(forum, "motion", { kind: "nominate", subject: candidate, note, attestation: obj, intake });
}

export async function removeMotion(client, forum, member, reason) {
  const { view } = await client.view(forum, CHECK);
  mustBeActive(view, client.member);
  if (view.status[member] !== "active") throw refuse("rules.not_member", `${member} is not an active member`);
  return client.content(forum, "motion", { kind: "remove", subject: member, reason });
}

/** A motion to waive the nomination's current conflicts (voted on by its own rule). */
export async function waiverMotion(client, forum, nomination, reason) {
  const { view } = await client.view(forum, CHECK);
  mustBeActive(view, client.member);
  const m = view.motions[nomination];
  if (!m || m.kind !== "nominate") throw refuse("client.unknown_motion", "a waiver is for a nomination");
  const keys = conflicts(view, m).map((c) => c.key);
  if (!keys.length) throw refuse("client.no_conflict", "the nomination has no conflict to waive");
  return client.content(forum, "motion", { kind: "waiver", motion: m.id, subject: m.subject, conflicts: keys, reason });
}

export async function amendMotion(client, forum, charter, reason = "") {
  const { view } = await client.view(forum, CHECK);
  mustBeActive(view, client.member);
  return client.content(forum, "motion", { kind: "amend", charter, reason });
}

export async function vote(client, forum, motionId, yes, reason = "") {
  const { view } = await client.view(forum, CHECK);
  mustBeActive(view, client.member);
  const m = view.motions[motionId];
  if (!m) throw refuse("client.unknown_motion", `no motion ${motionId}`);
  if (m.status === "carried") throw refuse("client.motion_closed", "the motion was already carried out");
  if (m.kind === "remove" && m.subject === client.member) throw refuse("rules.not_permitted", "the subject of a removal does not vote on it");
  return client.content(forum, "vote", { motion: m.id, vote: yes ? "yes" : "no", reason });
}

/** This member's own intake: competitors, suppliers, reporting lines (sealed). */
export const declare = (client, forum, { competitors = [], suppliers = [], reportingLines = [] }) =>
  client.content(forum, "intake", { subject: client.member, competitors, suppliers, reporting_lines: reportingLines });

export async function rate(client, forum, dilemma, helpful) {
  const { view } = await client.view(forum, CHECK);
  if (view.dilemmas[dilemma]?.author !== client.member) throw refuse("rules.not_permitted", "only the presenter rates the responses");
  return client.content(forum, "rating", { dilemma, helpful });
}

export async function attend(client, forum, meeting, member, status) {
  const { view } = await client.view(forum, CHECK);
  if (!isModerator(view, client.member)) throw refuse("rules.not_permitted", "only a moderator may record attendance");
  return client.content(forum, "attendance", { meeting, member, status });
}
