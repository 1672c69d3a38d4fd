// The forum's cadence and accountability tabs: meetings (calendar, agenda, RSVP,
// attendance), commitments, the parking lot, resources and the health survey. Bodies are
// those of cli/member/areas.py, so a CLI member and a browser member see the same forum.

import { field, form, h, section, who } from "../ui.js";
import { attend } from "../actions.js";
import { attendanceAlerts, quietMembers, toIcal } from "../reports.js";
import { RSVP, STATUSES, active, isModerator, parkingRanked, surveyResults, SURVEY_MIN } from "../view.js";

const none = (text) => h("p", { class: "muted" }, text);
const select = (name, options) => h("select", { name }, options.map((o) => h("option", { value: o }, o)));
const num = (name, min, max) => h("input", { name, type: "number", min, max, required: true, value: min });

function meetingCard(d, ctx, forum, refresh, m) {
  const v = d.view;
  const mine = v.rsvps[m.id]?.[d.me];
  const rsvps = Object.entries(v.rsvps[m.id] ?? {});
  const agenda = v.agendas[m.id] ?? v.charter.agenda ?? [];
  const rsvp = (answer) => h("button", { type: "button", "aria-pressed": mine === answer ? "true" : "false", onclick: async () => {
    await ctx.client.content(forum, "rsvp", { meeting: m.id, answer });
    await refresh();
  } }, answer);
  const mod = isModerator(v, d.me);
  return h("li", { class: "card" },
    h("h4", {}, `${m.title} — ${m.start.replace("T", " ")} (${m.timezone}, ${m.hours} h)`),
    h("p", {}, "Agenda:"), h("ol", {}, agenda.map((x) => h("li", {}, x))),
    h("div", { class: "row", role: "group", "aria-label": `RSVP for ${m.id}` }, "RSVP: ", RSVP.map(rsvp)),
    rsvps.length ? h("p", { class: "muted" }, rsvps.map(([k, a]) => `${k.split(":")[0]} ${a}`).join(" · ")) : null,
    mod ? attendanceForm(d, ctx, forum, refresh, m) : null,
    Object.keys(v.attendance[m.id] ?? {}).length ? h("p", {}, "Attendance: ", Object.entries(v.attendance[m.id]).map(([k, s]) => `${k.split(":")[0]} ${s}`).join(" · ")) : null);
}

