// Motions, signed votes and their tallies; the admission conflict check (port of
// cli/member/motions.py, specs/forum-model.md "Thresholds" and "Conflict check").
//
// A vote is a `vote` content entry, so the author's device signature on its event is the
// vote's signature. Only the latest vote of each member active *now* counts. Counting is
// in whole numbers (ceil(a·n / b)), never floats: a browser and a CLI member must reach
// the same verdict on the same votes.

export const KINDS = ["nominate", "remove", "waiver", "amend"];
export const THRESHOLD_OF = { nominate: "admission", remove: "removal", waiver: "waiver", amend: "amendment" };

/** "2/3", "1", "0.5" as [numerator, denominator] in [0, 1] (charter.py parse_fraction). */
export function parseFraction(text, key) {
  const s = String(text).trim();
  let m = /^(\d+)\s*\/\s*(\d+)$/.exec(s);
  let frac = m && Number(m[2]) > 0 ? [Number(m[1]), Number(m[2])] : null;
  if (!frac && (m = /^(\d+)(?:\.(\d+))?$/.exec(s))) frac = [Number((m[1] + (m[2] ?? ""))), 10 ** (m[2] ?? "").length];
  if (!frac || frac[0] > frac[1]) throw new Error(`charter key ${key}: expected a fraction like '2/3', got ${s}`);
  return frac;
}

const ceilShare = ([a, b], n) => Math.floor((a * n + b - 1) / b);

/** Count `votes` ({member: yes?}) of `eligible` members under a charter rule. */
export function tally(rule, eligible, votes) {
  const voters = new Set(eligible);
  const cast = Object.entries(votes).filter(([m]) => voters.has(m));
  const yes = cast.filter(([, v]) => v).length;
  const no = cast.length - yes;
  const n = voters.size;
  const kind = String(rule.rule);
  let ok, words;
  if (kind === "unanimous") [ok, words] = [yes > 0 && no === 0, "unanimous among votes cast"];
  else if (kind === "majority") [ok, words] = [2 * yes > n, "a majority of members"];
  else {
    const need = Math.max(1, ceilShare(parseFraction(kind, "rule"), n));
    [ok, words] = [yes >= need, `${kind} of ${n} eligible (${need} yes)`];
  }
  if ("quorum" in rule) {
    const needCast = ceilShare(parseFraction(rule.quorum, "quorum"), n);
    ok = ok && cast.length >= needCast;
    words += `, quorum ${rule.quorum} (${needCast} votes)`;
  }
  return { yes, no, eligible: n, needed: words, passed: ok && n > 0 };
}

/** Who votes: every active member, except the subject of a removal. */
export function eligibleVoters(motion, activeMembers) {
  return activeMembers.filter((m) => !(motion.kind === "remove" && m === motion.subject));
}

// ---------------------------------------------------------------------------- conflicts

const conflict = (kind, withWhom, detail) => ({ kind, with: withWhom, detail, key: `${kind}:${withWhom}` });
const norm = (names) => new Set((names ?? []).map((n) => String(n).trim().toLowerCase()).filter(Boolean));
const lower = (s) => String(s ?? "").toLowerCase();

/** Why `candidate` may not join as things stand (empty: clear). `cand` and each of
 *  `members` hold the attested org/industry and the intake's declared competitors,
 *  suppliers and reporting lines; declarations count in both directions. */
export function conflictCheck(candidate, cand, members, charter) {
  const out = [];
  const comp = charter.composition;
  const org = lower(cand.org);
  const ids = Object.keys(members).sort();
  const same = ids.filter((m) => lower(members[m].org) === org);
  if (same.length >= Number(comp.max_per_org)) for (const m of same) out.push(conflict("same_org", m, `${m} is already in the forum from ${cand.org}`));
  const industry = cand.industry;
  const limit = industry ? comp.max_per_industry?.[industry] : undefined;
  if (limit !== undefined) {
    const n = ids.filter((m) => members[m].industry === industry).length;
    if (n >= Number(limit)) out.push(conflict("industry_limit", String(industry), `${n} member(s) already from ${industry} (limit ${limit})`));
  }
  if (ids.length >= Number(charter.size.max)) out.push(conflict("forum_full", "size.max", `the forum has ${ids.length} members (max ${charter.size.max})`));
  for (const [kind, key] of [["competitor", "competitors"], ["supplier", "suppliers"]]) {
    const theirs = norm(cand[key]);
    for (const m of ids) {
      const p = members[m];
      if (theirs.has(lower(p.org)) || norm(p[key]).has(org)) out.push(conflict(kind, m, `${cand.org} and ${p.org} declared as ${kind}s`));
    }
  }
  const lines = new Set(cand.reporting_lines ?? []);
  for (const m of ids) {
    if (lines.has(m) || (members[m].reporting_lines ?? []).includes(candidate)) out.push(conflict("reporting_line", m, `a reporting line with ${m}`));
  }
  return out;
}

export const unwaived = (conflicts, waived) => conflicts.filter((c) => !waived.has(c.key));
