// One forum: a tab bar, the tab's forms (static, so typing is never interrupted) and a
// region re-filled whenever new entries arrive (long poll on the entries route).
//
// On every refresh the client's duties run first — commit a new epoch after an
// admission, removal or leave — so nothing is sealed to an epoch a removed device holds.

import { field, form, h, section, time, who, describe } from "../ui.js";
import { rate } from "../actions.js";
import { active, alertsFor } from "../view.js";
import { GOVERNANCE_TABS } from "./admission.js";
import { AREA_TABS } from "./areas.js";

const TAB_DEFS = { ...GOVERNANCE_TABS, ...AREA_TABS };

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

const TABS = [
  ["stream", "Stream"], ["members", "Members"], ["admission", "Admission"], ["meetings", "Meetings"],
  ["commitments", "Commitments"], ["parking", "Parking lot"], ["resources", "Resources"],
  ["health", "Health"], ["notices", "Notices"],
];

/** Everything a tab renders from: the verified state, the member view, the node's report.
 *  An active member's duties run first (duties.js), so what is due is done before the
 *  page shows the forum, and nothing is sealed to an epoch a removed device holds. */
async function load(ctx, forum, reported) {
  let duties = null;
  let dutyError = null;
  try {
    duties = await ctx.client.sync(forum); // returns at once for a member no longer active
  } catch (err) {
    if (err.code === "api.forbidden") throw err; // removed: the node refuses the forum
    dutyError = err; // e.g. a ghost on the roster: refuse, and say so
  }
  const { state, view } = duties?.current ?? await ctx.client.view(forum);
  return { forum, state, view, reported, dutyError, duties, me: ctx.account.member };
}

export async function forumScreen(ctx, forum, tab, signal) {
  const region = h("div", { class: "region", id: "region", "aria-live": "polite" });
  const banner = h("div", { class: "banners" });
  let data;
  const tabDef = TABS.find(([id]) => id === tab) ? tab : "stream";
  const render = () => {
    banner.replaceChildren(...banners(data));
    region.replaceChildren(...(RENDER[tabDef] ?? TAB_DEFS[tabDef].render)(data, ctx, refresh));
  };
  // The node's own view (cleartext state) only tells whether the forum is frozen; asked
  // once per screen, since every member request counts against the node's rate limit.
  const reported = await ctx.session.reportedState(forum).catch(() => null);
  // One refresh at a time; calls meanwhile (a form and the long poll both waking) fold
  // into a single follow-up, so the node sees one round of requests, not one per caller.
  let running = null;
  let again = false;
  const refresh = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        data = await load(ctx, forum, reported);
        render();
      } while (again);
    })().finally(() => { running = null; });
    return running;
  };
  try {
    data = await load(ctx, forum, reported);
  } catch (err) {
    if (err.code === "api.forbidden") return removedScreen(ctx, forum);
    throw err;
  }
  const forms = (FORMS[tabDef] ?? TAB_DEFS[tabDef]?.forms)?.(ctx, forum, refresh, () => data) ?? [];
  render(); // after the forms: rendered items hook into them (reply, respond, remove)
  poll(ctx, forum, signal, refresh, banner);
  const tabs = h("nav", { class: "tabs", "aria-label": "Forum sections" }, TABS.map(([id, label]) =>
    h("a", { href: `#/forum/${encodeURIComponent(forum)}/${id}`, "aria-current": id === tabDef ? "page" : null }, label)));
  return h("div", { class: "screen forum", dataset: { forum } },
    h("h2", {}, data.view.name || "Unnamed forum"),
    h("p", { class: "muted" }, `Hub ${data.state.hub} · epoch ${data.state.epoch} · ${plural(active(data.view).length, "member")}`),
    tabs, banner, ...forms, region);
}

