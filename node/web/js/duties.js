// Client duties (port of cli/member/duties.py): what any member's browser carries out when
// it syncs a forum, each following from the forum's own record so that any member may do
// it and the hub takes the first valid one (a second finds the work done):
//
// 1. a removal motion that passed → member.remove (motion and reason sealed);
// 2. a new epoch when one is due, or to admit candidates whose accepted invitation
//    carries a passing nomination and the charter's pledge (governance.admissible);
//    anyone else is refused here, never sealed to;
// 3. a nomination that passed, clear of conflicts (or waived) → member.invite;
// 4. an amendment that passed → the new charter entry;
// 5. this member's own pledge entry once admitted.
//
// Removal comes first and invitations after the epoch: nothing may be sealed while a
// removed member's devices could still hold the current epoch.

import { ApiError } from "./api.js";
import { pledgeHash } from "./charter.js";
import { admissible, blocking, readyAmendments, readyInvites, readyRemovals } from "./governance.js";

const ROUNDS = 4;

export async function runDuties(client, forum) {
  const report = { forum, committed: false, admitted: [], removed: [], invited: [], refused: [], blocked: [], amended: [], pledged: false };
  for (let round = 0; round < ROUNDS; round++) {
    const { state, view } = await client.view(forum);
    report.epoch = state.epoch;
    report.current = { state, view }; // what the page shows when nothing was due
    if (view.status[client.member] !== "active" || state.members[client.member]?.status !== "active") return report;
    const removal = readyRemovals(view)[0];
    if (removal?.subject) {
      report.current = null;
      await client.remove(forum, removal.subject, { motion: removal.id, reason: String(removal.body.reason ?? "") });
      report.removed.push(removal.subject);
      continue;
    }
    const accepted = Object.values(state.invitations).filter((i) => i.accepted).map((i) => i.candidate).sort();
    const admit = [];
    report.refused = [];
    for (const cand of accepted) {
      const why = await admissible(view, cand);
      if (why) report.refused.push({ candidate: cand, why });
      else admit.push(cand);
    }
    if (state.epochRequired || admit.length) {
      report.current = null;
      if (await client.commitEpoch(forum, admit)) {
        report.committed = true;
        report.admitted.push(...admit);
      }
      continue;
    }
    report.blocked = Object.values(view.motions).filter((m) => m.kind === "nominate" && m.status === "passed" && blocking(view, m).length)
      .map((m) => ({ motion: m.id, subject: m.subject, conflicts: blocking(view, m) }));
    let did = false;
    for (const m of readyInvites(view)) {
      const envelope = {
        forum_name: view.name, charter: view.charter, pledge: view.charter.pledge, pledge_hash: await pledgeHash(view.charter),
        motion: m.id, nominated_by: m.author, note: String(m.body.note ?? ""),
      };
      await client.invite(forum, m.subject, envelope);
      report.invited.push(m.subject);
      did = true;
    }
    for (const m of readyAmendments(view)) {
      await client.content(forum, "charter", { charter: m.body.charter, motion: m.id }, { duties: false });
      report.amended.push(m.id);
      did = true;
    }
    if (!view.pledges[client.member]) {
      await client.content(forum, "pledge", { pledge_hash: await pledgeHash(view.charter) }, { duties: false });
      report.pledged = did = true;
    }
    if (!did) return report;
    report.current = null;
  }
  throw new ApiError("client.busy", "the forum kept changing; open it again");
}
