// The forums list: forums this member is in, a form to create one, and invitations
// waiting for this member — each with the charter and pledge sealed to this device,
// which accepting signs (member.accept commits to the invitation's id).

import { field, form, h, section, who } from "../ui.js";

const forumLink = (f, name) => h("a", { href: `#/forum/${encodeURIComponent(f)}/stream` }, name || "Unnamed forum");

async function forumName(ctx, forum) {
  try {
    return (await ctx.client.view(forum)).view.name;
  } catch {
    return "";
  }
}

export async function forumsScreen(ctx) {
  const forums = (await ctx.session.forums()).filter((f) => f.as === "member");
  const invites = await ctx.session.invites();
  const rows = await Promise.all(forums.map(async (f) => h("li", { class: "row" }, forumLink(f.forum, await forumName(ctx, f.forum)), h("span", { class: "muted" }, `hub ${f.hub} · ${f.seq} entries · epoch ${f.epoch}`))));
  const name = h("input", { name: "name", required: true, maxlength: 128 });
  return h("div", { class: "screen" },
    h("h2", {}, "Your forums"),
    section("Forums", rows.length ? h("ul", { class: "list", id: "forum-list" }, rows) : h("p", { class: "muted" }, "You are in no forum yet.")),
    section("Invitations waiting for you", invites.length ? h("ul", { class: "list" }, await Promise.all(invites.map((i) => inviteCard(ctx, i)))) : h("p", { class: "muted" }, "None.")),
    section("Create a forum",
      h("p", { class: "hint" }, "The name travels only sealed (in the forum's charter): no node can read it."),
      form({ class: "stack", "aria-label": "Create a forum" }, [field("Forum name", name), h("button", { type: "submit" }, "Create forum")], async () => {
        const forum = await ctx.client.createForum(name.value.trim());
        location.hash = `#/forum/${encodeURIComponent(forum)}/stream`;
      })));
}

async function inviteCard(ctx, inv) {
  let opened;
  try {
    opened = await ctx.client.invitation(inv.forum);
  } catch (err) {
    return h("li", { class: "row" }, h("span", {}, `${inv.forum}: ${err.message}`));
  }
  const env = opened.envelope;
  if (!env) return h("li", { class: "card" }, h("p", {}, "An invitation this device cannot open (sealed to another device)."));
  const charter = env.charter ?? {};
  return h("li", { class: "card invite" },
    h("h4", {}, env.forum_name || "A forum"), h("p", {}, "Invited by ", who(opened.event.author), env.note ? ` — “${env.note}”` : ""),
    charter.purpose ? h("p", {}, charter.purpose) : null,
    charter.ground_rules ? h("ul", {}, charter.ground_rules.map((r) => h("li", {}, r))) : null,
    h("blockquote", { class: "pledge" }, env.pledge ?? "(no pledge)"),
    form({ "aria-label": "Accept the invitation" }, [h("button", { type: "submit" }, "Accept and sign the pledge")], async (el) => {
      await ctx.client.accept(inv.forum);
      el.replaceChildren(h("p", { role: "status" }, "Accepted. You join once a member's client admits you with a new key epoch."));
    }));
}