/** The .ics is built here and handed over as a blob: meeting titles never reach the node. */
function downloadIcal(d) {
  const blob = new Blob([toIcal(d.view.name, Object.values(d.view.meetings), d.forum)], { type: "text/calendar" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${(d.view.name || "forum").replace(/[^\w.-]+/g, "-")}.ics` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function attendanceForm(d, ctx, forum, refresh, m) {
  const memberSel = select("member", active(d.view));
  const status = select("status", STATUSES);
  return form({ class: "inline", "aria-label": `Record attendance for ${m.id}` }, [field("Member", memberSel), field("Status", status), h("button", { type: "submit" }, "Record")], async () => {
    await attend(ctx.client, forum, m.id, memberSel.value, status.value);
    await refresh();
  });
}

/** A ranked topic: score it (a `vote` replaces this member's earlier scores) or close it. */
function parkingRow(d, ctx, refresh, r) {
  const imp = num("importance", 1, 5);
  const urg = num("urgency", 1, 5);
  const send = (body) => async () => {
    await ctx.client.content(d.forum, "parking", { item: r.item, ...body });
    await refresh();
  };
  return h("li", { class: "row", dataset: { item: r.item } }, h("span", {}, r.title),
    h("span", { class: "muted score" }, `importance ${r.importance.toFixed(1)} × urgency ${r.urgency.toFixed(1)} · ${r.votes} vote(s)`),
    h("div", { class: "row", role: "group", "aria-label": `Score ${r.title}` }, field("Importance", imp), field("Urgency", urg),
      h("button", { type: "button", onclick: () => send({ action: "vote", importance: Number(imp.value), urgency: Number(urg.value) })() }, "Vote")),
    h("button", { type: "button", "aria-label": `Close ${r.title}`, onclick: send({ action: "close" }) }, "Close"));
}

export const AREA_TABS = {
  meetings: {
    render: (d, ctx, refresh) => {
      const ms = Object.values(d.view.meetings).sort((a, b) => a.start.localeCompare(b.start));
      const alerts = isModerator(d.view, d.me) ? attendanceAlerts(d.view) : [];
      return [
        alerts.length ? h("div", { class: "notice warn", role: "status", id: "attendance-alerts" }, alerts.map((a) => h("p", {}, a.text))) : null,
        section("Meetings", ms.length ? h("ul", { class: "list" }, ms.map((m) => meetingCard(d, ctx, d.forum, refresh, m))) : none("No meetings scheduled."),
          ms.length ? h("button", { type: "button", onclick: () => downloadIcal(d) }, "Download calendar (.ics)") : null),
      ].filter(Boolean);
    },
    forms: (ctx, forum, refresh, data) => {
      if (!isModerator(data().view, ctx.account.member)) return [];
      const date = h("input", { name: "date", type: "date", required: true });
      const start = h("input", { name: "start", type: "time", required: true, value: "09:00" });
      const title = h("input", { name: "title", required: true, value: "Forum meeting" });
      const hours = num("hours", 1, 12);
      hours.value = 4;
      return [h("details", {}, h("summary", {}, "Schedule a meeting"), form({ "aria-label": "Schedule a meeting" }, [field("Date", date), field("Start", start), field("Hours", hours), field("Title", title), h("button", { type: "submit" }, "Schedule")], async () => {
        const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
        const meeting = { id: date.value, start: `${date.value}T${start.value}`, hours: Number(hours.value), title: title.value, timezone: tz };
        await ctx.client.content(forum, "meeting", { meetings: [meeting] });
        await refresh();
      }))];
    },
  },
  commitments: {
    render: (d, ctx, refresh) => {
      const cs = Object.values(d.view.commitments);
      return [section("Commitments", cs.length ? h("ul", { class: "list" }, cs.map((c) => h("li", { class: "row" }, who(c.author), h("span", {}, c.text), h("span", { class: "muted" }, `due ${c.due || "—"}`), h("span", { class: "tag" }, c.status),
        c.author === d.me || isModerator(d.view, d.me) ? ["done", "missed"].map((s) => h("button", { type: "button", onclick: async () => {
          await ctx.client.content(d.forum, "checkin", { commitment: c.commitment, status: s });
          await refresh();
        } }, `Mark ${s}`)) : null))) : none("No commitments yet."))];
    },
    forms: (ctx, forum, refresh) => {
      const text = h("input", { name: "commitment", required: true });
      const due = h("input", { name: "due", type: "date" });
      return [form({ class: "stack", "aria-label": "Make a commitment" }, [field("I commit to", text), field("Due", due), h("button", { type: "submit" }, "Commit")], async () => {
        await ctx.client.content(forum, "commitment", { text: text.value, due: due.value });
        text.value = "";
        await refresh();
      })];
    },
  },
  parking: {
    render: (d, ctx, refresh) => {
      const rows = parkingRanked(d.view);
      return [section("Parking lot (ranked)", rows.length ? h("ol", { class: "list", id: "parking" }, rows.map((r) => parkingRow(d, ctx, refresh, r))) : none("The parking lot is empty."))];
    },
    forms: (ctx, forum, refresh) => {
      const title = h("input", { name: "topic", required: true });
      const imp = num("importance", 1, 5);
      const urg = num("urgency", 1, 5);
      return [form({ class: "stack", "aria-label": "Park a topic" }, [field("Topic", title), field("Importance (1-5)", imp), field("Urgency (1-5)", urg), h("button", { type: "submit" }, "Park topic")], async () => {
        await ctx.client.content(forum, "parking", { action: "add", title: title.value, importance: Number(imp.value), urgency: Number(urg.value) });
        title.value = "";
        await refresh();
      })];
    },
  },
  resources: {
    render: (d) => [section("Resource library", d.view.resources.length ? h("ul", { class: "list" }, d.view.resources.map((r) => h("li", {},
      /^https:\/\//.test(r.url) ? h("a", { href: r.url, rel: "noopener noreferrer", target: "_blank" }, r.title || r.url) : h("span", {}, r.title),
      r.note ? ` — ${r.note}` : "", h("span", { class: "muted" }, " shared by "), who(r.author)))) : none("No resources yet."))],
    forms: (ctx, forum, refresh) => {
      const title = h("input", { name: "title", required: true });
      const url = h("input", { name: "url", type: "url" });
      const note = h("input", { name: "note" });
      return [form({ class: "stack", "aria-label": "Share a resource" }, [field("Title", title), field("Link", url), field("Why it helped", note), h("button", { type: "submit" }, "Share")], async () => {
        await ctx.client.content(forum, "resource", { title: title.value, url: url.value, note: note.value });
        title.value = url.value = note.value = "";
        await refresh();
      })];
    },
  },
  health: {
    render: (d) => {
      const v = d.view;
      const rounds = Object.keys(v.surveys).sort();
      const res = rounds.length ? surveyResults(v, rounds.at(-1)) : null;
      const quiet = quietMembers(v, 3);
      const alerts = isModerator(v, d.me) ? attendanceAlerts(v) : [];
      return [
        section("Survey", !res ? none("No survey answers yet.") : res.shown
          ? h("div", {}, h("p", {}, `Round ${res.round}: ${res.answers} answers, mean ${res.mean.toFixed(1)}, median ${res.median}`), h("ul", {}, res.comments.map((c) => h("li", {}, c))))
          : h("p", {}, `Round ${res.round}: ${res.answers} answer(s). Results appear from ${SURVEY_MIN} answers, so no one's answer can be singled out.`)),
        section("Engagement", h("p", {}, `${active(v).length} active members · ${Object.values(v.commitments).filter((c) => c.status === "open").length} open commitments`),
          h("p", { id: "newsletter" }, quiet.since === null
            ? `The newsletter effect is measured over the last ${quiet.meetingsBack} meetings held (${quiet.held} so far).`
            : quiet.quiet.length ? `Read but did not contribute since ${quiet.since}: ${quiet.quiet.map((m) => m.split(":")[0]).join(", ")}` : `Everyone contributed since ${quiet.since}.`),
          alerts.length ? h("ul", { id: "health-alerts" }, alerts.map((a) => h("li", {}, a.text))) : null,
          h("p", {}, `Pledges pending: ${active(v).filter((m) => !v.pledges[m]).map((m) => m.split(":")[0]).join(", ") || "none"}`)),
      ];
    },
    forms: (ctx, forum, refresh) => {
      const round = h("input", { name: "round", required: true, value: new Date().toISOString().slice(0, 7) });
      const score = num("score", 1, 10);
      const text = h("textarea", { name: "comment", rows: 2 });
      return [form({ class: "stack", "aria-label": "Answer the health survey" }, [field("Round", round), field("How valuable is the forum to you (1-10)?", score), field("Comment (optional)", text, "Shown only with at least five answers, sorted apart from scores and names."), h("button", { type: "submit" }, "Answer")], async () => {
        await ctx.client.content(forum, "survey", { round: round.value, score: Number(score.value), text: text.value });
        text.value = "";
        await refresh();
      })];
    },
  },
};

