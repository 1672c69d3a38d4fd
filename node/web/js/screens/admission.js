// Governance tabs: Members (roster, composition, a removal motion, leaving) and Admission
// (nominations with intake and conflicts, votes with reasons and tallies, waivers,
// charter amendments, invitations). Nothing here admits or removes anyone directly: a
// motion passes by the charter's threshold, then any member's client carries it out
// (duties.js), exactly as a CLI member's does.

import { amendMotion, nominate, removeMotion, vote, waiverMotion } from "../actions.js";
import { blocking, conflicts, isModerator } from "../governance.js";
import { field, form, h, section, who } from "../ui.js";
import { active, composition } from "../view.js";

const none = (text) => h("p", { class: "muted" }, text);
const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
const KIND_WORDS = { nominate: "Nomination of", remove: "Removal of", waiver: "Waiver for", amend: "Charter amendment" };

function motionCard(d, ctx, refresh, m) {
  const v = d.view;
  const t = m.tally;
  const open = m.status !== "carried";
  const mayVote = open && v.status[d.me] === "active" && !(m.kind === "remove" && m.subject === d.me);
  const label = `${KIND_WORDS[m.kind]}${m.subject ? ` ${m.subject}` : ""}`;
  const cs = m.kind === "nominate" && m.subject ? conflicts(v, m) : [];
  const blocked = m.kind === "nominate" && m.subject ? blocking(v, m) : [];
  const reason = h("input", { name: "reason", autocomplete: "off" });
  const cast = (yes) => async () => {
    await vote(ctx.client, d.forum, m.id, yes, reason.value);
    reason.value = "";
    await refresh();
  };
  return h("li", { class: "card motion", dataset: { motion: m.id, kind: m.kind, subject: m.subject ?? "" } },
    h("h4", {}, label), h("p", { class: "meta" }, "proposed by ", who(m.author), " · ", h("span", { class: "tag status" }, m.status)),
    m.body.note ? h("p", {}, `Note: ${m.body.note}`) : null,
    m.body.reason ? h("p", {}, `Reason: ${m.body.reason}`) : null,
    t ? h("p", { class: "tally" }, `${t.yes} yes · ${t.no} no of ${t.eligible} eligible — needs ${t.needed}${t.passed ? " — passed" : ""}`) : null,
    Object.keys(m.votes).length ? h("ul", { class: "votes" }, Object.entries(m.votes).sort().map(([mid, x]) => h("li", {}, who(mid), ` ${x.yes ? "yes" : "no"}`, x.reason ? ` — ${x.reason}` : ""))) : null,
    cs.length ? h("div", { class: blocked.length ? "notice warn" : "notice" }, h("p", {}, blocked.length ? "Blocked by the conflict check:" : "Conflicts (waived):"),
      h("ul", { class: "conflicts" }, cs.map((c) => h("li", {}, c.detail))),
      blocked.length && open ? h("button", { type: "button", onclick: async () => {
        await waiverMotion(ctx.client, d.forum, m.id, "the forum accepts this conflict");
        await refresh();
      } }, `Propose a waiver for ${m.subject}`) : null) : null,
    mayVote ? h("div", { class: "row", role: "group", "aria-label": `Vote on ${label}` }, field("Reason (optional)", reason),
      h("button", { type: "button", onclick: cast(true) }, "Vote yes"), h("button", { type: "button", onclick: cast(false) }, "Vote no")) : null);
}