/** New entries wake the page (the node holds the request until one exists, ≤ 25 s). */
async function poll(ctx, forum, signal, refresh, banner) {
  while (!signal.aborted) {
    try {
      const seq = ctx.client.cache.get(forum)?.state?.seq ?? 0;
      const page = await ctx.session.entries(forum, { from: seq + 1, limit: 1, wait: 25, signal });
      if (signal.aborted) return;
      if (page.entries.length) await refresh();
    } catch (err) {
      if (signal.aborted) return;
      if (err.code === "api.forbidden") {
        banner.replaceChildren(h("p", { class: "notice warn", role: "alert" }, "You are no longer a member of this forum: nothing written from now on can be read here."));
        return;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function removedScreen(ctx, forum) {
  return h("div", { class: "screen" }, h("h2", {}, "Forum closed to you"),
    h("p", { class: "notice warn", role: "alert" }, "You are no longer a member of this forum. Your node refuses its entries, and what members write from now on is sealed under keys this device does not hold."),
    h("p", { class: "muted" }, forum));
}

function banners(d) {
  const out = [];
  if (d.reported?.frozen) out.push(h("p", { class: "notice warn", role: "alert" }, "This forum is frozen: its hub was proven to sign two different histories. Nothing can be posted until members move the hub."));
  if (d.state.epochRequired) out.push(h("p", { class: "notice", role: "status" }, "Membership changed: a new key epoch is due before anything can be posted."));
  if (d.dutyError) out.push(h("p", { class: "notice warn", role: "alert" }, `A client duty was refused: ${describe(d.dutyError)}`));
  const me = d.state.members[d.me];
  if (me && me.status !== "active") out.push(h("p", { class: "notice warn", role: "alert" }, `You have ${me.status === "left" ? "left" : "been removed from"} this forum: later entries are unreadable here.`));
  return out;
}

// ---------------------------------------------------------------------------- stream

function postItem(p, view, onReply) {
  if (p.unreadable) {
    return h("li", { class: "post unreadable", dataset: { seq: p.seq } }, h("p", { class: "meta" }, who(p.author), ` · ${p.type} · ${time(p.ts)}`), h("p", { class: "muted" }, "Sealed under a key epoch this device does not hold."));
  }
  const parent = p.to ? view.posts.find((x) => x.event === p.to) : null;
  return h("li", { class: `post ${p.type}`, dataset: { seq: p.seq } },
    h("p", { class: "meta" }, who(p.author), ` · ${time(p.ts)}`, parent ? h("span", {}, " · in reply to ", who(parent.author)) : null),
    h("p", { class: "text" }, p.text),
    onReply ? h("button", { type: "button", class: "link", onclick: () => onReply(p), "aria-label": `Reply to ${p.author}` }, "Reply") : null);
}

const RENDER = {
  stream(d) {
    const v = d.view;
    const posts = v.posts.filter((p) => p.unreadable ? ["post", "reply", "update", "dilemma", "response"].includes(p.type) : true);
    return [
      section("Posts", posts.length ? h("ol", { class: "posts", id: "posts" }, posts.map((p) => postItem(p, v, replyHook))) : h("p", { class: "muted" }, "Nothing posted yet.")),
      section("Updates", v.updates.length ? h("ul", { class: "list" }, v.updates.map((u) => (u.expired || (u.expires && u.expires <= v.now)
        ? h("li", { class: "muted expired", dataset: { event: u.event } }, who(u.author), ": (expired)")
        : h("li", { dataset: { event: u.event } }, who(u.author), `: ${u.text}`)))) : h("p", { class: "muted" }, "No updates.")),
      section("Dilemmas", Object.values(v.dilemmas).length ? h("ul", { class: "list" }, Object.values(v.dilemmas).map((x) => h("li", { class: "card" },
        h("h4", {}, x.issue), h("p", {}, "Why it matters: ", x.why), h("p", {}, "The decision: ", x.decision), h("p", {}, "The ask: ", x.ask),
        h("p", { class: "meta" }, "presented by ", who(x.author), x.helpful === null ? "" : x.helpful ? " · found it helpful" : " · did not find it helpful"),
        h("ul", {}, x.responses.map((r) => h("li", {}, who(r.author), `: ${r.text}`))),
        x.author === d.me ? rateButtons(x) : null,
        responseForm(x)))) : h("p", { class: "muted" }, "No dilemmas.")),
    ];
  },
  notices(d) {
    const v = d.view;
    const all = [...v.notices].reverse();
    return [
      section("Notices", all.length ? h("ul", { class: "list", id: "notices" }, all.map((n) => h("li", { class: `notice-item ${n.kind}` }, h("span", { class: "muted" }, time(n.ts)), " ", n.text))) : h("p", { class: "muted" }, "Nothing yet.")),
      section("Alerts", alertsFor(v, d.me).length ? h("ul", { class: "list", id: "alerts" }, alertsFor(v, d.me).map((a) => h("li", { class: `alert ${a.kind}` }, a.text))) : h("p", { class: "muted" }, "None.")),
      v.ignored.length ? section("Set aside (broke a member-enforced rule)", h("ul", {}, v.ignored.map((x) => h("li", {}, `#${x.seq} ${x.type} by ${x.author}: ${x.why}`)))) : null,
      v.unreadable ? h("p", { class: "muted" }, `${v.unreadable} entries are sealed under epochs this device never held (from before you joined).`) : null,
    ].filter(Boolean);
  },
};

// The stream's forms are built once; these hooks let rendered items reach them.
let replyHook = null;
let responseForm = () => null;
let rateButtons = () => null;

const FORMS = {
  stream(ctx, forum, refresh) {
    const text = h("textarea", { name: "text", required: true, rows: 3, maxlength: 20000 });
    const replyTo = { event: null };
    const replying = h("p", { class: "hint", role: "status" });
    replyHook = (p) => {
      replyTo.event = p.event;
      replying.textContent = `Replying to ${p.author}`;
      text.focus();
    };
    responseForm = (x) => {
      const r = h("input", { name: "response", required: true });
      return form({ class: "inline", "aria-label": "Respond with your experience" }, [field("Your experience", r), h("button", { type: "submit" }, "Respond")], async () => {
        await ctx.client.content(forum, "response", { dilemma: x.dilemma, text: r.value });
        await refresh();
      });
    };
    // The presenter says whether the responses helped (a `rating`; others' are set aside).
    rateButtons = (x) => h("div", { class: "row", role: "group", "aria-label": `Rate the responses to ${x.issue}` }, "Were the responses helpful? ",
      [[true, "Helpful"], [false, "Not helpful"]].map(([yes, label]) => h("button", { type: "button", "aria-pressed": x.helpful === yes ? "true" : "false", onclick: async () => {
        await rate(ctx.client, forum, x.dilemma, yes);
        await refresh();
      } }, label)));
    const fields = Object.fromEntries(["issue", "why", "decision", "ask"].map((k) => [k, h("input", { name: k, required: true })]));
    const update = h("input", { name: "update", required: true });
    return [
      form({ class: "compose", "aria-label": "Write a post" }, [field("Write to the forum", text, "Sealed on this device before it leaves."), replying, h("button", { type: "submit" }, "Post")], async () => {
        const body = replyTo.event ? { text: text.value, to: replyTo.event } : { text: text.value };
        await ctx.client.content(forum, replyTo.event ? "reply" : "post", body);
        text.value = "";
        replyTo.event = null;
        replying.textContent = "";
        await refresh();
      }),
      h("details", {}, h("summary", {}, "Share an update"), form({ "aria-label": "Share an update" }, [field("Update", update), h("button", { type: "submit" }, "Share update")], async () => {
        const retention = 30 * 86_400_000; // charter default; the node deletes the ciphertext when due
        await ctx.client.content(forum, "update", { text: update.value }, { expires: Date.now() + retention });
        update.value = "";
        await refresh();
      })),
      h("details", {}, h("summary", {}, "Bring a dilemma"), form({ "aria-label": "Bring a dilemma" }, [field("The issue", fields.issue), field("Why it matters", fields.why), field("The decision", fields.decision), field("The ask", fields.ask), h("button", { type: "submit" }, "Present dilemma")], async () => {
        await ctx.client.content(forum, "dilemma", Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value])));
        await refresh();
      })),
    ];
  },
};
