// App shell entry point: checks the browser has the WebCrypto PFP/1 needs (a member must
// not be half let in), finds this device's account, and routes #/… to the screens.
//
// Routes: #/enroll, #/forums, #/forum/FORUM/TAB, #/devices. Each screen gets the
// context and a signal aborted when the member navigates away (it ends long polls).

import { Session, homeNodeName } from "./api.js";
import { ForumClient } from "./forum.js";
import { loadDeviceKeys } from "./keystore.js";
import { NodeKeys } from "./nodekeys.js";
import { enrollScreen, devicesScreen } from "./screens/account.js";
import { forumsScreen } from "./screens/forums.js";
import { forumScreen } from "./screens/forum.js";
import { getSetting } from "./store.js";
import { supportsPfp } from "./support.js";
import { h, setStatus } from "./ui.js";

const main = document.getElementById("app");
const ctx = { account: null, session: null, keys: null, client: null };
let current = null; // AbortController of the screen on display

/** Open this device's account (keys in IndexedDB) and its session objects. */
export async function openAccount() {
  const account = await getSetting("account");
  if (!account || account.node !== homeNodeName()) return false;
  const device = await loadDeviceKeys(account.member);
  if (!device) return false;
  const session = new Session({ member: account.member, node: account.node, device });
  const keys = new NodeKeys(session);
  Object.assign(ctx, { account, device, session, keys, client: new ForumClient({ session, device, keys }) });
  return true;
}

function nav() {
  if (!ctx.account) return null;
  const link = (href, text) => h("a", { href, "aria-current": location.hash.startsWith(href) ? "page" : null }, text);
  return h("nav", { class: "topnav", "aria-label": "Main" }, link("#/forums", "Forums"), link("#/devices", "My devices"), h("span", { class: "me" }, ctx.account.member));
}

async function route() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  const [, name, ...rest] = (location.hash || "#/forums").slice(1).split("/");
  let screen;
  if (!ctx.account) screen = () => enrollScreen(ctx, { onEnrolled: async () => { await openAccount(); location.hash = "#/forums"; route(); } });
  else if (name === "devices") screen = () => devicesScreen(ctx, signal);
  else if (name === "forum" && rest[0]) screen = () => forumScreen(ctx, decodeURIComponent(rest[0]), rest[1] || "stream", signal);
  else screen = () => forumsScreen(ctx, signal);
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    const el = await screen();
    if (signal.aborted) return;
    main.replaceChildren(...[nav(), el].filter(Boolean));
    const heading = main.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); } // screen readers hear the new screen
  } catch (err) {
    if (signal.aborted) return;
    main.replaceChildren(...[nav(), h("p", { class: "error", role: "alert" }, `Could not open this screen: ${err.message}`)].filter(Boolean));
  }
}

async function start() {
  const missing = await supportsPfp();
  if (missing.length) {
    setStatus(`This browser lacks WebCrypto ${missing.join(", ")}; use a current Chromium, Firefox or Safari.`, "unsupported");
    return;
  }
  await openAccount();
  setStatus("Ready. Keys are created and kept on this device.");
  document.documentElement.dataset.ready = "1";
  window.addEventListener("hashchange", route);
  await route();
}

start();
