// Enrollment and the member's devices. Keys are generated here, non-extractable, and
// stored in IndexedDB before the code is spent; the node only ever sees public keys and
// a proof of possession signed over the code's hash.

import { ApiError, enroll, homeNodeName, fetchOwnDescriptor, unb64u } from "../api.js";
import { verifyAttestation, verifyDescriptor } from "../descriptor.js";
import { generateDeviceKeys, saveDeviceKeys } from "../keystore.js";
import { pin, setSetting } from "../store.js";
import { field, form, h, section, time } from "../ui.js";

export async function enrollScreen(ctx, { onEnrolled }) {
  const code = h("input", { name: "code", required: true, autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  return h("div", { class: "screen" },
    h("h2", {}, "Enroll this device"),
    h("p", {}, "Your organization's operator gave you a one-time code. This browser creates your keys; they never leave this device."),
    form({ class: "stack", "aria-label": "Enroll" }, [field("One-time code", code, "Looks like handle.XXXXXXXX"), h("button", { type: "submit" }, "Enroll")], async () => {
      await enrollDevice(code.value.trim());
      await onEnrolled();
    }));
}

/** Keys first (kept even if the node refuses), then the code, then the attestation checked. */
export async function enrollDevice(code) {
  const node = homeNodeName();
  const bytes = await fetchOwnDescriptor();
  const desc = await verifyDescriptor(bytes, { expectedName: node, nowMs: Date.now() });
  const device = await generateDeviceKeys();
  const answer = await enroll(code, device);
  const att = await verifyAttestation(unb64u(answer.attestation), { expectedNode: node, keys: desc.keys });
  if (att.member !== answer.member || !att.devices.some((d) => d.id === device.sign.keyId)) {
    throw new ApiError("attestation.invalid", "the node attested another device");
  }
  await saveDeviceKeys(answer.member, device);
  await pin(node, bytes); // the home node's key, pinned on first use (specs/web.md)
  await setSetting("account", { member: answer.member, node, kid: device.sign.keyId });
  return answer.member;
}

export async function devicesScreen(ctx) {
  const me = await ctx.session.me();
  const fps = await ctx.keys.fingerprints(ctx.account.node);
  const list = h("ul", { class: "list" });
  const render = (devices) => list.replaceChildren(...devices.map((d) => {
    const mine = d.kid === ctx.account.kid;
    const remove = mine ? h("span", { class: "tag" }, "this device") : h("button", {
      type: "button", class: "danger", "aria-label": `Remove device ${d.kid}`,
      onclick: async (ev) => {
        ev.target.disabled = true;
        await ctx.session.removeDevice(d.kid);
        render((await ctx.session.me()).devices);
      },
    }, "Remove");
    return h("li", { class: "row" }, h("code", {}, d.kid), h("span", { class: "muted" }, `added ${time(d.created_ms)}`), remove);
  }));
  render(me.devices);
  return h("div", { class: "screen" },
    h("h2", {}, "My devices"),
    section("Who you are", h("p", {}, `${me.member} · ${me.org}${me.title ? ` · ${me.title}` : ""}`)),
    section("Devices that can read your forums", list,
      h("p", { class: "hint" }, "Removing a device ends its sessions. Your forums re-key when a member's client next syncs.")),
    section("Your node's key", h("p", {}, "Compare with the fingerprint your operator gives you:"), ...fps.map((f) => h("p", {}, h("code", { class: "fp" }, f)))));
}