export const GOVERNANCE_TABS = {
  members: {
    render: (d) => {
      const s = d.state;
      const comp = composition(d.view, Object.fromEntries(Object.values(s.members).map((m) => [m.id, m.org])));
      const removals = Object.values(d.view.motions).filter((m) => m.kind === "remove" && m.status !== "carried");
      return [
        section("Members", h("ul", { class: "list", id: "members" }, Object.values(s.members).map((m) => h("li", { class: "row", dataset: { member: m.id } },
          who(m.id), h("span", {}, m.org), h("span", { class: "tag" }, m.status), m.roles.length ? h("span", { class: "tag" }, m.roles.join(", ")) : null,
          h("span", { class: "muted" }, `${Object.keys(m.devices).length} device(s)`))))),
        removals.length ? section("Removal motions", h("ul", { class: "list" }, removals.map((m) => h("li", {}, `${m.subject}: ${m.tally.yes} yes of ${m.tally.eligible} — ${m.status} (vote in Admission)`)))) : null,
        section("Composition", h("p", {}, `${comp.members} active members; at most ${comp.maxPerOrg} per organization.`),
          h("ul", {}, Object.entries(comp.organizations).map(([o, n]) => h("li", {}, `${o}: ${n}`))),
          comp.overLimit.length ? h("p", { class: "notice warn" }, `Over the charter's limit: ${comp.overLimit.join(", ")}`) : null),
      ].filter(Boolean);
    },
    forms: (ctx, forum, refresh, data) => {
      const others = active(data().view).filter((m) => m !== ctx.account.member);
      const subject = h("select", { name: "subject" }, others.map((m) => h("option", { value: m }, m)));
      const reason = h("input", { name: "reason", required: true });
      const confirm = h("button", { type: "button", class: "danger", hidden: true, onclick: async () => {
        await ctx.client.leave(forum);
        await refresh();
      } }, "Yes, leave this forum");
      return [
        others.length ? h("details", {}, h("summary", {}, "Propose a removal"), form({ class: "stack", "aria-label": "Propose a removal" }, [
          field("Member", subject), field("Reason", reason, "Removal needs the charter's share of the other members' votes; the member does not vote."),
          h("button", { type: "submit", class: "danger" }, "Propose removal")], async () => {
          await removeMotion(ctx.client, forum, subject.value, reason.value);
          reason.value = "";
          await refresh();
        })) : null,
        h("details", {}, h("summary", {}, "Leave this forum"), h("p", {}, "The other members' clients re-key without you: nothing written afterwards can be read on your devices."),
          h("button", { type: "button", onclick: () => (confirm.hidden = false) }, "Leave…"), confirm),
      ].filter(Boolean);
    },
  },
  admission: {
    render: (d, ctx, refresh) => {
      const v = d.view;
      const motions = Object.values(v.motions).sort((a, b) => b.seq - a.seq);
      const inv = Object.values(d.state.invitations);
      const refused = d.duties?.refused ?? [];
      return [
        section("Motions", motions.length ? h("ul", { class: "list", id: "motions" }, motions.map((m) => motionCard(d, ctx, refresh, m))) : none("No motions yet.")),
        section("Invitations", inv.length ? h("ul", { class: "list", id: "invitations" }, inv.map((i) => h("li", { class: "row" }, who(i.candidate), h("span", {}, i.org),
          h("span", { class: "tag" }, i.accepted ? "accepted — admitted at the next epoch" : "waiting for the candidate")))) : none("No open invitations.")),
        refused.length ? section("Refused admissions", h("ul", { class: "list", id: "refused" }, refused.map((r) => h("li", {}, `${r.candidate}: ${r.why}`)))) : null,
      ].filter(Boolean);
    },
    forms: (ctx, forum, refresh, data) => {
      const candidate = h("input", { name: "candidate", required: true, placeholder: "@handle:node.example", autocomplete: "off" });
      const note = h("input", { name: "note" });
      const competitors = h("input", { name: "competitors", autocomplete: "off" });
      const suppliers = h("input", { name: "suppliers", autocomplete: "off" });
      const lines = h("input", { name: "reporting_lines", autocomplete: "off" });
      const out = [form({ class: "stack", "aria-label": "Nominate a candidate" }, [
        field("Member id", candidate, "Their node vouches for them; this browser checks that attestation itself."), field("Note to the candidate", note),
        field("Candidate's competitors", competitors, "Organizations, comma-separated (intake, sealed to members)."), field("Candidate's suppliers", suppliers),
        field("Candidate's reporting lines", lines, "Member ids, comma-separated."),
        h("button", { type: "submit" }, "Nominate"),
      ], async () => {
        await nominate(ctx.client, forum, candidate.value.trim(), { note: note.value, competitors: list(competitors.value), suppliers: list(suppliers.value), reportingLines: list(lines.value) });
        candidate.value = note.value = competitors.value = suppliers.value = lines.value = "";
        await refresh();
      })];
      if (isModerator(data().view, ctx.account.member)) out.push(amendForm(ctx, forum, refresh, data));
      return out;
    },
  },
};

/** A charter amendment: the whole charter travels in the motion (as the CLI's does). */
function amendForm(ctx, forum, refresh, data) {
  const c = data().view.charter;
  const perOrg = h("input", { name: "max_per_org", type: "number", min: 1, max: 12, value: c.composition.max_per_org });
  const sizeMax = h("input", { name: "size_max", type: "number", min: 2, max: 100, value: c.size.max });
  const pledge = h("textarea", { name: "pledge", rows: 3 }, c.pledge);
  const reason = h("input", { name: "reason" });
  return h("details", {}, h("summary", {}, "Propose a charter amendment"), form({ class: "stack", "aria-label": "Propose a charter amendment" }, [
    field("Members per organization at most", perOrg), field("Forum size at most", sizeMax), field("Pledge", pledge), field("Why", reason),
    h("button", { type: "submit" }, "Propose amendment")], async () => {
    const now = data().view.charter;
    const charter = { ...now, composition: { ...now.composition, max_per_org: Number(perOrg.value) }, size: { ...now.size, max: Number(sizeMax.value) }, pledge: pledge.value };
    await amendMotion(ctx.client, forum, charter, reason.value);
    await refresh();
  }));
}
